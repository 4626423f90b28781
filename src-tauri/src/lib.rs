//! The desktop app is glue: Tauri commands, events and the tray over `limb_core`.
//! Everything the window shows comes from here; every change it makes goes
//! through a command the capability file grants.

mod commands;
mod settings;
mod tray;
mod update;
mod usage;

use limb_core::agent::local::LocalAgent;
use limb_core::agent::Budget;
use limb_core::governor::{Decision, DonationPolicy, Governor, SystemSignals};
use limb_core::mesh::{Mesh, RemoteHub};
use settings::Settings;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tauri::{Emitter, Manager, RunEvent};
use tokio::sync::Mutex;

/// The local mesh (hub + this machine's limb) and the agent that answers its
/// tasks (local memory, the model, the sandbox), once started.
pub(crate) struct Running {
    mesh: Mesh,
    agent: LocalAgent,
}

pub(crate) enum Limb {
    Starting,
    Ready(Box<Running>),
    Failed(String),
}

pub(crate) struct AppState {
    started: std::time::Instant,
    data_dir: PathBuf,
    settings: std::sync::Mutex<Settings>,
    governor: Arc<Governor>,
    limb: Mutex<Limb>,
    /// The folder being ingested, while one is.
    ingesting: std::sync::Mutex<Option<String>>,
    cpu: std::sync::Mutex<usage::CpuUsage>,
    staged: Mutex<Option<update::Staged>>,
}

/// Tells the window to read its state again (tasks, limb status, donation).
pub(crate) const CHANGED: &str = "limb-changed";

impl AppState {
    fn settings_path(&self) -> PathBuf {
        self.data_dir.join("settings.json")
    }

    pub(crate) fn settings(&self) -> Settings {
        self.settings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn save_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<(), String> {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = settings.clone();
        change(&mut changed);
        changed.save(&self.settings_path()).map_err(|e| e.to_string())?;
        *settings = changed;
        Ok(())
    }

    /// Change the donation policy: validated by the governor, then saved, so
    /// a refused policy changes nothing.
    pub(crate) fn change_policy(&self, change: impl FnOnce(&mut DonationPolicy)) -> Result<Decision, String> {
        let mut policy = self.governor.policy();
        change(&mut policy);
        let decision = self.governor.set_policy(policy.clone()).map_err(|e| e.to_string())?;
        self.save_settings(|settings| settings.donation = policy)?;
        Ok(decision)
    }
}

async fn start_limb(app: &tauri::AppHandle, governor: &Governor) -> Result<Running, String> {
    let state = app.state::<AppState>();
    let parts = limb_core::config::Parts::chosen(&state.data_dir).map_err(|e| e.to_string())?;
    // The same memory `heiwa ingest` fills: the "local" tenant under the data directory.
    let agent = LocalAgent::open(&parts, &state.data_dir, "local", Budget::default(), None).await.map_err(|e| e.to_string())?;
    agent.follow(&governor.decision());
    let executor = Arc::new(agent.executor(tokio::runtime::Handle::current()));
    let notifier = app.clone();
    let on_change = move || {
        let _ = notifier.emit(CHANGED, ());
    };
    let started = match state.settings().hub {
        None => Mesh::start(&parts, &state.data_dir.join("mesh"), executor, Some(governor.subscribe()), on_change).await,
        Some(hub) => {
            let joined = Mesh::join(&hub, &state.data_dir.join("remote-hub"), executor, Some(governor.subscribe()), on_change).await;
            if joined.is_ok() && hub.invite.is_some() {
                // Joined: the identity is kept in the data directory; the invite is spent.
                let spent = RemoteHub { invite: None, ..hub };
                if let Err(error) = state.save_settings(|settings| settings.hub = Some(spent)) {
                    eprintln!("{error}");
                }
            }
            joined.map_err(|e| limb_core::hub::HubError::Connect(format!("{e}; check the hub's address and invite in Settings")))
        }
    };
    match started {
        Ok(mesh) => Ok(Running { mesh, agent }),
        Err(e) => {
            let _ = agent.close().await;
            Err(e.to_string())
        }
    }
}

/// Apply each new decision: the model's resources, the tray, the window.
async fn follow_decisions(app: tauri::AppHandle, governor: Arc<Governor>) {
    let mut decisions = governor.subscribe();
    while decisions.changed().await.is_ok() {
        let decision = decisions.borrow_and_update().clone();
        let state = app.state::<AppState>();
        if let Limb::Ready(running) = &*state.limb.lock().await {
            running.agent.follow(&decision);
        }
        tray::show(&app, &governor.policy(), &decision);
        let _ = app.emit(CHANGED, ());
    }
}

fn stop_limb(app: &tauri::AppHandle) {
    let state = app.state::<AppState>();
    let mut limb = tauri::async_runtime::block_on(state.limb.lock());
    if let Limb::Ready(running) = std::mem::replace(&mut *limb, Limb::Starting) {
        let Running { mut mesh, agent } = *running;
        mesh.stop();
        if let Err(error) = tauri::async_runtime::block_on(agent.close()) {
            eprintln!("stopping local memory: {error}");
        }
    }
}

pub fn run() {
    let started = std::time::Instant::now();
    let data_dir = limb_core::config::data_dir();
    let settings = match Settings::load(&data_dir.join("settings.json")) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}; starting with default settings");
            Settings::default()
        }
    };
    let donation = match settings.donation.validate() {
        Ok(()) => settings.donation.clone(),
        Err(error) => {
            eprintln!("the saved donation settings are invalid ({error}); using the defaults until they are saved again");
            DonationPolicy::default()
        }
    };
    let governor = Governor::new(donation, SystemSignals::default(), limb_core::inference::all_cores());

    tauri::Builder::default()
        // First: a second launch only brings the running window forward.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.show();
                let _ = window.unminimize();
                let _ = window.set_focus();
            }
        }))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .plugin(tauri_plugin_autostart::init(tauri_plugin_autostart::MacosLauncher::LaunchAgent, None))
        .manage(AppState {
            started,
            data_dir,
            settings: std::sync::Mutex::new(settings),
            governor: governor.clone(),
            limb: Mutex::new(Limb::Starting),
            ingesting: std::sync::Mutex::new(None),
            cpu: std::sync::Mutex::new(usage::CpuUsage::default()),
            staged: Mutex::new(None),
        })
        .setup(move |app| {
            if let Err(error) = tray::create(app.handle()) {
                // Desktops without a tray host still get the window.
                eprintln!("no tray icon: {error}");
            }
            tray::show(app.handle(), &governor.policy(), &governor.decision());
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                // Idle time and the clock move on their own: sample them.
                governor.spawn_ticker(Duration::from_secs(5));
                tauri::async_runtime::spawn(follow_decisions(handle.clone(), governor.clone()));
                let limb = match start_limb(&handle, &governor).await {
                    Ok(running) => Limb::Ready(Box::new(running)),
                    Err(error) => Limb::Failed(error),
                };
                *handle.state::<AppState>().limb.lock().await = limb;
                let _ = handle.emit(CHANGED, ());
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::first_paint,
            commands::limb_info,
            commands::tasks,
            commands::submit_task,
            commands::cancel_task,
            commands::limb_status,
            commands::save_donation,
            commands::set_paused,
            commands::pick_folder,
            commands::ingest_folder,
            commands::documents,
            commands::remove_document,
            commands::search_memory,
            commands::models,
            commands::import_model,
            commands::use_model,
            commands::settings,
            commands::save_update_settings,
            commands::save_hub,
            commands::set_autostart,
            update::check_update,
            update::install_update,
        ])
        .build(tauri::generate_context!())
        .expect("the Heiwa window could not start")
        .run(|app, event| {
            if let RunEvent::Exit = event {
                // Stop the hub server, the limb and PostgreSQL with the app.
                stop_limb(app);
            }
        });
}
