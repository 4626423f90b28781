//! This machine's memory as one thing to open and close: the app's PostgreSQL,
//! its database and the embedding model.

use crate::{Memory, MemoryError, PgServer, PgServerConfig};
use heiwa_inference::{all_cores, Embedder, InferenceError, ModelOptions};
use std::path::Path;
use std::sync::Arc;

/// This machine's memory as one thing: the app's PostgreSQL server (started
/// here, stopped by [`LocalMemory::close`]), the database, and the embedding
/// model that turns text into its vectors.
pub struct LocalMemory {
    server: PgServer,
    pub memory: Arc<Memory>,
    pub embedder: Arc<Embedder>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalMemoryError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Embedder(#[from] InferenceError),
}

impl LocalMemory {
    /// Start PostgreSQL from `pg_dir` with its data under `root` and migrate;
    /// `embed_model` loads on the first embedding.
    pub async fn open(pg_dir: &Path, embed_model: &Path, root: &Path) -> Result<Self, LocalMemoryError> {
        let mut server = PgServer::new(PgServerConfig { install_dir: pg_dir.to_path_buf(), root: root.to_path_buf() })?;
        server.start()?;
        let memory = match Memory::open(&server).await {
            Ok(memory) => memory,
            Err(e) => {
                let _ = server.stop();
                return Err(e.into());
            }
        };
        // Every core, as generation takes them: one thread left the other cores idle while a folder was embedded.
        let embedder =
            match Embedder::lazy(embed_model, ModelOptions { threads: all_cores(), ..ModelOptions::default() }) {
                Ok(embedder) => embedder,
                Err(e) => {
                    memory.close().await;
                    let _ = server.stop();
                    return Err(e.into());
                }
            };
        Ok(LocalMemory { server, memory: Arc::new(memory), embedder: Arc::new(embedder) })
    }

    pub async fn close(mut self) -> Result<(), MemoryError> {
        self.memory.close().await;
        self.server.stop()
    }
}
