//! Tasks: the tenant's tasks live from the hub; submit and cancel.

use super::with_limb;
use crate::error::CommandResult;
use crate::state::{AppState, Limb};
use heiwa_hub::TaskView;
use serde::Serialize;
use tauri::State;
use ts_rs::TS;

#[derive(Serialize, TS)]
pub struct TasksView {
    pub status: LimbPhase,
    pub error: Option<String>,
    /// The address of the hub this limb gives to when it is someone else's;
    /// `None`: the hub this app runs itself.
    pub hub: Option<String>,
    pub tasks: Vec<TaskView>,
}

#[derive(Clone, Copy, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LimbPhase {
    Starting,
    Ready,
    /// Nothing to answer with yet: a first run.
    NoModel,
    Failed,
}

/// The tenant's tasks, live from the hub subscription.
#[tauri::command]
pub async fn tasks(state: State<'_, AppState>) -> CommandResult<TasksView> {
    let hub = state.settings().hub.map(|hub| hub.url);
    let (status, error, tasks) = match &*state.limb.lock().await {
        Limb::Starting => (LimbPhase::Starting, None, vec![]),
        Limb::Ready(running) => (LimbPhase::Ready, None, running.mesh.tasks()),
        Limb::NoModel(why) => (LimbPhase::NoModel, Some(why.clone()), vec![]),
        Limb::Failed(error) => (LimbPhase::Failed, Some(error.clone()), vec![]),
    };
    Ok(TasksView { status, error, hub, tasks })
}

#[tauri::command]
pub async fn submit_task(state: State<'_, AppState>, payload: String, replicas: Option<u32>) -> CommandResult<()> {
    if payload.trim().is_empty() {
        return Err("write a task first".into());
    }
    let replicas = replicas.unwrap_or(1);
    with_limb(&state, async |running| Ok(running.mesh.submit(&payload, replicas).await?)).await
}

#[tauri::command]
pub async fn cancel_task(state: State<'_, AppState>, task_id: u64) -> CommandResult<()> {
    with_limb(&state, async |running| Ok(running.mesh.cancel(task_id).await?)).await
}
