fn main() {
    // Declaring the app's commands makes Tauri generate a permission per
    // command; the front end may call only those its capability grants.
    let manifest = tauri_build::AppManifest::new().commands(&["limb_info", "tasks", "submit_task"]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)).expect("tauri build script");
}
