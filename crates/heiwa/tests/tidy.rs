//! Tidy checks that keep ARCHITECTURE.md's claims about the code true (as
//! rust-analyzer's tidy test does): every hand-written module says what it is
//! for in a `//!` line, no crate's modules depend on each other in a cycle,
//! no hand-written file grows past [`MAX_LINES`], and the code map has a
//! section for every crate.
//!
//! A module's dependencies are the `crate::…` paths it names (in `use` lines
//! and inline), resolved to the deepest module file they reach. The crate
//! root (lib.rs, main.rs: glue that re-exports) and test-only modules are
//! left out of the graph; generated bindings are not hand-written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every crate's `src` folder: the workspace's crates, the limb, the app and the hub module.
fn source_roots() -> Vec<PathBuf> {
    let root = workspace();
    let mut roots: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("src"))
        .filter(|src| src.is_dir())
        .collect();
    roots.extend(["limb-core/src", "src-tauri/src", "hub-module/src"].map(|dir| root.join(dir)));
    roots.sort();
    roots
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "bindings") {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `a/b.rs` and `a/b/mod.rs` → `a::b`; the crate root → "".
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The `crate::…` paths named in `text` (outside comments), braces expanded.
fn crate_paths(text: &str) -> Vec<String> {
    let code: String =
        text.lines().filter(|line| !line.trim_start().starts_with("//")).map(|line| format!("{line}\n")).collect();
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded = rest[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        rest = &rest[at + "crate::".len()..];
        if preceded {
            continue;
        }
        expand("", rest, &mut paths);
    }
    paths
}

/// Paths starting at `text` (just after `prefix::`), with `{a, b::c}` groups expanded.
fn expand(prefix: &str, text: &str, paths: &mut Vec<String>) {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(text.len());
    let head = text[..end].trim_end_matches(':');
    let joined = match (prefix.is_empty(), head.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => head.to_string(),
        (false, false) => format!("{prefix}::{head}"),
    };
    if text[end..].starts_with('{') && (end == 0 || text[..end].ends_with("::")) {
        let mut depth = 0;
        let (mut start, inner) = (0, &text[end + 1..]);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&joined, inner[start..i].trim(), paths);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&joined, inner[start..i].trim(), paths);
                    start = i + 1;
                }
                _ => {}
            }
        }
    } else if !joined.is_empty() {
        paths.push(joined);
    }
}

/// The deepest module of `modules` that `path` reaches, if it is not the root.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|candidate| modules.contains(candidate))
}

/// Strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next.as_str()) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next.as_str()]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next.as_str()) {
                    let low = self.low[node].min(self.index[next.as_str()]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.to_string());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

/// Each crate's module cycles, named by crate folder.
fn module_cycles() -> Vec<String> {
    let mut found = Vec::new();
    for src in source_roots() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|file| module_of(&src, file)).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let module = module_of(&src, file);
            if module.is_empty() || module == "tests" || module.ends_with("::tests") {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let uses = graph.entry(module.clone()).or_default();
            for path in crate_paths(&text) {
                if let Some(target) = resolve(&path, &modules) {
                    if !target.is_empty() && target != module && !module.starts_with(&format!("{target}::")) {
                        uses.insert(target);
                    }
                }
            }
        }
        let krate = src.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        found.extend(cycles(&graph).into_iter().map(|cycle| format!("{krate}: {}", cycle.join(" ↔ "))));
    }
    found
}

#[test]
fn every_hand_written_module_says_what_it_is_for() {
    let mut missing = Vec::new();
    for src in source_roots() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(file.strip_prefix(workspace()).unwrap().display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "modules without a `//!` line saying what they are for:\n{}", missing.join("\n"));
}

/// No module of a crate reaches back to itself through the others: what two
/// modules both need lives in a leaf below them (as heiwa-memory's hit types
/// in `citation.rs`, heiwa-inference's load options in `runtime.rs`,
/// heiwa-extract's `Extracted` in `document.rs`), and the desktop's tray is
/// told what its entries do by `lib.rs` instead of calling up into the app.
#[test]
fn no_crate_has_a_module_cycle() {
    let found = module_cycles();
    assert!(found.is_empty(), "module cycles (move what both need into a leaf module): {found:?}");
}

#[test]
fn the_cycle_finder_sees_a_cycle_and_reads_grouped_imports() {
    let paths = crate_paths("use crate::{store::{Citation, Place}, MemoryError};\nlet x = crate::dedup::collapse(h);\n// crate::commented::out\n");
    assert_eq!(paths, ["store::Citation", "store::Place", "MemoryError", "dedup::collapse"]);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .into_iter()
            .map(|(from, to)| (from.to_string(), to.into_iter().map(String::from).collect()))
            .collect();
    assert_eq!(cycles(&graph), [vec!["a", "b", "c"]]);
}

/// A file longer than this is split by concern (the hub module's reducers
/// live one transaction family per file for that reason).
const MAX_LINES: usize = 800;

/// The generated files, which are as long as what they are made from.
const GENERATED: [&str; 2] = ["crates/heiwa-hub/src/bindings/", "ui/src/lib/generated/"];

#[test]
fn no_hand_written_file_is_over_800_lines() {
    let listed = std::process::Command::new("git").arg("ls-files").current_dir(workspace()).output().unwrap();
    assert!(listed.status.success(), "git ls-files failed");
    let code = ["rs", "ts", "js", "mjs", "svelte", "sh", "py"];
    let mut long = Vec::new();
    let mut checked = 0;
    for file in String::from_utf8(listed.stdout).unwrap().lines() {
        let is_code = Path::new(file).extension().is_some_and(|ext| code.iter().any(|c| ext == *c));
        if !is_code || GENERATED.iter().any(|generated| file.starts_with(generated)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(workspace().join(file)) else { continue };
        checked += 1;
        let lines = text.lines().count();
        if lines > MAX_LINES {
            long.push(format!("{file}: {lines} lines"));
        }
    }
    assert!(checked > 100, "only {checked} hand-written files found: is this a git checkout?");
    assert!(long.is_empty(), "split these by concern (at most {MAX_LINES} lines):\n{}", long.join("\n"));
}

#[test]
fn the_code_map_has_a_section_for_every_crate() {
    let map = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let sections: Vec<&str> = map.lines().filter(|line| line.starts_with("### ")).collect();
    let mut missing = Vec::new();
    for src in source_roots() {
        let folder = src.parent().unwrap().strip_prefix(workspace()).unwrap().display().to_string();
        if !sections.iter().any(|section| section.contains(&format!("`{folder}`"))) {
            missing.push(folder);
        }
    }
    assert!(sections.len() > 10, "ARCHITECTURE.md has {} `###` sections", sections.len());
    assert!(missing.is_empty(), "ARCHITECTURE.md's code map has no `### ` section for: {missing:?}");
}
