//! Memory benchmark: HNSW recall@10 and latency against an exact scan on
//! 100k synthetic 384-d vectors, unfiltered and with a 10%-selective tenant
//! filter (the product's own `nearest`); and ingestion throughput against the
//! raw embedding throughput of the same model on the same chunks, in the same run.
//!
//! `cargo bench --profile dev --workspace --bench memory` (after `source scripts/lib/env.sh`).
//! The last line is machine-readable: `RESULT memory …`.
//!
//! The vectors are clustered (1,000 random centres, each point a centre plus
//! noise, normalised), as sentence embeddings are; queries are fresh points
//! drawn the same way. Uniform random vectors in 384-d have no neighbourhoods
//! to find and are not what the index serves.

mod common;

use common::percentile;
use heiwa_inference::{Embedder, ModelOptions};
use heiwa_memory::{chunks, extract, ingest_path, Memory, PgServer, PgServerConfig, WalkOptions};
use pgvector::Vector;
use std::time::Instant;

fn rows() -> usize {
    common::sized(100_000, 20_000)
}
const TENANTS: usize = 10;
fn centre_count() -> usize {
    common::sized(1_000, 200)
}
fn query_count() -> usize {
    common::sized(200, 20)
}
const DIMS: usize = 384;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn unit(&mut self, around: Option<&[f32]>, noise: f32) -> Vec<f32> {
        let v: Vec<f32> = (0..DIMS).map(|i| around.map_or(0.0, |c| c[i]) + noise * self.next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

const EXACT: &str =
    "SELECT id FROM chunk WHERE ($2::text IS NULL OR tenant_identity = $2) ORDER BY embedding <=> $1 LIMIT 10";
const HNSW_UNFILTERED: &str = "SELECT id FROM chunk ORDER BY embedding <=> $1 LIMIT 10";

#[tokio::main]
async fn main() {
    let parts = heiwa_config::Parts::find(None).unwrap_or_else(|missing| panic!("{missing}"));
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        PgServer::new(PgServerConfig { install_dir: parts.pg_dir.clone(), root: dir.path().join("pg") }).unwrap();
    server.start().unwrap();
    let memory = Memory::open(&server).await.unwrap();
    let pool = memory.pool();

    // Bulk load without the index, then build it with the migration's own parameters.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let centres: Vec<Vec<f32>> = (0..centre_count()).map(|_| rng.unit(None, 1.0)).collect();
    sqlx::query("DROP INDEX chunk_embedding_hnsw").execute(pool).await.unwrap();
    let loaded = Instant::now();
    for batch in 0..rows() / 1000 {
        let (mut tenants, mut contents, mut vectors) = (Vec::new(), Vec::new(), Vec::new());
        for i in batch * 1000..(batch + 1) * 1000 {
            // Every tenant has points in every cluster (a tenant is not a topic).
            tenants.push(format!("tenant-{}", (i / centre_count()) % TENANTS));
            contents.push(format!("row {i}"));
            vectors.push(Vector::from(rng.unit(Some(&centres[i % centre_count()]), 0.08)));
        }
        sqlx::query("INSERT INTO chunk (tenant_identity, content, embedding) SELECT * FROM UNNEST($1::text[], $2::text[], $3::vector[])")
            .bind(&tenants)
            .bind(&contents)
            .bind(&vectors)
            .execute(pool)
            .await
            .unwrap();
    }
    let load_s = loaded.elapsed().as_secs_f64();
    let built = Instant::now();
    sqlx::query("SET maintenance_work_mem = '1GB'").execute(pool).await.unwrap();
    sqlx::query("CREATE INDEX chunk_embedding_hnsw ON chunk USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE chunk").execute(pool).await.unwrap();
    let build_s = built.elapsed().as_secs_f64();
    let rows = rows();
    println!("loaded {rows} vectors in {load_s:.1} s, built HNSW (m=16, ef_construction=64) in {build_s:.1} s");

    let queries: Vec<Vec<f32>> =
        (0..query_count()).map(|i| rng.unit(Some(&centres[(i * 7919) % centre_count()]), 0.08)).collect();
    let mut exact_conn = pool.acquire().await.unwrap();
    sqlx::query("SET enable_indexscan = off").execute(&mut *exact_conn).await.unwrap();
    let (mut recall, mut filtered_recall, mut full_k) = (0.0, 0.0, 0usize);
    let (mut latency, mut filtered_latency, mut truths_a) = (Vec::new(), Vec::new(), Vec::new());
    for q in &queries {
        let exact = |tenant: Option<&str>| {
            sqlx::query_scalar::<_, i64>(EXACT).bind(Vector::from(q.clone())).bind(tenant.map(str::to_string))
        };
        let truth: Vec<i64> = exact(None).fetch_all(&mut *exact_conn).await.unwrap();
        let truth_a: Vec<i64> = exact(Some("tenant-0")).fetch_all(&mut *exact_conn).await.unwrap();

        let started = Instant::now();
        let found: Vec<i64> =
            sqlx::query_scalar(HNSW_UNFILTERED).bind(Vector::from(q.clone())).fetch_all(pool).await.unwrap();
        latency.push(ms(started));
        recall += found.iter().filter(|id| truth.contains(id)).count() as f64 / 10.0;

        let started = Instant::now();
        let hits = memory.nearest("tenant-0", q, 10).await.unwrap();
        filtered_latency.push(ms(started));
        filtered_recall += hits.iter().filter(|h| truth_a.contains(&h.chunk_id)).count() as f64 / 10.0;
        full_k += usize::from(hits.len() == 10);
        truths_a.push(truth_a);
    }
    // How the filtered query trades recall for time under other scan settings (not the product's path).
    if std::env::var_os("HEIWA_BENCH_SWEEP").is_some() {
        for (scan, ef) in [
            ("relaxed_order", 40),
            ("relaxed_order", 100),
            ("relaxed_order", 200),
            ("strict_order", 40),
            ("strict_order", 100),
            ("off", 40),
        ] {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("SELECT set_config('hnsw.iterative_scan', $1, false), set_config('hnsw.ef_search', $2, false)")
                .bind(scan)
                .bind(ef.to_string())
                .execute(&mut *conn)
                .await
                .unwrap();
            let (mut r, mut lat, mut full) = (0.0, Vec::new(), 0);
            for (q, truth) in queries.iter().zip(&truths_a).take(50) {
                let started = Instant::now();
                let hits = heiwa_memory::nearest_on(&mut *conn, "tenant-0", q, 10).await.unwrap();
                lat.push(ms(started));
                r += hits.iter().filter(|h| truth.contains(&h.chunk_id)).count() as f64 / 10.0;
                full += usize::from(hits.len() == 10);
            }
            println!(
                "sweep {scan} ef_search={ef}: recall@10 {:.3} p50 {:.2} ms full k {full}/50",
                r / 50.0,
                percentile(&mut lat, 0.5)
            );
        }
    }
    drop(exact_conn);
    let plan = heiwa_memory::explain_nearest_on(pool, "tenant-0", &queries[0], 10).await.unwrap();
    assert!(plan.contains("chunk_embedding_hnsw"), "the filtered query uses the index:\n{plan}");
    let (recall, filtered_recall) = (recall / query_count() as f64, filtered_recall / query_count() as f64);
    let (p50, p99) = (percentile(&mut latency, 0.5), percentile(&mut latency, 0.99));
    let (fp50, fp99) = (percentile(&mut filtered_latency, 0.5), percentile(&mut filtered_latency, 0.99));
    println!("unfiltered: recall@10 {recall:.3}, p50 {p50:.2} ms, p99 {p99:.2} ms");
    let query_count = query_count();
    println!("tenant-filtered (10%): recall@10 {filtered_recall:.3}, p50 {fp50:.2} ms, p99 {fp99:.2} ms, full k in {full_k}/{query_count}");

    // Ingestion vs raw embedding of the same chunks: a corpus made from the samples, varied per copy.
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/docs");
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(&samples).unwrap() {
        texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let copies = common::sized(30, 2);
    for copy in 0..copies {
        let text: String = texts.iter().map(|t| format!("Copy {copy}.\n\n{t}\n\n")).collect();
        std::fs::write(corpus.join(format!("doc{copy:02}.md")), text).unwrap();
    }
    let embedder = Embedder::load(&parts.embed_model, ModelOptions::default()).unwrap();
    let mut all_chunks = Vec::new();
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let extracted = extract(&entry.unwrap().path()).unwrap();
        all_chunks.extend(chunks(&extracted.text).into_iter().map(|(_, c)| c.to_string()));
    }
    let refs: Vec<&str> = all_chunks.iter().map(String::as_str).collect();
    embedder.embed(&refs[..8]).unwrap(); // warm up
    let started = Instant::now();
    embedder.embed(&refs).unwrap();
    let raw_rate = refs.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let report =
        ingest_path(&memory, &embedder, "ingest-bench", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    let ingest_secs = started.elapsed().as_secs_f64();
    assert_eq!(report.added.len(), copies);
    // The rate of what ingestion stored (copies it collapses are not stored), not of what was chunked here.
    let stored: i64 = memory.documents("ingest-bench").await.unwrap().iter().map(|d| d.chunks).sum();
    let ingest_rate = stored as f64 / ingest_secs;
    let ingest_ratio = ingest_rate / raw_rate;
    println!(
        "embedding alone: {raw_rate:.1} chunks/s over {} chunks; ingest (extract + chunk + embed + store): {ingest_rate:.1} chunks/s over the {stored} it stored",
        refs.len()
    );

    memory.close().await;
    server.stop().unwrap();
    let result = common::result_prefix("memory");
    println!(
        "{result} recall10={recall:.3} p50_ms={p50:.2} filtered_recall10={filtered_recall:.3} filtered_p50_ms={fp50:.2} filtered_full_k={:.2} ingest_ratio={ingest_ratio:.2}",
        full_k as f64 / query_count as f64
    );
}
