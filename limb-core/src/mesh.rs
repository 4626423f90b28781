//! This machine's place in a mesh, as the desktop app runs it: either a whole
//! mesh on one machine (a local hub, this machine's owner identity and tenant,
//! and an in-process limb; a laptop with no network still works), or an
//! in-process limb that joined someone else's hub with an invite. Either way a
//! viewer subscription shows the tenant's tasks live.

use crate::config::{free_loopback_port, Parts};
use crate::governor::Decision;
use crate::hub::bindings::{TaskResultTableAccess, TaskTableAccess};
use crate::hub::{connect, run_limb, Connected, Executor, HubError, HubHttp, HubServer, HubServerConfig, LimbEvent, LimbOptions, TaskView, task_views};
use spacetimedb_sdk::{DbContext, Table, TableWithPrimaryKey};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

const DATABASE: &str = "heiwa";

/// What this machine's limb is doing, from its own events.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LimbStatus {
    /// Its id at the hub, once registered.
    pub limb_id: Option<u64>,
    /// Its identity at the hub (hex), once connected.
    pub identity: Option<String>,
    pub connected: bool,
    /// The last connection problem, while disconnected.
    pub problem: Option<String>,
    pub running: Vec<u64>,
    pub completed: u64,
    pub failed: u64,
    pub released: u64,
    /// The limb ended with this error (it does not come back by itself).
    pub stopped: Option<String>,
}

impl LimbStatus {
    fn apply(&mut self, event: LimbEvent) {
        match event {
            LimbEvent::Ready { limb_id, identity } => {
                self.limb_id = Some(limb_id);
                self.identity = Some(identity);
                self.connected = true;
            }
            LimbEvent::Claimed(id) => self.running.push(id),
            LimbEvent::Executed(id) | LimbEvent::Lost(id) => self.running.retain(|r| *r != id),
            LimbEvent::Completed(_) => self.completed += 1,
            LimbEvent::Failed(..) => self.failed += 1,
            LimbEvent::Released(id) => {
                self.running.retain(|r| *r != id);
                self.released += 1;
            }
            LimbEvent::Disconnected(reason) => {
                self.connected = false;
                self.problem = Some(reason);
            }
            LimbEvent::Reconnected => {
                self.connected = true;
                self.problem = None;
            }
            // The app reads decisions from its governor.
            LimbEvent::Governed(_) => {}
        }
    }
}

pub struct Mesh {
    server: Option<HubServer>,
    limb: Arc<Mutex<LimbStatus>>,
    http: HubHttp,
    /// Who submits and cancels: the owner (local hub) or this limb (joined).
    token: String,
    rows: Rows,
    stop_limb: watch::Sender<bool>,
    database: String,
}

/// Where the tenant's task rows come from: an owner's own subscription (the
/// local hub), or the limb's subscription (a joined hub: the SDK keeps one
/// connection id per process, so a second connection as the same identity
/// would collide with the limb's).
enum Rows {
    Viewer(Connected),
    Limb(watch::Receiver<Vec<TaskView>>),
}

/// A hub run by someone else, as the desktop's Settings name it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteHub {
    /// `wss://…` (or `ws://` to this machine).
    pub url: String,
    pub database: String,
    /// The tenant owner's invite code; needed until this limb has joined.
    pub invite: Option<String>,
}

/// The hub's HTTP base for its WebSocket URL. Plain `ws://` only to this
/// machine: the limb's token travels in the handshake.
pub fn http_url(ws: &str) -> Result<String, HubError> {
    let bad = |why: &str| HubError::Connect(format!("\"{ws}\" {why}: give the hub's address as wss://host[:port]"));
    let mut url = url::Url::parse(ws).map_err(|e| match e {
        url::ParseError::EmptyHost => bad("has no host"),
        _ => bad("is not a URL"),
    })?;
    let http = match url.scheme() {
        "wss" => "https",
        "ws" if crate::config::is_loopback_url(&url) => "http",
        "ws" => return Err(bad("would send this limb's token unencrypted")),
        _ => return Err(bad("is not a WebSocket URL")),
    };
    url.set_scheme(http).map_err(|()| bad("is not a URL"))?;
    Ok(url.origin().ascii_serialization())
}

/// This machine's limb: one task at a time (the governor may allow more).
fn this_workstation(
    uri: String,
    database: String,
    token_file: std::path::PathBuf,
    invite: Option<String>,
    governor: Option<watch::Receiver<Decision>>,
) -> LimbOptions {
    LimbOptions { uri, database, token_file, invite, name: "this workstation".into(), lease_secs: 30, max_in_flight: 1, governor, tasks: None }
}

/// Run the limb on its own task, keeping its status from its events.
fn spawn_limb(
    options: LimbOptions,
    executor: Arc<dyn Executor>,
    on_change: Arc<dyn Fn() + Send + Sync>,
) -> (Arc<Mutex<LimbStatus>>, watch::Sender<bool>) {
    let (stop_limb, stop_rx) = watch::channel(false);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let limb = Arc::new(Mutex::new(LimbStatus::default()));
    let (status, notify) = (limb.clone(), on_change.clone());
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            status.lock().unwrap_or_else(|p| p.into_inner()).apply(event);
            notify();
        }
    });
    let status = limb.clone();
    tokio::spawn(async move {
        if let Err(error) = run_limb(options, executor, stop_rx, events_tx).await {
            tracing::error!(%error, "the limb stopped");
            let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
            status.connected = false;
            status.stopped = Some(error.to_string());
            drop(status);
            on_change();
        }
    });
    (limb, stop_limb)
}

/// A subscription (as `token`'s identity) whose task and result rows call `on_change`.
async fn watch_rows(uri: String, database: String, token: String, on_change: Arc<dyn Fn() + Send + Sync>) -> Result<Connected, HubError> {
    let viewer = tokio::task::spawn_blocking(move || connect(&uri, &database, Some(token), |_| {}))
        .await
        .map_err(|e| HubError::Connect(e.to_string()))??;
    let notify = on_change.clone();
    viewer.conn.db.task().on_insert(move |_, _| notify());
    let notify = on_change.clone();
    viewer.conn.db.task().on_update(move |_, _, _| notify());
    viewer.conn.db.task_result().on_insert(move |_, _| on_change());
    Ok(viewer)
}

impl Mesh {
    /// Start (or resume, from `data_dir`) the local mesh, its limb answering
    /// with `executor` as far as `governor` allows. `on_change` runs whenever
    /// a task or result row or the limb's status changes.
    pub async fn start(
        parts: &Parts,
        data_dir: &Path,
        executor: Arc<dyn Executor>,
        governor: Option<watch::Receiver<Decision>>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, HubError> {
        let listen = format!("127.0.0.1:{}", free_loopback_port()?).parse().expect("a loopback address");
        let config = HubServerConfig { binary: parts.spacetimedb_bin.clone(), data_dir: data_dir.join("hub"), listen };
        let server = tokio::task::spawn_blocking(move || HubServer::start(&config))
            .await
            .map_err(|e| HubError::Connect(e.to_string()))??;
        let http = HubHttp::new(server.http_url());
        let owner_token = http.identity_token(&data_dir.join("owner.token")).await?;
        http.publish(DATABASE, &parts.hub_wasm, &owner_token).await?;
        let member = http.sql(DATABASE, "SELECT * FROM member", &owner_token).await?;
        if member[0]["rows"].as_array().is_none_or(Vec::is_empty) {
            http.call(DATABASE, "create_tenant", serde_json::json!(["this workstation"]), &owner_token).await?;
        }
        let limb_token = data_dir.join("limb.token");
        let invite = if limb_token.exists() {
            None
        } else {
            http.call(DATABASE, "create_invite", serde_json::json!([1, 600]), &owner_token).await?;
            let reply = http.sql(DATABASE, "SELECT code FROM invite", &owner_token).await?;
            reply[0]["rows"][0][0].as_str().map(String::from)
        };
        let options = this_workstation(server.ws_url(), DATABASE.into(), limb_token, invite, governor);
        let on_change: Arc<dyn Fn() + Send + Sync> = Arc::new(on_change);
        let (limb, stop_limb) = spawn_limb(options, executor, on_change.clone());
        let viewer = watch_rows(server.ws_url(), DATABASE.into(), owner_token.clone(), on_change).await?;
        Ok(Mesh { server: Some(server), limb, http, token: owner_token, rows: Rows::Viewer(viewer), stop_limb, database: DATABASE.into() })
    }

    /// Join someone else's hub as a limb of their tenant (the `invite` is
    /// needed the first time only; the identity is kept in `data_dir`). Tasks
    /// are submitted, seen and cancelled as this limb's identity, a member of
    /// that tenant.
    pub async fn join(
        hub: &RemoteHub,
        data_dir: &Path,
        executor: Arc<dyn Executor>,
        governor: Option<watch::Receiver<Decision>>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, HubError> {
        let http_base = http_url(&hub.url)?;
        std::fs::create_dir_all(data_dir).map_err(|e| HubError::Connect(format!("{}: {e}", data_dir.display())))?;
        let token_file = data_dir.join("limb.token");
        let mut options = this_workstation(hub.url.clone(), hub.database.clone(), token_file.clone(), hub.invite.clone(), governor);
        let (rows_tx, rows) = watch::channel(Vec::new());
        options.tasks = Some(Arc::new(rows_tx));
        let on_change: Arc<dyn Fn() + Send + Sync> = Arc::new(on_change);
        let (limb, stop_limb) = spawn_limb(options, executor, on_change.clone());
        let (mut changes, notify) = (rows.clone(), on_change.clone());
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                notify();
            }
        });
        // Enrolled (the token is saved and the limb registered), or stopped with why.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let status = limb.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if status.limb_id.is_some() {
                break;
            }
            if let Some(error) = status.stopped {
                return Err(HubError::Connect(error));
            }
            if tokio::time::Instant::now() > deadline {
                let _ = stop_limb.send(true);
                return Err(HubError::Connect(format!("no answer from the hub at {} within a minute", hub.url)));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let token = std::fs::read_to_string(&token_file).map_err(|e| HubError::Connect(format!("{}: {e}", token_file.display())))?;
        let http = HubHttp::new(http_base);
        Ok(Mesh { server: None, limb, http, token: token.trim().to_string(), rows: Rows::Limb(rows), stop_limb, database: hub.database.clone() })
    }

    pub async fn submit(&self, payload: &str) -> Result<(), HubError> {
        self.http.call(&self.database, "submit_task", serde_json::json!([payload]), &self.token).await
    }

    /// The tenant's tasks, newest first, from the live subscription cache.
    pub fn tasks(&self) -> Vec<TaskView> {
        match &self.rows {
            Rows::Viewer(viewer) => task_views(&viewer.conn),
            Rows::Limb(rows) => rows.borrow().clone(),
        }
    }

    /// Who this app is at the hub (hex), as the hub's owner sees it.
    pub fn identity(&self) -> String {
        match &self.rows {
            Rows::Viewer(viewer) => viewer.identity.to_hex().to_string(),
            Rows::Limb(_) => self.limb().identity.unwrap_or_default(),
        }
    }

    pub fn limb(&self) -> LimbStatus {
        self.limb.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Give a task up: a pending one never runs, a claimed one is dropped by its limb.
    pub async fn cancel(&self, task_id: u64) -> Result<(), HubError> {
        self.http.call(&self.database, "cancel_task", serde_json::json!([task_id]), &self.token).await
    }

    pub fn stop(&mut self) {
        let _ = self.stop_limb.send(true);
        if let Rows::Viewer(viewer) = &self.rows {
            let _ = viewer.conn.disconnect();
        }
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::http_url;

    #[test]
    fn the_hubs_http_base_follows_its_websocket_url_and_plain_ws_stays_on_this_machine() {
        assert_eq!(http_url("wss://hub.example.org").unwrap(), "https://hub.example.org");
        assert_eq!(http_url("wss://hub.example.org:8443/").unwrap(), "https://hub.example.org:8443");
        assert_eq!(http_url("ws://127.0.0.1:3000").unwrap(), "http://127.0.0.1:3000");
        assert_eq!(http_url("ws://[::1]:3000").unwrap(), "http://[::1]:3000");
        assert_eq!(http_url("ws://localhost:3000").unwrap(), "http://localhost:3000");
        assert!(http_url("ws://hub.example.org:3000").unwrap_err().to_string().contains("unencrypted"));
        assert!(http_url("https://hub.example.org").unwrap_err().to_string().contains("not a WebSocket URL"));
        assert!(http_url("hub.example.org").unwrap_err().to_string().contains("not a URL"));
        assert!(http_url("wss://").unwrap_err().to_string().contains("no host"));
    }
}
