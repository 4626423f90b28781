//! The limb's side of the hub: running a local SpacetimeDB server, its HTTP API
//! (publish, SQL), and the WebSocket client through the generated bindings.

#[allow(clippy::all, unused, missing_docs)]
#[rustfmt::skip]
pub mod bindings;
mod client;
mod http;
mod limb;
mod server;

pub use client::{connect, Connected};
pub use http::{HubHttp, NewIdentity};
pub use limb::{run_limb, EchoExecutor, Executor, LimbEvent, LimbOptions};
pub use server::{HubServer, HubServerConfig};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("SpacetimeDB server binary not found at {0} (run scripts/setup, or set HEIWA_SPACETIMEDB_BIN)")]
    ServerBinaryMissing(PathBuf),
    #[error("hub module not found at {0} (run scripts/setup to build hub-module)")]
    ModuleMissing(PathBuf),
    #[error("could not start the hub server: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the hub server on {addr} did not become ready within {secs} s; see {log}")]
    NotReady { addr: String, secs: u64, log: PathBuf },
    #[error("hub HTTP request to {url} failed: {source}")]
    Http { url: String, #[source] source: reqwest::Error },
    #[error("hub refused {what} ({status}): {body}")]
    Refused { what: String, status: u16, body: String },
    #[error("hub connection failed: {0}")]
    Connect(String),
    #[error("hub subscription failed: {0}")]
    Subscribe(String),
    #[error("hub I/O: {0}")]
    Io(#[from] std::io::Error),
}
