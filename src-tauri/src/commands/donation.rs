//! Donation: when and how much this machine gives (the window, the tray and
//! the header all change it through here).

use crate::error::CommandResult;
use crate::state::{AppState, CHANGED};
use limb_core::governor::{Decision, DonationPolicy};
use tauri::{AppHandle, Emitter, Manager};

/// Change the donation policy and show the result at once (tray and window).
pub(crate) fn apply_policy(app: &AppHandle, change: impl FnOnce(&mut DonationPolicy)) -> CommandResult<Decision> {
    let state = app.state::<AppState>();
    let decision = state.change_policy(change)?;
    crate::tray::show(app, &state.governor.policy(), &decision);
    let _ = app.emit(CHANGED, ());
    Ok(decision)
}

#[tauri::command]
pub fn save_donation(app: AppHandle, policy: DonationPolicy) -> CommandResult<Decision> {
    apply_policy(&app, |current| *current = policy)
}

#[tauri::command]
pub fn set_paused(app: AppHandle, paused: bool) -> CommandResult<Decision> {
    apply_policy(&app, |policy| policy.paused = paused)
}
