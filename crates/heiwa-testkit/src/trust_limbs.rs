//! Limbs for the trust tests and benchmark: the real claim loop over
//! WebSockets (signing every result) in this process, with an executor of the
//! test's own: one that computes its answer from the payload (deterministic
//! work, as a `run_python` computation is), or one that lies.

use heiwa_hub::{score_summary, HubHttp, ModelOffer, Work};
use limb_core::claim::{
    run_limb, EchoExecutor, Evidence, Executor, LimbEvent, LimbOptions, ModelFetching, Offer, Output, TaskFailure,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The answer honest limbs compute: a checksum of the payload.
pub fn computed(payload: &str) -> String {
    let sum: u64 = payload.bytes().map(u64::from).sum();
    format!("{} bytes, checksum {sum}", payload.len())
}

/// The model these limbs offer, so that tasks checked by scoring (pinned to a model) reach them.
pub const TEST_MODEL: &str = "checksum-model";

pub struct Computes {
    /// Answers a wrong checksum, and as a scorer votes against the truth: the liar.
    pub lies: bool,
}

impl Executor for Computes {
    fn execute(&self, _task_id: u64, payload: &str, _model: Option<&std::path::Path>) -> Result<Output, TaskFailure> {
        let summary = match Work::parse(payload)? {
            // Scoring here is checking the checksum: the hub's side of it is what is tested.
            Work::Score { prompt, answer } => {
                let right = answer == computed(prompt);
                score_summary(1, (right == self.lies).then_some((0, 99.0)), 1.0)
            }
            Work::Generate { prompt: text } | Work::Ask(text) if self.lies => {
                format!("{} bytes, checksum 1", text.len())
            }
            Work::Generate { prompt: text } | Work::Ask(text) => computed(text),
        };
        Ok(Output { summary, evidence: Evidence { engine: "test".into(), ..Evidence::default() } })
    }
}

/// A limb running [`Computes`] in this process until the returned sender says stop.
pub async fn limb(http: &HubHttp, dir: &std::path::Path, invite: &str, name: &str, lies: bool) -> watch::Sender<bool> {
    let offer = Offer { models: vec![ModelOffer { id: TEST_MODEL.into(), sha256: String::new() }], ..Offer::default() };
    limb_running(http, dir, invite, name, Arc::new(Computes { lies }), offer).await
}

/// A limb running `executor` in this process until the returned sender says stop.
pub async fn limb_running(
    http: &HubHttp,
    dir: &std::path::Path,
    invite: &str,
    name: &str,
    executor: Arc<dyn Executor>,
    offer: Offer,
) -> watch::Sender<bool> {
    start(options(http, dir, invite, name, offer), executor).await
}

/// As [`limb_running`], taking up to `max_in_flight` tasks at once.
pub async fn limb_running_at_once(
    http: &HubHttp,
    dir: &std::path::Path,
    invite: &str,
    name: &str,
    executor: Arc<dyn Executor>,
    offer: Offer,
    max_in_flight: usize,
) -> watch::Sender<bool> {
    start(LimbOptions { max_in_flight, ..options(http, dir, invite, name, offer) }, executor).await
}

/// An echo limb in this process that fetches the catalogue models the hub asks it for.
pub async fn limb_fetching(
    http: &HubHttp,
    dir: &std::path::Path,
    invite: &str,
    name: &str,
    models: ModelFetching,
) -> watch::Sender<bool> {
    let echo = Arc::new(EchoExecutor { work: Duration::ZERO });
    start(LimbOptions { models: Some(models), ..options(http, dir, invite, name, Offer::default()) }, echo).await
}

/// A limb of the hub behind `http`, joining with `invite`, its token in `dir`; two tasks at once.
fn options(http: &HubHttp, dir: &std::path::Path, invite: &str, name: &str, offer: Offer) -> LimbOptions {
    LimbOptions {
        uri: http.base_url().replacen("http://", "ws://", 1),
        database: "heiwa".into(),
        token_file: dir.join(format!("{name}.token")),
        invite: Some(invite.into()),
        name: name.into(),
        lease_secs: 30,
        max_in_flight: 2,
        offer,
        governor: None,
        tasks: None,
        models: None,
    }
}

async fn start(options: LimbOptions, executor: Arc<dyn Executor>) -> watch::Sender<bool> {
    let (stop, stop_rx) = watch::channel(false);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let name = options.name.clone();
    let (failed_tx, mut failed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Err(error) = run_limb(options, executor, stop_rx, events_tx).await {
            let _ = failed_tx.send(error.to_string());
        }
    });
    // Its first event is Ready (a limb without a governor reports nothing before).
    tokio::select! {
        Some(event) = events.recv() => assert!(matches!(event, LimbEvent::Ready { .. }), "limb {name}: {event:?}"),
        Some(error) = failed.recv() => panic!("limb {name} failed: {error}"),
    }
    // Drain its events so the channel never fills.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    stop
}

pub async fn rows(http: &HubHttp, owner: &str, sql: &str) -> Vec<heiwa_hub::Row> {
    http.rows("heiwa", sql, owner).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Wait until every replica set is decided (not "Open"); returns them.
pub async fn decided(http: &HubHttp, owner: &str, sets: usize) -> Vec<heiwa_hub::Row> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = rows(http, owner, "SELECT * FROM replica_set").await;
        let open = all.iter().filter(|s| s["verdict"] == "open").count();
        if all.len() == sets && open == 0 {
            return all;
        }
        assert!(Instant::now() < deadline, "{open} of {} sets still open: {all:#?}", all.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
