//! Legacy documents into this limb's memory: each extracted by its type
//! (heiwa-extract, isolated as for `heiwa ingest`), embedded and stored under
//! the name `surrealdb:<legacy id>`, which its citations carry. Their text
//! never goes to the hub.

use crate::plan::{LegacyDocument, Problem};
use crate::MigrateError;
use heiwa_inference::Embedder;
use heiwa_memory::{Memory, Outcome};

/// What a migrated document's name in memory starts with.
pub const NAME_PREFIX: &str = "surrealdb:";

pub fn memory_name(legacy_id: &str) -> String {
    format!("{NAME_PREFIX}{legacy_id}")
}

/// This limb's memory, opened.
#[derive(Clone, Copy)]
pub struct Store<'a> {
    pub memory: &'a Memory,
    pub embedder: &'a Embedder,
}

/// Where migrated documents go: one memory tenant of this machine. Without a
/// [`Store`] (a dry run) documents are only extracted, to find the bad ones,
/// and memory is not even started.
pub struct MemorySink<'a> {
    pub store: Option<Store<'a>>,
    pub tenant: String,
    extractor: heiwa_extract::Extractor,
    /// Each document is written here, by itself, for the extractor to read (0700).
    scratch: tempfile::TempDir,
}

impl<'a> MemorySink<'a> {
    pub fn new(store: Option<Store<'a>>, tenant: impl Into<String>) -> Result<Self, MigrateError> {
        Ok(MemorySink {
            store,
            tenant: tenant.into(),
            extractor: heiwa_extract::Extractor::default(),
            scratch: tempfile::Builder::new().prefix("heiwa-migrate").tempdir()?,
        })
    }

    /// The document's text, as memory would keep it; a problem if it has none.
    pub async fn extract(&mut self, document: &LegacyDocument) -> Result<heiwa_extract::Extracted, Problem> {
        let problem = |reason: String| Problem { legacy_id: document.legacy_id.clone(), reason };
        // The file's type, from its name; its name itself is never used as a path.
        let extension = document
            .file_name
            .as_deref()
            .and_then(|name| std::path::Path::new(name).extension())
            .map(|e| e.to_string_lossy().to_lowercase())
            .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or_else(|| "txt".into());
        let path = self.scratch.path().join(format!("document.{extension}"));
        if !heiwa_extract::supported(&path) {
            return Err(problem(format!("memory does not take .{extension} documents")));
        }
        tokio::fs::write(&path, &document.content).await.map_err(|e| problem(format!("cannot stage it: {e}")))?;
        let extracted = self.extractor.extract(&path).await.map_err(|e| problem(e.to_string()));
        let _ = tokio::fs::remove_file(&path).await;
        extracted
    }

    /// Store one document; `Ok(false)` when memory already held it as it is.
    pub async fn store(&mut self, document: &LegacyDocument) -> Result<Result<bool, Problem>, MigrateError> {
        let extracted = match self.extract(document).await {
            Ok(extracted) => extracted,
            Err(problem) => return Ok(Err(problem)),
        };
        let Store { memory, embedder } = self.store.ok_or(MigrateError::NoMemory)?;
        let name = memory_name(&document.legacy_id);
        let outcome = heiwa_memory::ingest_named(memory, embedder, &self.tenant, &name, extracted).await?;
        Ok(match outcome {
            Outcome::Added => Ok(true),
            Outcome::Unchanged => Ok(false),
            Outcome::Failed(reason) => Err(Problem { legacy_id: document.legacy_id.clone(), reason }),
            Outcome::Skipped => Err(Problem { legacy_id: document.legacy_id.clone(), reason: "not taken".into() }),
        })
    }
}
