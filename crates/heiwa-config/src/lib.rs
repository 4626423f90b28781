//! Where the limb finds its parts (binaries, models, the sandbox image) and
//! keeps its data. Parts come from the environment that `scripts/setup`
//! describes (`scripts/lib/env.sh`), so nothing here guesses a version.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{var} is not set: it names {what}. Run through scripts/run or scripts/test, or `source scripts/lib/env.sh`")]
pub struct MissingPart {
    pub var: &'static str,
    pub what: &'static str,
}

/// The real parts a limb runs on.
#[derive(Clone, Debug)]
pub struct Parts {
    pub spacetimedb_bin: PathBuf,
    pub hub_wasm: PathBuf,
    pub pg_dir: PathBuf,
    pub chat_model: PathBuf,
    pub base_model: PathBuf,
    pub embed_model: PathBuf,
    pub sandbox_image: String,
}

fn var(var: &'static str, what: &'static str) -> Result<String, MissingPart> {
    std::env::var(var).ok().filter(|v| !v.is_empty()).ok_or(MissingPart { var, what })
}

impl Parts {
    pub fn from_env() -> Result<Self, MissingPart> {
        Ok(Parts {
            spacetimedb_bin: var("HEIWA_SPACETIMEDB_BIN", "the spacetimedb-standalone binary")?.into(),
            hub_wasm: var("HEIWA_HUB_WASM", "the compiled hub-module .wasm")?.into(),
            pg_dir: var("HEIWA_PG_DIR", "the PostgreSQL + pgvector installation")?.into(),
            chat_model: var("HEIWA_CHAT_MODEL", "the chat GGUF model")?.into(),
            base_model: var("HEIWA_BASE_MODEL", "the base GGUF model")?.into(),
            embed_model: var("HEIWA_EMBED_MODEL", "the embedding GGUF model")?.into(),
            sandbox_image: var("HEIWA_SANDBOX_IMAGE", "the sandbox container image")?,
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
