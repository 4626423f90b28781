use crate::bindings::DbConnection;
use crate::HubError;
use spacetimedb_sdk::{DbContext, Identity};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A live WebSocket connection to the hub, already processing messages on its
/// own thread, with every table of the caller's tenant subscribed.
pub struct Connected {
    pub conn: DbConnection,
    pub identity: Identity,
    /// Persist this to connect again as the same identity.
    pub token: String,
}

/// Everything a member may see; row-level security narrows each to its tenant.
pub const TENANT_TABLES: [&str; 6] = [
    "SELECT * FROM tenant",
    "SELECT * FROM member",
    "SELECT * FROM invite",
    "SELECT * FROM limb",
    "SELECT * FROM task",
    "SELECT * FROM task_result",
];

/// Connect, subscribe to the tables the limb needs, and return once the
/// subscription is applied (the local cache then holds the tenant's rows).
/// `on_disconnect` runs once when the connection ends: from the SDK's
/// disconnect callback or, should the SDK's message thread die without
/// calling it, from the thread that watches it.
pub fn connect(
    uri: &str,
    database: &str,
    token: Option<String>,
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
        .subscribe(TENANT_TABLES);
    applied_rx
        .recv_timeout(Duration::from_secs(15))
        .map_err(|_| HubError::Timeout { what: "applying the subscription".into(), secs: 15 })??;
    Ok(Connected { conn, identity, token })
}
