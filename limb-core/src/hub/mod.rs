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

/// The hub's size limits (hub-module/src/rules.rs; a test keeps them equal).
pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;
pub const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to at most `max_bytes` at a character boundary.
pub fn truncate_to(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_match_the_hub_module() {
        let rules = include_str!("../../../hub-module/src/rules.rs");
        assert!(rules.contains("pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;"));
        assert!(rules.contains("pub const MAX_REASON_BYTES: usize = 1024;"));
        assert_eq!((MAX_SUMMARY_BYTES, MAX_REASON_BYTES), (8 * 1024, 1024));
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_to("héllo", 2), "h");
        assert_eq!(truncate_to("héllo", 3), "hé");
        assert_eq!(truncate_to("hi", 10), "hi");
    }
}

/// A task as a person sees it.
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct TaskView {
    pub id: u64,
    pub state: &'static str,
    pub payload: String,
    pub attempts: u32,
    /// The limb that answered, once there is a result.
    pub limb: Option<u64>,
    pub summary: Option<String>,
    pub reason: String,
}

fn state_name(state: bindings::TaskState) -> &'static str {
    match state {
        bindings::TaskState::Pending => "pending",
        bindings::TaskState::Claimed => "claimed",
        bindings::TaskState::Done => "done",
        bindings::TaskState::Failed => "failed",
        bindings::TaskState::Cancelled => "cancelled",
    }
}

/// The tenant's tasks in `conn`'s cache, newest first.
pub fn task_views(conn: &bindings::DbConnection) -> Vec<TaskView> {
    use bindings::{TaskResultTableAccess, TaskTableAccess};
    use spacetimedb_sdk::Table;
    let mut tasks: Vec<TaskView> = conn
        .db
        .task()
        .iter()
        .map(|task| {
            let result = conn.db.task_result().task_id().find(&task.id);
            TaskView {
                id: task.id,
                state: state_name(task.state),
                payload: task.payload,
                attempts: task.attempts,
                limb: result.as_ref().map(|r| r.limb_id).or(task.claimed_by),
                summary: result.map(|r| r.summary),
                reason: task.reason,
            }
        })
        .collect();
    tasks.sort_by_key(|task| std::cmp::Reverse(task.id));
    tasks
}
