//! Models: import GGUF files and choose the one that answers tasks.

use crate::error::{said, CommandResult};
use crate::state::{AppState, Limb};
use heiwa_inference::models::{ModelInfo, ModelStore};
use serde::Serialize;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;
use ts_rs::TS;

fn model_store(state: &AppState) -> ModelStore {
    ModelStore::new(state.data_dir.join("models"))
}

#[derive(Serialize, TS)]
pub struct ModelsView {
    pub imported: Vec<ModelInfo>,
    /// The file answering tasks now.
    pub active: Option<String>,
}

#[tauri::command]
pub async fn models(state: State<'_, AppState>) -> CommandResult<ModelsView> {
    let imported = model_store(&state).list()?;
    let active = match &*state.limb.lock().await {
        Limb::Ready(running) => running.agent.local_model().map(|m| m.model_path().display().to_string()),
        _ => None,
    };
    Ok(ModelsView { imported, active })
}

/// Pick a GGUF file and copy it into the model store (checked by loading it).
#[tauri::command]
pub async fn import_model(app: AppHandle, state: State<'_, AppState>) -> CommandResult<Option<ModelInfo>> {
    let picked = tauri::async_runtime::spawn_blocking(move || {
        app.dialog().file().set_title("Import a GGUF model").add_filter("GGUF model", &["gguf"]).blocking_pick_file()
    })
    .await?;
    let Some(picked) = picked else { return Ok(None) };
    let source = picked.into_path().map_err(said)?;
    let store = model_store(&state);
    Ok(Some(tauri::async_runtime::spawn_blocking(move || store.import(&source)).await??))
}

/// Answer tasks with an imported model from now on (and at the next start).
#[tauri::command]
pub async fn use_model(state: State<'_, AppState>, id: String) -> CommandResult<()> {
    let store = model_store(&state);
    store.set_default(&id)?;
    let path = store.default_path().ok_or("the model store lost its default")?;
    match &*state.limb.lock().await {
        Limb::Ready(running) => match running.agent.local_model() {
            Some(local) => Ok(local.set_model(path)?),
            None => Err("this limb chats with a remote server; the local model is used from the next start".into()),
        },
        _ => Ok(()), // picked up when the limb starts
    }
}
