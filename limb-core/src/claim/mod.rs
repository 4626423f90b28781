//! The limb's loop: it offers the hub free slots (as the governor allows),
//! runs what the hub assigns it, sends results back, heartbeats while alive,
//! reconnects with backoff and jitter, and reconciles after a reconnect (the
//! SDK does none of this for us). It subscribes to its own assignments and
//! results only, and sees nothing else of its tenant.
//!
//! Invariants: a task is executed only once the hub assigned it to us (the row
//! arrived through our subscription); a result is sent only while we believe
//! we hold the task; after a reconnect, tasks the hub no longer shows as ours
//! are dropped, and results not yet acknowledged are sent again once.

mod dropped;
mod models;
mod outbox;
mod plan;

pub use dropped::{fetched_models, FetchedModel};
pub use models::{ModelCopy, ModelFetching};
pub use outbox::Outbox;

use crate::governor::Decision;
use heiwa_hub::bindings::*;
use heiwa_hub::{
    connect, limb_tables, task_views, truncate_to, Connected, HubError, ModelOffer, TaskView, MAX_REASON_BYTES,
    MAX_RESULT_BATCH,
};
pub use heiwa_provenance::Evidence;
use heiwa_provenance::{LimbKey, Statement};
use plan::{Answered, Assignment, InFlight, Outcome, Snapshot};
use spacetimedb_sdk::{DbContext, Identity, Status, Table, TableWithPrimaryKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Why an executor could not answer a task; its message is the reason the hub keeps.
pub type TaskFailure = Box<dyn std::error::Error + Send + Sync>;

/// Turns a task's payload into a summary, or a failure.
pub trait Executor: Send + Sync + 'static {
    /// `model`: the file of a fetched catalogue model the task is pinned to
    /// (`None`: the executor's own model).
    fn execute(&self, task_id: u64, payload: &str, model: Option<&Path>) -> Result<Output, TaskFailure>;
}

/// What an executor hands back: the summary for the hub, and what it knows
/// about how the answer was made (signed with the result).
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub summary: String,
    pub evidence: Evidence,
}

/// The executor used until the agent exists: answers with a short summary
/// after `work` (a stand-in for real work, so tests can catch a limb mid-task).
pub struct EchoExecutor {
    pub work: Duration,
}

impl Executor for EchoExecutor {
    fn execute(&self, _task_id: u64, payload: &str, model: Option<&Path>) -> Result<Output, TaskFailure> {
        std::thread::sleep(self.work);
        // The same payload, the same answer (whichever copy of a task it is):
        // echo limbs stand in for deterministic work in replicated tasks.
        let checksum: u64 = payload.bytes().map(u64::from).sum();
        // A task pinned to a fetched catalogue model says which file it was given.
        let on = model.and_then(Path::file_name).map(|f| format!(" on {}", f.to_string_lossy())).unwrap_or_default();
        Ok(Output {
            summary: format!("received {} bytes, checksum {checksum}{on}", payload.len()),
            evidence: Evidence { engine: "echo".into(), ..Evidence::default() },
        })
    }
}

/// What this limb brings besides slots; the hub routes model-pinned tasks by it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    pub models: Vec<ModelOffer>,
    /// It runs the `run_python` tool.
    pub tool: bool,
    pub gpu: bool,
}

#[derive(Clone, Debug)]
pub struct LimbOptions {
    pub uri: String,
    pub database: String,
    /// Where this limb's identity token is kept (created on first connect).
    pub token_file: PathBuf,
    /// An invite code, needed the first time only.
    pub invite: Option<String>,
    pub name: String,
    pub lease_secs: u32,
    pub max_in_flight: usize,
    pub offer: Offer,
    /// The donation governor's decisions: while one says "do not give", the
    /// limb offers no slots (and releases running tasks if it says so). Its
    /// `max_in_flight` then bounds the slots instead of the one above.
    /// `None` gives always.
    pub governor: Option<watch::Receiver<Decision>>,
    /// Where to publish the tasks this limb's subscription sees (its own),
    /// after every change (for an app that shows them).
    pub tasks: Option<Arc<watch::Sender<Vec<TaskView>>>>,
    /// Fetch the catalogue models the hub asks for, and offer them once held
    /// (`None`: this limb offers only `offer.models`).
    pub models: Option<ModelFetching>,
}

/// What the limb did, for logs and the UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimbEvent {
    Ready {
        limb_id: u64,
        identity: String,
    },
    /// The hub assigned us this task and it runs.
    Claimed(u64),
    Executed(u64),
    Completed(u64),
    Failed(u64, String),
    /// The hub no longer shows us holding this task (lease expired while away).
    Lost(u64),
    Disconnected(String),
    Reconnected,
    Released(u64),
    /// Results finished here that the hub has not acknowledged yet (they wait
    /// in the outbox); sent whenever that set changes.
    Waiting(Vec<u64>),
    /// The governor's decision changed (giving or not, and why).
    Governed(Decision),
    /// The tenant (its owner, or the admin bot for it) paused this limb
    /// (`Some`: why) or resumed it (`None`).
    PausedByTenant(Option<String>),
    /// A catalogue model the hub asked for: how its copy here goes.
    Model(ModelCopy),
    /// The hub no longer asks for it (the catalogue dropped or changed it).
    ModelDropped(String),
}

enum Msg {
    /// A task row arrived in our view as assigned to `holder` (us, by our subscription).
    Assigned {
        task_id: u64,
        holder: u64,
    },
    /// A task or result row changed (sent only when tasks are published).
    Rows,
    Executed {
        task_id: u64,
        outcome: Outcome,
    },
    Acked {
        task_id: u64,
        ok: bool,
    },
    /// Our `limb_control` row arrived or changed: paused (why) or not.
    Control(Option<String>),
    /// The hub refused a heartbeat: another connection with this identity took over.
    Superseded(String),
    /// The hub asks for a catalogue model (or no longer does: `ModelDropped`).
    ModelWanted(models::Wanted),
    /// The model's id and the file's SHA-256 that is no longer asked for.
    ModelDropped(String, String),
    /// How a fetch goes.
    Model(models::Report),
    /// Connection number `generation` ended. Dropping a replaced connection
    /// reports too, so only the current generation's report counts.
    Disconnected {
        generation: u64,
        reason: Option<String>,
    },
}

fn load_token(path: &PathBuf) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Connect (blocking SDK calls off the async runtime) and wire every callback
/// the loop needs into `tx`. Callbacks fire for our own identity's calls only.
async fn connect_wired(
    options: &LimbOptions,
    generation: u64,
    tx: mpsc::UnboundedSender<Msg>,
) -> Result<Connected, HubError> {
    let publishing = options.tasks.is_some();
    let token = load_token(&options.token_file);
    let (uri, database) = (options.uri.clone(), options.database.clone());
    let on_gone = tx.clone();
    let connected = tokio::task::spawn_blocking(move || {
        connect(&uri, &database, token, limb_tables(), move |reason| {
            let _ = on_gone.send(Msg::Disconnected { generation, reason });
        })
    })
    .await
    .map_err(|e| HubError::Connect(e.to_string()))??;
    heiwa_config::write_secret(&options.token_file, &connected.token)?;

    let me = connected.identity;
    let conn = &connected.conn;
    let assigned = move |sink: &mpsc::UnboundedSender<Msg>, task: &Task| {
        if task.state == TaskState::Claimed {
            let _ = sink.send(Msg::Assigned { task_id: task.id, holder: task.assigned_to });
        }
        if publishing {
            let _ = sink.send(Msg::Rows);
        }
    };
    let sink = tx.clone();
    conn.db.task().on_insert(move |_, task| assigned(&sink, task));
    let sink = tx.clone();
    conn.db.task().on_update(move |_, _, task| assigned(&sink, task));
    if publishing {
        let rows = tx.clone();
        conn.db.task().on_delete(move |_, _| {
            let _ = rows.send(Msg::Rows);
        });
        let rows = tx.clone();
        conn.db.task_result().on_insert(move |_, _| {
            let _ = rows.send(Msg::Rows);
        });
    }
    let control = tx.clone();
    conn.db.limb_control().on_insert(move |_, row| {
        let _ = control.send(Msg::Control(tenant_pause(row)));
    });
    let control = tx.clone();
    conn.db.limb_control().on_update(move |_, _, row| {
        let _ = control.send(Msg::Control(tenant_pause(row)));
    });
    if options.models.is_some() {
        models::wire(conn, &tx, Msg::ModelWanted, Msg::ModelDropped);
    }
    conn.reducers.on_offer(move |ctx, _, capacity, _, _, _| {
        if ctx.event.caller_identity == me {
            if let Status::Failed(message) = &ctx.event.status {
                tracing::warn!(%message, capacity, "the hub refused this limb's offer");
            }
        }
    });
    // A refused heartbeat means another connection with this identity took
    // over (a copied token): the limb stops. Heartbeats go with full
    // notification: with `NoSuccessNotify` the 1.2 SDK reported no failure
    // either (seen in tests/network). A silent link, though, is left to TCP and
    // the hub's lease sweep: a limb that reconnected on its own when heartbeats
    // went unanswered, while the hub still held its old connection, got no
    // subscription updates on the new one (SpacetimeDB 1.2, tests/network).
    let refused = tx.clone();
    conn.reducers.on_heartbeat(move |ctx, _| {
        if let Status::Failed(message) = &ctx.event.status {
            if ctx.event.caller_identity == me
                && heiwa_hub::Refusal::recognise(message) == Some(heiwa_hub::Refusal::Superseded)
            {
                let _ = refused.send(Msg::Superseded(message.to_string()));
            }
        }
    });
    let acks = tx.clone();
    conn.reducers.on_complete_task_signed(move |ctx, task_id, _, _, _, _| {
        if ctx.event.caller_identity == me {
            let _ = acks.send(Msg::Acked { task_id: *task_id, ok: matches!(ctx.event.status, Status::Committed) });
        }
    });
    // A batch commits whole, but a result in it that was refused is left out:
    // each one is delivered if the hub now holds our result row for it.
    let acks = tx.clone();
    conn.reducers.on_complete_tasks_signed(move |ctx, limb_id, results| {
        if ctx.event.caller_identity == me {
            let committed = matches!(ctx.event.status, Status::Committed);
            for result in results {
                let held =
                    || ctx.db.task_result().task_id().find(&result.task_id).is_some_and(|r| r.limb_id == *limb_id);
                let _ =
                    acks.send(Msg::Acked { task_id: result.task_id, ok: committed && cached(held).unwrap_or(false) });
            }
        }
    });
    let acks = tx;
    conn.reducers.on_fail_task(move |ctx, task_id, _, _| {
        if ctx.event.caller_identity == me {
            let _ = acks.send(Msg::Acked { task_id: *task_id, ok: matches!(ctx.event.status, Status::Committed) });
        }
    });
    Ok(connected)
}

/// Why the tenant paused this limb, if its control row says it is paused.
fn tenant_pause(row: &LimbControl) -> Option<String> {
    let reason = if row.reason.trim().is_empty() { "no reason given" } else { row.reason.as_str() };
    row.paused.then(|| reason.to_string())
}

/// Wait until `probe` finds something in the cache (rows arrive asynchronously).
async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T, HubError> {
    const TRIES: u64 = 200;
    const EVERY: Duration = Duration::from_millis(50);
    for _ in 0..TRIES {
        if let Some(value) = probe() {
            return Ok(value);
        }
        tokio::time::sleep(EVERY).await;
    }
    Err(HubError::Timeout { what: what.into(), secs: (EVERY * TRIES as u32).as_secs() })
}

/// Join the tenant if needed, register, and return this limb's id.
async fn enrol(options: &LimbOptions, connected: &Connected, signer: &LimbKey) -> Result<u64, HubError> {
    let conn = &connected.conn;
    let me = connected.identity;
    if conn.db.member().identity().find(&me).is_none() {
        let code = options.invite.clone().ok_or(HubError::NotJoined)?;
        // A refused code commits (the hub counts it): whether this limb
        // joined is its member row, and why not its `code_attempt` row.
        let earlier_refusal = conn.db.code_attempt().identity().find(&me).map(|row| row.at);
        let (tx, mut rx) = mpsc::unbounded_channel();
        conn.reducers.on_join_tenant(move |ctx, _| {
            if ctx.event.caller_identity == me {
                let _ = tx.send(status_result(&ctx.event.status));
            }
        });
        if !guarded(|| conn.reducers.join_tenant(code)) {
            return Err(HubError::Closed("join_tenant"));
        }
        outcome_of("join_tenant", &mut rx).await?;
        wait_for("the hub's answer to the invite", || {
            if conn.db.member().identity().find(&me).is_some() {
                return Some(Ok(()));
            }
            let refusal = conn.db.code_attempt().identity().find(&me).filter(|row| Some(row.at) != earlier_refusal);
            refusal.map(|row| Err(row.refusal))
        })
        .await?
        .map_err(|message| HubError::Reducer { reducer: "join_tenant".into(), message })?;
    }
    if !guarded(|| conn.reducers.register_limb(options.name.clone(), options.lease_secs)) {
        return Err(HubError::Closed("register_limb"));
    }
    let limb_id =
        wait_for("this limb's registration", || conn.db.assignee().identity().find(&me).map(|seat| seat.limb_id))
            .await?;
    // Its signing key, once per limb: a refusal (another key registered) stops the limb.
    let (tx, mut rx) = mpsc::unbounded_channel();
    conn.reducers.on_register_limb_key(move |ctx, _, _| {
        if ctx.event.caller_identity == me {
            let _ = tx.send(status_result(&ctx.event.status));
        }
    });
    if !guarded(|| conn.reducers.register_limb_key(limb_id, signer.public())) {
        return Err(HubError::Closed("register_limb_key"));
    }
    outcome_of("register_limb_key", &mut rx).await?;
    Ok(limb_id)
}

fn status_result(status: &Status) -> Result<(), String> {
    match status {
        Status::Committed => Ok(()),
        Status::Failed(message) => Err(message.to_string()),
        Status::OutOfEnergy => Err("out of energy".into()),
    }
}

/// The outcome of a reducer call this limb made, as its callback sent it.
async fn outcome_of(reducer: &str, outcome: &mut mpsc::UnboundedReceiver<Result<(), String>>) -> Result<(), HubError> {
    match tokio::time::timeout(Duration::from_secs(10), outcome.recv()).await.ok().flatten() {
        Some(Ok(())) => Ok(()),
        Some(Err(message)) => Err(HubError::Reducer { reducer: reducer.into(), message }),
        None => Err(HubError::Timeout { what: reducer.into(), secs: 10 }),
    }
}

/// Tell the hub how many tasks we take now and what we bring; `false` when
/// the connection is gone.
fn send_offer(conn: &DbConnection, limb_id: u64, capacity: u32, offer: &Offer) -> bool {
    let models = offer.models.iter().cloned().map(Into::into).collect();
    guarded(|| conn.reducers.offer(limb_id, capacity, models, offer.tool, offer.gpu))
}

/// Make a reducer call; `false` when the connection is gone. The 1.2 SDK
/// panics (and poisons its lock) when a call races a dying connection, so a
/// panic here means "disconnected" too; the caller then reconnects.
fn guarded(call: impl FnOnce() -> spacetimedb_sdk::Result<()>) -> bool {
    matches!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)), Ok(Ok(())))
}

/// Send the outcomes of `task_ids` (all in `outcomes`): the answers in one
/// call, so results finished together are one transaction at the hub (and
/// one update to each subscriber), each failure on its own.
fn send_outcomes(conn: &DbConnection, limb_id: u64, task_ids: &[u64], outcomes: &HashMap<u64, Outcome>) -> bool {
    let mut answers = Vec::new();
    let mut sent = true;
    for &task_id in task_ids {
        match &outcomes[&task_id] {
            Ok(Answered { summary, proof }) => answers.push(SignedResult {
                task_id,
                summary: summary.clone(),
                statement: proof.statement.clone(),
                signature: proof.signature.clone(),
            }),
            Err(reason) => {
                let reason = truncate_to(reason, MAX_REASON_BYTES).to_string();
                sent &= guarded(|| conn.reducers.fail_task(task_id, limb_id, reason));
            }
        }
    }
    for batch in answers.chunks(MAX_RESULT_BATCH) {
        sent &= guarded(|| conn.reducers.complete_tasks_signed(limb_id, batch.to_vec()));
    }
    sent
}

/// The next governor decision; never, without a governor (or once it is gone).
async fn next_decision(governor: &mut Option<watch::Receiver<Decision>>) -> Decision {
    if let Some(receiver) = governor {
        if receiver.changed().await.is_ok() {
            return receiver.borrow_and_update().clone();
        }
        *governor = None;
    }
    std::future::pending().await
}

/// Run a task we hold on a blocking thread; its outcome comes back as a message.
/// A read of the SDK's row cache. When the SDK's message thread has panicked
/// (the 1.2 SDK does, on a delete for a row it does not hold), the cache's lock
/// is poisoned and every read panics: that is a broken connection, `None`.
fn cached<T>(read: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).ok()
}

/// How often a limb with results waiting heartbeats (see the main loop).
const WAITING_PROBE: Duration = Duration::from_secs(2);

const CACHE_FAILED: &str = "the hub connection's row cache failed";

/// Run a task on a blocking thread; its outcome, signed and on disk in the
/// outbox (the fsyncs on this thread, not the loop's), comes back as a message.
#[allow(clippy::too_many_arguments)]
fn execute(
    payload: String,
    model: Option<PathBuf>,
    task_id: u64,
    limb_id: u64,
    executor: Arc<dyn Executor>,
    signer: Arc<LimbKey>,
    outbox: Outbox,
    done: mpsc::UnboundedSender<Msg>,
) {
    tokio::task::spawn_blocking(move || {
        let outcome = match executor.execute(task_id, &payload, model.as_deref()) {
            Ok(Output { summary, evidence }) => {
                let statement = Statement::new(task_id, limb_id, &payload, &summary, evidence, crate::VERSION);
                Ok(Answered { proof: signer.sign(&statement), summary })
            }
            // The hub keeps a failure as its reason, a sentence.
            Err(failure) => Err(failure.to_string()),
        };
        if let Err(error) = outbox.put(task_id, &outcome) {
            tracing::warn!(%error, task_id, "the result could not be kept on disk; sending it anyway");
        }
        let _ = done.send(Msg::Executed { task_id, outcome });
    });
}

fn release(conn: &DbConnection, limb_id: u64, task_id: u64, events: &mpsc::UnboundedSender<LimbEvent>) {
    if guarded(|| conn.reducers.release_task(task_id, limb_id)) {
        let _ = events.send(LimbEvent::Released(task_id));
    }
}

/// Run the limb until `shutdown` turns true. Held tasks are released on the way out.
pub async fn run_limb(
    options: LimbOptions,
    executor: Arc<dyn Executor>,
    mut shutdown: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<LimbEvent>,
) -> Result<(), HubError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut generation = 0;
    // The key beside the token signs every result (made on the first start).
    let signer = Arc::new(LimbKey::beside(&options.token_file).map_err(|e| HubError::Key(e.to_string()))?);
    let mut connected = connect_wired(&options, generation, tx.clone()).await?;
    let limb_id = enrol(&options, &connected, &signer).await?;
    let me: Identity = connected.identity;
    let _ = events.send(LimbEvent::Ready { limb_id, identity: me.to_hex().to_string() });
    let publish = |conn: &DbConnection| {
        if let Some(tasks) = &options.tasks {
            // A failed cache is reported by the connection's end; nothing to publish meanwhile.
            if let Some(views) = cached(|| task_views(conn)) {
                tasks.send_replace(views);
            }
        }
    };
    publish(&connected.conn);
    let mut governor = options.governor.clone();
    let mut decision = governor.as_mut().map(|g| g.borrow_and_update().clone());
    if let Some(decision) = &decision {
        let _ = events.send(LimbEvent::Governed(decision.clone()));
    }
    // Results finished before a crash or while the link was down: delivered
    // now if the hub still shows the task as ours, dropped if it does not.
    let outbox = Outbox::beside(&options.token_file).map_err(HubError::file(&options.token_file))?;
    let mut work = InFlight { unacked: outbox.waiting()?, ..InFlight::default() };
    if !work.unacked.is_empty() {
        if !reconcile(&connected.conn, limb_id, &mut work, &tx, &events) {
            let _ = tx.send(Msg::Disconnected { generation, reason: Some(CACHE_FAILED.into()) });
        }
        forget_delivered(&outbox, &work);
    }
    report_waiting(&work, &events);
    // The tenant's pause as the subscription's first rows say (later changes come as `Control`).
    let mut paused_by_tenant = cached(|| connected.conn.db.limb_control().limb_id().find(&limb_id))
        .flatten()
        .and_then(|row| tenant_pause(&row));
    if paused_by_tenant.is_some() {
        let _ = events.send(LimbEvent::PausedByTenant(paused_by_tenant.clone()));
    }
    // What the limb brings grows as catalogue models arrive.
    let mut offer = options.offer.clone();
    let mut fetcher = models::Fetcher::new(options.models.clone());
    fetcher.connected(&connected.conn, Msg::Model, &tx);
    let mut offered = plan::capacity(decision.as_ref(), paused_by_tenant.is_some(), options.max_in_flight);
    if !send_offer(&connected.conn, limb_id, offered, &offer) {
        let _ = tx.send(Msg::Disconnected { generation, reason: Some("offer not sent".into()) });
    }
    let mut heartbeat = tokio::time::interval(Duration::from_millis(u64::from(options.lease_secs) * 1000 / 3));
    // While results wait for the hub's acknowledgement, heartbeats go more
    // often: after an outage, it is the limb's next write that meets the
    // front's closed connection and makes it reconnect and deliver
    // (benches/network: 20 s after a 60 s outage with a 120 s lease, one
    // heartbeat interval; see docs/benchmarks.md).
    let mut waiting_probe = tokio::time::interval(WAITING_PROBE);
    // Results finished and not yet sent: sent together when the loop is idle.
    let mut finished: Vec<u64> = Vec::new();

    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            changed = next_decision(&mut governor) => {
                // Offer the new number of slots first, so that what we hand
                // back goes to another limb rather than straight back to us.
                let slots = plan::capacity(Some(&changed), paused_by_tenant.is_some(), options.max_in_flight);
                if slots != offered && send_offer(&connected.conn, limb_id, slots, &offer) {
                    offered = slots;
                }
                // The executor's thread runs on, but its result is dropped
                // (`running` no longer holds the task): another limb may
                // already have it.
                for task_id in plan::on_decision(&mut work, &changed) {
                    release(&connected.conn, limb_id, task_id, &events);
                }
                let _ = events.send(LimbEvent::Governed(changed.clone()));
                decision = Some(changed);
            }
            _ = waiting_probe.tick(), if !work.unacked.is_empty() => send_heartbeat(&connected.conn, limb_id, generation, &tx),
            _ = heartbeat.tick() => {
                send_heartbeat(&connected.conn, limb_id, generation, &tx);
                fetcher.on_clock(Msg::Model, &tx);
            }
            Some(msg) = rx.recv() => match msg {
                Msg::Rows => publish(&connected.conn),
                // What runs finishes, as under the owner's own pause; only the offer changes.
                Msg::Control(pause) if pause != paused_by_tenant => {
                    let slots = plan::capacity(decision.as_ref(), pause.is_some(), options.max_in_flight);
                    if slots != offered && send_offer(&connected.conn, limb_id, slots, &offer) {
                        offered = slots;
                    }
                    let _ = events.send(LimbEvent::PausedByTenant(pause.clone()));
                    paused_by_tenant = pause;
                }
                Msg::Control(_) => {}
                // Stop at once, handing nothing back and offering nothing: the
                // limb (its tasks, its slots) is the other connection's now.
                Msg::Superseded(message) => {
                    guarded(|| connected.conn.disconnect());
                    return Err(HubError::Superseded(message));
                }
                Msg::Assigned { task_id, holder } if holder == limb_id => {
                    match plan::on_assigned(&work, task_id, decision.as_ref()) {
                        Assignment::Known => {}
                        Assignment::Release => release(&connected.conn, limb_id, task_id, &events),
                        Assignment::Run => {
                            let conn = &connected.conn;
                            match cached(|| conn.db.task().id().find(&task_id).map(|t| (t.payload, t.model))) {
                                Some(row) => {
                                    let (payload, model) = row.unwrap_or_default();
                                    work.running.insert(task_id);
                                    let _ = events.send(LimbEvent::Claimed(task_id));
                                    execute(
                                        payload,
                                        fetcher.path_for(&model),
                                        task_id,
                                        limb_id,
                                        executor.clone(),
                                        signer.clone(),
                                        outbox.clone(),
                                        tx.clone(),
                                    );
                                }
                                // Not taken: after the reconnect it is an orphan of ours and runs then.
                                None => {
                                    let _ = tx.send(Msg::Disconnected { generation, reason: Some(CACHE_FAILED.into()) });
                                }
                            }
                        }
                    }
                }
                Msg::Assigned { .. } => {}
                Msg::ModelWanted(wanted) => fetcher.ask(wanted, Msg::Model, &tx),
                Msg::ModelDropped(model_id, sha256) => {
                    let _ = events.send(LimbEvent::ModelDropped(model_id.clone()));
                    if fetcher.withdraw(&model_id, &sha256) {
                        offer.models.retain(|m| m.id != model_id);
                        if !send_offer(&connected.conn, limb_id, offered, &offer) {
                            let _ = tx.send(Msg::Disconnected { generation, reason: Some("offer not sent".into()) });
                        }
                    }
                }
                Msg::Model(report) => {
                    let _ = events.send(LimbEvent::Model(report.copy()));
                    if let Some(held) = fetcher.on_report(&connected.conn, limb_id, report) {
                        offer.models.retain(|m| m.id != held.id);
                        offer.models.push(held);
                        if !send_offer(&connected.conn, limb_id, offered, &offer) {
                            let _ = tx.send(Msg::Disconnected { generation, reason: Some("offer not sent".into()) });
                        }
                    }
                }
                Msg::Executed { task_id, outcome } => {
                    if work.running.remove(&task_id) {
                        let _ = events.send(LimbEvent::Executed(task_id));
                        // Sent with the others finished meanwhile, below.
                        finished.push(task_id);
                        work.unacked.insert(task_id, outcome);
                        report_waiting(&work, &events);
                    } else if let Err(error) = outbox.remove(task_id) {
                        // Handed back while it ran: another limb answers it.
                        tracing::warn!(%error, task_id, "a dropped result stays in the outbox");
                    }
                }
                Msg::Acked { task_id, ok } => {
                    if let Some(outcome) = work.unacked.remove(&task_id) {
                        work.resent.remove(&task_id);
                        if let Err(error) = outbox.remove(task_id) {
                            tracing::warn!(%error, task_id, "a delivered result stays in the outbox");
                        }
                        let _ = events.send(match (ok, outcome) {
                            (true, Ok(_)) => LimbEvent::Completed(task_id),
                            (true, Err(reason)) => LimbEvent::Failed(task_id, reason),
                            (false, _) => LimbEvent::Lost(task_id),
                        });
                        report_waiting(&work, &events);
                    }
                }
                Msg::Disconnected { generation: ended, reason } if ended == generation => {
                    let _ = events.send(LimbEvent::Disconnected(reason.unwrap_or_else(|| "closed".into())));
                    generation += 1;
                    // Shut down while away: nothing is held on a connection that is gone.
                    let Some(again) = reconnect(&options, generation, &tx, &mut shutdown).await else {
                        return Ok(());
                    };
                    connected = again;
                    if connected.identity != me {
                        return Err(HubError::IdentityChanged);
                    }
                    // What was finished and not yet sent is in `unacked`: reconciliation sends it.
                    finished.clear();
                    if !reconcile(&connected.conn, limb_id, &mut work, &tx, &events) {
                        let _ = tx.send(Msg::Disconnected { generation, reason: Some(CACHE_FAILED.into()) });
                    }
                    forget_delivered(&outbox, &work);
                    report_waiting(&work, &events);
                    fetcher.connected(&connected.conn, Msg::Model, &tx);
                    if !send_offer(&connected.conn, limb_id, offered, &offer) {
                        let _ = tx.send(Msg::Disconnected { generation, reason: Some("offer not sent".into()) });
                    }
                    publish(&connected.conn);
                    let _ = events.send(LimbEvent::Reconnected);
                }
                Msg::Disconnected { .. } => {}
            },
        }
        // Results finished together go together: once every message waiting
        // has been read (so each result that finished meanwhile is here), or
        // when a batch is full.
        if !finished.is_empty() && (rx.is_empty() || finished.len() >= MAX_RESULT_BATCH) {
            if !send_outcomes(&connected.conn, limb_id, &finished, &work.unacked) {
                // Kept in `unacked`: reconciliation re-sends them once reconnected.
                let _ = tx.send(Msg::Disconnected { generation, reason: Some("results not sent".into()) });
            }
            finished.clear();
        }
    }

    // No new work, then hand back what we hold (it goes to other limbs).
    fetcher.stop(); // what arrived is kept: the next start resumes it
    send_offer(&connected.conn, limb_id, 0, &offer);
    for task_id in work.running.drain() {
        release(&connected.conn, limb_id, task_id, &events);
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // let the releases reach the hub
    guarded(|| connected.conn.disconnect());
    Ok(())
}

/// Drop from the outbox what reconciliation gave up (the hub gave the task to
/// another limb while this one was away); acknowledged ones leave on `Acked`.
fn forget_delivered(outbox: &Outbox, work: &InFlight) {
    match outbox.waiting() {
        Ok(waiting) => {
            for task_id in waiting.keys().filter(|id| !work.unacked.contains_key(id)) {
                let _ = outbox.remove(*task_id);
            }
        }
        Err(error) => tracing::warn!(%error, "the outbox cannot be read"),
    }
}

fn send_heartbeat(conn: &DbConnection, limb_id: u64, generation: u64, tx: &mpsc::UnboundedSender<Msg>) {
    if !guarded(|| conn.reducers.heartbeat(limb_id)) {
        let _ = tx.send(Msg::Disconnected { generation, reason: Some("heartbeat not sent".into()) });
    }
}

fn report_waiting(work: &InFlight, events: &mpsc::UnboundedSender<LimbEvent>) {
    let mut waiting: Vec<u64> = work.unacked.keys().copied().collect();
    waiting.sort_unstable();
    let _ = events.send(LimbEvent::Waiting(waiting));
}

/// Reconnect with exponential backoff and jitter, until connected (`Some`) or shut down (`None`).
async fn reconnect(
    options: &LimbOptions,
    generation: u64,
    tx: &mpsc::UnboundedSender<Msg>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Connected> {
    let mut delay = Duration::from_millis(250);
    loop {
        let jittered = delay.mul_f64(0.5 + fastrand::f64());
        tokio::select! {
            _ = shutdown.changed() => return None,
            _ = tokio::time::sleep(jittered) => {}
        }
        match connect_wired(options, generation, tx.clone()).await {
            Ok(connected) => return Some(connected),
            Err(error) => tracing::info!(%error, "hub unreachable; retrying"),
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// After a reconnect, the fresh cache is the truth: drop what we lost, re-send
/// unacknowledged results once, and run what was assigned to us unseen
/// ([`plan::reconcile`] decides; this does what it says). `false`: the cache
/// failed and nothing was done (the caller reconnects).
fn reconcile(
    conn: &DbConnection,
    limb_id: u64,
    work: &mut InFlight,
    tx: &mpsc::UnboundedSender<Msg>,
    events: &mpsc::UnboundedSender<LimbEvent>,
) -> bool {
    let Some(snapshot) = cached(|| Snapshot {
        assigned_to_me: conn
            .db
            .task()
            .iter()
            .filter(|t| t.state == TaskState::Claimed && t.assigned_to == limb_id)
            .map(|t| t.id)
            .collect(),
        results_by_me: conn.db.task_result().iter().filter(|r| r.limb_id == limb_id).map(|r| r.task_id).collect(),
    }) else {
        return false;
    };
    let outcomes = work.unacked.clone();
    let plan = plan::reconcile(work, &snapshot);
    for task_id in plan.lost {
        // A result the hub no longer wants from us (the task went on without
        // us): the hub records it as a late attempt, so it is not lost silently.
        if let Some(Ok(Answered { summary, .. })) = outcomes.get(&task_id) {
            guarded(|| conn.reducers.report_late_result(task_id, limb_id, summary.clone()));
        }
        let _ = events.send(LimbEvent::Lost(task_id));
    }
    for task_id in plan.acked {
        let _ = tx.send(Msg::Acked { task_id, ok: true });
    }
    // If this send fails too, the next disconnect report brings us back here.
    send_outcomes(conn, limb_id, &plan.resend, &work.unacked);
    for task_id in plan.orphans {
        let _ = tx.send(Msg::Assigned { task_id, holder: limb_id });
    }
    true
}
