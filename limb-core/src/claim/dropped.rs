//! The catalogue models this limb fetched, and when the catalogue dropped
//! each: a dropped model's file stays for the donor's grace period (a task
//! may still come for it, or the owner may add it back), then it is deleted,
//! unless the donor pinned it or chats with it. Kept beside the models
//! (`models/catalogue.json`), so a limb that was off when a model was dropped
//! still deletes it, and one restarted keeps counting from the drop.

use heiwa_inference::models::ModelStore;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One fetched file, by its name in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Fetched {
    model_id: String,
    /// Seconds since the epoch when the catalogue dropped it; `None`: wanted still.
    dropped_at: Option<u64>,
}

/// A model this limb fetched for its tenant's catalogue, as the donor's Models view shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct FetchedModel {
    /// Its file in the models directory.
    pub file: String,
    /// The catalogue's id for it.
    pub model_id: String,
    /// Seconds since the epoch when the catalogue dropped it (`None`: the tenant wants it still).
    #[ts(type = "number | null")]
    pub dropped_at: Option<u64>,
}

/// The catalogue models this limb fetched into `store`, by file name.
pub fn fetched_models(store: &ModelStore) -> Vec<FetchedModel> {
    Dropped::open(store)
        .files
        .into_iter()
        .map(|(file, fetched)| FetchedModel { file, model_id: fetched.model_id, dropped_at: fetched.dropped_at })
        .collect()
}

#[derive(Debug)]
pub struct Dropped {
    path: PathBuf,
    files: BTreeMap<String, Fetched>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

impl Dropped {
    /// The record beside `store`'s models (empty when there is none yet, or it is unreadable).
    pub fn open(store: &ModelStore) -> Dropped {
        let path = store.dir().join("catalogue.json");
        let files = crate::json_file::load_or_set_aside(&path).unwrap_or_default();
        Dropped { path, files }
    }

    fn save(&self) {
        if let Err(error) = crate::json_file::save(&self.path, &self.files) {
            tracing::warn!(%error, path = %self.path.display(), "the record of fetched catalogue models was not saved");
        }
    }

    /// `file` was fetched (or asked for again) for `model_id`: it is wanted.
    pub fn wanted(&mut self, file: &str, model_id: &str) {
        let fetched = Fetched { model_id: model_id.into(), dropped_at: None };
        if self.files.get(file) != Some(&fetched) {
            self.files.insert(file.into(), fetched);
            self.save();
        }
    }

    /// The catalogue no longer asks for `file`: its grace period starts now
    /// (or goes on, when it had started).
    pub fn dropped(&mut self, file: &str) {
        if let Some(fetched) = self.files.get_mut(file).filter(|fetched| fetched.dropped_at.is_none()) {
            fetched.dropped_at = Some(now_secs());
            self.save();
        }
    }

    /// After (re)connecting: every fetched file whose model the hub no longer
    /// asks this limb for (`asked`: the model ids of its rows) was dropped
    /// while the limb was away.
    pub fn dropped_unless(&mut self, asked: &[String]) {
        let gone: Vec<String> = self
            .files
            .iter()
            .filter(|(_, fetched)| fetched.dropped_at.is_none() && !asked.contains(&fetched.model_id))
            .map(|(file, _)| file.clone())
            .collect();
        for file in gone {
            self.dropped(&file);
        }
    }

    /// Delete the files dropped longer than `keep` ago, except those the donor
    /// pinned or chats with; the names of those deleted.
    pub fn sweep(&mut self, store: &ModelStore, keep: Duration) -> Vec<String> {
        let now = now_secs();
        let due: Vec<String> = self
            .files
            .iter()
            .filter(|(_, fetched)| fetched.dropped_at.is_some_and(|at| now.saturating_sub(at) >= keep.as_secs()))
            .map(|(file, _)| file.clone())
            .collect();
        if due.is_empty() {
            return Vec::new(); // every clock tick: no disk read unless a file is due
        }
        let (pinned, chat) = (store.pinned(), store.default_id());
        let mut deleted = Vec::new();
        for file in due {
            let id = heiwa_inference::models::model_id(std::path::Path::new(&file));
            if pinned.contains(&id) || chat.as_deref() == Some(id.as_str()) {
                tracing::info!(%file, "a dropped catalogue model is kept: the donor pinned it or chats with it");
            } else {
                match store.remove(&id) {
                    Ok(()) => deleted.push(file.clone()),
                    Err(heiwa_inference::models::ModelError::Unknown(_)) => {} // deleted by the donor already
                    Err(error) => {
                        tracing::warn!(%error, %file, "a dropped catalogue model could not be deleted");
                        continue; // tried again at the next sweep
                    }
                }
            }
            self.files.remove(&file);
            self.save();
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_model_is_deleted_after_its_grace_unless_pinned_or_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().into());
        for file in ["a.gguf", "b.gguf", "c.gguf", "d.gguf"] {
            std::fs::write(dir.path().join(file), b"GGUF").unwrap();
        }
        let mut record = Dropped::open(&store);
        for (file, id) in [("a.gguf", "a"), ("b.gguf", "b"), ("c.gguf", "c"), ("d.gguf", "d")] {
            record.wanted(file, id);
        }
        store.set_pinned("b", true).unwrap();
        record.dropped("a.gguf");
        record.dropped("b.gguf");
        record.dropped("c.gguf");
        record.wanted("c.gguf", "c"); // the owner added it back
        assert_eq!(record.sweep(&store, Duration::from_secs(3600)), Vec::<String>::new(), "inside the grace period");

        // A restarted limb reads the record and keeps counting from the drop.
        let mut record = Dropped::open(&store);
        assert_eq!(record.sweep(&store, Duration::ZERO), vec!["a.gguf".to_string()]);
        assert!(!dir.path().join("a.gguf").exists() && dir.path().join("b.gguf").exists(), "pinned: kept");
        assert!(dir.path().join("c.gguf").exists() && dir.path().join("d.gguf").exists());

        // Dropped while the limb was off: the hub asks it only for c now.
        record.dropped_unless(&["c".to_string()]);
        assert_eq!(record.sweep(&store, Duration::ZERO), vec!["d.gguf".to_string()]);
        std::fs::remove_file(dir.path().join("c.gguf")).unwrap(); // the donor deleted it
        record.dropped("c.gguf");
        assert_eq!(record.sweep(&store, Duration::ZERO), Vec::<String>::new());
        assert!(Dropped::open(&store).files.is_empty(), "nothing left to watch: {:?}", record.files);
    }
}
