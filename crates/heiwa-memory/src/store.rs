//! The memory database: its schema, documents and chunks, and hybrid search
//! (HNSW nearest neighbours fused with full-text rank, filtered by tenant).

use crate::citation::Citation;
use crate::{MemoryError, PgServer};
use pgvector::Vector;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgExecutor, PgPool, Row};

/// Dimensions of the embedding model memory is built for (all-MiniLM-L6-v2).
pub const EMBEDDING_DIMS: usize = 384;
const DATABASE: &str = "heiwa"; // also spelled out in CREATE DATABASE below

// A macro, not a const, so `EXPLAIN` can be prefixed at compile time: sqlx
// accepts only static SQL.
macro_rules! nearest_sql {
    () => {
        "SELECT id, content, (embedding <=> $1)::float8 AS distance FROM chunk \
         WHERE tenant_identity = $2 ORDER BY embedding <=> $1 LIMIT $3"
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The limb's memory database, migrated to the current schema.
pub struct Memory {
    pool: PgPool,
}

/// A stored document, as `heiwa docs list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct DocumentInfo {
    pub path: String,
    #[ts(type = "number")]
    pub chunks: i64,
    /// Bytes of text stored (not of the original file).
    #[ts(type = "number")]
    pub text_bytes: i64,
    /// Unix seconds.
    #[ts(type = "number")]
    pub ingested_at: i64,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk_id: i64,
    pub content: String,
    pub distance: f64,
}

/// Pools to the app's own PostgreSQL keep their connections: no idle
/// timeout and no maximum lifetime (sqlx's defaults, 10 and 30 minutes, are
/// for servers behind proxies). With neither, sqlx 0.9.0 starts no
/// maintenance task, and that task can spin forever: `close` sets the idle
/// count to 0 while a concurrent acquire decrements it, so it wraps, and the
/// task's loop over that count never awaits. `heiwa ingest` was seen stuck at
/// exit on one core that way, its runtime waiting for the task.
fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new().idle_timeout(None).max_lifetime(None)
}

impl Memory {
    /// Create the database on first use, then run pending migrations.
    pub async fn open(server: &PgServer) -> Result<Self, MemoryError> {
        let admin = pool_options().max_connections(1).connect_with(server.connect_options("postgres")).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE)
            .fetch_one(&admin)
            .await?;
        if !exists {
            sqlx::query("CREATE DATABASE heiwa").execute(&admin).await?;
        }
        admin.close().await;
        let pool = pool_options()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Tenant-filtered searches must still fill k (pgvector >= 0.8). A
                    // candidate list of 100 (default 40) gave filtered queries both more
                    // recall and less time: fewer iterative rounds (benches/memory.rs).
                    sqlx::query("SET hnsw.iterative_scan = relaxed_order").execute(&mut *conn).await?;
                    sqlx::query("SET hnsw.ef_search = 100").execute(conn).await?;
                    Ok(())
                })
            })
            .connect_with(server.connect_options(DATABASE))
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Memory { pool })
    }

    /// PostgreSQL's and pgvector's versions, as the server reports them.
    pub async fn versions(&self) -> Result<(String, String), MemoryError> {
        let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(&self.pool).await?;
        let vector: String = sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&self.pool)
            .await?;
        Ok((server, vector))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn add_chunk(&self, tenant: &str, content: &str, embedding: &[f32]) -> Result<i64, MemoryError> {
        check_dims(embedding)?;
        let id = sqlx::query_scalar(
            "INSERT INTO chunk (tenant_identity, content, embedding) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(tenant)
        .bind(content)
        .bind(Vector::from(embedding.to_vec()))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// The `k` chunks of `tenant` nearest to `embedding` by cosine distance (HNSW).
    pub async fn nearest(&self, tenant: &str, embedding: &[f32], k: i64) -> Result<Vec<Hit>, MemoryError> {
        nearest_on(&self.pool, tenant, embedding, k).await
    }

    /// Hybrid search: cosine (HNSW) and full-text rankings fused by reciprocal
    /// rank (k = 60), each over `k * 4` candidates of `tenant`'s chunks only.
    pub async fn search(
        &self,
        tenant: &str,
        query: &str,
        embedding: &[f32],
        k: i64,
    ) -> Result<Vec<Citation>, MemoryError> {
        check_dims(embedding)?;
        // Three candidates per hit wanted: copies of one passage collapse into one hit.
        let candidates = k.saturating_mul(3);
        let rows = sqlx::query(HYBRID_SQL)
            .bind(Vector::from(embedding.to_vec()))
            .bind(tenant)
            .bind(candidates.saturating_mul(4))
            .bind(query)
            .bind(candidates)
            .fetch_all(&self.pool)
            .await?;
        let hits = rows
            .into_iter()
            .map(|row| Citation {
                path: row.get("path"),
                position: row.get("position"),
                span: (row.get("span_start"), row.get("span_end")),
                content: row.get("content"),
                score: row.get("score"),
                similarity: row.get("similarity"),
                page: row.get("page"),
                lines: row.get::<Option<i32>, _>("line_start").zip(row.get::<Option<i32>, _>("line_end")),
                also: Vec::new(),
            })
            .collect();
        Ok(crate::dedup::collapse(hits, usize::try_from(k).unwrap_or(0)))
    }

    /// `tenant`'s documents, by path.
    pub async fn documents(&self, tenant: &str) -> Result<Vec<DocumentInfo>, MemoryError> {
        let rows = sqlx::query(
            "SELECT d.path, count(c.id) AS chunks, coalesce(sum(octet_length(c.content)), 0)::int8 AS text_bytes, \
             extract(epoch FROM d.ingested_at)::int8 AS ingested_at \
             FROM document d LEFT JOIN chunk c ON c.document_id = d.id \
             WHERE d.tenant_identity = $1 GROUP BY d.id ORDER BY d.path",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DocumentInfo {
                path: row.get("path"),
                chunks: row.get("chunks"),
                text_bytes: row.get("text_bytes"),
                ingested_at: row.get("ingested_at"),
            })
            .collect())
    }

    /// Forget `tenant`'s documents at `path`, or under it when it is a folder;
    /// returns the paths removed. The files themselves are not touched.
    pub async fn remove_documents(&self, tenant: &str, path: &str) -> Result<Vec<String>, MemoryError> {
        let folder = format!("{}/", path.trim_end_matches('/'));
        let removed = sqlx::query_scalar(
            "DELETE FROM document WHERE tenant_identity = $1 AND (path = $2 OR starts_with(path, $3)) RETURNING path",
        )
        .bind(tenant)
        .bind(path)
        .bind(folder)
        .fetch_all(&self.pool)
        .await?;
        Ok(removed)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// [`Memory::nearest`] on a given connection (to inspect or tune one session).
pub async fn nearest_on(
    db: impl PgExecutor<'_>,
    tenant: &str,
    embedding: &[f32],
    k: i64,
) -> Result<Vec<Hit>, MemoryError> {
    check_dims(embedding)?;
    let rows =
        sqlx::query(nearest_sql!()).bind(Vector::from(embedding.to_vec())).bind(tenant).bind(k).fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(|row| Hit { chunk_id: row.get("id"), content: row.get("content"), distance: row.get("distance") })
        .collect())
}

/// The query plan of [`nearest_on`] on a given connection.
pub async fn explain_nearest_on(
    db: impl PgExecutor<'_>,
    tenant: &str,
    embedding: &[f32],
    k: i64,
) -> Result<String, MemoryError> {
    check_dims(embedding)?;
    let lines: Vec<String> = sqlx::query_scalar(concat!("EXPLAIN ", nearest_sql!()))
        .bind(Vector::from(embedding.to_vec()))
        .bind(tenant)
        .bind(k)
        .fetch_all(db)
        .await?;
    Ok(lines.join("\n"))
}

const HYBRID_SQL: &str = "\
WITH by_vector AS (
    SELECT id, row_number() OVER () AS rank FROM (
        SELECT id FROM chunk WHERE tenant_identity = $2 ORDER BY embedding <=> $1 LIMIT $3) nearest),
by_text AS (
    SELECT id, row_number() OVER (ORDER BY ts_rank(content_tsv, query) DESC) AS rank
    FROM chunk, websearch_to_tsquery('english', $4) query
    WHERE tenant_identity = $2 AND content_tsv @@ query
    LIMIT $3),
fused AS (
    SELECT id, sum(1.0 / (60 + rank))::float8 AS score
    FROM (SELECT * FROM by_vector UNION ALL SELECT * FROM by_text) ranked GROUP BY id)
SELECT d.path, c.position, c.span_start, c.span_end, c.page, c.line_start, c.line_end, c.content, f.score,
       (1 - (c.embedding <=> $1))::float8 AS similarity
FROM fused f JOIN chunk c ON c.id = f.id JOIN document d ON d.id = c.document_id
ORDER BY f.score DESC LIMIT $5";

fn check_dims(embedding: &[f32]) -> Result<(), MemoryError> {
    if embedding.len() != EMBEDDING_DIMS {
        return Err(MemoryError::Dimensions { got: embedding.len(), expected: EMBEDDING_DIMS });
    }
    Ok(())
}
