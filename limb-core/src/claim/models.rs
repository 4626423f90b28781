//! The catalogue models the hub asks this limb for (its own `limb_model`
//! rows): each is fetched within the donor's disk cap for models, from its
//! sources in order, resumable and verified by SHA-256 (`crate::models::pull`),
//! then offered, and tasks pinned to it run on it. How it goes is reported to
//! the hub for the owner to see; a copy whose hash differs is deleted by the
//! download itself and reported as failed. Downloads run only in the donor's
//! download hours (outside them a request waits, and says why); a model the
//! catalogue drops is deleted after the donor's grace period (`dropped`).

use super::dropped::Dropped;
use super::{cached, guarded};
use crate::governor::{hhmm, in_windows, local_minute_of_day, windows_text, DonationPolicy, Window};
use crate::models::{pull, Pull};
use heiwa_hub::bindings::{report_model, DbConnection, LimbModel, LimbModelTableAccess, ModelState};
use heiwa_hub::CopyStage;
use heiwa_inference::models::ModelStore;
use spacetimedb_sdk::{Table, TableWithPrimaryKey};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where fetched models go and what the donor allows them.
#[derive(Clone, Debug)]
pub struct ModelFetching {
    pub store: ModelStore,
    /// The most disk the donor gives to models, all of them together (`None`: no cap but the disk's).
    pub cap_bytes: Option<u64>,
    /// Where `hf:` sources resolve (Hugging Face, or a mirror).
    pub endpoint: String,
    /// No byte for this long is a stall (retried from where it stands).
    pub stall: Duration,
    /// The donor's bandwidth cap for these downloads, bytes a second (`None`: none).
    pub max_bytes_per_sec: Option<u64>,
    /// Daily windows (local time) downloads may run in; empty: any time.
    pub hours: Vec<Window>,
    /// How long a model the catalogue dropped stays on disk (unless pinned).
    pub keep_dropped: Duration,
}

impl ModelFetching {
    /// Fetching into `store` as the donor's `policy` allows, `hf:` sources from `endpoint`.
    pub fn for_policy(store: ModelStore, policy: &DonationPolicy, endpoint: String) -> ModelFetching {
        ModelFetching {
            store,
            cap_bytes: policy.models_cap_bytes(),
            endpoint,
            stall: Duration::from_secs(30),
            max_bytes_per_sec: policy.models_download_bytes_per_sec(),
            hours: policy.models_download_hours.clone(),
            keep_dropped: policy.models_keep_dropped(),
        }
    }

    /// Why downloads wait now (outside the donor's download hours), if they do.
    fn closed_at(&self, minute_of_day: u16) -> Option<String> {
        (!self.hours.is_empty() && !in_windows(&self.hours, minute_of_day)).then(|| {
            format!(
                "waits for this donor's download hours ({}; now {})",
                windows_text(&self.hours),
                hhmm(minute_of_day)
            )
        })
    }
}

/// One model the hub asked for, as its `limb_model` row says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub model_id: String,
    pub file: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub sources: Vec<String>,
}

/// How a fetch goes, for the loop to tell the hub (and, when held, to offer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Fetching {
        model_id: String,
        have: u64,
        size_bytes: u64,
    },
    /// Not fetched now (outside the donor's download hours): why, and until when.
    Deferred {
        model_id: String,
        reason: String,
    },
    Failed {
        model_id: String,
        reason: String,
    },
    NoRoom {
        model_id: String,
        reason: String,
    },
    Held {
        model_id: String,
        sha256: String,
        path: PathBuf,
    },
}

/// A catalogue model's copy on this machine, as its owner sees it (the Limb view, `heiwa limb run`'s lines).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct ModelCopy {
    pub model_id: String,
    /// wanted (not fetched yet: the reason says why), fetching, held, failed or no room.
    pub stage: String,
    #[ts(type = "number")]
    pub have: u64,
    #[ts(type = "number")]
    pub size_bytes: u64,
    /// Why it failed or does not fit.
    pub reason: String,
}

impl std::fmt::Display for ModelCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model {}: {}", self.model_id, self.stage)?;
        if self.stage == CopyStage::Fetching.name() {
            write!(f, " {} of {} MiB", self.have >> 20, mib(self.size_bytes))?;
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

impl Report {
    pub fn copy(&self) -> ModelCopy {
        let (stage, have, size_bytes, reason) = match self {
            Report::Fetching { have, size_bytes, .. } => (CopyStage::Fetching, *have, *size_bytes, ""),
            Report::Deferred { reason, .. } => (CopyStage::Wanted, 0, 0, reason.as_str()),
            Report::Failed { reason, .. } => (CopyStage::Failed, 0, 0, reason.as_str()),
            Report::NoRoom { reason, .. } => (CopyStage::NoRoom, 0, 0, reason.as_str()),
            Report::Held { .. } => (CopyStage::Held, 0, 0, ""),
        };
        ModelCopy {
            model_id: self.model_id().into(),
            stage: stage.name().into(),
            have,
            size_bytes,
            reason: reason.into(),
        }
    }

    pub fn model_id(&self) -> &str {
        match self {
            Report::Fetching { model_id, .. }
            | Report::Deferred { model_id, .. }
            | Report::Failed { model_id, .. }
            | Report::NoRoom { model_id, .. }
            | Report::Held { model_id, .. } => model_id,
        }
    }
}

/// The row's request, when it asks this limb to fetch: wanted, or a fetch
/// that a restart or a lost connection cut short (it resumes).
fn wanted(row: &LimbModel) -> Option<Wanted> {
    matches!(row.stage, ModelState::Wanted | ModelState::Fetching).then(|| Wanted {
        model_id: row.model_id.clone(),
        file: row.file.clone(),
        size_bytes: row.size_bytes,
        sha256: row.sha_256.clone(),
        sources: row.sources.clone(),
    })
}

/// Send the loop each request as its row arrives or changes, and each
/// withdrawal (the owner took the model out of the catalogue).
pub(super) fn wire<M: Send + 'static>(
    conn: &DbConnection,
    tx: &tokio::sync::mpsc::UnboundedSender<M>,
    asked: fn(Wanted) -> M,
    dropped: fn(String, String) -> M,
) {
    let sink = tx.clone();
    conn.db.limb_model().on_insert(move |_, row| {
        if let Some(wanted) = wanted(row) {
            let _ = sink.send(asked(wanted));
        }
    });
    let sink = tx.clone();
    conn.db.limb_model().on_update(move |_, _, row| {
        if let Some(wanted) = wanted(row) {
            let _ = sink.send(asked(wanted));
        }
    });
    let sink = tx.clone();
    conn.db.limb_model().on_delete(move |_, row| {
        let _ = sink.send(dropped(row.model_id.clone(), row.sha_256.clone()));
    });
}

/// The requests already in the cache when (re)connected (callbacks see only
/// later changes), and the ids of every model the hub asks this limb for.
fn cached_requests(conn: &DbConnection) -> (Vec<Wanted>, Vec<String>) {
    cached(|| {
        let rows: Vec<LimbModel> = conn.db.limb_model().iter().collect();
        (rows.iter().filter_map(wanted).collect(), rows.into_iter().map(|row| row.model_id).collect())
    })
    .unwrap_or_default()
}

/// Tell the hub how a fetch goes (that it is held, the offer says).
fn report_to_hub(conn: &DbConnection, limb_id: u64, report: Report) {
    let (model_id, stage, have, reason) = match report {
        Report::Fetching { model_id, have, .. } => (model_id, ModelState::Fetching, have, String::new()),
        Report::Deferred { model_id, reason } => (model_id, ModelState::Wanted, 0, reason),
        Report::Failed { model_id, reason } => (model_id, ModelState::Failed, 0, reason),
        Report::NoRoom { model_id, reason } => (model_id, ModelState::NoRoom, 0, reason),
        Report::Held { .. } => return,
    };
    let reason = heiwa_hub::truncate_to(&reason, heiwa_hub::MAX_REASON_BYTES).to_string();
    // A lost connection is the loop's to notice (its heartbeat fails); a fetch goes on regardless.
    guarded(|| conn.reducers.report_model(limb_id, model_id, stage, have, reason));
}

/// How often progress goes to the hub: every report is a transaction on it.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Whether `wanted` fits the donor's cap beside the models the store already
/// holds (a copy of the same file counts once).
fn room_for(store: &ModelStore, cap_bytes: Option<u64>, wanted: &Wanted) -> Result<(), String> {
    let Some(cap) = cap_bytes else { return Ok(()) };
    let held: u64 = store.list().unwrap_or_default().iter().filter(|m| m.id != wanted.file).map(|m| m.size_bytes).sum();
    if held.saturating_add(wanted.size_bytes) > cap {
        return Err(format!(
            "{} needs {} MiB; this donor gives models {} MiB of disk, {} MiB of it held",
            wanted.model_id,
            mib(wanted.size_bytes),
            mib(cap),
            mib(held)
        ));
    }
    Ok(())
}

/// Fetch `wanted` into the store, reporting as it goes. Dropping the future
/// (the hub no longer asks for it, or the limb stops) cancels it; what
/// arrived is kept for the next try.
pub async fn fetch(how: ModelFetching, wanted: Wanted, report: impl Fn(Report)) {
    let model_id = wanted.model_id.clone();
    if let Err(reason) = room_for(&how.store, how.cap_bytes, &wanted) {
        return report(Report::NoRoom { model_id, reason });
    }
    let mut failures = Vec::new();
    for source in &wanted.sources {
        let mut what = Pull::new(source.clone(), how.endpoint.clone());
        what.sha256 = Some(wanted.sha256.clone());
        what.name = Some(wanted.file.clone());
        what.stall = how.stall;
        what.default_if_first = false; // what the tenant needs is not what this machine chats with
        what.max_bytes_per_sec = how.max_bytes_per_sec;
        let mut last_report: Option<Instant> = None;
        let pulled = pull(&how.store, &what, |progress| {
            if last_report.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) {
                last_report = Some(Instant::now());
                report(Report::Fetching {
                    model_id: model_id.clone(),
                    have: progress.have,
                    size_bytes: wanted.size_bytes,
                });
            }
        })
        .await;
        match pulled {
            Ok(pulled) => {
                tracing::info!(model = %model_id, source, "catalogue model fetched");
                let sha256 = wanted.sha256.clone();
                return report(Report::Held { model_id, sha256, path: pulled.info.path });
            }
            Err(error) => {
                tracing::warn!(model = %model_id, source, %error, "a catalogue model's source failed");
                failures.push(error.to_string());
            }
        }
    }
    report(Report::Failed { model_id, reason: format!("every source failed: {}", failures.join("; ")) })
}

/// The fetches under way and the models this limb fetched and holds, by the
/// names a task may pin them by (the catalogue id and the file's SHA-256).
#[derive(Debug, Default)]
pub struct Fetcher {
    how: Option<ModelFetching>,
    /// By catalogue id: what is being fetched, and the fetch.
    under_way: HashMap<String, (Wanted, tokio::task::AbortHandle)>,
    /// By catalogue id: what waits for the donor's download hours.
    deferred: HashMap<String, Wanted>,
    /// By catalogue id and by SHA-256: the file's SHA-256 and path.
    held: HashMap<String, (String, PathBuf)>,
    /// The files fetched, and when the catalogue dropped them.
    record: Option<Dropped>,
    /// The local time, minutes after midnight (a fixed clock in tests).
    clock: Option<fn() -> u16>,
}

impl Fetcher {
    pub fn new(how: Option<ModelFetching>) -> Self {
        let record = how.as_ref().map(|how| Dropped::open(&how.store));
        Fetcher { how, record, ..Fetcher::default() }
    }

    fn minute_of_day(&self) -> u16 {
        self.clock.map_or_else(local_minute_of_day, |clock| clock())
    }

    /// (Re)connected: fetch what the hub asks for (its rows already cached),
    /// and start the grace period of fetched models it no longer asks for.
    pub fn connected<M: Send + 'static>(
        &mut self,
        conn: &DbConnection,
        wrap: fn(Report) -> M,
        tx: &tokio::sync::mpsc::UnboundedSender<M>,
    ) {
        if self.how.is_none() {
            return;
        }
        let (requests, asked) = cached_requests(conn);
        if let Some(record) = &mut self.record {
            record.dropped_unless(&asked);
        }
        for wanted in requests {
            self.ask(wanted, wrap, tx);
        }
    }

    /// On the loop's clock: start what waited for the download hours, stop
    /// (to go on later) what runs past them, delete dropped models whose
    /// grace period is over.
    pub fn on_clock<M: Send + 'static>(&mut self, wrap: fn(Report) -> M, tx: &tokio::sync::mpsc::UnboundedSender<M>) {
        let Some(how) = &self.how else { return };
        match how.closed_at(self.minute_of_day()) {
            None => {
                for (_, wanted) in std::mem::take(&mut self.deferred) {
                    self.ask(wanted, wrap, tx);
                }
            }
            Some(reason) => {
                for (model_id, (wanted, fetch)) in std::mem::take(&mut self.under_way) {
                    fetch.abort(); // what arrived is kept: it goes on in the next window
                    let _ = tx.send(wrap(Report::Deferred { model_id: model_id.clone(), reason: reason.clone() }));
                    self.deferred.insert(model_id, wanted);
                }
            }
        }
        if let (Some(record), Some(how)) = (&mut self.record, &self.how) {
            for file in record.sweep(&how.store, how.keep_dropped) {
                tracing::info!(%file, "deleted a model the tenant's catalogue dropped (its grace period is over)");
            }
        }
    }

    /// Start fetching `wanted` (each report goes to the loop as `wrap(report)`),
    /// unless it is under way or held already, or this limb fetches nothing.
    pub fn ask<M: Send + 'static>(
        &mut self,
        wanted: Wanted,
        wrap: fn(Report) -> M,
        tx: &tokio::sync::mpsc::UnboundedSender<M>,
    ) {
        let Some(how) = &self.how else { return };
        // Held already means the same id *and* file: an entry the owner changed is fetched anew.
        let same_file = self.held.get(&wanted.model_id).is_some_and(|(sha256, _)| *sha256 == wanted.sha256);
        let waiting = self.deferred.get(&wanted.model_id) == Some(&wanted);
        if self.under_way.get(&wanted.model_id).is_some_and(|(fetching, _)| *fetching == wanted) || same_file || waiting
        {
            return;
        }
        if let Some((_, older)) = self.under_way.remove(&wanted.model_id) {
            older.abort(); // the entry changed while its old file was coming
        }
        if let Some(reason) = how.closed_at(self.minute_of_day()) {
            let _ = tx.send(wrap(Report::Deferred { model_id: wanted.model_id.clone(), reason }));
            self.deferred.insert(wanted.model_id.clone(), wanted);
            return;
        }
        self.deferred.remove(&wanted.model_id);
        let reports = tx.clone();
        let fetch = fetch(how.clone(), wanted.clone(), move |report| {
            let _ = reports.send(wrap(report));
        });
        self.under_way.insert(wanted.model_id.clone(), (wanted, tokio::spawn(fetch).abort_handle()));
    }

    /// The hub no longer asks for the model (the owner removed or changed the
    /// entry): its fetch stops; `true` when it was held, and so is no longer
    /// to be offered (its file stays on this disk).
    /// Only the file `sha256` is withdrawn: a changed entry's request for its
    /// new file may arrive before the old one's withdrawal.
    pub fn withdraw(&mut self, model_id: &str, sha256: &str) -> bool {
        if self.under_way.get(model_id).is_some_and(|(fetching, _)| fetching.sha256 == sha256) {
            if let Some((_, fetch)) = self.under_way.remove(model_id) {
                fetch.abort();
            }
        }
        if self.deferred.get(model_id).is_some_and(|waiting| waiting.sha256 == sha256) {
            self.deferred.remove(model_id);
        }
        if self.held.get(model_id).is_none_or(|(held, _)| held != sha256) {
            return false;
        }
        if let (Some((_, path)), Some(record)) = (self.held.remove(model_id), &mut self.record) {
            record.dropped(&file_name(&path));
        }
        self.held.remove(sha256);
        true
    }

    /// Note a fetch's report and tell the hub; a model now held comes back to be offered.
    pub fn on_report(&mut self, conn: &DbConnection, limb_id: u64, report: Report) -> Option<heiwa_hub::ModelOffer> {
        if !matches!(report, Report::Fetching { .. } | Report::Deferred { .. }) {
            self.under_way.remove(report.model_id());
        }
        match report {
            Report::Held { model_id, sha256, path } => {
                if let Some(record) = &mut self.record {
                    record.wanted(&file_name(&path), &model_id);
                }
                self.held.insert(model_id.clone(), (sha256.clone(), path.clone()));
                self.held.insert(sha256.clone(), (sha256.clone(), path));
                Some(heiwa_hub::ModelOffer { id: model_id, sha256 })
            }
            report => {
                report_to_hub(conn, limb_id, report);
                None
            }
        }
    }

    /// The file a task pinned to `model` runs on; `None`: the limb's own model.
    pub fn path_for(&self, model: &str) -> Option<PathBuf> {
        self.held.get(model).map(|(_, path)| path.clone())
    }

    pub fn stop(&mut self) {
        self.deferred.clear();
        for (_, (_, fetch)) in self.under_way.drain() {
            fetch.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(size_bytes: u64) -> Wanted {
        Wanted {
            model_id: "coder".into(),
            file: "coder.gguf".into(),
            size_bytes,
            sha256: "ab".repeat(32),
            sources: vec!["http://127.0.0.1:1/coder.gguf".into()],
        }
    }

    #[tokio::test]
    async fn a_fetch_waits_for_the_download_hours_and_stops_when_they_end() {
        use std::sync::atomic::{AtomicU16, Ordering};
        static NOW: AtomicU16 = AtomicU16::new(12 * 60);
        let dir = tempfile::tempdir().unwrap();
        let night = vec![Window { start: "22:00".into(), end: "06:00".into() }];
        let policy = DonationPolicy { models_download_hours: night, ..DonationPolicy::default() };
        let how = ModelFetching::for_policy(ModelStore::new(dir.path().into()), &policy, String::new());
        let mut fetcher = Fetcher { clock: Some(|| NOW.load(Ordering::Relaxed)), ..Fetcher::new(Some(how)) };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let deferred = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Report>| loop {
            match rx.try_recv() {
                Ok(Report::Deferred { reason, .. }) => return reason,
                Ok(_) => continue,
                Err(error) => panic!("no deferral: {error}"),
            }
        };

        fetcher.ask(wanted(10), |report| report, &tx);
        assert_eq!(deferred(&mut rx), "waits for this donor's download hours (22:00–06:00; now 12:00)");
        assert!(fetcher.under_way.is_empty() && fetcher.deferred.contains_key("coder"));
        fetcher.ask(wanted(10), |report| report, &tx);
        assert!(rx.try_recv().is_err(), "asked again while waiting: said once (every report is a hub transaction)");

        NOW.store(23 * 60, Ordering::Relaxed); // the window crosses midnight
        fetcher.on_clock(|report| report, &tx);
        assert!(fetcher.deferred.is_empty() && fetcher.under_way.contains_key("coder"), "inside: it starts");

        NOW.store(6 * 60, Ordering::Relaxed); // the end is outside
        fetcher.on_clock(|report| report, &tx);
        assert_eq!(deferred(&mut rx), "waits for this donor's download hours (22:00–06:00; now 06:00)");
        assert!(fetcher.under_way.is_empty() && fetcher.deferred.contains_key("coder"), "stopped, to go on later");
        assert!(!fetcher.withdraw("coder", &"ab".repeat(32)), "it was not held");
        assert!(fetcher.deferred.is_empty(), "withdrawn: it waits no more");
    }

    #[test]
    fn a_model_larger_than_the_donors_cap_is_refused_before_a_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().into());
        assert_eq!(room_for(&store, None, &wanted(u64::MAX)), Ok(()), "no cap: the disk's own space decides");
        assert_eq!(room_for(&store, Some(10 << 20), &wanted(10 << 20)), Ok(()));
        let refused = room_for(&store, Some(10 << 20), &wanted((10 << 20) + 1)).unwrap_err();
        assert_eq!(refused, "coder needs 11 MiB; this donor gives models 10 MiB of disk, 0 MiB of it held");
    }
}
