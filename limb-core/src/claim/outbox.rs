//! The limb's outbox: a result is on disk before it is sent and leaves when the
//! hub has acknowledged it, so a limb that crashes (or loses its link for a
//! long time) still delivers what it finished, once, when it is back.
//!
//! One journal per limb (`limb.outbox/journal`, next to its token), appended
//! to: a line when a result is kept, a line when the hub has it. A result is
//! durable once the journal is synced after its line, and results finished
//! together share one sync — group commit, as PostgreSQL's WAL does it: the
//! first writer to find no sync running syncs everything appended so far;
//! writers arriving meanwhile wait for the next one, which covers them all.
//! (One file per result cost two fsyncs, a file and its directory, each.) A
//! crash mid-line leaves a torn last line, which was never acknowledged to
//! its writer: it is skipped. The journal is emptied when nothing waits.
//! Files, not the memory's PostgreSQL: every limb has an outbox (an echo limb
//! has no database), and a result must not depend on a database server that
//! may be what went down.

use super::plan::Outcome;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// One line of the journal (written borrowed, read owned: the same shape).
#[derive(serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Record<'a> {
    Kept { task_id: u64, outcome: &'a Outcome },
    Delivered { task_id: u64 },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReadRecord {
    Kept { task_id: u64, outcome: Outcome },
    Delivered { task_id: u64 },
}

#[derive(Default)]
struct State {
    file: Option<File>,
    /// Lines appended, and of those how many a finished sync covers.
    appended: u64,
    synced: u64,
    syncing: bool,
    /// Syncs made: fewer than results kept when they are finished together.
    syncs: u64,
    /// The results kept and not yet delivered; `None` until the journal is read.
    live: Option<HashSet<u64>>,
}

struct Journal {
    state: Mutex<State>,
    sync_done: Condvar,
}

#[derive(Clone)]
pub struct Outbox {
    dir: PathBuf,
    journal: Arc<Journal>,
}

impl Outbox {
    /// The outbox of the limb whose token is kept in `token_file`.
    pub fn beside(token_file: &Path) -> std::io::Result<Outbox> {
        let journal = Journal { state: Mutex::new(State::default()), sync_done: Condvar::new() };
        Ok(Outbox { dir: token_file.with_extension("outbox"), journal: Arc::new(journal) })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("journal")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.journal.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The journal open for appending, and the results it holds, loaded once.
    fn ready<'a>(&self, mut state: MutexGuard<'a, State>) -> std::io::Result<MutexGuard<'a, State>> {
        if state.live.is_none() {
            state.live = Some(self.read()?.into_keys().collect());
        }
        if state.file.is_none() {
            self.open(&mut state)?;
        }
        Ok(state)
    }

    fn open(&self, state: &mut State) -> std::io::Result<()> {
        let created = !self.path().exists();
        std::fs::create_dir_all(&self.dir)?;
        state.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(self.path())?);
        if created {
            // The journal's own name must survive a crash too: once, when it is made.
            File::open(&self.dir)?.sync_all()?;
        }
        // Results an older limb kept one file each: into the journal, synced, then their files go.
        let legacy = self.legacy()?;
        if !legacy.is_empty() {
            for (task_id, outcome) in &legacy {
                Self::append(state, &Record::Kept { task_id: *task_id, outcome })?;
            }
            state.file.as_ref().expect("just opened").sync_data()?;
            state.synced = state.appended;
            for task_id in legacy.keys() {
                std::fs::remove_file(self.dir.join(format!("{task_id}.json")))?;
            }
        }
        Ok(())
    }

    /// Results kept by an older limb, one `TASK.json` file each.
    fn legacy(&self) -> std::io::Result<HashMap<u64, Outcome>> {
        let mut kept = HashMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(kept),
            entries => entries?,
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")) {
            let task_id = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
            let outcome = std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
            if let (Some(task_id), Some(outcome)) = (task_id, outcome) {
                kept.insert(task_id, outcome);
            }
        }
        Ok(kept)
    }

    fn append(state: &mut State, record: &Record<'_>) -> std::io::Result<u64> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write of a whole line under the lock: lines never interleave.
        state.file.as_mut().expect("opened by ready").write_all(&line)?;
        state.appended += 1;
        Ok(state.appended)
    }

    /// Keep `outcome` for `task_id` until [`Outbox::remove`]; durable when this returns.
    pub fn put(&self, task_id: u64, outcome: &Outcome) -> std::io::Result<()> {
        let mut state = self.ready(self.lock())?;
        let mine = Self::append(&mut state, &Record::Kept { task_id, outcome })?;
        state.live.as_mut().expect("loaded by ready").insert(task_id);
        loop {
            if state.synced >= mine {
                return Ok(());
            }
            if state.syncing {
                state = self.journal.sync_done.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // This writer syncs for everyone who appended so far.
            state.syncing = true;
            let covers = state.appended;
            let file = state.file.as_ref().expect("opened by ready").try_clone();
            drop(state);
            let synced = file.and_then(|file| file.sync_data());
            state = self.lock();
            state.syncing = false;
            state.syncs += 1;
            if synced.is_ok() {
                state.synced = state.synced.max(covers);
            }
            self.journal.sync_done.notify_all();
            synced?;
        }
    }

    /// The hub has the result: it leaves (not synced: a crash that loses this
    /// line only offers the result again, and the hub knows it has it).
    pub fn remove(&self, task_id: u64) -> std::io::Result<()> {
        let mut state = self.ready(self.lock())?;
        if !state.live.as_mut().expect("loaded by ready").remove(&task_id) {
            return Ok(());
        }
        if state.live.as_ref().is_some_and(HashSet::is_empty) && !state.syncing {
            // Nothing waits: start the journal afresh instead of growing it.
            state.file.as_ref().expect("opened by ready").set_len(0)?;
            return Ok(());
        }
        Self::append(&mut state, &Record::Delivered { task_id }).map(drop)
    }

    #[cfg(test)]
    fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Every result waiting to be delivered.
    pub fn waiting(&self) -> std::io::Result<HashMap<u64, Outcome>> {
        let _state = self.lock();
        self.read()
    }

    /// The journal replayed; a line that cannot be read (the torn end of a
    /// crash, or damage) is skipped and said.
    fn read(&self) -> std::io::Result<HashMap<u64, Outcome>> {
        let mut waiting = self.legacy()?;
        let text = match std::fs::read(self.path()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(waiting),
            text => text?,
        };
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice(line) {
                Ok(ReadRecord::Kept { task_id, outcome }) => {
                    waiting.insert(task_id, outcome);
                }
                Ok(ReadRecord::Delivered { task_id }) => {
                    waiting.remove(&task_id);
                }
                Err(_) => tracing::warn!(path = %self.path().display(), "an unreadable line in the outbox is skipped"),
            }
        }
        Ok(waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(summary: &str) -> Outcome {
        let proof = heiwa_provenance::Proof { statement: "{}".into(), signature: vec![7; 64] };
        Ok(super::super::plan::Answered { summary: summary.into(), proof })
    }

    #[test]
    fn results_stay_until_removed_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("limb.token");
        let outbox = Outbox::beside(&token).unwrap();
        outbox.put(7, &answered("forty-two")).unwrap();
        outbox.put(8, &Err("no model".into())).unwrap();
        outbox.remove(7).unwrap();
        outbox.remove(99).unwrap();
        assert!(Outbox::beside(&dir.path().join("other.token")).unwrap().waiting().unwrap().is_empty());
        let reopened = Outbox::beside(&token).unwrap();
        assert_eq!(reopened.waiting().unwrap(), HashMap::from([(8, Err("no model".to_string()))]));
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("limb.token");
        Outbox::beside(&token).unwrap().put(1, &answered("one")).unwrap();
        // A crash mid-append: half a line at the end.
        let mut journal =
            std::fs::OpenOptions::new().append(true).open(dir.path().join("limb.outbox/journal")).unwrap();
        journal.write_all(br#"{"kept":{"task_id":2,"outc"#).unwrap();
        let reopened = Outbox::beside(&token).unwrap();
        assert_eq!(reopened.waiting().unwrap().into_keys().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn results_an_older_limb_kept_one_file_each_are_taken_into_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("limb.outbox")).unwrap();
        std::fs::write(dir.path().join("limb.outbox/5.json"), serde_json::to_vec(&answered("five")).unwrap()).unwrap();
        let outbox = Outbox::beside(&dir.path().join("limb.token")).unwrap();
        assert_eq!(outbox.waiting().unwrap().into_keys().collect::<Vec<_>>(), vec![5]);
        outbox.put(6, &answered("six")).unwrap();
        assert!(!dir.path().join("limb.outbox/5.json").exists(), "moved into the journal");
        let mut waiting: Vec<u64> = outbox.waiting().unwrap().into_keys().collect();
        waiting.sort();
        assert_eq!(waiting, vec![5, 6]);
    }

    #[test]
    fn the_journal_empties_when_nothing_waits() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::beside(&dir.path().join("limb.token")).unwrap();
        for id in 0..100 {
            outbox.put(id, &answered("x")).unwrap();
            outbox.remove(id).unwrap();
        }
        assert_eq!(std::fs::metadata(dir.path().join("limb.outbox/journal")).unwrap().len(), 0);
    }

    #[test]
    fn results_kept_at_once_from_many_threads_are_each_durable_and_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("limb.token");
        let outbox = Outbox::beside(&token).unwrap();
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (outbox, start) = (outbox.clone(), &start);
                s.spawn(move || {
                    start.wait();
                    (0..50).for_each(|i| outbox.put(t * 1000 + i, &answered("x")).unwrap())
                });
            }
        });
        assert_eq!(Outbox::beside(&token).unwrap().waiting().unwrap().len(), 400);
        let syncs = outbox.syncs();
        assert!(syncs < 400, "eight writers at once share syncs: {syncs} for 400 results");
    }
}
