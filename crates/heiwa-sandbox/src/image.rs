//! The sandbox image's recipe, run by the app itself on first use (no image
//! registry is needed): this machine's own Python, the libraries it and its
//! extension modules link, its standard library (no test suite, no Tk), and
//! an unprivileged user of its own — imported into the engine as one layer.
//! `scripts/lib/sandbox.sh` follows the same recipe for development.

use crate::{SandboxError, SANDBOX_UID};
use std::path::{Path, PathBuf};

/// Parts of the standard library a sandboxed cell never needs.
const LEFT_OUT: [&str; 4] = ["test", "idlelib", "tkinter", "__pycache__"];

/// Build the image `name` from this machine's `python3` and import it.
pub async fn build(docker: &bollard::Docker, name: &str) -> Result<(), SandboxError> {
    use futures::StreamExt;
    let rootfs = tokio::task::spawn_blocking(rootfs)
        .await
        .map_err(|e| SandboxError::Recipe(format!("the recipe's thread failed: {e}")))??;
    let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
    let options =
        bollard::query_parameters::CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).build();
    let mut progress = docker.create_image(Some(options), Some(bollard::body_full(rootfs.into())), None);
    while let Some(step) = progress.next().await {
        step?;
    }
    Ok(())
}

fn recipe_error(what: &str, path: &Path, error: std::io::Error) -> SandboxError {
    SandboxError::Recipe(format!("{what} {}: {error}", path.display()))
}

/// The image's root filesystem as a tar archive.
fn rootfs() -> Result<Vec<u8>, SandboxError> {
    let python = std::fs::canonicalize("/usr/bin/python3").map_err(|_| {
        SandboxError::Recipe(
            "no python3 on this machine: install python3 (the sandbox runs this machine's Python)".into(),
        )
    })?;
    let version = python.file_name().and_then(|n| n.to_str()).unwrap_or("python3").to_string();
    let stdlib = Path::new("/usr/lib").join(&version);
    let dynload = stdlib.join("lib-dynload");
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(true);
    let mut objects = vec![python.clone()];
    if let Ok(entries) = std::fs::read_dir(&dynload) {
        objects.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "so")));
    }
    for dir in ["usr/bin", "usr/lib", "etc", "sandbox"] {
        add_dir(&mut archive, dir, 0o755)?;
    }
    // Docker copies this mode onto the tmpfs mounted there.
    add_dir(&mut archive, "tmp", 0o1777)?;
    archive.append_path_with_name(&python, "usr/bin/python3").map_err(|e| recipe_error("adding", &python, e))?;
    for library in linked_libraries(&objects)? {
        let inside = library.strip_prefix("/").unwrap_or(&library).to_path_buf();
        archive.append_path_with_name(&library, &inside).map_err(|e| recipe_error("adding", &library, e))?;
    }
    add_tree(&mut archive, &stdlib, Path::new("usr/lib").join(&version).as_path())?;
    let passwd =
        format!("root:x:0:0:root:/root:/bin/false\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/tmp:/bin/false\n");
    let group = format!("root:x:0:\nsandbox:x:{SANDBOX_UID}:\n");
    add_file(&mut archive, "etc/passwd", passwd.as_bytes())?;
    add_file(&mut archive, "etc/group", group.as_bytes())?;
    archive.into_inner().map_err(|e| SandboxError::Recipe(format!("writing the image: {e}")))
}

/// Every shared library `objects` link, as `ldd` (glibc's, always there) resolves them.
fn linked_libraries(objects: &[PathBuf]) -> Result<Vec<PathBuf>, SandboxError> {
    let output = std::process::Command::new("ldd")
        .args(objects)
        .output()
        .map_err(|e| SandboxError::Recipe(format!("running ldd: {e}")))?;
    let mut libraries: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        // `ldd` names each object with a trailing colon before its libraries: those are skipped.
        .filter(|word| word.starts_with('/') && !word.ends_with(':') && word.contains(".so"))
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .collect();
    libraries.sort();
    libraries.dedup();
    Ok(libraries)
}

fn add_dir(archive: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> Result<(), SandboxError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_size(0);
    archive.append_data(&mut header, path, std::io::empty()).map_err(|e| recipe_error("adding", Path::new(path), e))
}

fn add_file(archive: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> Result<(), SandboxError> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    archive.append_data(&mut header, path, data).map_err(|e| recipe_error("adding", Path::new(path), e))
}

/// `dir` (the standard library) under `inside`, without the parts left out.
fn add_tree(archive: &mut tar::Builder<Vec<u8>>, dir: &Path, inside: &Path) -> Result<(), SandboxError> {
    let entries = std::fs::read_dir(dir).map_err(|e| recipe_error("reading", dir, e))?;
    add_dir(archive, &inside.to_string_lossy(), 0o755)?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if LEFT_OUT.iter().any(|left| name == *left) {
            continue;
        }
        let (path, inside) = (entry.path(), inside.join(&name));
        if path.is_dir() {
            add_tree(archive, &path, &inside)?;
        } else if path.is_file() {
            archive.append_path_with_name(&path, &inside).map_err(|e| recipe_error("adding", &path, e))?;
        }
    }
    Ok(())
}
