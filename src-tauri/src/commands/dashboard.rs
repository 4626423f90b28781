//! The web dashboard: the owner signs browsers in (a one-use code) and takes
//! them out again. The browsers then talk to the hub themselves.

use super::with_limb;
use crate::error::CommandResult;
use crate::state::AppState;
use limb_core::mesh::DashboardInvite;
use serde::Serialize;
use tauri::State;
use ts_rs::TS;

/// A browser signed into the tenant's dashboard.
#[derive(Serialize, TS)]
pub struct BrowserView {
    pub identity: String,
    pub label: String,
    pub submits: bool,
}

#[tauri::command]
pub async fn dashboard_invite(
    state: State<'_, AppState>,
    submits: bool,
    label: String,
) -> CommandResult<DashboardInvite> {
    let label = Some(label.trim().to_string()).filter(|l| !l.is_empty()).unwrap_or_else(|| "browser".into());
    with_limb(&state, async |running| Ok(running.mesh.dashboard_invite(submits, &label).await?)).await
}

#[tauri::command]
pub async fn dashboard_browsers(state: State<'_, AppState>) -> CommandResult<Vec<BrowserView>> {
    with_limb(&state, async |running| {
        let rows = running.mesh.browsers().await?;
        Ok(rows
            .into_iter()
            .map(|row| BrowserView { identity: row.identity, label: row.label, submits: row.submits })
            .collect())
    })
    .await
}

#[tauri::command]
pub async fn revoke_browser(state: State<'_, AppState>, identity: String) -> CommandResult<()> {
    with_limb(&state, async |running| Ok(running.mesh.revoke_browser(&identity).await?)).await
}
