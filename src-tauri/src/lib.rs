//! The desktop app is glue: Tauri commands (one module per capability in
//! `commands/`), events and the tray over `limb_core`. Everything the window
//! shows comes from here, as types exported to TypeScript (`contract`); every
//! change it makes goes through a command the capability file grants.

mod commands;
#[cfg(test)]
mod contract;
mod error;
mod event;
mod settings;
mod state;
mod tray;
mod usage;
mod window;

use commands::donation::{apply_policy, follow_decisions};
use limb_core::governor::{DonationPolicy, Governor, SystemSignals};
use settings::Settings;
use state::{launch_limb, stop_limb, AppState, Limb};
use std::time::Duration;
use tauri::{AppHandle, RunEvent};
use tokio::sync::Mutex;
use tray::TrayAction;

pub fn run() {
    let started = std::time::Instant::now();
    // Documents are extracted in worker processes of this binary, each under a budget (main calls serve_if_worker).
    match (std::env::current_exe(), heiwa_memory::Budget::from_env()) {
        (Ok(program), Ok(budget)) => heiwa_memory::isolate_with(program, budget),
        (Ok(program), Err(error)) => {
            eprintln!("{error}; extracting with the default budget");
            heiwa_memory::isolate_with(program, heiwa_memory::Budget::DEFAULT);
        }
        (Err(error), _) => eprintln!("{error}: documents are extracted in this process, without a budget"),
    }
    let data_dir = heiwa_config::data_dir();
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
            eprintln!(
                "the saved donation settings are invalid ({error}); using the defaults until they are saved again"
            );
            DonationPolicy::default()
        }
    };
    let governor = Governor::new(donation, SystemSignals::default(), heiwa_inference::all_cores());

    tauri::Builder::default()
        // First: a second launch only brings the running window forward.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| window::open(app)))
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
            tokens: std::sync::Mutex::new(usage::Rate::default()),
            pulling: std::sync::Mutex::new(None),
            window_opened: std::sync::Mutex::new(None),
        })
        .manage(commands::updates::StagedUpdate::default())
        .setup(move |app| {
            if let Err(error) = tray::create(app.handle(), tray_action) {
                // Desktops without a tray host still get the window.
                eprintln!("no tray icon: {error}");
            }
            tray::show(app.handle(), &governor.policy(), &governor.decision());
            // SIGTERM (a logout, `systemctl stop`, `kill`) and SIGINT quit as
            // the tray's Quit does: the hub server and PostgreSQL stop with the app.
            let quitting = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                quitting.exit(0);
            });
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                // Idle time and the clock move on their own: sample them.
                governor.spawn_ticker(Duration::from_secs(5));
                tauri::async_runtime::spawn(follow_decisions(handle.clone(), governor.clone()));
                launch_limb(handle).await;
            });
            Ok(())
        })
        // Every `#[tauri::command]` in `commands/`, as build.rs found them.
        .invoke_handler(include!(concat!(env!("OUT_DIR"), "/invoke_handler.rs")))
        .build(tauri::generate_context!())
        .expect("the Heiwa window could not start")
        .run(|app, event| match event {
            // The window was closed (not Quit, which exits with a code): with
            // a tray to come back from, the limb keeps running there.
            RunEvent::ExitRequested { code: None, api, .. } if tray::exists(app) => {
                api.prevent_exit();
                window::release_memory();
                // WebKit lets go of the rest a moment later.
                std::thread::spawn(|| {
                    std::thread::sleep(Duration::from_secs(3));
                    window::release_memory();
                });
            }
            // Stop the hub server, the limb and PostgreSQL with the app.
            RunEvent::Exit => stop_limb(app),
            _ => {}
        });
}

/// What each tray entry does.
fn tray_action(app: &AppHandle, action: TrayAction) {
    let changed = match action {
        TrayAction::TogglePause => apply_policy(app, |policy| policy.paused = !policy.paused),
        TrayAction::ToggleGpuPause => apply_policy(app, |policy| policy.gpu_paused = !policy.gpu_paused),
        TrayAction::ShowWindow => return window::open(app),
        TrayAction::Quit => return app.exit(0),
    };
    if let Err(error) = changed {
        eprintln!("tray: {error}");
    }
}
