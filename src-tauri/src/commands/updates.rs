//! Signed updates: look for a newer release at the owner's endpoint, download
//! it and verify its minisign signature against Heiwa's public key before it
//! is offered for installation. Nothing unverified is ever kept.

use crate::error::{CommandError, CommandResult};
use crate::settings::update_url;
use crate::state::AppState;
use tauri_plugin_updater::UpdaterExt;
use tokio::sync::Mutex;
use ts_rs::TS;

/// A downloaded and verified update, waiting for the owner's go-ahead.
struct Staged {
    update: tauri_plugin_updater::Update,
    bytes: Vec<u8>,
}

/// The update waiting for the owner's go-ahead, if any: managed by the app
/// beside `AppState`, which need not know what an update is.
#[derive(Default)]
pub struct StagedUpdate(Mutex<Option<Staged>>);

#[derive(serde::Serialize, TS)]
pub struct UpdateCheck {
    pub current: String,
    /// The newer version, downloaded and verified; `None` when up to date.
    pub verified: Option<String>,
    pub notes: Option<String>,
}

/// Debug builds (the end-to-end tests) may trust another key; a release
/// trusts only the key it was built with (`plugins.updater.pubkey`).
fn test_pubkey() -> Option<String> {
    cfg!(debug_assertions).then(|| std::env::var("HEIWA_UPDATE_PUBKEY").ok()).flatten()
}

fn explain(error: tauri_plugin_updater::Error) -> CommandError {
    use tauri_plugin_updater::Error;
    let message = match error {
        Error::Minisign(_) | Error::Base64(_) | Error::SignatureUtf8(_) => format!(
            "the update was downloaded but its signature does not match Heiwa's key, so it was discarded \
             (it was altered, or not signed by Heiwa): {error}"
        ),
        Error::SignedVersionMismatch { .. } | Error::MissingSignedVersion => format!(
            "the update's signature is not for the version the server announced, so it was discarded \
             (an old release offered as a new one?): {error}"
        ),
        Error::ReleaseNotFound | Error::Reqwest(_) | Error::Network(_) => {
            format!(
                "the update server could not be reached or gave no release: {error}. Check the endpoint in Settings"
            )
        }
        other => format!("the update check failed: {other}"),
    };
    CommandError::new(message)
}

#[tauri::command]
pub async fn check_update(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    staged: tauri::State<'_, StagedUpdate>,
) -> CommandResult<UpdateCheck> {
    let updates = state.settings().updates;
    let endpoint = updates.endpoint.ok_or("no update endpoint is set: add one in Settings → Updates")?;
    let url = update_url(&endpoint, &updates.channel)?;
    let mut builder = app.updater_builder().endpoints(vec![url]).map_err(explain)?;
    if let Some(key) = test_pubkey() {
        builder = builder.pubkey(key);
    }
    let updater = builder.build().map_err(explain)?;
    let current = app.package_info().version.to_string();
    *staged.0.lock().await = None;
    let Some(update) = updater.check().await.map_err(explain)? else {
        return Ok(UpdateCheck { current, verified: None, notes: None });
    };
    let bytes = update.download(|_, _| {}, || {}).await.map_err(explain)?;
    let check = UpdateCheck { current, verified: Some(update.version.clone()), notes: update.body.clone() };
    *staged.0.lock().await = Some(Staged { update, bytes });
    Ok(check)
}

/// Install the verified update and restart into it.
#[tauri::command]
pub async fn install_update(app: tauri::AppHandle, staged: tauri::State<'_, StagedUpdate>) -> CommandResult<()> {
    let staged = staged.0.lock().await.take().ok_or("no verified update is waiting: check for updates first")?;
    staged.update.install(&staged.bytes).map_err(explain)?;
    app.restart()
}
