//! Local memory: an app-managed PostgreSQL with pgvector, and the queries over it.

mod citation;
mod dedup;
mod ingest;
mod local;
mod server;
mod store;
mod walk;

pub use citation::{Citation, Place};
pub use dedup::NEAR_DUPLICATE;
pub use heiwa_extract::{
    extract, isolate_with, serve_if_worker, Budget, ExtractError, Extracted, MAX_PACKAGE_XML_BYTES, MAX_STREAMED_BYTES,
    MAX_TEXT_BYTES, MAX_WHOLE_BYTES, SECTION_BYTES, WORKER_ENV,
};
pub use ingest::{
    chunks, content_hash, content_hashes, ingest_named, ingest_path, watch_path, IngestReport, Outcome, Progress,
};
pub use local::{LocalMemory, LocalMemoryError};
pub use server::{PgServer, PgServerConfig};
pub use store::{explain_nearest_on, nearest_on, DocumentInfo, Hit, Memory};
pub use walk::{generated, walk, LeftOut, WalkOptions, Walked};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("PostgreSQL binaries directory {dir} lacks {missing} (reinstall Heiwa; in a checkout, run scripts/setup; HEIWA_PG_DIR overrides it)")]
    MissingBinaries { dir: PathBuf, missing: String },
    #[error("running as root, but the unprivileged user `{0}` PostgreSQL needs does not exist")]
    NoUnprivilegedUser(String),
    #[error("PostgreSQL runs as `nobody` (the limb runs as root) and cannot reach {dir}: {blocker} is not searchable by other users; choose a data directory outside it (HEIWA_DATA_DIR)")]
    Unreachable { dir: PathBuf, blocker: PathBuf },
    #[error("{step} failed ({status}): {said}; see {log}")]
    Command {
        step: &'static str,
        status: String,
        /// What PostgreSQL wrote about it: the attempt's FATAL/ERROR lines, else its last lines.
        said: String,
        log: PathBuf,
    },
    #[error("memory I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("memory database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("memory schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot watch the folder: {0}")]
    Watch(String),
    #[error("cannot start the embedding thread: {0}")]
    EmbedThread(std::io::Error),
    #[error("embedding has {got} dimensions; memory stores {expected}")]
    Dimensions { got: usize, expected: usize },
}
