//! A limb's or a client's WebSocket connection to the hub: connect with a saved
//! token (or get one), subscribe, and wait for the subscription to be applied.

use crate::bindings::DbConnection;
use crate::HubError;
use spacetimedb_sdk::{DbContext, Identity};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A live WebSocket connection to the hub, already processing messages on its
/// own thread, with the queries it was opened with subscribed.
pub struct Connected {
    pub conn: DbConnection,
    pub identity: Identity,
    /// Persist this to connect again as the same identity.
    pub token: String,
}

/// Everything a member may see: row-level security narrows each table to what
/// the caller may read (the whole tenant for its owner and submitters).
pub fn tenant_tables() -> Vec<String> {
    ["tenant", "member", "invite", "limb", "task", "task_result"].map(|t| format!("SELECT * FROM {t}")).to_vec()
}

/// A limb's view: its member and assignee rows (its limb id), the tasks
/// assigned to it, its own results, whether its tenant paused it, why
/// the hub refused its invite code if it did, and the catalogue models the hub asks it for. The queries name whole tables; row-level
/// security makes each an equality filter on one indexed column, the limb's
/// own identity (`task.assignee = :sender`, …), which the server indexes by
/// value: a changed task row is matched to the one limb it concerns. (A
/// `WHERE` of the client's own on these tables is refused by SpacetimeDB 1.2:
/// the readers' rules join them, and a filtered table under a join is no
/// longer an index join.)
pub fn limb_tables() -> Vec<String> {
    ["member", "assignee", "task", "task_result", "limb_control", "code_attempt", "limb_model"]
        .map(|t| format!("SELECT * FROM {t}"))
        .to_vec()
}

/// Connect, subscribe to `queries`, and return once the subscription is
/// applied (the local cache then holds their rows). `on_disconnect` runs once
/// when the connection ends: from the SDK's disconnect callback or, should
/// the SDK's message thread die without calling it, from the thread that
/// watches it.
pub fn connect(
    uri: &str,
    database: &str,
    token: Option<String>,
    queries: Vec<String>,
    on_disconnect: impl FnOnce(Option<String>) + Send + 'static,
) -> Result<Connected, HubError> {
    // The 1.2 SDK panics on its own message thread when a queued reducer call
    // meets a WebSocket that has just gone (`apply_mutation`'s `expect`); its
    // disconnect callback then never runs, and a limb would wait forever.
    let on_disconnect = Arc::new(Mutex::new(Some(on_disconnect)));
    let disconnected = move |reason: Option<String>| {
        let callback = on_disconnect.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(callback) = callback {
            callback(reason);
        }
    };
    let watcher_disconnected = disconnected.clone();
    let (connected_tx, connected_rx) = mpsc::channel();
    let failed_tx = connected_tx.clone();
    let conn = DbConnection::builder()
        .with_uri(uri)
        .with_module_name(database)
        .with_token(token)
        // Light mode: other clients' reducer calls arrive as row changes only;
        // nothing here reads anyone's reducer events but its own.
        .with_light_mode(true)
        .on_connect(move |_, identity, token| {
            let _ = connected_tx.send(Ok((identity, token.to_string())));
        })
        .on_connect_error(move |_, error| {
            let _ = failed_tx.send(Err(HubError::Connect(error.to_string())));
        })
        .on_disconnect(move |_, error| disconnected(error.map(|e| e.to_string())))
        .build()
        .map_err(|e| HubError::Connect(e.to_string()))?;
    let messages = conn.run_threaded();
    std::thread::spawn(move || {
        let reason = match messages.join() {
            Ok(()) => None,
            Err(_) => Some("the hub client's message thread failed".to_string()),
        };
        watcher_disconnected(reason);
    });
    let (identity, token) = connected_rx
        .recv_timeout(Duration::from_secs(15))
        .map_err(|_| HubError::Timeout { what: format!("connecting to {uri}"), secs: 15 })??;
    let (applied_tx, applied_rx) = mpsc::channel();
    let error_tx = applied_tx.clone();
    conn.subscription_builder()
        .on_applied(move |_| {
            let _ = applied_tx.send(Ok(()));
        })
        .on_error(move |_, error| {
            let _ = error_tx.send(Err(HubError::Subscribe(error.to_string())));
        })
        .subscribe(queries);
    applied_rx
        .recv_timeout(Duration::from_secs(15))
        .map_err(|_| HubError::Timeout { what: "applying the subscription".into(), secs: 15 })??;
    Ok(Connected { conn, identity, token })
}
