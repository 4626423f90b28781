//! Claim benchmark: submit → claimed latency and claims per second through the
//! real hub and the real limb claim loop (`run_limb`), against the best-known
//! Postgres job-queue pattern (LISTEN/NOTIFY + FOR UPDATE SKIP LOCKED, as River
//! and graphile-worker do) on the embedded PostgreSQL, in the same run.
//!
//! `cargo bench --profile dev --workspace --bench claims` (after `source scripts/lib/env.sh`).
//! The last line is machine-readable: `RESULT claim …`.

use heiwa_config::{free_loopback_port, Parts};
use heiwa_hub::{HubHttp, HubServer, HubServerConfig};
use heiwa_memory::{PgServer, PgServerConfig};
use limb_core::claim::{run_limb, EchoExecutor, LimbEvent, LimbOptions};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

const LATENCY_SAMPLES: usize = 200;
const THROUGHPUT_TASKS: usize = 2000;

mod common;
use common::percentile;

struct Hub {
    _server: HubServer,
    http: HubHttp,
    owner: String,
    invite: String,
}

async fn hub(parts: &Parts, dir: &std::path::Path, limbs: u32) -> Hub {
    let listen = format!("127.0.0.1:{}", free_loopback_port().unwrap()).parse().unwrap();
    let server =
        HubServer::start(&HubServerConfig { binary: parts.spacetimedb_bin.clone(), data_dir: dir.into(), listen })
            .unwrap();
    let http = HubHttp::new(server.http_url());
    let publisher = http.new_identity().await.unwrap();
    http.publish("heiwa", &parts.hub_wasm, &publisher.token).await.unwrap();
    let owner = http.new_identity().await.unwrap().token;
    http.call("heiwa", "create_tenant", serde_json::json!(["bench"]), &owner).await.unwrap();
    let invite = http.create_invite("heiwa", limbs, 3600, heiwa_hub::InviteRole::Limb, &owner).await.unwrap().0;
    Hub { _server: server, http, owner, invite }
}

/// Start `n` in-process limbs; returns their merged event stream at once.
fn start_limbs(
    hub: &Hub,
    dir: &std::path::Path,
    n: usize,
) -> (watch::Sender<bool>, mpsc::UnboundedReceiver<LimbEvent>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (events_tx, events) = mpsc::unbounded_channel();
    for i in 0..n {
        let options = LimbOptions {
            uri: hub.http.base_url().replacen("http://", "ws://", 1),
            database: "heiwa".into(),
            token_file: dir.join(format!("limb-{i}.token")),
            invite: Some(hub.invite.clone()),
            name: format!("bench-{i}"),
            lease_secs: 60,
            max_in_flight: 4,
            offer: Default::default(),
            governor: None,
            tasks: None,
        };
        tokio::spawn(run_limb(
            options,
            Arc::new(EchoExecutor { work: Duration::ZERO }),
            stop_rx.clone(),
            events_tx.clone(),
        ));
    }
    (stop_tx, events)
}

/// Start `n` in-process limbs; returns their merged event stream once all are ready.
async fn limbs(
    hub: &Hub,
    dir: &std::path::Path,
    n: usize,
) -> (watch::Sender<bool>, mpsc::UnboundedReceiver<LimbEvent>) {
    let (stop_tx, mut events) = start_limbs(hub, dir, n);
    let mut ready = 0;
    while ready < n {
        if let Some(LimbEvent::Ready { .. }) = events.recv().await {
            ready += 1;
        }
    }
    (stop_tx, events)
}

async fn next_claim(events: &mut mpsc::UnboundedReceiver<LimbEvent>) -> u64 {
    loop {
        if let Some(LimbEvent::Claimed(id)) = events.recv().await {
            return id;
        }
    }
}

/// Sequential submit → claimed latencies (ms) through the hub with `n` limbs.
async fn hub_latency(parts: &Parts, dir: &std::path::Path, n: usize) -> Vec<f64> {
    let hub = hub(parts, &dir.join("hub"), n as u32).await;
    let (stop, mut events) = limbs(&hub, dir, n).await;
    let mut samples = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        hub.http
            .call("heiwa", "submit_task", serde_json::json!([format!("latency {i}"), ""]), &hub.owner)
            .await
            .unwrap();
        next_claim(&mut events).await;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let _ = stop.send(true);
    tokio::time::sleep(Duration::from_millis(500)).await; // limbs release and disconnect before the hub stops
    samples
}

/// Claims per second with `n` racing limbs draining a backlog, and how many
/// tasks were claimed twice. Timed from the first claim to the last, so the
/// producer's speed is not what is measured.
async fn hub_throughput(parts: &Parts, dir: &std::path::Path, n: usize) -> (f64, usize) {
    let hub = hub(parts, &dir.join("hub"), n as u32).await;
    {
        use futures::StreamExt;
        futures::stream::iter(0..THROUGHPUT_TASKS)
            .map(|i| hub.http.call("heiwa", "submit_task", serde_json::json!([format!("load {i}"), ""]), &hub.owner))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }
    let (stop, mut events) = start_limbs(&hub, dir, n);
    let mut claims: HashMap<u64, usize> = HashMap::new();
    let mut first_claim = None;
    while claims.len() < THROUGHPUT_TASKS {
        if let Some(LimbEvent::Claimed(id)) = events.recv().await {
            first_claim.get_or_insert_with(Instant::now);
            *claims.entry(id).or_default() += 1;
        }
    }
    let elapsed = first_claim.unwrap().elapsed().as_secs_f64();
    let _ = stop.send(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    (THROUGHPUT_TASKS as f64 / elapsed, claims.values().map(|c| c - 1).sum())
}

const PG_SCHEMA: &str = "CREATE TABLE job (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, \
     state TEXT NOT NULL DEFAULT 'pending', claimed_by INT)";
const PG_CLAIM: &str = "UPDATE job SET state = 'claimed', claimed_by = $1 WHERE id = \
     (SELECT id FROM job WHERE state = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id";

/// `n` workers: LISTEN, and on each notification claim until the queue is empty.
async fn pg_workers(pool: &PgPool, n: usize) -> (watch::Sender<bool>, mpsc::UnboundedReceiver<i64>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (claimed_tx, claimed) = mpsc::unbounded_channel();
    for worker in 0..n {
        let mut listener = PgListener::connect_with(pool).await.unwrap();
        listener.listen("job_ready").await.unwrap();
        let (pool, claimed_tx, mut stop) = (pool.clone(), claimed_tx.clone(), stop_rx.clone());
        tokio::spawn(async move {
            loop {
                while let Ok(Some(id)) =
                    sqlx::query_scalar::<_, i64>(PG_CLAIM).bind(worker as i32).fetch_optional(&pool).await
                {
                    let _ = claimed_tx.send(id);
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = listener.recv() => {}
                }
            }
        });
    }
    (stop_tx, claimed)
}

async fn pg_submit(pool: &PgPool, payload: String) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO job (payload) VALUES ($1)").bind(payload).execute(&mut *tx).await.unwrap();
    sqlx::query("NOTIFY job_ready").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

async fn pg_latency(pool: &PgPool, n: usize) -> Vec<f64> {
    sqlx::query("TRUNCATE job").execute(pool).await.unwrap();
    let (stop, mut claimed) = pg_workers(pool, n).await;
    let mut samples = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        pg_submit(pool, format!("latency {i}")).await;
        claimed.recv().await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let _ = stop.send(true);
    samples
}

async fn pg_throughput(pool: &PgPool, n: usize) -> f64 {
    sqlx::query("TRUNCATE job").execute(pool).await.unwrap();
    {
        use futures::StreamExt;
        futures::stream::iter(0..THROUGHPUT_TASKS)
            .map(|i| pg_submit(pool, format!("load {i}")))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }
    let (stop, mut claimed) = pg_workers(pool, n).await;
    claimed.recv().await.unwrap();
    let first_claim = Instant::now();
    for _ in 1..THROUGHPUT_TASKS {
        claimed.recv().await.unwrap();
    }
    let elapsed = first_claim.elapsed().as_secs_f64();
    let _ = stop.send(true);
    THROUGHPUT_TASKS as f64 / elapsed
}

#[tokio::main]
async fn main() {
    let parts = Parts::from_env().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();

    let mut one = hub_latency(&parts, &dir.path().join("lat1"), 1).await;
    let mut twenty = hub_latency(&parts, &dir.path().join("lat20"), 20).await;
    let (claims_per_s, doubles) = hub_throughput(&parts, &dir.path().join("tp50"), 50).await;

    let mut pg =
        PgServer::new(PgServerConfig { install_dir: parts.pg_dir.clone(), root: dir.path().join("pg") }).unwrap();
    pg.start().unwrap();
    let pool = PgPoolOptions::new().max_connections(80).connect_with(pg.connect_options("postgres")).await.unwrap();
    sqlx::query(PG_SCHEMA).execute(&pool).await.unwrap();
    let mut pg_one = pg_latency(&pool, 1).await;
    let mut pg_twenty = pg_latency(&pool, 20).await;
    let pg_claims_per_s = pg_throughput(&pool, 50).await;
    pool.close().await;
    pg.stop().unwrap();

    println!("hub      1 limb : p50 {:.2} ms  p99 {:.2} ms", percentile(&mut one, 0.5), percentile(&mut one, 0.99));
    println!(
        "hub     20 limbs: p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut twenty, 0.5),
        percentile(&mut twenty, 0.99)
    );
    println!("hub     50 limbs: {claims_per_s:.0} claims/s, {doubles} double claims");
    println!(
        "pg   1 worker   : p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut pg_one, 0.5),
        percentile(&mut pg_one, 0.99)
    );
    println!(
        "pg  20 workers  : p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut pg_twenty, 0.5),
        percentile(&mut pg_twenty, 0.99)
    );
    println!("pg  50 workers  : {pg_claims_per_s:.0} claims/s");
    println!(
        "RESULT claim p50_ms={:.2} p99_ms={:.2} p50_20_ms={:.2} p99_20_ms={:.2} claims_per_s={claims_per_s:.0} pg_p50_ms={:.2} pg_p50_20_ms={:.2} pg_claims_per_s={pg_claims_per_s:.0} doubles={doubles}",
        percentile(&mut one, 0.5),
        percentile(&mut one, 0.99),
        percentile(&mut twenty, 0.5),
        percentile(&mut twenty, 0.99),
        percentile(&mut pg_one, 0.5),
        percentile(&mut pg_twenty, 0.5),
    );
}
