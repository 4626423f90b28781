//! Offline ingestion: files → text → overlapping chunks → embeddings → one
//! transaction per document, so a document is fully searchable or not at all.
//! Unchanged files (same content hash) are skipped; changed ones replaced.

use super::extract::{extract, Extracted};
use super::{Memory, MemoryError};
use crate::inference::Embedder;
use pgvector::Vector;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use text_splitter::{ChunkConfig, TextSplitter};

const CHUNK_CHARS: usize = 800;
const CHUNK_OVERLAP: usize = 120;

#[derive(Debug, Default)]
pub struct IngestReport {
    pub added: Vec<PathBuf>,
    pub unchanged: Vec<PathBuf>,
    /// Documents stored from this folder whose files are gone.
    pub removed: Vec<String>,
    /// Files that could not be ingested, each with a reason a person understands.
    pub failed: Vec<(PathBuf, String)>,
}

/// What happened to one file, as soon as it is known (for progress bars and the UI).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Files handled so far, this one included, out of `total`.
    pub done: usize,
    pub total: usize,
    pub path: PathBuf,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum Outcome {
    Added,
    Unchanged,
    Failed(String),
}

/// Ingest a file or a folder (recursively; hidden entries skipped, symbolic
/// links not followed), reporting each file to `progress`. One bad file never
/// stops the rest.
pub async fn ingest_path(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    root: &Path,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<IngestReport, MemoryError> {
    let mut report = IngestReport::default();
    let mut files = Vec::new();
    collect(root, &mut files, &mut report.failed);
    files.sort();
    if root.is_dir() {
        report.removed = remove_missing(memory, tenant, root, &files, &report.failed).await?;
    }
    // Entries refused while walking (symbolic links, unreadable folders) are reported first.
    let total = report.failed.len() + files.len();
    for (index, (path, reason)) in report.failed.iter().enumerate() {
        progress(Progress { done: index + 1, total, path: path.clone(), outcome: Outcome::Failed(reason.clone()) });
    }
    let walked = report.failed.len();
    for (index, path) in files.into_iter().enumerate() {
        let outcome = match extract(&path) {
            Err(reason) => Outcome::Failed(reason),
            Ok(extracted) => match ingest_document(memory, embedder, tenant, &path, &extracted).await {
                Ok(true) => Outcome::Added,
                Ok(false) => Outcome::Unchanged,
                Err(MemoryError::Embedding(reason)) => Outcome::Failed(reason),
                Err(other) => return Err(other),
            },
        };
        match &outcome {
            Outcome::Added => report.added.push(path.clone()),
            Outcome::Unchanged => report.unchanged.push(path.clone()),
            Outcome::Failed(reason) => report.failed.push((path.clone(), reason.clone())),
        }
        progress(Progress { done: walked + index + 1, total, path, outcome });
    }
    Ok(report)
}

/// Keep `root` ingested: a pass now, then another whenever something under it
/// changes (events are gathered until the folder has been quiet for `quiet`),
/// until `stop` resolves. Each pass skips unchanged files and forgets deleted
/// ones, like a rescan; `on_pass` gets each pass's report.
pub async fn watch_path(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    root: &Path,
    quiet: std::time::Duration,
    progress: &mut (dyn FnMut(Progress) + Send),
    on_pass: &mut (dyn FnMut(IngestReport) + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), MemoryError> {
    use notify::Watcher;
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| MemoryError::Watch(e.to_string()))?;
    watcher.watch(root, notify::RecursiveMode::Recursive).map_err(|e| MemoryError::Watch(e.to_string()))?;
    tokio::pin!(stop);
    loop {
        on_pass(ingest_path(memory, embedder, tenant, root, progress).await?);
        tokio::select! {
            _ = &mut stop => return Ok(()),
            Some(()) = changes.recv() => {}
        }
        while let Ok(Some(())) = tokio::time::timeout(quiet, changes.recv()).await {}
    }
}

/// Forget documents under `root` whose files no longer exist there (a file
/// that exists but failed this time keeps its last good version).
async fn remove_missing(
    memory: &Memory,
    tenant: &str,
    root: &Path,
    files: &[PathBuf],
    failed: &[(PathBuf, String)],
) -> Result<Vec<String>, MemoryError> {
    let present: Vec<String> =
        files.iter().chain(failed.iter().map(|(p, _)| p)).map(|p| p.to_string_lossy().into_owned()).collect();
    let prefix = format!("{}/", root.to_string_lossy().trim_end_matches('/'));
    let removed = sqlx::query_scalar(
        "DELETE FROM document WHERE tenant_identity = $1 AND starts_with(path, $2) AND NOT (path = ANY($3)) RETURNING path",
    )
    .bind(tenant)
    .bind(prefix)
    .bind(present)
    .fetch_all(memory.pool())
    .await?;
    Ok(removed)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, failed: &mut Vec<(PathBuf, String)>) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return failed.push((path.to_path_buf(), format!("cannot read: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return failed.push((path.to_path_buf(), "symbolic link not followed".into()));
    }
    if meta.is_file() {
        return files.push(path.to_path_buf());
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => return failed.push((path.to_path_buf(), format!("cannot list folder: {e}"))),
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with('.') {
            collect(&entry.path(), files, failed);
        }
    }
}

/// (byte offset, text) of overlapping chunks.
pub fn chunks(text: &str) -> Vec<(usize, &str)> {
    let config = ChunkConfig::new(CHUNK_CHARS).with_overlap(CHUNK_OVERLAP).expect("overlap below chunk size");
    TextSplitter::new(config).chunk_indices(text).collect()
}

/// Chunks of a document; a paged one is chunked page by page, so that every
/// chunk (and its citation) lies on one page.
fn document_chunks(extracted: &Extracted) -> Vec<(usize, &str)> {
    if extracted.page_starts.is_empty() {
        return chunks(&extracted.text);
    }
    let ends = extracted.page_starts.iter().skip(1).copied().chain([extracted.text.len()]);
    extracted
        .page_starts
        .iter()
        .zip(ends)
        .flat_map(|(&start, end)| chunks(&extracted.text[start..end]).into_iter().map(move |(at, chunk)| (start + at, chunk)))
        .collect()
}

/// Store one document; `Ok(false)` when it is already stored unchanged.
async fn ingest_document(memory: &Memory, embedder: &Embedder, tenant: &str, path: &Path, extracted: &Extracted) -> Result<bool, MemoryError> {
    let text = extracted.text.as_str();
    let path_text = path.to_string_lossy();
    let hash: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let stored: Option<String> = sqlx::query_scalar("SELECT content_hash FROM document WHERE tenant_identity = $1 AND path = $2")
        .bind(tenant)
        .bind(path_text.as_ref())
        .fetch_optional(memory.pool())
        .await?;
    if stored.as_deref() == Some(hash.as_str()) {
        return Ok(false);
    }
    let pieces = document_chunks(extracted);
    let texts: Vec<&str> = pieces.iter().map(|(_, chunk)| *chunk).collect();
    let embeddings = embedder.embed(&texts).map_err(|e| MemoryError::Embedding(e.to_string()))?;

    let mut tx = memory.pool().begin().await?;
    sqlx::query("DELETE FROM document WHERE tenant_identity = $1 AND path = $2")
        .bind(tenant)
        .bind(path_text.as_ref())
        .execute(&mut *tx)
        .await?;
    let document_id: i64 = sqlx::query_scalar(
        "INSERT INTO document (tenant_identity, path, content_hash) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(tenant)
    .bind(path_text.as_ref())
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await?;
    for (position, ((start, chunk), embedding)) in pieces.iter().zip(embeddings).enumerate() {
        sqlx::query(
            "INSERT INTO chunk (document_id, tenant_identity, position, content, embedding, span_start, span_end, page) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(document_id)
        .bind(tenant)
        .bind(position as i32)
        .bind(*chunk)
        .bind(Vector::from(embedding))
        .bind(*start as i32)
        .bind((start + chunk.len()) as i32)
        .bind(extracted.page_of(*start))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_overlap_and_cover_the_text() {
        let text = "word ".repeat(1000);
        let pieces = chunks(&text);
        assert!(pieces.len() > 5);
        assert!(pieces.iter().all(|(_, c)| c.len() <= CHUNK_CHARS));
        assert!(pieces.windows(2).all(|w| w[1].0 < w[0].0 + w[0].1.len()), "consecutive chunks overlap");
        assert_eq!(&text[pieces[2].0..pieces[2].0 + pieces[2].1.len()], pieces[2].1, "offsets point at the chunk");
    }
}
