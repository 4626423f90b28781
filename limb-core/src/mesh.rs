//! A whole mesh on one machine: a local hub, this machine's owner identity and
//! tenant, and an in-process limb answering it. This is what the desktop app
//! runs when no hub is configured (a laptop with no network still works).

use crate::config::{free_loopback_port, Parts};
use crate::governor::Decision;
use crate::hub::bindings::{DbConnection, TaskResultTableAccess, TaskState, TaskTableAccess};
use crate::hub::{connect, run_limb, Connected, Executor, HubError, HubHttp, HubServer, HubServerConfig, LimbEvent, LimbOptions};
use spacetimedb_sdk::{DbContext, Table, TableWithPrimaryKey};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

const DATABASE: &str = "heiwa";

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

fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending => "pending",
        TaskState::Claimed => "claimed",
        TaskState::Done => "done",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
    }
}

/// What this machine's limb is doing, from its own events.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LimbStatus {
    /// Its id at the hub, once registered.
    pub limb_id: Option<u64>,
    pub connected: bool,
    /// The last connection problem, while disconnected.
    pub problem: Option<String>,
    pub running: Vec<u64>,
    pub completed: u64,
    pub failed: u64,
    pub released: u64,
    /// The governor's latest decision, when there is a governor.
    pub donation: Option<Decision>,
}

impl LimbStatus {
    fn apply(&mut self, event: LimbEvent) {
        match event {
            LimbEvent::Ready { limb_id } => {
                self.limb_id = Some(limb_id);
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
            LimbEvent::Governed(decision) => self.donation = Some(decision),
        }
    }
}

pub struct LocalMesh {
    server: Option<HubServer>,
    limb: Arc<Mutex<LimbStatus>>,
    http: HubHttp,
    owner_token: String,
    viewer: Connected,
    stop_limb: watch::Sender<bool>,
}

impl LocalMesh {
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
        let options = LimbOptions {
            uri: server.ws_url(),
            database: DATABASE.into(),
            token_file: limb_token,
            invite,
            name: "this workstation".into(),
            lease_secs: 30,
            max_in_flight: 1,
            governor,
        };
        let on_change = Arc::new(on_change);
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
                tracing::error!(%error, "the local limb stopped");
                let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
                status.connected = false;
                status.problem = Some(error.to_string());
            }
        });

        let (uri, viewer_token) = (server.ws_url(), owner_token.clone());
        let viewer = tokio::task::spawn_blocking(move || connect(&uri, DATABASE, Some(viewer_token), |_| {}))
            .await
            .map_err(|e| HubError::Connect(e.to_string()))??;
        let notify = on_change.clone();
        viewer.conn.db.task().on_insert(move |_, _| notify());
        let notify = on_change.clone();
        viewer.conn.db.task().on_update(move |_, _, _| notify());
        let notify = on_change;
        viewer.conn.db.task_result().on_insert(move |_, _| notify());
        Ok(LocalMesh { server: Some(server), limb, http, owner_token, viewer, stop_limb })
    }

    pub async fn submit(&self, payload: &str) -> Result<(), HubError> {
        self.http.call(DATABASE, "submit_task", serde_json::json!([payload]), &self.owner_token).await
    }

    /// The tenant's tasks, newest first, from the live subscription cache.
    pub fn tasks(&self) -> Vec<TaskView> {
        let conn: &DbConnection = &self.viewer.conn;
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

    pub fn limb(&self) -> LimbStatus {
        self.limb.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Give a task up: a pending one never runs, a claimed one is dropped by its limb.
    pub async fn cancel(&self, task_id: u64) -> Result<(), HubError> {
        self.http.call(DATABASE, "cancel_task", serde_json::json!([task_id]), &self.owner_token).await
    }

    pub fn stop(&mut self) {
        let _ = self.stop_limb.send(true);
        let _ = self.viewer.conn.disconnect();
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

impl Drop for LocalMesh {
    fn drop(&mut self) {
        self.stop();
    }
}
