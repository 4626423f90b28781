//! The commands the window may call, one module per capability. `build.rs`
//! reads the `#[tauri::command]` functions here: they are the one list from
//! which Tauri's permissions, the invoke handler and the window's capability
//! file (`capabilities/default.json`) are made.

pub mod dashboard;
pub mod donation;
pub mod limb;
pub mod memory;
pub mod models;
pub mod settings;
pub mod tasks;
pub mod updates;

use crate::error::CommandResult;
use crate::state::{AppState, Limb, Running};

/// Run `f` on the running limb, or say why it is not running.
pub(crate) async fn with_limb<T>(
    state: &AppState,
    f: impl AsyncFnOnce(&Running) -> CommandResult<T>,
) -> CommandResult<T> {
    match &*state.limb.lock().await {
        Limb::Ready(running) => f(running).await,
        other => Err(other.not_ready()),
    }
}
