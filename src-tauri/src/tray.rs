//! The tray: what the limb is doing, pause/resume giving, pause GPU work. It
//! knows only its menu: what an entry does is the app's (`lib.rs`), so the
//! tray sits below everything it could otherwise call back into.

use limb_core::governor::{Decision, DonationPolicy};
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};

/// The menu entries whose text follows the governor.
struct TrayItems {
    status: MenuItem<Wry>,
    pause: MenuItem<Wry>,
    gpu: CheckMenuItem<Wry>,
}

/// What a person asked for from the tray's menu.
pub enum TrayAction {
    TogglePause,
    ToggleGpuPause,
    ShowWindow,
    Quit,
}

pub fn create(app: &AppHandle, act: fn(&AppHandle, TrayAction)) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, "status", "Starting…", false, None::<&str>)?;
    let pause = MenuItem::with_id(app, "pause", "Pause giving", true, None::<&str>)?;
    let gpu = CheckMenuItem::with_id(app, "gpu", "Pause GPU work", true, false, None::<&str>)?;
    let open = MenuItem::with_id(app, "show", "Show Heiwa", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Heiwa", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&status, &separator, &pause, &gpu, &open, &quit])?;
    let mut tray = TrayIconBuilder::with_id("heiwa").tooltip("Heiwa").menu(&menu).on_menu_event(move |app, event| {
        let action = match event.id().as_ref() {
            "pause" => TrayAction::TogglePause,
            "gpu" => TrayAction::ToggleGpuPause,
            "show" => TrayAction::ShowWindow,
            "quit" => TrayAction::Quit,
            _ => return,
        };
        act(app, action);
    });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    app.manage(TrayItems { status, pause, gpu });
    Ok(())
}

/// Whether the tray is there to reopen the window from.
pub fn exists(app: &AppHandle) -> bool {
    app.try_state::<TrayItems>().is_some()
}

/// The tray's words for the current policy and decision.
pub fn labels(policy: &DonationPolicy, decision: &Decision) -> (String, &'static str) {
    let status = if decision.give {
        format!("Giving — {}", decision.reason)
    } else {
        format!("Not giving — {}", decision.reason)
    };
    (status, if policy.paused { "Resume giving" } else { "Pause giving" })
}

pub fn show(app: &AppHandle, policy: &DonationPolicy, decision: &Decision) {
    let Some(items) = app.try_state::<TrayItems>() else { return };
    let (status, pause) = labels(policy, decision);
    let _ = items.status.set_text(status);
    let _ = items.pause.set_text(pause);
    let _ = items.gpu.set_checked(policy.gpu_paused);
}
