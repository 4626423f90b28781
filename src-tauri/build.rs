fn main() {
    // Declaring the app's commands makes Tauri generate a permission per
    // command; the front end may call only those its capability grants.
    let manifest = tauri_build::AppManifest::new().commands(&[
        "first_paint",
        "limb_info",
        "tasks",
        "submit_task",
        "cancel_task",
        "limb_status",
        "save_donation",
        "set_paused",
        "pick_folder",
        "ingest_folder",
        "documents",
        "remove_document",
        "search_memory",
        "models",
        "import_model",
        "use_model",
        "settings",
        "save_update_settings",
        "save_hub",
        "set_autostart",
        "check_update",
        "install_update",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)).expect("tauri build script");
}
