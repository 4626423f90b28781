//! Donation: when and how much this machine gives (the window, the tray and
//! the header all change it through here).

use crate::error::CommandResult;
use crate::event::LIMB_CHANGED;
use crate::state::{AppState, Limb};
use limb_core::governor::{Decision, DonationPolicy, Governor};
use std::sync::Arc;
use tauri::{AppHandle, Manager};

/// Change the donation policy and show the result at once (tray and window).
pub(crate) fn apply_policy(app: &AppHandle, change: impl FnOnce(&mut DonationPolicy)) -> CommandResult<Decision> {
    let state = app.state::<AppState>();
    let decision = state.change_policy(change)?;
    crate::tray::show(app, &state.governor.policy(), &decision);
    LIMB_CHANGED.emit(app, ());
    Ok(decision)
}

/// Apply each new decision: the model's resources, the tray, the window.
pub(crate) async fn follow_decisions(app: AppHandle, governor: Arc<Governor>) {
    let mut decisions = governor.subscribe();
    while decisions.changed().await.is_ok() {
        let decision = decisions.borrow_and_update().clone();
        let state = app.state::<AppState>();
        if let Limb::Ready(running) = &*state.limb.lock().await {
            running.agent.follow(&decision);
        }
        crate::tray::show(&app, &governor.policy(), &decision);
        LIMB_CHANGED.emit(&app, ());
    }
}

#[tauri::command]
pub fn save_donation(app: AppHandle, policy: DonationPolicy) -> CommandResult<Decision> {
    apply_policy(&app, |current| *current = policy)
}

#[tauri::command]
pub fn set_paused(app: AppHandle, paused: bool) -> CommandResult<Decision> {
    apply_policy(&app, |policy| policy.paused = paused)
}
