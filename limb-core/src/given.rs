//! What this machine gave, as its donor sees it: the tasks its limb answered,
//! the tokens its model generated or scored for them, and how long the model
//! worked (on a GPU, and in all). Counted here, by the machine itself: it is
//! the donor's own view, not a claim to anyone (the hub pays credit only
//! for what it verified, `hub_rules::credit`). Kept per day in
//! `given.json` in the data directory, so "this week" and "all time"
//! outlive restarts; days past a week are added into one "earlier" sum, so
//! the file stays small.

use crate::json_file;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days kept one by one; older ones are added into `earlier`.
const DAYS_KEPT: u64 = 7;
const DAY_SECS: u64 = 86_400;

/// Work done, summed over some days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Work {
    /// Tasks answered (a result made; the hub decides whether it pays).
    #[ts(type = "number")]
    pub tasks: u64,
    /// Tokens the model generated or scored for them.
    #[ts(type = "number")]
    pub tokens: u64,
    /// Milliseconds the model spent on them.
    #[ts(type = "number")]
    pub model_ms: u64,
    /// Of them, with layers on a GPU.
    #[ts(type = "number")]
    pub gpu_ms: u64,
}

impl Work {
    fn add(&mut self, other: Work) {
        self.tasks += other.tasks;
        self.tokens += other.tokens;
        self.model_ms += other.model_ms;
        self.gpu_ms += other.gpu_ms;
    }

    /// One generation (or scoring) of `tokens` that took `took`, `on_gpu` or not.
    pub fn model_run(tokens: u64, took: Duration, on_gpu: bool) -> Work {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        Work { tasks: 0, tokens, model_ms: ms, gpu_ms: if on_gpu { ms } else { 0 } }
    }
}

/// This week's work (today and the six days before, UTC) and all of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct Given {
    pub week: Work,
    pub all: Work,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Days {
    /// By day since the epoch (UTC).
    days: BTreeMap<u64, Work>,
    /// Every day before those kept.
    earlier: Work,
}

impl Days {
    fn add(&mut self, day: u64, work: Work) {
        self.days.entry(day).or_default().add(work);
        let first_kept = day.saturating_sub(DAYS_KEPT - 1);
        let kept = self.days.split_off(&first_kept);
        for (_, old) in std::mem::replace(&mut self.days, kept) {
            self.earlier.add(old);
        }
    }

    fn given(&self, today: u64) -> Given {
        let mut given = Given { week: Work::default(), all: self.earlier };
        for (&day, &work) in &self.days {
            given.all.add(work);
            if day + DAYS_KEPT > today && day <= today {
                given.week.add(work);
            }
        }
        given
    }
}

/// The record of what this machine gave, shared by the model (which adds
/// its runs) and the limb's executor (which adds each task and saves).
#[derive(Debug)]
pub struct WorkLog {
    path: PathBuf,
    days: Mutex<Days>,
}

fn today() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()) / DAY_SECS
}

impl WorkLog {
    /// The record in `data_dir` (empty when there is none yet). One that
    /// cannot be read is moved aside, not lost, and counting starts again.
    pub fn open(data_dir: &Path) -> WorkLog {
        let path = data_dir.join("given.json");
        let days = json_file::load_or_set_aside(&path).unwrap_or_default();
        WorkLog { path, days: Mutex::new(days) }
    }

    /// Add work done today (kept in memory until the next [`WorkLog::task_done`]).
    pub fn add(&self, work: Work) {
        self.add_on(today(), work);
    }

    fn add_on(&self, day: u64, work: Work) {
        self.days.lock().unwrap_or_else(|p| p.into_inner()).add(day, work);
    }

    /// A task was answered: count it and save the record.
    pub fn task_done(&self) {
        self.add(Work { tasks: 1, ..Work::default() });
        self.save();
    }

    fn save(&self) {
        let days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = json_file::save(&self.path, &*days) {
            // Counting goes on in memory; the next task's save tries again.
            tracing::warn!(%error, path = %self.path.display(), "what this machine gave was not saved");
        }
    }

    /// This week's work and all of it.
    pub fn given(&self) -> Given {
        self.days.lock().unwrap_or_else(|p| p.into_inner()).given(today())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tokens: u64, ms: u64, on_gpu: bool) -> Work {
        Work::model_run(tokens, Duration::from_millis(ms), on_gpu)
    }

    #[test]
    fn a_week_is_today_and_six_days_before_and_all_time_keeps_the_older_days() {
        let dir = tempfile::tempdir().unwrap();
        let log = WorkLog::open(dir.path());
        log.add_on(100, run(10, 1000, true));
        log.add_on(100, Work { tasks: 1, ..Work::default() });
        log.add_on(106, run(5, 500, false));
        log.add_on(107, run(7, 700, true));
        let week = log.days.lock().unwrap().given(107);
        assert_eq!(week.week, Work { tasks: 0, tokens: 12, model_ms: 1200, gpu_ms: 700 }, "day 100 is 7 days ago");
        assert_eq!(week.all, Work { tasks: 1, tokens: 22, model_ms: 2200, gpu_ms: 1700 });
        let days = log.days.lock().unwrap();
        assert_eq!(days.days.keys().copied().collect::<Vec<_>>(), vec![106, 107], "day 100 added into earlier");
        assert_eq!(days.earlier, Work { tasks: 1, tokens: 10, model_ms: 1000, gpu_ms: 1000 });
    }

    #[test]
    fn the_record_outlives_a_restart_and_an_unreadable_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let log = WorkLog::open(dir.path());
        log.add(run(40, 2000, true));
        log.task_done();
        let reopened = WorkLog::open(dir.path());
        assert_eq!(reopened.given().all, Work { tasks: 1, tokens: 40, model_ms: 2000, gpu_ms: 2000 });
        assert_eq!(reopened.given().week, reopened.given().all);

        std::fs::write(dir.path().join("given.json"), b"{ half a record").unwrap();
        let fresh = WorkLog::open(dir.path());
        assert_eq!(fresh.given(), Given::default(), "counting starts again");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("given.json.unreadable-"))
            .collect();
        assert_eq!(aside.len(), 1, "the unreadable record is kept beside: {aside:?}");
        fresh.task_done();
        assert_eq!(WorkLog::open(dir.path()).given().all.tasks, 1);
    }

    #[test]
    fn a_record_that_cannot_be_saved_keeps_counting_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let log = WorkLog::open(&dir.path().join("no-such-dir"));
        log.task_done();
        log.task_done();
        assert_eq!(log.given().all.tasks, 2);
        assert!(!dir.path().join("no-such-dir").exists());
    }
}
