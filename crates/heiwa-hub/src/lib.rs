//! The limb's side of the hub: running a local SpacetimeDB server, its HTTP API
//! (publish, SQL), and the WebSocket client through the generated bindings.

#[allow(clippy::all, unused, missing_docs)]
#[rustfmt::skip]
pub mod bindings;
mod address;
mod args;
mod catalogue;
mod client;
mod credit;
mod http;
mod server;
mod summary;

pub use address::{dashboard_link, http_url, ws_url, DEFAULT_DASHBOARD};
pub use catalogue::{CatalogueRow, ModelCopyRow, WaitEstimate};
pub use client::{connect, limb_tables, tenant_tables, Connected};
pub use credit::{credit_by_limb, CreditRow, LimbCreditLine, OwnCreditRow, RollupRow};
pub use http::{
    hub_json, BrowserRow, HubHttp, HubLimits, HubPolicy, InviteCode, InviteRole, NewIdentity, OperatorRow, Row,
};
/// What donors' verified work earns, and the ledger's kinds of row: one copy, shared with `hub-module`.
pub use hub_rules::credit::{credits_text, result_credit, CreditKind, Totals};
pub use server::{HubServer, HubServerConfig};
pub use summary::{Summary, SummaryCitation, SummaryPlace};

use std::path::PathBuf;

/// How a limb's copy of a catalogue model stands, named as people read it
/// (`bindings::ModelState` is the same enum as the hub's rows carry it).
pub use hub_rules::catalogue::ModelState as CopyStage;
/// Who may create tenants on a hub (its admin's policy).
pub use hub_rules::secrets::TenantCreation;
/// The hub's limits and task states: one copy, shared with `hub-module`.
pub use hub_rules::{
    generate_payload, score_summary, score_vote, truncate_to, ModelOffer, QuorumState, Refusal, TaskState, Work,
    MAX_CAPACITY, MAX_PAYLOAD_BYTES, MAX_REASON_BYTES, MAX_RESULT_BATCH, MAX_SUMMARY_BYTES, TRUSTED_STREAK,
};
/// How a reducer call asks the hub to answer (a heartbeat needs no success notice).
pub use spacetimedb_client_api_messages::websocket::CallReducerFlags;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("SpacetimeDB server binary not found at {0} (reinstall Heiwa; in a checkout, run scripts/setup; HEIWA_SPACETIMEDB_BIN overrides it)")]
    ServerBinaryMissing(PathBuf),
    #[error("hub module not found at {0} (reinstall Heiwa; in a checkout, run scripts/setup to build hub-module)")]
    ModuleMissing(PathBuf),
    #[error("could not start the hub server: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the hub server on {addr} did not become ready within {secs} s; see {log}")]
    NotReady { addr: String, secs: u64, log: PathBuf },
    #[error("\"{url}\" {why}: give the hub's address as wss://host[:port] (ws:// only on this machine)")]
    BadAddress { url: String, why: &'static str },
    #[error("hub HTTP request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The hub's HTTP API answered with an error status (401 for a bad token, …).
    #[error("hub refused {what} ({status}): {body}")]
    Refused { what: String, status: u16, body: String },
    /// The database was made by a hub-module whose tables differ from this
    /// one's in a way SpacetimeDB cannot migrate in place.
    #[error(
        "the hub database \"{database}\" holds tables of an older hub-module that this one cannot update in place; \
         its data is untouched. Start the hub on a new data directory (or publish under another database name) \
         after `heiwa task export` with the old version. The server said: {detail}"
    )]
    SchemaChanged { database: String, detail: String },
    /// A reducer ran and returned `Err`: the hub's own rules said no.
    #[error("the hub refused {reducer}: {message}")]
    Reducer { reducer: String, message: String },
    /// The operating system's random source failed (codes and keys come from nowhere else).
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("the hub's answer to {what} was not understood ({reason})")]
    Malformed { what: String, reason: String },
    /// The WebSocket could not be opened or the SDK could not start.
    #[error("hub connection failed: {0}")]
    Connect(String),
    #[error("hub subscription failed: {0}")]
    Subscribe(String),
    #[error("no answer from the hub: {what} took longer than {secs} s")]
    Timeout { what: String, secs: u64 },
    /// The connection closed while a reducer call was being sent.
    #[error("the hub connection closed while sending {0}")]
    Closed(&'static str),
    #[error("this limb's signing key cannot be used: {0}")]
    Key(String),
    #[error("this limb has not joined a tenant yet: pass the invite code its owner created")]
    NotJoined,
    #[error("the hub gave this limb a different identity than its token's")]
    IdentityChanged,
    /// Another connection with this limb's identity took over (a copied token).
    #[error("stopped: {0}")]
    Superseded(String),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hub I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl HubError {
    /// `source` on `path`, for the files a hub client keeps (tokens, data dirs).
    pub fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
        move |source| HubError::File { path: path.to_path_buf(), source }
    }
}

/// A task as a person sees it.
#[derive(Clone, Debug, serde::Serialize, PartialEq, ts_rs::TS)]
pub struct TaskView {
    #[ts(type = "number")]
    pub id: u64,
    pub state: TaskState,
    pub payload: String,
    pub attempts: u32,
    /// The limb that answered, once there is a result.
    #[ts(type = "number | null")]
    pub limb: Option<u64>,
    /// The result as the limb sent it.
    pub summary: Option<String>,
    /// The result read as an agent's summary, when it is one.
    pub answer: Option<Summary>,
    pub reason: String,
}

impl From<bindings::TaskState> for TaskState {
    fn from(state: bindings::TaskState) -> Self {
        match state {
            bindings::TaskState::Pending => TaskState::Pending,
            bindings::TaskState::Claimed => TaskState::Claimed,
            bindings::TaskState::Done => TaskState::Done,
            bindings::TaskState::Failed => TaskState::Failed,
            bindings::TaskState::Cancelled => TaskState::Cancelled,
        }
    }
}

impl From<ModelOffer> for bindings::ModelOffer {
    fn from(offer: ModelOffer) -> Self {
        bindings::ModelOffer { id: offer.id, sha_256: offer.sha256 }
    }
}

/// The tasks in `conn`'s cache, newest first: the tenant's for an owner, a
/// limb's own otherwise. A limb keeps its results but not the tasks once they
/// are done (they leave its view); those show as done with no payload.
pub fn task_views(conn: &bindings::DbConnection) -> Vec<TaskView> {
    use bindings::{TaskResultTableAccess, TaskTableAccess};
    use spacetimedb_sdk::Table;
    let results: Vec<_> = conn.db.task_result().iter().collect();
    let answered_only =
        results.into_iter().filter(|r| conn.db.task().id().find(&r.task_id).is_none()).map(|result| TaskView {
            id: result.task_id,
            state: TaskState::Done,
            payload: String::new(),
            attempts: 0,
            limb: Some(result.limb_id),
            answer: Summary::parse(&result.summary),
            summary: Some(result.summary),
            reason: String::new(),
        });
    let mut tasks: Vec<TaskView> = conn
        .db
        .task()
        .iter()
        .map(|task| {
            let result = conn.db.task_result().task_id().find(&task.id);
            let holder = (task.assigned_to != 0).then_some(task.assigned_to);
            let limb = result.as_ref().map(|r| r.limb_id).or(holder);
            let summary = result.map(|r| r.summary);
            TaskView {
                id: task.id,
                state: TaskState::from(task.state),
                payload: task.payload,
                attempts: task.attempts,
                limb,
                answer: summary.as_deref().and_then(Summary::parse),
                summary,
                reason: task.reason,
            }
        })
        .chain(answered_only)
        .collect();
    tasks.sort_by_key(|task| std::cmp::Reverse(task.id));
    tasks
}
