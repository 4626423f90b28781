//! Assignment benchmark: the whole cycle — submit → assigned → done with a
//! result row — through the real hub and the real limb loop (`run_limb`),
//! against the best-known Postgres job-queue pattern (LISTEN/NOTIFY + FOR
//! UPDATE SKIP LOCKED, as River and graphile-worker do) doing the same cycle
//! on the embedded PostgreSQL, in the same run. Then the hub at volunteer
//! scale: 10, 100 and 1,000 connected limbs (each its own identity and
//! WebSocket connection, in this process), its CPU per task and memory per limb;
//! and the largest point again with a tenant's catalogue of 20 models, each
//! limb offering two and every task pinned to one (`p99_N_models_ms`).
//!
//! `cargo bench --profile dev --workspace --bench claims` (after `source scripts/lib/env.sh`);
//! `HEIWA_BENCH_LIMBS=10,100` runs a smaller curve, `HEIWA_BENCH_DRAIN=8000` a deeper
//! backlog for the 50-limb drain. The last line is
//! machine-readable: `RESULT claim …`.

use heiwa_config::Parts;
use heiwa_memory::{PgServer, PgServerConfig};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

fn latency_samples() -> usize {
    common::sized(200, 20)
}
/// The backlog both drains start from: `HEIWA_BENCH_DRAIN` tasks, else 2,000
/// (200 in the quick mode). Both sides slow as it grows; a deeper one is a
/// longer, steadier measurement.
fn throughput_tasks() -> usize {
    match std::env::var("HEIWA_BENCH_DRAIN") {
        Ok(tasks) => tasks.parse().expect("HEIWA_BENCH_DRAIN: a number of tasks"),
        Err(_) => common::sized(2000, 200),
    }
}
fn scale_tasks() -> usize {
    common::sized(10_000, 500)
}

mod common;
use common::drain::{drain, hub, limbs, model, submit_pinned, Hub, Limbs, SLOTS};
use common::percentile;

/// Submit → assigned latencies (ms), `samples` tasks, `concurrency`
/// submitters; with `models` > 0, task `i` is pinned to catalogue model `i` (modulo).
async fn hub_latencies(
    hub: &Hub,
    limbs: &mut Limbs,
    prefix: &str,
    samples: usize,
    concurrency: usize,
    models: usize,
) -> Vec<f64> {
    use futures::StreamExt;
    let submitted: Vec<(String, Instant)> = futures::stream::iter(0..samples)
        .map(|i| async move {
            let payload = format!("{prefix} {i}");
            let pinned = (models > 0).then(|| model(i % models));
            let at = Instant::now();
            submit_pinned(hub, &payload, pinned.as_deref()).await;
            (payload, at)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    limbs.completions(hub, samples).await;
    let started = limbs.stopwatch.started.lock().unwrap();
    submitted.iter().map(|(payload, at)| started[payload].duration_since(*at).as_secs_f64() * 1e3).collect()
}

/// One task at a time with `n` limbs; and the executions beyond the first.
async fn hub_latency(parts: &Parts, dir: &std::path::Path, n: usize) -> (Vec<f64>, usize) {
    let hub = hub(parts, &dir.join("hub"), n as u32).await;
    let mut limbs = limbs(&hub, dir, n, 0).await;
    let samples = hub_latencies(&hub, &mut limbs, "latency", latency_samples(), 1, 0).await;
    let doubles = limbs.stop().await;
    (samples, doubles)
}

/// Tasks per second through the whole cycle with `n` limbs draining a
/// backlog of `throughput_tasks()` on a hub of their own; and double executions.
async fn hub_throughput(parts: &Parts, dir: &std::path::Path, n: usize) -> (f64, usize) {
    let hub = hub(parts, &dir.join("hub"), n as u32).await;
    drain(&hub, dir, n, throughput_tasks()).await
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

struct Scale {
    limbs: usize,
    tasks: usize,
    p50_ms: f64,
    p99_ms: f64,
    tasks_per_s: f64,
    hub_cpu_ms_per_task: f64,
    client_cpu_ms_per_task: f64,
    hub_mb_per_limb: f64,
    doubles: usize,
}

/// `n` connected limbs on one hub, `tasks` tasks submitted by 8 concurrent
/// submitters: latency under load, the hub's CPU per task, its memory per limb.
/// `n` connected limbs, 8 submitters; with `models` > 0, a catalogue of that
/// many models, each limb offering two of them and every task pinned to one.
async fn hub_scale(parts: &Parts, dir: &std::path::Path, n: usize, tasks: usize, models: usize) -> Scale {
    let hub = hub(parts, &dir.join("hub"), n as u32).await;
    for k in 0..models {
        let entry = heiwa_hub::CatalogueRow {
            model_id: model(k),
            file: format!("{}.gguf", model(k)),
            size_bytes: 1 << 30,
            sha256: format!("{k:064x}"),
            // Never fetched: every model has limbs that offer it from the start.
            sources: vec![format!("http://127.0.0.1:9/{}.gguf", model(k))],
            license: String::new(),
            keep_ready: false,
        };
        hub.http.add_catalogue_model("heiwa", &entry, &hub.owner).await.unwrap();
    }
    let pid = hub.server.pid();
    let rss_before = rss_mb(pid);
    let mut limbs = limbs(&hub, dir, n, models).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hub_mb_per_limb = (rss_mb(pid) - rss_before) / n as f64;
    let (hub_cpu, own_cpu, started) = (cpu_secs(pid), cpu_secs(std::process::id()), Instant::now());
    let mut samples = hub_latencies(&hub, &mut limbs, "scale", tasks, 8, models).await;
    let elapsed = started.elapsed().as_secs_f64();
    let hub_cpu = cpu_secs(pid) - hub_cpu;
    let own_cpu = cpu_secs(std::process::id()) - own_cpu;
    let doubles = limbs.stop().await;
    Scale {
        limbs: n,
        tasks,
        p50_ms: percentile(&mut samples, 0.5),
        p99_ms: percentile(&mut samples, 0.99),
        tasks_per_s: tasks as f64 / elapsed,
        hub_cpu_ms_per_task: hub_cpu * 1e3 / tasks as f64,
        client_cpu_ms_per_task: own_cpu * 1e3 / tasks as f64,
        hub_mb_per_limb,
        doubles,
    }
}

const PG_SCHEMA: [&str; 2] = [
    "CREATE TABLE job (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, \
     state TEXT NOT NULL DEFAULT 'pending', claimed_by INT)",
    "CREATE TABLE job_result (job_id BIGINT PRIMARY KEY REFERENCES job (id), worker INT NOT NULL, summary TEXT NOT NULL)",
];
/// The catalogue of the scale phase's second run (issue 35: placement with models).
const CATALOGUE_MODELS: usize = 20;

const PG_CLAIM: &str = "UPDATE job SET state = 'claimed', claimed_by = $1 WHERE id IN \
     (SELECT id FROM job WHERE state = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $2) RETURNING id";

/// The same cycle as a limb's: claim, then mark done and insert the result in one transaction.
async fn pg_complete(conn: &mut sqlx::PgConnection, worker: i32, id: i64) {
    use sqlx::Connection;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("UPDATE job SET state = 'done' WHERE id = $1").bind(id).execute(&mut *tx).await.unwrap();
    sqlx::query("INSERT INTO job_result (job_id, worker, summary) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(worker)
        .bind(format!("task {id} done"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `n` workers, each on its own connection, woken by one LISTEN connection
/// (as River does): on each notification they claim up to `SLOTS` jobs at a
/// time and complete each, until the queue is empty. Claims are reported when
/// made (the instant); completions when committed.
async fn pg_workers(
    pool: &PgPool,
    n: usize,
) -> (watch::Sender<bool>, mpsc::UnboundedReceiver<Instant>, mpsc::UnboundedReceiver<i64>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (claimed_tx, claimed) = mpsc::unbounded_channel();
    let (done_tx, done) = mpsc::unbounded_channel();
    let wake = Arc::new(tokio::sync::Notify::new());
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen("job_ready").await.unwrap();
    let (waker, mut stop) = (wake.clone(), stop_rx.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = listener.recv() => waker.notify_waiters(),
            }
        }
    });
    for worker in 0..n {
        let mut conn = pool.acquire().await.unwrap().detach();
        let (claimed_tx, done_tx, mut stop, wake) =
            (claimed_tx.clone(), done_tx.clone(), stop_rx.clone(), wake.clone());
        tokio::spawn(async move {
            loop {
                // Registered before draining, so a notification during the drain is not lost.
                let notified = wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                loop {
                    let ids: Vec<i64> = sqlx::query_scalar(PG_CLAIM)
                        .bind(worker as i32)
                        .bind(SLOTS as i64)
                        .fetch_all(&mut conn)
                        .await
                        .unwrap_or_default();
                    if ids.is_empty() {
                        break;
                    }
                    let claimed_at = Instant::now();
                    for id in ids {
                        let _ = claimed_tx.send(claimed_at);
                        pg_complete(&mut conn, worker as i32, id).await;
                        let _ = done_tx.send(id);
                    }
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = notified => {}
                }
            }
        });
    }
    (stop_tx, claimed, done)
}

async fn pg_submit(pool: &PgPool, payload: String) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO job (payload) VALUES ($1)").bind(payload).execute(&mut *tx).await.unwrap();
    sqlx::query("NOTIFY job_ready").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

async fn pg_reset(pool: &PgPool) {
    sqlx::query("TRUNCATE job, job_result").execute(pool).await.unwrap();
}

async fn pg_latency(pool: &PgPool, n: usize) -> Vec<f64> {
    pg_reset(pool).await;
    let (stop, mut claimed, mut done) = pg_workers(pool, n).await;
    let mut samples = Vec::new();
    for i in 0..latency_samples() {
        let started = Instant::now();
        pg_submit(pool, format!("latency {i}")).await;
        let claimed_at = claimed.recv().await.unwrap();
        samples.push(claimed_at.duration_since(started).as_secs_f64() * 1e3);
        done.recv().await.unwrap();
    }
    let _ = stop.send(true);
    samples
}

async fn pg_throughput(pool: &PgPool, n: usize) -> f64 {
    pg_reset(pool).await;
    {
        use futures::StreamExt;
        futures::stream::iter(0..throughput_tasks())
            .map(|i| pg_submit(pool, format!("load {i}")))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }
    let (stop, mut claimed, mut done) = pg_workers(pool, n).await;
    // When the first claim was made, not when this task hears of it: the first
    // workers drain while the others are still connecting, as the hub's first
    // limbs do (whose clock starts at the first assignment too).
    let first_claim = claimed.recv().await.unwrap();
    for _ in 0..throughput_tasks() {
        done.recv().await.unwrap();
    }
    let elapsed = first_claim.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let results: i64 = sqlx::query_scalar("SELECT count(*) FROM job_result").fetch_one(pool).await.unwrap();
    assert_eq!(results as usize, throughput_tasks(), "the queue wrote every result");
    throughput_tasks() as f64 / elapsed
}

fn p(samples: &mut [f64], q: f64) -> f64 {
    percentile(samples, q)
}

#[tokio::main]
async fn main() {
    let parts = Parts::find(None).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let curve: Vec<usize> = std::env::var("HEIWA_BENCH_LIMBS")
        .unwrap_or_else(|_| common::sized("10,100,1000", "10").into())
        .split(',')
        .map(|n| n.trim().parse().expect("HEIWA_BENCH_LIMBS: limb counts, comma-separated"))
        .collect();

    // Doubles are counted as executions per task id in every phase.
    let (mut one, doubles_1) = hub_latency(&parts, &dir.path().join("lat1"), 1).await;
    let (mut twenty, doubles_20) = hub_latency(&parts, &dir.path().join("lat20"), 20).await;
    let (mut fifty, doubles_50) = hub_latency(&parts, &dir.path().join("lat50"), 50).await;
    let (tasks_per_s, doubles_drain) = hub_throughput(&parts, &dir.path().join("tp50"), 50).await;
    let mut doubles = doubles_1 + doubles_20 + doubles_50 + doubles_drain;

    let mut pg =
        PgServer::new(PgServerConfig { install_dir: parts.pg_dir.clone(), root: dir.path().join("pg") }).unwrap();
    pg.start().unwrap();
    let pool = PgPoolOptions::new().max_connections(120).connect_with(pg.connect_options("postgres")).await.unwrap();
    for statement in PG_SCHEMA {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let mut pg_one = pg_latency(&pool, 1).await;
    let mut pg_twenty = pg_latency(&pool, 20).await;
    let mut pg_fifty = pg_latency(&pool, 50).await;
    // The queue as configured by default (`synchronous_commit = on`: every
    // commit waits for its WAL flush), then with the hub's durability: the
    // SpacetimeDB 1.2 server syncs its commit log every 500 ms, so commits
    // return before their flush and the WAL writer flushes on that period.
    let pg_sync_tasks_per_s = pg_throughput(&pool, 50).await;
    for setting in [
        "ALTER SYSTEM SET synchronous_commit = off",
        "ALTER SYSTEM SET wal_writer_delay = '500ms'",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::query(setting).execute(&pool).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // every backend reads the reloaded settings
    let pg_tasks_per_s = pg_throughput(&pool, 50).await;
    pool.close().await;
    pg.stop().unwrap();

    let mut scale = Vec::new();
    for &n in &curve {
        let tasks = if n >= 1000 { scale_tasks() } else { throughput_tasks() };
        let point = hub_scale(&parts, &dir.path().join(format!("scale{n}")), n, tasks, 0).await;
        doubles += point.doubles;
        scale.push(point);
    }
    // The largest point again with a tenant's model catalogue: every task pinned to one of its models.
    let widest = *curve.last().expect("at least one point on the curve");
    let tasks = if widest >= 1000 { scale_tasks() } else { throughput_tasks() };
    let pinned = hub_scale(&parts, &dir.path().join("scale-models"), widest, tasks, CATALOGUE_MODELS).await;
    doubles += pinned.doubles;

    println!("one task at a time, submit → assigned (hub) / claimed (Postgres):");
    for (name, hub, pg) in
        [("1", &mut one, &mut pg_one), ("20", &mut twenty, &mut pg_twenty), ("50", &mut fifty, &mut pg_fifty)]
    {
        println!(
            "  {name:>2} limbs/workers: hub p50 {:.2} ms p99 {:.2} ms | pg p50 {:.2} ms p99 {:.2} ms",
            p(hub, 0.5),
            p(hub, 0.99),
            p(pg, 0.5),
            p(pg, 0.99)
        );
    }
    let (ratio, ratio_sync) = (tasks_per_s / pg_tasks_per_s, tasks_per_s / pg_sync_tasks_per_s);
    let drained = throughput_tasks();
    println!(
        "50 limbs/workers draining {drained}: hub {tasks_per_s:.0} tasks/s; pg with the hub's durability \
         (synchronous_commit off, WAL flushed every 500 ms) {pg_tasks_per_s:.0} tasks/s (ratio {ratio:.2}); \
         pg synchronous {pg_sync_tasks_per_s:.0} tasks/s (ratio {ratio_sync:.2})"
    );
    println!("connected limbs, 8 submitters:");
    for s in &scale {
        println!(
            "  {:>5} limbs, {:>5} tasks: p50 {:.2} ms p99 {:.2} ms, {:.0} tasks/s, hub {:.2} CPU-ms/task, limbs' process {:.2} CPU-ms/task, hub {:.3} MB/limb",
            s.limbs, s.tasks, s.p50_ms, s.p99_ms, s.tasks_per_s, s.hub_cpu_ms_per_task, s.client_cpu_ms_per_task, s.hub_mb_per_limb
        );
    }
    println!(
        "  {:>5} limbs, {:>5} tasks pinned to {CATALOGUE_MODELS} catalogue models (2 per limb): p50 {:.2} ms p99 {:.2} ms, {:.0} tasks/s, hub {:.2} CPU-ms/task",
        pinned.limbs, pinned.tasks, pinned.p50_ms, pinned.p99_ms, pinned.tasks_per_s, pinned.hub_cpu_ms_per_task
    );
    let largest = scale.last().expect("at least one point on the curve");
    let result = common::result_prefix("claim");
    println!(
        "{result} p50_ms={:.2} p99_ms={:.2} p50_20_ms={:.2} p50_50_ms={:.2} p99_50_ms={:.2} tasks_per_s={tasks_per_s:.0} pg_tasks_per_s={pg_tasks_per_s:.0} ratio_vs_pg={ratio:.2} pg_sync_tasks_per_s={pg_sync_tasks_per_s:.0} ratio_vs_pg_sync={ratio_sync:.2} pg_p50_ms={:.2} pg_p50_50_ms={:.2} limbs_max={} p50_{}_ms={:.2} p99_{}_ms={:.2} hub_cpu_ms_per_task={:.2} hub_mb_per_limb={:.3} catalogue_models={CATALOGUE_MODELS} p99_{}_models_ms={:.2} doubles={doubles}",
        p(&mut one, 0.5),
        p(&mut one, 0.99),
        p(&mut twenty, 0.5),
        p(&mut fifty, 0.5),
        p(&mut fifty, 0.99),
        p(&mut pg_one, 0.5),
        p(&mut pg_fifty, 0.5),
        largest.limbs,
        largest.limbs,
        largest.p50_ms,
        largest.limbs,
        largest.p99_ms,
        largest.hub_cpu_ms_per_task,
        largest.hub_mb_per_limb,
        pinned.limbs,
        pinned.p99_ms,
    );
}
