//! The app's command list has one source: the `#[tauri::command]` functions in
//! `src/commands/*.rs`. From them this makes Tauri's per-command permissions
//! (the app manifest), the invoke handler (`OUT_DIR/invoke_handler.rs`) and
//! the window's capability file (`capabilities/default.json`, committed so a
//! review sees what the window may call; `scripts/test` fails if it drifts).

use std::fmt::Write as _;
use std::path::Path;

/// `(module, function)` for each command, modules and functions in file order.
fn commands(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("src/commands exists")
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs") && path.file_stem().is_some_and(|s| s != "mod"))
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let module = file.file_stem().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&file).expect("a readable command module");
        let mut lines = source.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[tauri::command]" {
                continue;
            }
            let signature = lines.next().unwrap_or_default();
            let name = signature
                .strip_prefix("pub async fn ")
                .or_else(|| signature.strip_prefix("pub fn "))
                .and_then(|rest| rest.split(['(', '<']).next())
                .unwrap_or_else(|| {
                    panic!("{}: #[tauri::command] must be followed by `pub fn` or `pub async fn`", file.display())
                });
            found.push((module.clone(), name.to_string()));
        }
    }
    found
}

fn main() {
    let dir = Path::new("src/commands");
    println!("cargo:rerun-if-changed={}", dir.display());
    // Tauri's manifest keeps the names for the whole build: leaked, as a build script may.
    let commands: &'static [(String, String)] = commands(dir).leak();
    let names: &'static [&'static str] = commands.iter().map(|(_, name)| name.as_str()).collect::<Vec<_>>().leak();

    let mut handler = String::from("tauri::generate_handler![\n");
    for (module, name) in commands {
        writeln!(handler, "    commands::{module}::{name},").unwrap();
    }
    handler.push(']');
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("invoke_handler.rs"), handler).expect("writing the invoke handler");

    let mut permissions = vec!["core:event:default".to_string()];
    permissions.extend(names.iter().map(|name| format!("allow-{}", name.replace('_', "-"))));
    let capability = serde_json::json!({
        "$schema": "../gen/schemas/desktop-schema.json",
        "identifier": "default",
        "description": "What the main window may call: listening to events and the app's own commands, nothing else (no plugin's JS API: dialogs, updates and autostart go through those commands). Written by build.rs from src/commands.",
        "windows": ["main"],
        "permissions": permissions,
    });
    let capability = serde_json::to_string_pretty(&capability).expect("JSON") + "\n";
    let path = Path::new("capabilities/default.json");
    if std::fs::read_to_string(path).ok().as_deref() != Some(capability.as_str()) {
        std::fs::write(path, capability).expect("writing capabilities/default.json");
    }

    // Declaring the commands makes Tauri generate a permission per command;
    // the window may call only those its capability grants.
    let manifest = tauri_build::AppManifest::new().commands(names);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)).expect("tauri build script");
}
