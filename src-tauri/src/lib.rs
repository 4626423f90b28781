//! The desktop app is glue: Tauri commands and events over `limb_core`.

/// The limb's version, data directory and parts, for the status view.
#[tauri::command]
fn limb_info() -> limb_core::LimbInfo {
    limb_core::LimbInfo::gather()
}

pub fn run() {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![limb_info])
        .run(tauri::generate_context!())
        .expect("the Heiwa window could not start");
}
