//! The app's command list has one source: the `#[tauri::command]` functions in
//! `src/commands/*.rs`. From them this makes Tauri's per-command permissions
//! (the app manifest), the invoke handler (`OUT_DIR/invoke_handler.rs`), the
//! window's capability file (`capabilities/default.json`, committed so a
//! review sees what the window may call) and the window's typed calls and
//! events (`ui/src/lib/generated/commands.ts`, committed so svelte-check holds every
//! view to the Rust signatures); `scripts/test` fails if either drifts.

use std::fmt::Write as _;
use std::path::Path;

/// One `#[tauri::command]`: where it is, what the window passes, what it gets.
struct Command {
    module: String,
    name: String,
    /// `(name, Rust type)` of the arguments the window passes (not the
    /// `AppHandle` or `State` Tauri gives).
    arguments: Vec<(String, String)>,
    /// The Rust type of what it returns (`CommandResult<T>` → `T`; none → `()`).
    returns: String,
}

/// The command modules, in name order.
fn command_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("src/commands exists")
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs") && path.file_stem().is_some_and(|s| s != "mod"))
        .collect();
    files.sort();
    files
}

/// Split `text` at the commas outside any `<>`, `()` or `[]`.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in text.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts.into_iter().map(|part| part.trim().to_string()).filter(|part| !part.is_empty()).collect()
}

/// A command's signature, `pub fn name(args) -> Returns {` on one line.
fn parse_signature(module: &str, signature: &str) -> Command {
    let rest =
        signature.strip_prefix("pub async fn ").or_else(|| signature.strip_prefix("pub fn ")).unwrap_or_else(|| {
            panic!("{module}: #[tauri::command] must be followed by `pub fn` or `pub async fn`, not `{signature}`")
        });
    let open = rest.find('(').expect("a command's argument list");
    let name = rest[..open].split('<').next().unwrap().trim().to_string();
    let (mut depth, mut close) = (0, open);
    for (at, c) in rest.char_indices().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            close = at;
            break;
        }
    }
    let given_by_tauri = |ty: &str| {
        let ty = ty.trim_start_matches("tauri::");
        ty.starts_with("AppHandle") || ty.starts_with("State<") || ty.starts_with("Window")
    };
    let arguments = split_top_level(&rest[open + 1..close])
        .into_iter()
        .filter_map(|argument| {
            let (name, ty) = argument.split_once(':').expect("a typed argument");
            let name = name.trim().trim_start_matches("mut ").to_string();
            (!given_by_tauri(ty.trim())).then(|| (name, ty.trim().to_string()))
        })
        .collect();
    let returns = rest[close + 1..].trim().trim_end_matches('{').trim();
    let returns = returns.strip_prefix("->").map(str::trim).unwrap_or("()");
    let returns = returns
        .strip_prefix("CommandResult<")
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(returns)
        .trim()
        .to_string();
    Command { module: module.to_string(), name, arguments, returns }
}

/// Every command, modules and functions in file order.
fn commands(dir: &Path) -> Vec<Command> {
    let mut found = Vec::new();
    for file in command_files(dir) {
        let module = file.file_stem().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&file).expect("a readable command module");
        let mut lines = source.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[tauri::command]" {
                continue;
            }
            let mut signature = String::new();
            for line in lines.by_ref() {
                signature.push_str(line);
                signature.push(' ');
                if line.ends_with('{') {
                    break;
                }
            }
            found.push(parse_signature(&module, signature.trim()));
        }
    }
    found
}

/// `(name, payload's Rust type, event name)` of each `Event` a command module
/// or `src/event.rs` declares (`pub const NAME: Event<T> = Event::named("…");`).
fn events(dir: &Path) -> Vec<(String, String, String)> {
    let mut files = command_files(dir);
    files.push(Path::new("src/event.rs").to_path_buf());
    let mut found = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("a readable module");
        for line in source.lines() {
            let Some(rest) = line.strip_prefix("pub const ") else { continue };
            let Some((name, rest)) = rest.split_once(": Event<") else { continue };
            let (payload, rest) = rest.split_once("> = Event::named(\"").expect("an event declared as Event::named");
            let event = rest.split('"').next().unwrap();
            found.push((name.to_string(), payload.to_string(), event.to_string()));
        }
    }
    found
}

fn camel_case(snake: &str) -> String {
    let mut words = snake.split('_');
    let mut out = words.next().unwrap_or_default().to_ascii_lowercase();
    for word in words {
        let mut chars = word.chars();
        out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        out.push_str(&chars.as_str().to_ascii_lowercase());
    }
    out
}

/// A Rust type as the window receives it (serde's JSON), naming the
/// contract's types (`contract.ts`, from ts-rs) by their own names.
fn typescript(rust: &str, contract: &mut std::collections::BTreeSet<String>) -> String {
    let rust = rust.trim();
    let generic = |wrapper: &str| rust.strip_prefix(wrapper).and_then(|inner| inner.strip_suffix('>'));
    if let Some(inner) = generic("Option<") {
        return format!("{} | null", typescript(inner, contract));
    }
    if let Some(inner) = generic("Vec<") {
        return format!("{}[]", typescript(inner, contract));
    }
    match rust {
        "()" => "null".into(),
        "String" | "&str" | "PathBuf" => "string".into(),
        "bool" => "boolean".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" | "f32" | "f64" => "number".into(),
        path => {
            let name = path.rsplit("::").next().unwrap().to_string();
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "build.rs cannot write `{path}` in TypeScript");
            contract.insert(name.clone());
            name
        }
    }
}

/// `ui/src/lib/generated/commands.ts`: one typed call per command, one typed listener per event.
fn window_api(commands: &[Command], events: &[(String, String, String)]) -> String {
    let mut contract = std::collections::BTreeSet::new();
    let mut calls = String::new();
    for command in commands {
        let parameters: Vec<String> = command
            .arguments
            .iter()
            .map(|(name, ty)| format!("{}: {}", camel_case(name), typescript(ty, &mut contract)))
            .collect();
        let passed: Vec<String> = command.arguments.iter().map(|(name, _)| camel_case(name)).collect();
        let returns = typescript(&command.returns, &mut contract);
        let returns = if returns == "null" { "void".to_string() } else { returns };
        let passed = if passed.is_empty() { String::new() } else { format!(", {{ {} }}", passed.join(", ")) };
        writeln!(calls, "  /** `commands::{}::{}` */", command.module, command.name).unwrap();
        writeln!(
            calls,
            "  {}: ({}) => invoke<{returns}>('{}'{passed}),",
            camel_case(&command.name),
            parameters.join(", "),
            command.name
        )
        .unwrap();
    }
    let mut listeners = String::new();
    for (name, payload, event) in events {
        let payload = typescript(payload, &mut contract);
        writeln!(listeners, "  {}: on<{payload}>('{event}'),", camel_case(&name.to_ascii_lowercase())).unwrap();
    }
    let imports = contract.into_iter().collect::<Vec<_>>().join(", ");
    format!(
        "// Generated from src-tauri/src/commands by src-tauri/build.rs: do not edit.\n\
         import {{ invoke }} from '@tauri-apps/api/core';\n\
         import {{ listen, type UnlistenFn }} from '@tauri-apps/api/event';\n\
         import type {{ {imports} }} from './contract';\n\n\
         /** What the window may ask of the app, each as its Rust command takes and returns it. */\n\
         export const commands = {{\n{calls}}};\n\n\
         function on<T>(event: string) {{\n  \
         return (heard: (payload: T) => void): Promise<UnlistenFn> => listen<T>(event, (e) => heard(e.payload));\n}}\n\n\
         /** What the app tells the window, each with its payload's type. */\n\
         export const events = {{\n{listeners}}};\n"
    )
}

/// Write `path` only when its text changes (a build must not touch what a review reads).
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

fn main() {
    let dir = Path::new("src/commands");
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-changed=src/event.rs");
    // Tauri's manifest keeps the names for the whole build: leaked, as a build script may.
    let commands: &'static [Command] = commands(dir).leak();
    let names: &'static [&'static str] =
        commands.iter().map(|command| command.name.as_str()).collect::<Vec<_>>().leak();

    let mut handler = String::from("tauri::generate_handler![\n");
    for command in commands {
        writeln!(handler, "    commands::{}::{},", command.module, command.name).unwrap();
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
    write_if_changed(Path::new("capabilities/default.json"), &capability);
    write_if_changed(Path::new("../ui/src/lib/generated/commands.ts"), &window_api(commands, &events(dir)));

    // Declaring the commands makes Tauri generate a permission per command;
    // the window may call only those its capability grants.
    let manifest = tauri_build::AppManifest::new().commands(names);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)).expect("tauri build script");
}
