//! Settings: the owner's settings, which hub to give to, updates, start at login.

use crate::error::{CommandError, CommandResult};
use crate::settings::{update_url, Settings, UpdateSettings, CHANNELS};
use crate::state::{AppState, Limb};
use limb_core::mesh::RemoteHub;
use serde::Serialize;
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt;
use ts_rs::TS;

#[derive(Serialize, TS)]
pub struct SettingsView {
    pub settings: Settings,
    pub channels: [&'static str; 2],
    pub autostart: bool,
    pub data_dir: String,
    /// This app's identity at its hub (hex), once connected.
    pub identity: Option<String>,
}

#[tauri::command]
pub async fn settings(app: AppHandle, state: State<'_, AppState>) -> CommandResult<SettingsView> {
    let identity = match &*state.limb.lock().await {
        Limb::Ready(running) => Some(running.mesh.identity()),
        _ => None,
    };
    Ok(SettingsView {
        settings: state.settings(),
        channels: CHANNELS,
        autostart: app.autolaunch().is_enabled().unwrap_or(false),
        data_dir: state.data_dir.display().to_string(),
        identity,
    })
}

/// Give to someone else's hub (an empty URL: back to the local hub). The limb
/// connects at the next start, so the app restarts.
#[tauri::command]
pub fn save_hub(
    app: AppHandle,
    state: State<'_, AppState>,
    url: String,
    database: String,
    invite: String,
) -> CommandResult<()> {
    let url = url.trim().to_string();
    let hub = if url.is_empty() {
        None
    } else {
        heiwa_hub::http_url(&url)?;
        let database = database.trim().to_string();
        if database.is_empty() {
            return Err("give the hub's database name (its owner knows it)".into());
        }
        let invite = Some(invite.trim().to_string()).filter(|i| !i.is_empty());
        Some(RemoteHub { url, database, invite })
    };
    state.save_settings(|settings| settings.hub = hub)?;
    app.restart()
}

#[tauri::command]
pub fn save_update_settings(state: State<'_, AppState>, endpoint: String, channel: String) -> CommandResult<()> {
    let endpoint = Some(endpoint.trim().to_string()).filter(|e| !e.is_empty());
    if let Some(endpoint) = &endpoint {
        update_url(endpoint, &channel)?;
    } else if !CHANNELS.contains(&channel.as_str()) {
        return Err(crate::settings::UpdateUrlError::Channel(channel).into());
    }
    state.save_settings(|settings| settings.updates = UpdateSettings { endpoint, channel })
}

/// Start Heiwa at login (an autostart entry), or stop doing so.
#[tauri::command]
pub fn set_autostart(app: AppHandle, enabled: bool) -> CommandResult<bool> {
    let launcher = app.autolaunch();
    let outcome = if enabled { launcher.enable() } else { launcher.disable() };
    outcome.map_err(|e| CommandError::new(format!("could not change start at login: {e}")))?;
    Ok(launcher.is_enabled()?)
}
