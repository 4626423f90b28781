//! Offline ingestion: files → text → overlapping chunks → embeddings → one
//! transaction per document, so a document is fully searchable or not at all.
//! Unchanged files (same content hash) are skipped; changed ones replaced.

use crate::walk::{walk, LeftOut, WalkOptions};
use crate::{Memory, MemoryError};
use heiwa_extract::{ExtractError, Extracted};
use heiwa_inference::Embedder;
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
    /// Documents stored from this folder whose files are gone (or now left out).
    pub removed: Vec<String>,
    /// Files that could not be ingested, each with a reason a person understands.
    pub failed: Vec<(PathBuf, String)>,
    /// Files of types memory does not take (stylesheets, images, …): counted,
    /// not failures, so that a real failure is not buried among them.
    pub skipped: Vec<PathBuf>,
    /// Entries the walk left out (`walk.rs`), each once with its reason: not
    /// read at all, and not in the progress count.
    pub left_out: Vec<(PathBuf, LeftOut)>,
}

/// What happened to one file, as soon as it is known (for progress bars and the UI).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct Progress {
    /// Files handled so far, this one included, out of `total`.
    pub done: usize,
    pub total: usize,
    pub path: PathBuf,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum Outcome {
    Added,
    Unchanged,
    Failed(String),
    /// A type memory does not take.
    Skipped,
}

/// Ingest a file or a folder (walked as `walk.rs` says: ignore files, hidden
/// entries, generated files and symbolic links left out unless `options` take
/// them), reporting each file to `progress`. One bad file never stops the rest.
pub async fn ingest_path(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    root: &Path,
    options: WalkOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<IngestReport, MemoryError> {
    let walked = {
        let root = root.to_path_buf();
        tokio::task::spawn_blocking(move || walk(&root, options)).await.expect("the walk does not panic")
    };
    let (files, refused) = (walked.files, walked.refused);
    let mut report = IngestReport { left_out: walked.left_out, ..IngestReport::default() };
    if root.is_dir() {
        report.removed = remove_missing(memory, tenant, root, &files, &refused).await?;
    }
    // Entries refused while walking (symbolic links, unreadable folders) are reported first.
    let steps = std::sync::Mutex::new(Steps { total: refused.len() + files.len(), done: 0, report, progress });
    for (path, reason) in refused {
        record(&steps, path, Outcome::Failed(reason));
    }
    // Three stages at once, a group of documents apart: files are read (in the
    // extractor's worker) while the group before them is embedded (on a thread
    // of its own, every core) and the group before that is stored (PostgreSQL's
    // process). One after another, the embedding waited for the other two and
    // the cores stood ~15 % idle (issue 38's archive benchmark).
    let (to_embed, mut embed_queue) = tokio::sync::mpsc::channel::<Vec<Waiting>>(1);
    let (to_store, mut store_queue) = tokio::sync::mpsc::channel::<Embedded>(1);
    let read = read_files(memory, embedder, tenant, files, &steps, to_embed);
    // One thread for the whole ingest, not a pooled one per group: each thread
    // that embeds keeps its allocator's high-water mark (a context's buffers),
    // and a pool rotates among several (2,000 files, measured: peak RSS
    // 384–470 MB pooled against 311–324 MB on one thread, the same time).
    let embedding = {
        let embedder = embedder.clone();
        std::thread::Builder::new()
            .name("heiwa-embed".into())
            .spawn(move || {
                while let Some(group) = embed_queue.blocking_recv() {
                    if to_store.blocking_send(embed_group(&embedder, group)).is_err() {
                        break;
                    }
                }
            })
            .map_err(MemoryError::EmbedThread)?
    };
    let store = async {
        while let Some(embedded) = store_queue.recv().await {
            store_group(memory, tenant, embedded, &steps).await?;
        }
        Ok(())
    };
    tokio::try_join!(read, store)?;
    // The queues have closed, so the thread has ended (or is ending); a panic in it is the ingest's.
    if let Err(panic) = tokio::task::spawn_blocking(move || embedding.join()).await.expect("joining does not panic") {
        std::panic::resume_unwind(panic);
    }
    Ok(steps.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()).report)
}

/// The reading stage of [`ingest_path`]: each file checked, extracted and
/// hashed; changed ones sent on in groups to be embedded (a large one is
/// embedded and stored here, group by group inside its own transaction).
async fn read_files(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    files: Vec<PathBuf>,
    steps: &std::sync::Mutex<Steps<'_>>,
    to_embed: tokio::sync::mpsc::Sender<Vec<Waiting>>,
) -> Result<(), MemoryError> {
    let mut waiting = Vec::new();
    let mut extractor = heiwa_extract::Extractor::default();
    // What each stored file looked like: an unchanged size and mtime skips reading it
    // (rsync's quick check; a change that keeps both is missed, as there).
    let stored_stamps: std::collections::HashMap<String, Stamp> = sqlx::query_as::<_, (String, i64, i64)>(
        "SELECT path, file_size, file_mtime_ns FROM document \
         WHERE tenant_identity = $1 AND file_size IS NOT NULL AND file_mtime_ns IS NOT NULL",
    )
    .bind(tenant)
    .fetch_all(memory.pool())
    .await?
    .into_iter()
    .map(|(path, size, mtime)| (path, (size, mtime)))
    .collect();
    for path in files {
        if !heiwa_extract::supported(&path) {
            record(steps, path, Outcome::Skipped);
            continue;
        }
        let stamp = stamp_of(&path);
        if stamp.is_some() && stored_stamps.get(path.to_string_lossy().as_ref()) == stamp.as_ref() {
            record(steps, path, Outcome::Unchanged);
            continue;
        }
        if heiwa_extract::is_streamed(&path) {
            let outcome = ingest_streamed(memory, embedder, tenant, &path, stamp, &mut extractor).await?;
            record(steps, path, outcome);
            continue;
        }
        let extracted = match extractor.extract(&path).await {
            Ok(extracted) => extracted,
            Err(reason) => {
                // The report is for people: the error's sentence.
                record(steps, path, Outcome::Failed(reason.to_string()));
                continue;
            }
        };
        let hash = content_hash(&extracted.text);
        if unchanged(memory, tenant, &path, &hash, stamp).await? {
            record(steps, path, Outcome::Unchanged);
            continue;
        }
        if extracted.text.len() > EMBED_GROUP_BYTES {
            // A large document (a long PDF) is embedded group by group inside its
            // transaction, as a streamed one is, not in one call that Ctrl-C would wait for.
            let whole = Sections::Whole(Some(extracted));
            let outcome = store_sections(memory, embedder, tenant, &path, &hash, stamp, whole).await?;
            record(steps, path, outcome);
            continue;
        }
        waiting.push(Waiting { path, extracted, hash, stamp });
        if waiting.iter().map(|w| w.extracted.text.len()).sum::<usize>() >= EMBED_GROUP_BYTES
            && to_embed.send(std::mem::take(&mut waiting)).await.is_err()
        {
            // The later stages have stopped: their error is the ingest's.
            return Ok(());
        }
    }
    if !waiting.is_empty() {
        let _ = to_embed.send(waiting).await;
    }
    Ok(())
}

/// A document that is no file here (a record of a legacy database, cut
/// over by `heiwa migrate`): its extracted text stored under `name`, which
/// its citations show. The same text again changes nothing; other text
/// replaces it, in one transaction as a file's does.
pub async fn ingest_named(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    name: &str,
    extracted: Extracted,
) -> Result<Outcome, MemoryError> {
    let path = Path::new(name);
    let hash = content_hash(&extracted.text);
    if unchanged(memory, tenant, path, &hash, None).await? {
        return Ok(Outcome::Unchanged);
    }
    store_sections(memory, embedder, tenant, path, &hash, None, Sections::Whole(Some(extracted))).await
}

/// The hash memory keeps of a document's text (to skip it when unchanged).
pub fn content_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The content hash of each of `tenant`'s documents whose name starts with `prefix`.
pub async fn content_hashes(memory: &Memory, tenant: &str, prefix: &str) -> Result<Vec<(String, String)>, MemoryError> {
    Ok(sqlx::query_as(
        "SELECT path, content_hash FROM document WHERE tenant_identity = $1 AND starts_with(path, $2) ORDER BY path",
    )
    .bind(tenant)
    .bind(prefix)
    .fetch_all(memory.pool())
    .await?)
}

/// Whether the stored document at `path` has content hash `hash`; if so, it
/// keeps the file's new stamp (touched, not changed), so that the next rescan does not read it.
async fn unchanged(
    memory: &Memory,
    tenant: &str,
    path: &Path,
    hash: &str,
    stamp: Option<Stamp>,
) -> Result<bool, MemoryError> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT content_hash FROM document WHERE tenant_identity = $1 AND path = $2")
            .bind(tenant)
            .bind(path.to_string_lossy().as_ref())
            .fetch_optional(memory.pool())
            .await?;
    if stored.as_deref() != Some(hash) {
        return Ok(false);
    }
    if let Some((size, mtime)) = stamp {
        sqlx::query("UPDATE document SET file_size = $3, file_mtime_ns = $4 WHERE tenant_identity = $1 AND path = $2")
            .bind(tenant)
            .bind(path.to_string_lossy().as_ref())
            .bind(size)
            .bind(mtime)
            .execute(memory.pool())
            .await?;
    }
    Ok(true)
}

/// A large file, section by section (`stream.rs`): each section is chunked,
/// embedded and stored before the next is read, all in one transaction, so
/// memory holds one section at a time and the document is searchable whole
/// or not at all. Its content hash is the file's (hashing it is a streaming
/// read too), so an unchanged file is not extracted again.
async fn ingest_streamed(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    path: &Path,
    stamp: Option<Stamp>,
    extractor: &mut heiwa_extract::Extractor,
) -> Result<Outcome, MemoryError> {
    let hashed = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || file_hash(&path)).await.expect("hashing does not panic")
    };
    let hash = match hashed {
        Ok(hash) => hash,
        Err(e) => return Ok(Outcome::Failed(format!("cannot read: {e}"))),
    };
    if unchanged(memory, tenant, path, &hash, stamp).await? {
        return Ok(Outcome::Unchanged);
    }
    let sections = match extractor.sections(path).await {
        Ok(sections) => sections,
        Err(reason) => return Ok(Outcome::Failed(reason.to_string())),
    };
    store_sections(memory, embedder, tenant, path, &hash, stamp, Sections::Read(sections)).await
}

/// A document's text in sections: read from a stream, or one already whole.
enum Sections<'a> {
    Read(heiwa_extract::SectionReader<'a>),
    Whole(Option<Extracted>),
}

impl Sections<'_> {
    async fn next(&mut self) -> Result<Option<Extracted>, ExtractError> {
        match self {
            Sections::Read(reader) => reader.next().await,
            Sections::Whole(whole) => Ok(whole.take()),
        }
    }
}

/// Store a document section by section, each chunked, embedded in groups and
/// inserted before the next is read, all in one transaction: memory holds one
/// section at a time, a Ctrl-C waits for one group at most, and the document
/// is searchable whole or not at all.
// The document's identity (path, hash, stamp) and where it goes: a struct would only move the list.
#[allow(clippy::too_many_arguments)]
async fn store_sections(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    path: &Path,
    hash: &str,
    stamp: Option<Stamp>,
    mut sections: Sections<'_>,
) -> Result<Outcome, MemoryError> {
    let source = heiwa_extract::is_source(path);
    let mut tx = memory.pool().begin().await?;
    let document_id = insert_document(&mut tx, tenant, path, hash, stamp).await?;
    // Where this section starts in the whole document: bytes, pages and lines before it.
    let (mut base, mut pages_before, mut lines_before, mut position) = (0usize, 0i32, 0i32, 0i32);
    loop {
        let section = match sections.next().await {
            Ok(Some(section)) => section,
            Ok(None) => break,
            // The transaction is dropped unfinished: nothing of the document is stored.
            Err(reason) => return Ok(Outcome::Failed(reason.to_string())),
        };
        let pieces = document_chunks(&section, source);
        let mut lines = source.then(|| LineCounter::new(&section.text));
        let mut group_start = 0;
        while group_start < pieces.len() {
            let mut group_end = group_start;
            let mut bytes = 0;
            while group_end < pieces.len() && (group_end == group_start || bytes < EMBED_GROUP_BYTES) {
                bytes += pieces[group_end].1.len();
                group_end += 1;
            }
            let group = &pieces[group_start..group_end];
            let embeddings = match embedder.embed(&group.iter().map(|(_, chunk)| *chunk).collect::<Vec<_>>()) {
                Ok(embeddings) => embeddings,
                Err(reason) => return Ok(Outcome::Failed(format!("embedding failed: {reason}"))),
            };
            for ((start, chunk), embedding) in group.iter().zip(embeddings) {
                let line_span = lines.as_mut().map(|lines| {
                    let last = (start + chunk.len()).saturating_sub(1);
                    (lines_before + lines.line_of(*start), lines_before + lines.line_of(last))
                });
                let row = ChunkRow {
                    position,
                    start: base + start,
                    chunk,
                    embedding,
                    page: section.page_of(*start).map(|page| pages_before + page),
                    lines: line_span,
                };
                insert_chunk(&mut tx, document_id, tenant, row).await?;
                position += 1;
            }
            group_start = group_end;
        }
        base += section.text.len();
        pages_before += section.page_starts.len() as i32;
        lines_before += section.text.bytes().filter(|b| *b == b'\n').count() as i32;
    }
    if position == 0 {
        return Ok(Outcome::Failed(ExtractError::NoText.to_string()));
    }
    tx.commit().await?;
    Ok(Outcome::Added)
}

/// The sha256 of a file's bytes, read in pieces.
fn file_hash(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let (mut hasher, mut file, mut buffer) = (Sha256::new(), std::fs::File::open(path)?, vec![0; 1 << 16]);
    loop {
        match file.read(&mut buffer)? {
            0 => break,
            n => hasher.update(&buffer[..n]),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Keep `root` ingested: a pass now, then another whenever something under it
/// changes (events are gathered until the folder has been quiet for `quiet`),
/// until `stop` resolves. Each pass skips unchanged files and forgets deleted
/// ones, like a rescan; `on_pass` gets each pass's report.
// What `ingest_path` takes, plus the watch's own three: a struct would only move the list.
#[allow(clippy::too_many_arguments)]
pub async fn watch_path(
    memory: &Memory,
    embedder: &Embedder,
    tenant: &str,
    root: &Path,
    options: WalkOptions,
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
        on_pass(ingest_path(memory, embedder, tenant, root, options, progress).await?);
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

/// (byte offset, text) of overlapping chunks.
pub fn chunks(text: &str) -> Vec<(usize, &str)> {
    let config = ChunkConfig::new(CHUNK_CHARS).with_overlap(CHUNK_OVERLAP).expect("overlap below chunk size");
    TextSplitter::new(config).chunk_indices(text).collect()
}

/// Chunks of a document; a paged one is chunked page by page, so that every
/// chunk (and its citation) lies on one page; source code along its structure.
fn document_chunks(extracted: &Extracted, source: bool) -> Vec<(usize, &str)> {
    if source {
        return heiwa_extract::code_chunks(&extracted.text, heiwa_extract::CODE_CHUNK_BYTES);
    }
    if extracted.page_starts.is_empty() {
        return chunks(&extracted.text);
    }
    let ends = extracted.page_starts.iter().skip(1).copied().chain([extracted.text.len()]);
    extracted
        .page_starts
        .iter()
        .zip(ends)
        .flat_map(|(&start, end)| {
            chunks(&extracted.text[start..end]).into_iter().map(move |(at, chunk)| (start + at, chunk))
        })
        .collect()
}

/// Progress as it happens, and the report it adds up to.
struct Steps<'a> {
    total: usize,
    done: usize,
    report: IngestReport,
    progress: &'a mut (dyn FnMut(Progress) + Send),
}

/// Record one file's outcome in the steps the stages share.
fn record(steps: &std::sync::Mutex<Steps<'_>>, path: PathBuf, outcome: Outcome) {
    steps.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).record(path, outcome);
}

impl Steps<'_> {
    fn record(&mut self, path: PathBuf, outcome: Outcome) {
        self.done += 1;
        match &outcome {
            Outcome::Added => self.report.added.push(path.clone()),
            Outcome::Unchanged => self.report.unchanged.push(path.clone()),
            Outcome::Failed(reason) => self.report.failed.push((path.clone(), reason.clone())),
            Outcome::Skipped => self.report.skipped.push(path.clone()),
        }
        (self.progress)(Progress { done: self.done, total: self.total, path, outcome });
    }
}

/// A changed or new document whose text waits to be embedded.
struct Waiting {
    path: PathBuf,
    extracted: Extracted,
    hash: String,
    stamp: Option<Stamp>,
}

/// A file's size and modification time (ns since the epoch), as `document` keeps them.
type Stamp = (i64, i64);

fn stamp_of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((i64::try_from(meta.len()).ok()?, i64::try_from(mtime.as_nanos()).ok()?))
}

/// Documents are embedded in groups of about this much text (~40 chunks, a
/// few seconds of embedding): one llama.cpp context for many small files
/// (creating one per file cost ~10% of ingest time on a folder of notes),
/// while memory stays bounded and progress keeps moving.
const EMBED_GROUP_BYTES: usize = 32 << 10;

/// A group of documents, each with its chunks' (byte offset, length) and
/// their embeddings, or why embedding it failed.
struct Embedded {
    group: Vec<Waiting>,
    spans: Vec<Vec<(usize, usize)>>,
    embeddings: Vec<Result<Vec<Vec<f32>>, String>>,
}

/// Embed a group of documents together. If that fails, each document is
/// embedded alone so that the failure is charged to the document that caused it.
fn embed_group(embedder: &Embedder, group: Vec<Waiting>) -> Embedded {
    let pieces: Vec<Vec<(usize, &str)>> =
        group.iter().map(|doc| document_chunks(&doc.extracted, heiwa_extract::is_source(&doc.path))).collect();
    let texts: Vec<&str> = pieces.iter().flatten().map(|(_, chunk)| *chunk).collect();
    let mut together = embedder.embed(&texts).ok().map(Vec::into_iter);
    let embeddings = pieces
        .iter()
        .map(|pieces| match together.as_mut() {
            Some(vectors) => Ok(vectors.by_ref().take(pieces.len()).collect()),
            None => embedder
                .embed(&pieces.iter().map(|(_, chunk)| *chunk).collect::<Vec<_>>())
                .map_err(|reason| format!("embedding failed: {reason}")),
        })
        .collect();
    let spans =
        pieces.iter().map(|pieces| pieces.iter().map(|(start, chunk)| (*start, chunk.len())).collect()).collect();
    Embedded { group, spans, embeddings }
}

/// Store each document of an embedded group in one transaction, then report them.
async fn store_group(
    memory: &Memory,
    tenant: &str,
    Embedded { group, spans, embeddings }: Embedded,
    steps: &std::sync::Mutex<Steps<'_>>,
) -> Result<(), MemoryError> {
    // The group's documents commit together: one WAL flush for ~30 small files
    // instead of one each (the archive benchmark spent ~15% of its time in
    // them). Each document is still whole or absent.
    let mut tx = memory.pool().begin().await?;
    let mut outcomes = Vec::with_capacity(group.len());
    for ((doc, spans), embeddings) in group.iter().zip(&spans).zip(embeddings) {
        match embeddings {
            Ok(embeddings) => {
                store_document(&mut tx, tenant, doc, spans, embeddings).await?;
                outcomes.push(Outcome::Added);
            }
            Err(reason) => outcomes.push(Outcome::Failed(reason)),
        }
    }
    tx.commit().await?;
    for (doc, outcome) in group.into_iter().zip(outcomes) {
        record(steps, doc.path, outcome);
    }
    Ok(())
}

/// Replace the document at `doc.path` with its chunks (byte offset, length), within `tx`.
async fn store_document(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    doc: &Waiting,
    spans: &[(usize, usize)],
    embeddings: Vec<Vec<f32>>,
) -> Result<(), MemoryError> {
    let extracted = &doc.extracted;
    let document_id = insert_document(&mut *tx, tenant, &doc.path, &doc.hash, doc.stamp).await?;
    // Source code is cited by lines: count them as the chunks go by (they are in order).
    let mut lines = heiwa_extract::is_source(&doc.path).then(|| LineCounter::new(&extracted.text));
    for (position, (&(start, len), embedding)) in spans.iter().zip(embeddings).enumerate() {
        let line_span =
            lines.as_mut().map(|lines| (lines.line_of(start), lines.line_of((start + len).saturating_sub(1))));
        let row = ChunkRow {
            position: position as i32,
            start,
            chunk: &extracted.text[start..start + len],
            embedding,
            page: extracted.page_of(start),
            lines: line_span,
        };
        insert_chunk(&mut *tx, document_id, tenant, row).await?;
    }
    Ok(())
}

/// The document row for `path`, replacing any stored before; its id.
async fn insert_document(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    path: &Path,
    hash: &str,
    stamp: Option<Stamp>,
) -> Result<i64, MemoryError> {
    let path_text = path.to_string_lossy();
    sqlx::query("DELETE FROM document WHERE tenant_identity = $1 AND path = $2")
        .bind(tenant)
        .bind(path_text.as_ref())
        .execute(&mut *tx)
        .await?;
    let document_id = sqlx::query_scalar(
        "INSERT INTO document (tenant_identity, path, content_hash, file_size, file_mtime_ns) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant)
    .bind(path_text.as_ref())
    .bind(hash)
    .bind(stamp.map(|(size, _)| size))
    .bind(stamp.map(|(_, mtime)| mtime))
    .fetch_one(&mut *tx)
    .await?;
    Ok(document_id)
}

/// One chunk as stored: where it is in its document, and its embedding.
struct ChunkRow<'a> {
    position: i32,
    /// Byte offset in the document's text.
    start: usize,
    chunk: &'a str,
    embedding: Vec<f32>,
    page: Option<i32>,
    lines: Option<(i32, i32)>,
}

async fn insert_chunk(
    tx: &mut sqlx::PgConnection,
    document_id: i64,
    tenant: &str,
    row: ChunkRow<'_>,
) -> Result<(), MemoryError> {
    sqlx::query(
        "INSERT INTO chunk (document_id, tenant_identity, position, content, embedding, span_start, span_end, page, \
         line_start, line_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(document_id)
    .bind(tenant)
    .bind(row.position)
    .bind(row.chunk)
    .bind(Vector::from(row.embedding))
    .bind(row.start as i32)
    .bind((row.start + row.chunk.len()) as i32)
    .bind(row.page)
    .bind(row.lines.map(|(first, _)| first))
    .bind(row.lines.map(|(_, last)| last))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// 1-based line numbers of byte offsets into one text, asked in increasing order.
struct LineCounter<'a> {
    text: &'a str,
    at: usize,
    line: i32,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter { text, at: 0, line: 1 }
    }

    /// The line the byte at `offset` is on.
    fn line_of(&mut self, offset: usize) -> i32 {
        let offset = offset.min(self.text.len());
        if offset < self.at {
            self.at = 0;
            self.line = 1;
        }
        self.line += self.text.as_bytes()[self.at..offset].iter().filter(|b| **b == b'\n').count() as i32;
        self.at = offset;
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_from_one_as_offsets_advance() {
        let text = "a\nbb\n\nccc\n";
        let mut lines = LineCounter::new(text);
        assert_eq!([0, 1, 2, 5, 7, 9].map(|at| lines.line_of(at)), [1, 1, 2, 3, 4, 4]);
        assert_eq!(lines.line_of(2), 2, "asking again from before starts over");
    }

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
