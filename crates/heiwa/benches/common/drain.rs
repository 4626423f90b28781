//! A hub with a tenant and an invite, in-process limbs that answer at once
//! (the real claim loop, signing every result), and a drain of a backlog
//! through them: what the claims and credit benchmarks measure.

use heiwa_config::Parts;
use heiwa_hub::{HubHttp, HubServer, InviteRole, ModelOffer};
use heiwa_testkit::TestHub;
use limb_core::claim::{run_limb, Evidence, Executor, LimbEvent, LimbOptions, Offer, Output, TaskFailure};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Tasks a limb holds at once, and so what a queue worker claims at once (as
/// River's workers fetch up to their free slots): the same in-flight count on both sides.
pub const SLOTS: usize = 4;

pub struct Hub {
    pub server: HubServer,
    pub http: HubHttp,
    pub owner: String,
    pub invite: String,
    /// The publisher's token: the hub's admin.
    pub admin: String,
}

pub async fn hub(parts: &Parts, dir: &std::path::Path, limbs: u32) -> Hub {
    let hub = TestHub::start(parts, dir).await;
    // The benchmark's producer submits as fast as it can: no rate limit here.
    hub.lift_limits(1_000_000).await;
    let TestHub { server, http, admin, .. } = hub;
    let owner = http.new_identity().await.unwrap().token;
    http.call("heiwa", "create_tenant", serde_json::json!(["bench"]), &owner).await.unwrap();
    let invite = http.create_invite("heiwa", limbs.max(1), 3600, InviteRole::Limb, &owner).await.unwrap().0;
    Hub { server, http, owner, invite, admin }
}

/// Answers at once, noting when each payload reached a limb (the assignment
/// as a limb sees it: the row arrived and the loop started it), and how many
/// times each task ran: a double is a second execution, whatever caused it.
#[derive(Default)]
pub struct Stopwatch {
    pub started: Mutex<HashMap<String, Instant>>,
    runs: Mutex<HashMap<u64, usize>>,
}

impl Executor for Stopwatch {
    fn execute(&self, task_id: u64, payload: &str, _model: Option<&std::path::Path>) -> Result<Output, TaskFailure> {
        self.started.lock().unwrap().insert(payload.to_string(), Instant::now());
        *self.runs.lock().unwrap().entry(task_id).or_default() += 1;
        Ok(Output { summary: format!("task {task_id} done"), evidence: Evidence::default() })
    }
}

impl Stopwatch {
    /// Executions beyond the first, over every task.
    fn doubles(&self) -> usize {
        self.runs.lock().unwrap().values().map(|n| n - 1).sum()
    }
}

pub struct Limbs {
    stop: watch::Sender<bool>,
    events: mpsc::UnboundedReceiver<LimbEvent>,
    /// Events that came before every limb was ready.
    early: Vec<LimbEvent>,
    pub stopwatch: Arc<Stopwatch>,
}

/// The `k`th of a bench's catalogue models.
pub fn model(k: usize) -> String {
    format!("model-{k}")
}

/// Start `n` in-process limbs (`SLOTS` each) and wait until all are ready.
/// With `models` > 0, limb `i` offers two of that many catalogue models
/// (`2i` and `2i + 1`, modulo: ten limbs cover twenty models).
pub async fn limbs(hub: &Hub, dir: &std::path::Path, n: usize, models: usize) -> Limbs {
    let (stop, stop_rx) = watch::channel(false);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let stopwatch = Arc::new(Stopwatch::default());
    let (failed_tx, mut failed) = mpsc::unbounded_channel();
    for i in 0..n {
        let options = LimbOptions {
            uri: hub.http.base_url().replacen("http://", "ws://", 1),
            database: "heiwa".into(),
            token_file: dir.join(format!("limb-{i}.token")),
            invite: Some(hub.invite.clone()),
            name: format!("bench-{i}"),
            lease_secs: 60,
            max_in_flight: SLOTS,
            offer: Offer {
                models: (0..models.min(2))
                    .map(|k| ModelOffer { id: model((2 * i + k) % models), sha256: String::new() })
                    .collect(),
                ..Offer::default()
            },
            governor: None,
            tasks: None,
            models: None,
        };
        let (stopwatch, stop_rx, events_tx, failed_tx) =
            (stopwatch.clone(), stop_rx.clone(), events_tx.clone(), failed_tx.clone());
        tokio::spawn(async move {
            if let Err(error) = run_limb(options, stopwatch, stop_rx, events_tx).await {
                let _ = failed_tx.send(error.to_string());
            }
        });
    }
    // Limbs that are ready first start on a backlog at once: keep their events.
    let (mut ready, mut early) = (0, Vec::new());
    while ready < n {
        tokio::select! {
            Some(event) = events.recv() => match event {
                LimbEvent::Ready { .. } => ready += 1,
                other => early.push(other),
            },
            Some(error) = failed.recv() => panic!("limb {ready} of {n} failed: {error}"),
        }
    }
    Limbs { stop, events, early, stopwatch }
}

impl Limbs {
    /// Wait for `count` completions. Stalled for 30 s, it fails with what the
    /// hub says instead of hanging.
    pub async fn completions(&mut self, hub: &Hub, count: usize) {
        let mut done: HashMap<u64, usize> = HashMap::new();
        let mut seen: HashMap<u64, Vec<String>> = HashMap::new();
        let mut early = std::mem::take(&mut self.early).into_iter();
        while done.len() < count {
            let next = match early.next() {
                Some(event) => Ok(Some(event)),
                None => tokio::time::timeout(Duration::from_secs(30), self.events.recv()).await,
            };
            match next {
                Ok(Some(LimbEvent::Completed(id))) => *done.entry(id).or_default() += 1,
                Ok(Some(event)) => {
                    if let LimbEvent::Claimed(id) | LimbEvent::Executed(id) | LimbEvent::Lost(id) = event {
                        seen.entry(id).or_default().push(format!("{event:?}"));
                    }
                    if let LimbEvent::Disconnected(_) | LimbEvent::Reconnected = event {
                        eprintln!("{event:?}");
                    }
                }
                Ok(None) | Err(_) => {
                    let tasks = hub.http.rows("heiwa", "SELECT * FROM task", &hub.owner).await.unwrap_or_default();
                    let open: Vec<_> = tasks.iter().filter(|t| t["state"] != "done").take(10).collect();
                    let limbs = hub.http.rows("heiwa", "SELECT * FROM limb", &hub.owner).await.unwrap_or_default();
                    let offline: Vec<_> = limbs.iter().filter(|l| l["online"] != true).take(10).collect();
                    let missing: Vec<_> = seen.iter().filter(|(id, _)| !done.contains_key(id)).take(10).collect();
                    panic!(
                        "stalled at {} of {count} completions; unfinished (first 10): {open:?}; offline limbs: \
                         {offline:?}; events of tasks not completed: {missing:?}",
                        done.len()
                    );
                }
            }
        }
    }

    /// Stop the limbs; returns the tasks' executions beyond the first (counted
    /// after the limbs stop, so a late second run is counted too).
    pub async fn stop(self) -> usize {
        let _ = self.stop.send(true);
        tokio::time::sleep(Duration::from_millis(500)).await; // limbs disconnect before the hub stops
        self.stopwatch.doubles()
    }
}

pub async fn submit(hub: &Hub, payload: &str) {
    submit_pinned(hub, payload, None).await;
}

pub async fn submit_pinned(hub: &Hub, payload: &str, model: Option<&str>) {
    hub.http.submit_task("heiwa", payload, model, &hub.owner).await.unwrap();
}

/// Tasks per second through the whole cycle with `n` limbs draining a
/// backlog of `tasks` on `hub`, from the first assignment to the last result;
/// and double executions.
pub async fn drain(hub: &Hub, dir: &std::path::Path, n: usize, tasks: usize) -> (f64, usize) {
    {
        use futures::StreamExt;
        futures::stream::iter(0..tasks)
            .map(|i| async move { submit(hub, &format!("load {i}")).await })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }
    let mut limbs = limbs(hub, dir, n, 0).await;
    limbs.completions(hub, tasks).await;
    let started = limbs.stopwatch.started.lock().unwrap().values().min().copied().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let doubles = limbs.stop().await;
    (tasks as f64 / elapsed, doubles)
}
