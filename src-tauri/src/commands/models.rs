//! Models: download one (the catalogue, a URL, an `hf:` reference), import
//! a GGUF file, and choose the one that answers tasks.

use crate::error::{said, CommandError, CommandResult};
use crate::event::Event;
use crate::state::{launch_limb, AppState, Limb};
use heiwa_inference::models::{ModelInfo, ModelStore};
use limb_core::claim::{fetched_models, FetchedModel};
use limb_core::models::{CatalogueEntry, Pull, CATALOGUE, HF_ENDPOINT};
use serde::Serialize;
use tauri::{AppHandle, Manager, State};
use tauri_plugin_dialog::DialogExt;
use ts_rs::TS;

/// How far the download in progress is (an event, several a second at most).
pub const PULL_PROGRESS: Event<PullProgress> = Event::named("model-pull");

#[derive(Clone, Serialize, TS)]
pub struct PullProgress {
    pub source: String,
    #[ts(type = "number")]
    pub have: u64,
    #[ts(type = "number | null")]
    pub total: Option<u64>,
}

fn model_store(state: &AppState) -> ModelStore {
    ModelStore::new(state.data_dir.join("models"))
}

#[derive(Serialize, TS)]
pub struct ModelsView {
    pub imported: Vec<ModelInfo>,
    /// The file answering tasks now.
    pub active: Option<String>,
    /// Models the app offers to download.
    pub catalogue: Vec<CatalogueEntry>,
    /// Where `hf:` models come from (Hugging Face, or the owner's mirror).
    pub endpoint: String,
    /// A download is in progress.
    pub pulling: bool,
    /// The models the limb fetched for the tenant's catalogue (and when it dropped any).
    pub fetched: Vec<FetchedModel>,
    /// Hours a dropped one stays before it is deleted (unless pinned).
    pub keep_dropped_hours: u32,
}

#[tauri::command]
pub async fn models(state: State<'_, AppState>) -> CommandResult<ModelsView> {
    let imported = model_store(&state).list()?;
    let active = match &*state.limb.lock().await {
        Limb::Ready(running) => running.agent.local_model().map(|m| m.model_path().display().to_string()),
        _ => None,
    };
    let pulling = state.pulling.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    Ok(ModelsView {
        fetched: fetched_models(&model_store(&state)),
        keep_dropped_hours: state.governor.policy().models_keep_dropped_hours,
        imported,
        active,
        catalogue: CATALOGUE.to_vec(),
        endpoint: endpoint(&state),
        pulling,
    })
}

/// Keep a model on this machine whatever the tenant's catalogue says (or no longer).
#[tauri::command]
pub fn pin_model(state: State<'_, AppState>, id: String, pinned: bool) -> CommandResult<()> {
    Ok(model_store(&state).set_pinned(&id, pinned)?)
}

fn endpoint(state: &AppState) -> String {
    state.settings().model_mirror.unwrap_or_else(|| HF_ENDPOINT.into())
}

/// Download a model (resuming what an earlier download of it left), check it,
/// and list it; the first model answers tasks, and a limb that was waiting
/// for one starts. Progress arrives as `model-pull` events.
#[tauri::command]
pub async fn pull_model(
    app: AppHandle,
    state: State<'_, AppState>,
    source: String,
    sha256: Option<String>,
) -> CommandResult<ModelInfo> {
    let mut pull = Pull::new(source.trim(), endpoint(&state));
    pull.sha256 = sha256.map(|hex| hex.trim().to_string()).filter(|hex| !hex.is_empty());
    let store = model_store(&state);
    let emitter = app.clone();
    let task = tauri::async_runtime::spawn(async move {
        let mut last = std::time::Instant::now();
        limb_core::models::pull(&store, &pull, |progress| {
            // The window redraws a few times a second, not per network read.
            if last.elapsed() >= std::time::Duration::from_millis(200) || Some(progress.have) == progress.total {
                last = std::time::Instant::now();
                let event = PullProgress { source: pull.source.clone(), have: progress.have, total: progress.total };
                PULL_PROGRESS.emit(&emitter, event);
            }
        })
        .await
    });
    {
        let mut pulling = state.pulling.lock().unwrap_or_else(|p| p.into_inner());
        if pulling.is_some() {
            task.abort();
            return Err(CommandError::with_hint("a model is downloading already", "wait for it, or cancel it"));
        }
        *pulling = Some(task.inner().abort_handle());
    }
    let outcome = task.await;
    *state.pulling.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let pulled = match outcome {
        Ok(pulled) => pulled.map_err(said)?,
        Err(_) => {
            return Err(CommandError::with_hint(
                "the download was cancelled",
                "what arrived is kept: download it again to continue where it stopped",
            ))
        }
    };
    start_if_waiting(&app).await;
    Ok(pulled.info)
}

/// Stop the download in progress; what arrived stays for the next try.
#[tauri::command]
pub fn cancel_pull(state: State<'_, AppState>) {
    if let Some(pulling) = state.pulling.lock().unwrap_or_else(|p| p.into_inner()).take() {
        pulling.abort();
    }
}

/// Download `hf:` models from this mirror (an empty address: from Hugging Face).
#[tauri::command]
pub fn save_model_mirror(state: State<'_, AppState>, mirror: String) -> CommandResult<()> {
    let mirror = Some(mirror.trim().trim_end_matches('/').to_string()).filter(|m| !m.is_empty());
    if let Some(mirror) = &mirror {
        crate::settings::mirror_url(mirror)?;
    }
    state.save_settings(|settings| settings.model_mirror = mirror)
}

/// A limb that waited for a model starts once there is one.
async fn start_if_waiting(app: &AppHandle) {
    let waiting = matches!(&*app.state::<AppState>().limb.lock().await, Limb::NoModel(_));
    if waiting {
        tauri::async_runtime::spawn(launch_limb(app.clone()));
    }
}

/// Pick a GGUF file and copy it into the model store (checked by loading it).
#[tauri::command]
pub async fn import_model(app: AppHandle, state: State<'_, AppState>) -> CommandResult<Option<ModelInfo>> {
    let dialog = app.clone();
    let picked = tauri::async_runtime::spawn_blocking(move || {
        dialog.dialog().file().set_title("Import a GGUF model").add_filter("GGUF model", &["gguf"]).blocking_pick_file()
    })
    .await?;
    let Some(picked) = picked else { return Ok(None) };
    let source = picked.into_path().map_err(said)?;
    let store = model_store(&state);
    let imported = {
        let store = store.clone();
        tauri::async_runtime::spawn_blocking(move || store.import(&source)).await??
    };
    // As with a download: the first model answers tasks.
    if store.default_id().is_none() {
        store.set_default(&imported.id)?;
    }
    start_if_waiting(&app).await;
    Ok(Some(imported))
}

/// Answer tasks with an imported model from now on (and at the next start).
#[tauri::command]
pub async fn use_model(app: AppHandle, state: State<'_, AppState>, id: String) -> CommandResult<()> {
    let store = model_store(&state);
    store.set_default(&id)?;
    let path = store.default_path().ok_or("the model store lost its default")?;
    match &*state.limb.lock().await {
        Limb::Ready(running) => match running.agent.local_model() {
            Some(local) => Ok(local.set_model(path)?),
            None => Err("this limb chats with a remote server; the local model is used from the next start".into()),
        },
        Limb::NoModel(_) => {
            start_if_waiting(&app).await;
            Ok(())
        }
        _ => Ok(()), // picked up when the limb starts
    }
}
