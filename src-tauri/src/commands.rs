//! The commands the window may call (each granted in capabilities/default.json).
//! Errors come back as one sentence that says what to do next.

use crate::{AppState, Limb, CHANGED};
use limb_core::governor::{Decision, DonationPolicy};
use limb_core::memory::{Citation, DocumentInfo, Progress};
use limb_core::hub::TaskView;
use limb_core::mesh::LimbStatus;
use limb_core::models::{ModelInfo, ModelStore};
use serde::Serialize;
use std::path::PathBuf;
use tauri::{AppHandle, Emitter, Manager, State};
use tauri_plugin_autostart::ManagerExt;
use tauri_plugin_dialog::DialogExt;

type Result<T> = std::result::Result<T, String>;

/// The window has painted its first frame: logged once with the time since
/// start, for startup diagnostics and `scripts/bench-desktop`.
#[tauri::command]
pub fn first_paint(state: State<'_, AppState>) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("heiwa: first paint {} ms after start", state.started.elapsed().as_millis()));
}

/// The limb's version, data directory and parts, for the status view.
#[tauri::command]
pub fn limb_info() -> limb_core::LimbInfo {
    limb_core::LimbInfo::gather()
}

#[derive(Serialize)]
pub struct TasksView {
    /// "starting", "ready" or "failed".
    status: &'static str,
    error: Option<String>,
    tasks: Vec<TaskView>,
}

fn not_ready(limb: &Limb) -> String {
    match limb {
        Limb::Starting => "the limb is still starting; try again in a moment".into(),
        Limb::Failed(error) => format!("the limb is not running ({error}): run scripts/setup, then restart Heiwa"),
        Limb::Ready(_) => unreachable!("only asked when not ready"),
    }
}

/// The tenant's tasks, live from the hub subscription.
#[tauri::command]
pub async fn tasks(state: State<'_, AppState>) -> Result<TasksView> {
    Ok(match &*state.limb.lock().await {
        Limb::Starting => TasksView { status: "starting", error: None, tasks: vec![] },
        Limb::Ready(running) => TasksView { status: "ready", error: None, tasks: running.mesh.tasks() },
        Limb::Failed(error) => TasksView { status: "failed", error: Some(error.clone()), tasks: vec![] },
    })
}

#[tauri::command]
pub async fn submit_task(state: State<'_, AppState>, payload: String) -> Result<()> {
    if payload.trim().is_empty() {
        return Err("write a task first".into());
    }
    match &*state.limb.lock().await {
        Limb::Ready(running) => running.mesh.submit(&payload).await.map_err(|e| e.to_string()),
        other => Err(not_ready(other)),
    }
}

#[tauri::command]
pub async fn cancel_task(state: State<'_, AppState>, task_id: u64) -> Result<()> {
    match &*state.limb.lock().await {
        Limb::Ready(running) => running.mesh.cancel(task_id).await.map_err(|e| e.to_string()),
        other => Err(not_ready(other)),
    }
}

#[derive(Serialize)]
pub struct ModelState {
    path: String,
    /// In memory now (it is loaded for the first task and kept).
    loaded: bool,
}

#[derive(Serialize)]
pub struct LimbView {
    limb: Option<LimbStatus>,
    policy: DonationPolicy,
    decision: Decision,
    model: Option<ModelState>,
    /// Why the run_python tool is unavailable (no container engine), if it is.
    tool_problem: Option<String>,
    /// Percent of the whole machine this app used since the last look.
    cpu_percent: Option<f64>,
    /// Whether this build's llama.cpp can offload to a GPU.
    gpu_offload: bool,
    ingesting: Option<String>,
}

#[tauri::command]
pub async fn limb_status(state: State<'_, AppState>) -> Result<LimbView> {
    let (limb, model, tool_problem) = match &*state.limb.lock().await {
        Limb::Ready(running) => (
            Some(running.mesh.limb()),
            running.agent.local_model().map(|m| ModelState { path: m.model_path().display().to_string(), loaded: m.is_loaded() }),
            running.agent.tool_problem().map(String::from),
        ),
        _ => (None, None, None),
    };
    Ok(LimbView {
        limb,
        policy: state.governor.policy(),
        decision: state.governor.decision(),
        model,
        tool_problem,
        cpu_percent: state.cpu.lock().unwrap_or_else(|p| p.into_inner()).sample(),
        gpu_offload: limb_core::inference::backend().is_ok_and(|b| b.supports_gpu_offload()),
        ingesting: state.ingesting.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    })
}

/// Change the donation policy and show the result at once (tray and window).
pub(crate) fn apply_policy(app: &AppHandle, change: impl FnOnce(&mut DonationPolicy)) -> Result<Decision> {
    let state = app.state::<AppState>();
    let decision = state.change_policy(change)?;
    crate::tray::show(app, &state.governor.policy(), &decision);
    let _ = app.emit(CHANGED, ());
    Ok(decision)
}

#[tauri::command]
pub fn save_donation(app: AppHandle, policy: DonationPolicy) -> Result<Decision> {
    apply_policy(&app, |current| *current = policy)
}

#[tauri::command]
pub fn set_paused(app: AppHandle, paused: bool) -> Result<Decision> {
    apply_policy(&app, |policy| policy.paused = paused)
}

/// The native folder picker; `None` when the owner cancels.
#[tauri::command]
pub async fn pick_folder(app: AppHandle) -> Result<Option<String>> {
    let picked = tauri::async_runtime::spawn_blocking(move || app.dialog().file().set_title("Add a folder to memory").blocking_pick_folder())
        .await
        .map_err(|e| e.to_string())?;
    picked.map(|p| p.into_path().map(|p| p.display().to_string()).map_err(|e| e.to_string())).transpose()
}

/// What the window hears while a folder is ingested.
#[derive(Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum IngestEvent {
    File(Progress),
    Finished { folder: String, added: usize, unchanged: usize, failed: usize, removed: usize },
    Stopped { folder: String, error: String },
}

/// Ingest a folder (or one file) into memory in the background; progress
/// arrives as `ingest` events. One folder at a time.
#[tauri::command]
pub async fn ingest_folder(app: AppHandle, state: State<'_, AppState>, path: String) -> Result<()> {
    let root = PathBuf::from(path.trim());
    if !root.is_absolute() {
        return Err(format!("\"{}\" is not a full path: choose the folder with \"Add folder…\"", root.display()));
    }
    if !root.exists() {
        return Err(format!("{} does not exist", root.display()));
    }
    let (memory, embedder) = match &*state.limb.lock().await {
        Limb::Ready(running) => (running.agent.memory().memory.clone(), running.agent.memory().embedder.clone()),
        other => return Err(not_ready(other)),
    };
    let folder = root.display().to_string();
    {
        let mut ingesting = state.ingesting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = &*ingesting {
            return Err(format!("{current} is still being added; wait for it to finish"));
        }
        *ingesting = Some(folder.clone());
    }
    tauri::async_runtime::spawn(async move {
        let emitter = app.clone();
        let mut progress = move |step: Progress| {
            let _ = emitter.emit("ingest", IngestEvent::File(step));
        };
        let outcome = limb_core::memory::ingest_path(&memory, &embedder, "local", &root, &mut progress).await;
        let event = match outcome {
            Ok(report) => IngestEvent::Finished {
                folder: folder.clone(),
                added: report.added.len(),
                unchanged: report.unchanged.len(),
                failed: report.failed.len(),
                removed: report.removed.len(),
            },
            Err(error) => IngestEvent::Stopped { folder: folder.clone(), error: error.to_string() },
        };
        *app.state::<AppState>().ingesting.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = app.emit("ingest", event);
        let _ = app.emit(CHANGED, ());
    });
    Ok(())
}

#[tauri::command]
pub async fn documents(state: State<'_, AppState>) -> Result<Vec<DocumentInfo>> {
    match &*state.limb.lock().await {
        Limb::Ready(running) => running.agent.memory().memory.documents("local").await.map_err(|e| e.to_string()),
        other => Err(not_ready(other)),
    }
}

/// Forget a document (or everything under a folder); the files stay.
#[tauri::command]
pub async fn remove_document(state: State<'_, AppState>, path: String) -> Result<usize> {
    match &*state.limb.lock().await {
        Limb::Ready(running) => {
            running.agent.memory().memory.remove_documents("local", &path).await.map(|removed| removed.len()).map_err(|e| e.to_string())
        }
        other => Err(not_ready(other)),
    }
}

/// The passages the agent would retrieve for `query`, with where they come from.
#[tauri::command]
pub async fn search_memory(state: State<'_, AppState>, query: String) -> Result<Vec<Citation>> {
    use limb_core::agent::Retriever;
    if query.trim().is_empty() {
        return Err("type what to search for".into());
    }
    let agent = match &*state.limb.lock().await {
        Limb::Ready(running) => running.agent.agent.clone(),
        other => return Err(not_ready(other)),
    };
    agent.retriever.retrieve(&query, 5).await
}

fn model_store(state: &AppState) -> ModelStore {
    ModelStore::new(state.data_dir.join("models"))
}

#[derive(Serialize)]
pub struct ModelsView {
    imported: Vec<ModelInfo>,
    /// The file answering tasks now.
    active: Option<String>,
}

#[tauri::command]
pub async fn models(state: State<'_, AppState>) -> Result<ModelsView> {
    let imported = model_store(&state).list().map_err(|e| e.to_string())?;
    let active = match &*state.limb.lock().await {
        Limb::Ready(running) => running.agent.local_model().map(|m| m.model_path().display().to_string()),
        _ => None,
    };
    Ok(ModelsView { imported, active })
}

/// Pick a GGUF file and copy it into the model store (checked by loading it).
#[tauri::command]
pub async fn import_model(app: AppHandle, state: State<'_, AppState>) -> Result<Option<ModelInfo>> {
    let picker = app.clone();
    let picked = tauri::async_runtime::spawn_blocking(move || {
        picker.dialog().file().set_title("Import a GGUF model").add_filter("GGUF model", &["gguf"]).blocking_pick_file()
    })
    .await
    .map_err(|e| e.to_string())?;
    let Some(picked) = picked else { return Ok(None) };
    let source = picked.into_path().map_err(|e| e.to_string())?;
    let store = model_store(&state);
    let info = tauri::async_runtime::spawn_blocking(move || store.import(&source)).await.map_err(|e| e.to_string())?;
    info.map(Some).map_err(|e| e.to_string())
}

/// Answer tasks with an imported model from now on (and at the next start).
#[tauri::command]
pub async fn use_model(state: State<'_, AppState>, id: String) -> Result<()> {
    let store = model_store(&state);
    store.set_default(&id).map_err(|e| e.to_string())?;
    let path = store.default_path().ok_or("the model store lost its default")?;
    match &*state.limb.lock().await {
        Limb::Ready(running) => match running.agent.local_model() {
            Some(local) => local.set_model(path).map_err(|e| e.to_string()),
            None => Err("this limb chats with a remote server; the local model is used from the next start".into()),
        },
        _ => Ok(()), // picked up when the limb starts
    }
}

#[derive(Serialize)]
pub struct SettingsView {
    settings: crate::settings::Settings,
    channels: [&'static str; 2],
    autostart: bool,
    data_dir: String,
    /// This app's identity at its hub (hex), once connected.
    identity: Option<String>,
}

#[tauri::command]
pub async fn settings(app: AppHandle, state: State<'_, AppState>) -> Result<SettingsView> {
    let identity = match &*state.limb.lock().await {
        Limb::Ready(running) => Some(running.mesh.identity()),
        _ => None,
    };
    Ok(SettingsView {
        settings: state.settings(),
        channels: crate::settings::CHANNELS,
        autostart: app.autolaunch().is_enabled().unwrap_or(false),
        data_dir: state.data_dir.display().to_string(),
        identity,
    })
}

/// Give to someone else's hub (an empty URL: back to the local hub). The limb
/// connects at the next start, so the app restarts.
#[tauri::command]
pub fn save_hub(app: AppHandle, state: State<'_, AppState>, url: String, database: String, invite: String) -> Result<()> {
    let url = url.trim().to_string();
    let hub = if url.is_empty() {
        None
    } else {
        limb_core::mesh::http_url(&url).map_err(|e| e.to_string())?;
        let database = database.trim().to_string();
        if database.is_empty() {
            return Err("give the hub's database name (its owner knows it)".into());
        }
        let invite = Some(invite.trim().to_string()).filter(|i| !i.is_empty());
        Some(limb_core::mesh::RemoteHub { url, database, invite })
    };
    state.save_settings(|settings| settings.hub = hub)?;
    app.restart()
}

#[tauri::command]
pub fn save_update_settings(state: State<'_, AppState>, endpoint: String, channel: String) -> Result<()> {
    let endpoint = Some(endpoint.trim().to_string()).filter(|e| !e.is_empty());
    if let Some(endpoint) = &endpoint {
        crate::settings::update_url(endpoint, &channel)?;
    } else if !crate::settings::CHANNELS.contains(&channel.as_str()) {
        return Err(format!("unknown update channel \"{channel}\": choose stable or beta"));
    }
    state.save_settings(|settings| settings.updates = crate::settings::UpdateSettings { endpoint, channel })
}

/// Start Heiwa at login (an autostart entry), or stop doing so.
#[tauri::command]
pub fn set_autostart(app: AppHandle, enabled: bool) -> Result<bool> {
    let launcher = app.autolaunch();
    let outcome = if enabled { launcher.enable() } else { launcher.disable() };
    outcome.map_err(|e| format!("could not change start at login: {e}"))?;
    launcher.is_enabled().map_err(|e| e.to_string())
}
