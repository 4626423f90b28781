//! The window comes and goes; the limb stays. Closing the window destroys
//! its WebView (WebKit's web process ends with it) while the limb goes on in
//! the tray; opening it again (tray, second launch) builds a new one from
//! `tauri.conf.json`, which reads the current state on its first paint.

use crate::state::AppState;
use tauri::{AppHandle, Manager, WebviewWindowBuilder};

const MAIN: &str = "main";

/// Show the window, building it anew if it was closed.
pub fn open(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
        return;
    }
    let Some(config) = app.config().app.windows.iter().find(|w| w.label == MAIN) else { return };
    *app.state::<AppState>().window_opened.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
    if let Err(error) = WebviewWindowBuilder::from_config(app, config).and_then(|builder| builder.build()) {
        eprintln!("heiwa: the window could not open: {error}");
    }
}

/// After the window is gone: hand the freed heap back to the system (glibc
/// keeps freed pages otherwise, and a donor's limb idles in the tray for days).
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
