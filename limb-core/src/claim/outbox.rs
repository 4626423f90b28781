//! The limb's outbox: a result is on disk before it is sent and leaves when the
//! hub has acknowledged it, so a limb that crashes (or loses its link for a
//! long time) still delivers what it finished, once, when it is back.
//!
//! One small file per result, next to the limb's token, written whole (a
//! temporary file, fsync, rename, fsync of the directory): a crash leaves the
//! old state or the new, never half of a result. Files, not the memory's
//! PostgreSQL: every limb has an outbox (an echo limb has no database), and a
//! result must not depend on a database server that may be what went down.

use super::plan::Outcome;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// The outbox of the limb whose token is kept in `token_file`.
    pub fn beside(token_file: &Path) -> std::io::Result<Outbox> {
        Ok(Outbox { dir: token_file.with_extension("outbox") })
    }

    fn file(&self, task_id: u64) -> PathBuf {
        self.dir.join(format!("{task_id}.json"))
    }

    /// Keep `outcome` for `task_id` until [`Outbox::remove`]; durable when this returns.
    pub fn put(&self, task_id: u64, outcome: &Outcome) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!("{task_id}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(outcome).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.file(task_id))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    pub fn remove(&self, task_id: u64) -> std::io::Result<()> {
        match std::fs::remove_file(self.file(task_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every result waiting to be delivered. A file that cannot be read whole
    /// (it cannot be half-written; a disk error) is left for a person to see.
    pub fn waiting(&self) -> std::io::Result<HashMap<u64, Outcome>> {
        let mut waiting = HashMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(waiting),
            entries => entries?,
        };
        for entry in entries {
            let path = entry?.path();
            let Some(task_id) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "json") {
                match std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()) {
                    Some(outcome) => {
                        waiting.insert(task_id, outcome);
                    }
                    None => {
                        tracing::warn!(path = %path.display(), "an unreadable result in the outbox is left as it is")
                    }
                }
            }
        }
        Ok(waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_stay_until_removed_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("limb.token");
        let outbox = Outbox::beside(&token).unwrap();
        let proof = heiwa_provenance::Proof { statement: "{}".into(), signature: vec![7; 64] };
        outbox.put(7, &Ok(super::super::plan::Answered { summary: "forty-two".into(), proof })).unwrap();
        outbox.put(8, &Err("no model".into())).unwrap();
        outbox.remove(7).unwrap();
        outbox.remove(99).unwrap();
        std::fs::write(dir.path().join("limb.outbox/9.tmp"), "half").unwrap();
        assert!(Outbox::beside(&dir.path().join("other.token")).unwrap().waiting().unwrap().is_empty());
        let reopened = Outbox::beside(&token).unwrap();
        assert_eq!(reopened.waiting().unwrap(), HashMap::from([(8, Err("no model".to_string()))]));
    }
}
