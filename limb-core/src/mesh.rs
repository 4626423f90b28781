//! This machine's place in a mesh, as the desktop app runs it: either a whole
//! mesh on one machine (a local hub, this machine's owner identity and tenant,
//! and an in-process limb; a laptop with no network still works), or an
//! in-process limb that joined someone else's hub with an invite. Either way a
//! viewer subscription shows the tenant's tasks live.

use crate::claim::{run_limb, Executor, LimbEvent, LimbOptions, Offer};
use crate::governor::Decision;
use heiwa_config::{free_loopback_port, Parts};
use heiwa_hub::bindings::{TaskResultTableAccess, TaskTableAccess};
use heiwa_hub::{
    connect, http_url, task_views, tenant_tables, Connected, HubError, HubHttp, HubServer, HubServerConfig, InviteRole,
    TaskView,
};
use spacetimedb_sdk::{DbContext, Table, TableWithPrimaryKey};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

const DATABASE: &str = "heiwa";

/// What this machine's limb is doing, from its own events.
#[derive(Clone, Debug, Default, serde::Serialize, ts_rs::TS)]
pub struct LimbStatus {
    /// Its id at the hub, once registered.
    #[ts(type = "number | null")]
    pub limb_id: Option<u64>,
    /// Its identity at the hub (hex), once connected.
    pub identity: Option<String>,
    pub connected: bool,
    /// The last connection problem, while disconnected.
    pub problem: Option<String>,
    #[ts(type = "number[]")]
    pub running: Vec<u64>,
    #[ts(type = "number")]
    pub completed: u64,
    #[ts(type = "number")]
    pub failed: u64,
    #[ts(type = "number")]
    pub released: u64,
    /// Results finished here that the hub has not acknowledged yet: kept on
    /// disk and delivered when the link is back.
    #[ts(type = "number[]")]
    pub waiting: Vec<u64>,
    /// The limb ended with this error (it does not come back by itself).
    pub stopped: Option<String>,
    /// The tenant's owner (or its admin bot) paused this limb, and why: it
    /// takes no new work until resumed from there.
    pub paused_by_tenant: Option<String>,
    /// The tenant's catalogue models the hub asked this machine for, and how each copy goes.
    pub models: Vec<crate::claim::ModelCopy>,
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
            LimbEvent::Waiting(ids) => self.waiting = ids,
            // The app reads decisions from its governor.
            LimbEvent::Governed(_) => {}
            LimbEvent::PausedByTenant(reason) => self.paused_by_tenant = reason,
            LimbEvent::Model(copy) => match self.models.iter_mut().find(|m| m.model_id == copy.model_id) {
                Some(known) => *known = copy,
                None => self.models.push(copy),
            },
            LimbEvent::ModelDropped(model_id) => self.models.retain(|m| m.model_id != model_id),
        }
    }
}

/// What this machine's limb earned by verified work, as the Limb view shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct MachineCredit {
    /// Milli-credits paid (earned and released).
    #[ts(type = "number")]
    pub paid_milli: u64,
    /// Of them, in the last 7 days (known where this machine reads the ledger: its own hub).
    #[ts(type = "number | null")]
    pub week_milli: Option<u64>,
    #[ts(type = "number")]
    pub escrow_milli: u64,
    #[ts(type = "number")]
    pub revoked_milli: u64,
    /// Results paid for.
    #[ts(type = "number")]
    pub tasks: u64,
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
    Viewer(Box<Connected>),
    Limb(watch::Receiver<Vec<TaskView>>),
}

/// A hub run by someone else, as the desktop's Settings name it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct RemoteHub {
    /// `wss://…` (or `ws://` to this machine).
    pub url: String,
    pub database: String,
    /// The tenant owner's invite code; needed until this limb has joined.
    pub invite: Option<String>,
}

/// This machine's limb: one task at a time (the governor may allow more),
/// offering what its executor brings.
fn this_workstation(
    uri: String,
    database: String,
    token_file: std::path::PathBuf,
    invite: Option<String>,
    offer: Offer,
    governor: Option<watch::Receiver<Decision>>,
) -> LimbOptions {
    LimbOptions {
        uri,
        database,
        token_file,
        invite,
        name: "this workstation".into(),
        lease_secs: 30,
        max_in_flight: 1,
        offer,
        governor,
        tasks: None,
        models: None,
    }
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
async fn watch_rows(
    uri: String,
    database: String,
    token: String,
    on_change: Arc<dyn Fn() + Send + Sync>,
) -> Result<Connected, HubError> {
    // The SDK may panic while connecting; that is a failed connection, not a crash.
    let viewer = tokio::task::spawn_blocking(move || connect(&uri, &database, Some(token), tenant_tables(), |_| {}))
        .await
        .map_err(|e| HubError::Connect(e.to_string()))??;
    let notify = on_change.clone();
    viewer.conn.db.task().on_insert(move |_, _| notify());
    let notify = on_change.clone();
    viewer.conn.db.task().on_update(move |_, _, _| notify());
    viewer.conn.db.task_result().on_insert(move |_, _| on_change());
    Ok(viewer)
}

/// Start this machine's hub on `data_dir/hub` and publish the module as its
/// owner (whose token is kept in `data_dir`).
async fn local_hub(parts: &Parts, data_dir: &Path) -> Result<(HubServer, HubHttp, String), HubError> {
    let listen = format!("127.0.0.1:{}", free_loopback_port()?).parse().expect("a loopback address");
    let config = HubServerConfig { binary: parts.spacetimedb_bin.clone(), data_dir: data_dir.join("hub"), listen };
    let server = tokio::task::spawn_blocking(move || HubServer::start(&config))
        .await
        .map_err(|e| HubError::Spawn(std::io::Error::other(e.to_string())))??;
    let http = HubHttp::new(server.http_url());
    let owner_token = http.identity_token(&data_dir.join("owner.token")).await?;
    http.publish(DATABASE, &parts.hub_wasm, &owner_token).await?;
    Ok((server, http, owner_token))
}

/// Move the local hub's data and the identities it signed (they mean nothing
/// to a new hub) into `data_dir/hub-before-<unix time>`, untouched.
fn retire_local_hub(data_dir: &Path) -> Result<std::path::PathBuf, HubError> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let kept = data_dir.join(format!("hub-before-{secs}"));
    std::fs::create_dir_all(&kept).map_err(HubError::file(&kept))?;
    for name in ["hub", "owner.token", "limb.token"] {
        let from = data_dir.join(name);
        if from.exists() {
            std::fs::rename(&from, kept.join(name)).map_err(HubError::file(&from))?;
        }
    }
    Ok(kept)
}

/// A dashboard sign-in as the owner hands it on: the code, and the hub and
/// database the browser connects to (the link carries all three).
#[derive(Clone, Debug, serde::Serialize, ts_rs::TS)]
pub struct DashboardInvite {
    pub code: String,
    pub hub: String,
    pub database: String,
    /// For the dashboard served by `heiwa dashboard` on this machine.
    pub link: String,
    pub valid_secs: u32,
}

impl Mesh {
    /// Start (or resume, from `data_dir`) the local mesh, its limb answering
    /// with `executor` as far as `governor` allows. `on_change` runs whenever
    /// a task or result row or the limb's status changes.
    pub async fn start(
        parts: &Parts,
        data_dir: &Path,
        executor: Arc<dyn Executor>,
        offer: Offer,
        governor: Option<watch::Receiver<Decision>>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, HubError> {
        let (server, http, owner_token) = match local_hub(parts, data_dir).await {
            Err(HubError::SchemaChanged { detail, .. }) => {
                // This machine's own hub, made by an earlier version: keep it
                // whole beside a fresh one rather than refuse to start.
                let kept = retire_local_hub(data_dir)?;
                tracing::warn!(%detail, kept = %kept.display(), "the local hub's tables changed; started a new one");
                local_hub(parts, data_dir).await?
            }
            other => other?,
        };
        if http.rows(DATABASE, "SELECT * FROM member", &owner_token).await?.is_empty() {
            http.create_tenant(DATABASE, "this workstation", &owner_token).await?;
        }
        // The hub, not the token file alone, says whether this machine's limb
        // is enrolled: a crash between saving the limb's token and joining must
        // not lose the invite. One it turns out not to need expires unused.
        let limb_token = data_dir.join("limb.token");
        let enrolled =
            limb_token.exists() && !http.rows(DATABASE, "SELECT id FROM limb", &owner_token).await?.is_empty();
        let invite = match enrolled {
            true => None,
            false => Some(http.create_invite(DATABASE, 1, 600, InviteRole::Limb, &owner_token).await?.0),
        };
        let options = this_workstation(server.ws_url(), DATABASE.into(), limb_token, invite, offer, governor);
        let on_change: Arc<dyn Fn() + Send + Sync> = Arc::new(on_change);
        let (limb, stop_limb) = spawn_limb(options, executor, on_change.clone());
        let viewer = watch_rows(server.ws_url(), DATABASE.into(), owner_token.clone(), on_change).await?;
        Ok(Mesh {
            server: Some(server),
            limb,
            http,
            token: owner_token,
            rows: Rows::Viewer(Box::new(viewer)),
            stop_limb,
            database: DATABASE.into(),
        })
    }

    /// Join someone else's hub as a limb of their tenant (the `invite` is
    /// needed the first time only; the identity is kept in `data_dir`). The
    /// app sees what the hub assigns its limb and the limb's results; it may
    /// submit and cancel as the limb's identity only once the owner grants it.
    /// `models`: where the catalogue models the tenant's hub asks for go
    /// (`None`: this limb offers only `offer`'s).
    pub async fn join(
        hub: &RemoteHub,
        data_dir: &Path,
        executor: Arc<dyn Executor>,
        offer: Offer,
        models: Option<crate::claim::ModelFetching>,
        governor: Option<watch::Receiver<Decision>>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, HubError> {
        let http_base = http_url(&hub.url)?;
        std::fs::create_dir_all(data_dir).map_err(HubError::file(data_dir))?;
        let token_file = data_dir.join("limb.token");
        let mut options = this_workstation(
            hub.url.clone(),
            hub.database.clone(),
            token_file.clone(),
            hub.invite.clone(),
            offer,
            governor,
        );
        let (rows_tx, rows) = watch::channel(Vec::new());
        options.tasks = Some(Arc::new(rows_tx));
        options.models = models;
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
                return Err(HubError::Timeout { what: format!("joining the hub at {}", hub.url), secs: 60 });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let token = std::fs::read_to_string(&token_file).map_err(HubError::file(&token_file))?;
        let http = HubHttp::new(http_base);
        Ok(Mesh {
            server: None,
            limb,
            http,
            token: token.trim().to_string(),
            rows: Rows::Limb(rows),
            stop_limb,
            database: hub.database.clone(),
        })
    }

    /// Submit a task; with `replicas` 2 or 3, limbs of that many donors answer
    /// it and the hub keeps what they agree on.
    pub async fn submit(&self, payload: &str, replicas: u32) -> Result<(), HubError> {
        if replicas > 1 {
            return self.http.submit_task_replicated(&self.database, None, payload, None, replicas, &self.token).await;
        }
        self.http.submit_task(&self.database, payload, None, &self.token).await
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

    /// A one-use code for one browser to sign into the web dashboard (read-only
    /// unless `submits`), with the link that carries it; only a tenant's owner may.
    pub async fn dashboard_invite(&self, submits: bool, label: &str) -> Result<DashboardInvite, HubError> {
        const VALID_SECS: u32 = 3600;
        let code = self.http.create_browser_invite(&self.database, submits, label, VALID_SECS, &self.token).await?.0;
        let hub = heiwa_hub::ws_url(self.http.base_url())?;
        let link = heiwa_hub::dashboard_link(heiwa_hub::DEFAULT_DASHBOARD, &hub, &self.database, &code);
        Ok(DashboardInvite { code, hub, database: self.database.clone(), link, valid_secs: VALID_SECS })
    }

    /// What this machine's limb earned: from the ledger where this machine
    /// reads it (the owner of its own hub), else the limb's own sums.
    pub async fn credit(&self) -> Result<Option<MachineCredit>, HubError> {
        let Some(limb_id) = self.limb().limb_id else { return Ok(None) };
        if let Some(line) = self.http.credit(&self.database, Some(limb_id), &self.token).await?.pop() {
            let all = line.all;
            return Ok(Some(MachineCredit {
                paid_milli: all.milli,
                week_milli: Some(line.week.milli),
                escrow_milli: all.escrow_milli,
                revoked_milli: all.revoked_milli,
                tasks: all.tasks,
            }));
        }
        Ok(self.http.own_credit(&self.database, &self.token).await?.map(|own| MachineCredit {
            paid_milli: own.milli,
            week_milli: None,
            escrow_milli: own.escrow_milli,
            revoked_milli: own.revoked_milli,
            tasks: own.tasks,
        }))
    }

    /// The browsers signed into the tenant's dashboard.
    pub async fn browsers(&self) -> Result<Vec<heiwa_hub::BrowserRow>, HubError> {
        self.http.browsers(&self.database, &self.token).await
    }

    /// Take a browser's access back (`identity` in hex, as [`Mesh::browsers`] lists it).
    pub async fn revoke_browser(&self, identity: &str) -> Result<(), HubError> {
        self.http.revoke_browser(&self.database, identity, &self.token).await
    }

    /// Give a task up: a pending one never runs, a claimed one is dropped by its limb.
    pub async fn cancel(&self, task_id: u64) -> Result<(), HubError> {
        self.http.cancel_task(&self.database, task_id, &self.token).await
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
