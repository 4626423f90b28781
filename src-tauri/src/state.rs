//! What the app holds while it runs: the settings, the donation governor and
//! this machine's limb (the mesh and the agent answering its tasks).

use crate::error::{CommandError, CommandResult};
use crate::event::LIMB_CHANGED;
use crate::settings::Settings;
use heiwa_hub::ModelOffer;
use limb_core::agent::local::LocalAgent;
use limb_core::agent::Budget;
use limb_core::claim::Offer;
use limb_core::governor::{Decision, DonationPolicy, Governor};
use limb_core::mesh::{Mesh, RemoteHub};
use std::path::PathBuf;
use std::sync::Arc;
use tauri::Manager;
use tokio::sync::Mutex;

/// The local mesh (hub + this machine's limb) and the agent that answers its
/// tasks (local memory, the model, the sandbox), once started.
pub(crate) struct Running {
    pub(crate) mesh: Mesh,
    pub(crate) agent: LocalAgent,
}

pub(crate) enum Limb {
    Starting,
    Ready(Box<Running>),
    /// Nothing to answer with yet (a first run): the window offers models.
    NoModel(String),
    Failed(String),
}

pub(crate) struct AppState {
    pub(crate) started: std::time::Instant,
    /// When the window was last reopened (after a close to the tray).
    pub(crate) window_opened: std::sync::Mutex<Option<std::time::Instant>>,
    pub(crate) data_dir: PathBuf,
    pub(crate) settings: std::sync::Mutex<Settings>,
    pub(crate) governor: Arc<Governor>,
    pub(crate) limb: Mutex<Limb>,
    /// The folder being ingested, while one is.
    pub(crate) ingesting: std::sync::Mutex<Option<String>>,
    pub(crate) cpu: std::sync::Mutex<crate::usage::CpuUsage>,
    /// The chat model's generated tokens, for its pace between the Limb view's looks.
    pub(crate) tokens: std::sync::Mutex<crate::usage::Rate>,
    /// The model download in progress (one at a time), to cancel it.
    pub(crate) pulling: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl AppState {
    fn settings_path(&self) -> PathBuf {
        self.data_dir.join("settings.json")
    }

    pub(crate) fn settings(&self) -> Settings {
        self.settings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn save_settings(&self, change: impl FnOnce(&mut Settings)) -> CommandResult<()> {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = settings.clone();
        change(&mut changed);
        changed.save(&self.settings_path())?;
        *settings = changed;
        Ok(())
    }

    /// Change the donation policy: validated by the governor, then saved, so
    /// a refused policy changes nothing.
    pub(crate) fn change_policy(&self, change: impl FnOnce(&mut DonationPolicy)) -> CommandResult<Decision> {
        let mut policy = self.governor.policy();
        change(&mut policy);
        let decision = self.governor.set_policy(policy.clone())?;
        self.save_settings(|settings| settings.donation = policy)?;
        Ok(decision)
    }
}

/// Start the limb and say how it went: at launch, and again when a first
/// model arrives (a limb that could not start has nothing to stop).
pub(crate) async fn launch_limb(app: tauri::AppHandle) {
    let state = app.state::<AppState>();
    *state.limb.lock().await = Limb::Starting;
    LIMB_CHANGED.emit(&app, ());
    let limb = match limb_core::chosen_parts(&state.data_dir) {
        Err(missing) => Limb::Failed(missing.to_string()),
        Ok(parts) => match parts.chat_model() {
            Err(no_model) => Limb::NoModel(no_model.to_string()),
            Ok(chat_model) => match start_limb(&app, &state.governor, &parts, &chat_model).await {
                Ok(running) => Limb::Ready(Box::new(running)),
                Err(error) => Limb::Failed(error.to_string()),
            },
        },
    };
    *state.limb.lock().await = limb;
    LIMB_CHANGED.emit(&app, ());
}

async fn start_limb(
    app: &tauri::AppHandle,
    governor: &Governor,
    parts: &heiwa_config::Parts,
    chat_model: &std::path::Path,
) -> CommandResult<Running> {
    let state = app.state::<AppState>();
    // The same memory `heiwa ingest` fills: the "local" tenant under the data directory.
    let agent = LocalAgent::open(parts, &state.data_dir, "local", Budget::default(), None)
        .await
        .map_err(|e| CommandError::new(e.to_string()))?;
    agent.follow(&governor.decision());
    // What the hub may route to this machine: the model it answers with, and the tool when the sandbox is there.
    let offer = Offer {
        models: vec![ModelOffer { id: heiwa_inference::models::model_id(chat_model), sha256: String::new() }],
        tool: agent.tool_problem().is_none(),
        // Gives GPU work: a GPU is there and the owner has not kept the model off it.
        gpu: !heiwa_inference::gpu::gpus().unwrap_or_default().is_empty()
            && governor.decision().offload != heiwa_inference::Offload::CPU,
    };
    let executor = Arc::new(agent.executor(tokio::runtime::Handle::current()));
    let notifier = app.clone();
    let on_change = move || {
        LIMB_CHANGED.emit(&notifier, ());
    };
    let started = match state.settings().hub {
        None => {
            Mesh::start(parts, &state.data_dir.join("mesh"), executor, offer, Some(governor.subscribe()), on_change)
                .await
                .map_err(CommandError::from)
        }
        Some(hub) => {
            let joined = Mesh::join(
                &hub,
                &state.data_dir.join("remote-hub"),
                executor,
                offer,
                // The tenant's catalogue models, into the same store as the Models view's.
                Some(limb_core::claim::ModelFetching::for_policy(
                    heiwa_inference::models::ModelStore::new(state.data_dir.join("models")),
                    &governor.policy(),
                    state.settings().model_mirror.unwrap_or_else(|| limb_core::models::HF_ENDPOINT.into()),
                )),
                Some(governor.subscribe()),
                on_change,
            )
            .await;
            if joined.is_ok() && hub.invite.is_some() {
                // Joined: the identity is kept in the data directory; the invite is spent.
                let spent = RemoteHub { invite: None, ..hub };
                if let Err(error) = state.save_settings(|settings| settings.hub = Some(spent)) {
                    eprintln!("{error}");
                }
            }
            joined.map_err(|e| CommandError::with_hint(e.to_string(), "check the hub's address and invite in Settings"))
        }
    };
    match started {
        Ok(mesh) => Ok(Running { mesh, agent }),
        Err(e) => {
            let _ = agent.close().await;
            Err(e)
        }
    }
}

pub(crate) fn stop_limb(app: &tauri::AppHandle) {
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

impl Limb {
    /// Why a command that needs the running limb cannot run yet.
    pub(crate) fn not_ready(&self) -> CommandError {
        match self {
            Limb::Starting => CommandError::with_hint("the limb is still starting", "try again in a moment"),
            Limb::NoModel(_) => {
                CommandError::with_hint("no model answers tasks yet", "download or import one in Models")
            }
            Limb::Failed(error) => CommandError::with_hint(
                format!("the limb is not running ({error})"),
                "reinstall Heiwa if a part is missing, then restart it",
            ),
            Limb::Ready(_) => unreachable!("only asked when not ready"),
        }
    }
}
