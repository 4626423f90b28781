//! Cutover benchmark: `heiwa migrate surrealdb`'s whole pipeline against raw
//! `migrate_*` reducer calls on the same hub, in the same run.
//!
//! A legacy database of ~30,000 records is written by SurrealDB itself (the
//! test fixture, `surrealdb` package). The baseline: the same records,
//! already read and planned (untimed), sent as raw batched reducer calls to a
//! second database on the same hub server: what the hub itself takes. The
//! measured run: reading SurrealDB through its engine, planning each record,
//! reading the hub's map, writing, into a fresh database. `verified` is
//! `--verify`'s verdict afterwards. The other bound no migration can beat is
//! SurrealDB reading every record (the same reader, nothing done with the
//! records): `ratio_vs_read`. For scale, one record per reducer call (1,000
//! of them) is also timed.
//! The last line is machine-readable: `RESULT migrate …`.
//!
//!   source scripts/lib/env.sh; cargo bench --profile dev --workspace --bench migrate

mod common;

use heiwa_config::Parts;
use heiwa_migrate::claims::ClaimJournal;
use heiwa_migrate::plan::Planner;
use heiwa_migrate::source::{Line, Source, SourceSpec};
use heiwa_migrate::target::HubTarget;
use heiwa_migrate::{Kind, Mapping, Options, Planned};
use heiwa_testkit::TestHub;
use std::time::Instant;

/// CPU seconds a process has used (user + system), and its reaped children (the readers).
fn cpu_s(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<f64> = stat.rsplit(')').next().unwrap().split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // After the state letter: utime, stime, cutime, cstime are fields 14-17 of stat(5), in clock ticks.
    ((fields[10] + fields[11]) / 100.0, (fields[12] + fields[13]) / 100.0)
}

#[tokio::main]
async fn main() {
    let parts = Parts::find(None).unwrap_or_else(|missing| panic!("{missing}"));
    let python = std::env::var("HEIWA_MIGRATE_PYTHON").expect("HEIWA_MIGRATE_PYTHON (scripts/lib/env.sh sets it)");
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legacy_surrealdb.py");
    let built = std::process::Command::new(&python)
        .args([fixture, legacy.to_str().unwrap(), "20", "25", common::sized("29500", "500")])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));

    let TestHub { server, http, admin, .. } =
        TestHub::start_with(&parts, &dir.path().join("hub"), &["raw", "single", "heiwa"]).await;
    let options = Options {
        source: SourceSpec {
            url: format!("surrealkv://{}", legacy.display()),
            namespace: "legacy".into(),
            database: "app".into(),
            python: python.into(),
        },
        mapping: Mapping::default_mapping(),
        dry_run: false,
        documents_for: None,
    };

    // The other bound: SurrealDB's engine reading every record, nothing done with them.
    let started = Instant::now();
    let mut source = Source::open(&options.source, &options.mapping.tables()).await.unwrap();
    let mut read = 0usize;
    while let Some(line) = source.next().await {
        read += usize::from(matches!(line.unwrap(), Line::Record(_)));
    }
    let read_s = started.elapsed().as_secs_f64();
    let read_per_s = read as f64 / read_s;

    // The baseline's records: read and planned before the clock starts.
    let mut planner = Planner::new(options.mapping.clone());
    let mut source = Source::open(&options.source, &options.mapping.tables()).await.unwrap();
    let mut planned: Vec<Planned> = Vec::new();
    while let Some(line) = source.next().await {
        if let Line::Record(raw) = line.unwrap() {
            if let Ok(record) = planner.plan(&raw) {
                planned.extend(Some(record).filter(|r| r.kind() != Kind::Document));
            }
        }
    }
    let records = planned.len();
    // Claim codes are made (and journaled) by heiwa, as a migration does, before anything is timed.
    let journal = |name: &str| ClaimJournal::beside(&dir.path().join(name));
    journal("raw.csv").assign(&mut planned).unwrap();
    let single = HubTarget::new(http.clone(), "single", &admin, journal("single.csv"));
    let started = Instant::now();
    for record in planned.iter().take(1000) {
        single.write(record.kind(), vec![record.clone()]).await.unwrap();
    }
    let single_per_s = 1000.0 / started.elapsed().as_secs_f64();
    // The raw calls' bodies are written before the clock starts too: only the calls are timed.
    let mut bodies = Vec::new();
    for kind in [Kind::Tenant, Kind::Member, Kind::Task] {
        let of_kind: Vec<&Planned> = planned.iter().filter(|r| r.kind() == kind).collect();
        for batch in of_kind.chunks(hub_rules::migration::MAX_MIGRATION_BATCH) {
            let records: Vec<String> = batch.iter().filter_map(|r| r.hub_json()).collect();
            bodies.push((heiwa_migrate::target::reducer_of(kind), format!("[[{}]]", records.join(","))));
        }
    }
    let hub_before = cpu_s(server.pid()).0;
    let started = Instant::now();
    for (reducer, body) in bodies {
        http.call_json("raw", reducer, body, &admin).await.unwrap();
    }
    let raw_s = started.elapsed().as_secs_f64();
    let raw_hub_cpu = cpu_s(server.pid()).0 - hub_before;
    let raw_per_s = records as f64 / raw_s;

    let target = HubTarget::new(http.clone(), "heiwa", &admin, journal("claims.csv"));
    let (hub_before, (heiwa_before, readers_before)) = (cpu_s(server.pid()).0, cpu_s(std::process::id()));
    let started = Instant::now();
    let report = heiwa_migrate::migrate(&options, Some(&target), None, &mut |_| {}).await.unwrap();
    let migrate_s = started.elapsed().as_secs_f64();
    let (heiwa_after, readers_after) = cpu_s(std::process::id());
    let cpu = [cpu_s(server.pid()).0 - hub_before, heiwa_after - heiwa_before, readers_after - readers_before];
    let written: u64 = report.counts.values().map(|c| c.added).sum();
    assert_eq!(written as usize, records, "the pipeline wrote what the baseline did");
    let migrate_per_s = records as f64 / migrate_s;
    let checks = heiwa_migrate::verify::verify(&options, Some(&target), None).await.unwrap();
    let verified = checks.iter().all(|check| check.matches());

    println!("| {} records ({} read, {} problems) | |", records, report.records(), report.problems.len());
    println!("|---|---|");
    println!("| raw batched reducer calls | {raw_s:.2} s: {raw_per_s:.0} records/s (hub CPU {raw_hub_cpu:.2} s) |");
    println!("| heiwa migrate surrealdb (read, plan, write) | {migrate_s:.2} s: {migrate_per_s:.0} records/s |");
    println!("| its CPU: hub / heiwa / SurrealDB reader | {:.2} s / {:.2} s / {:.2} s |", cpu[0], cpu[1], cpu[2]);
    println!("| SurrealDB reading every record, nothing else | {read_s:.2} s: {read_per_s:.0} records/s |");
    println!("| one record per reducer call (1,000) | {single_per_s:.0} records/s |");
    let result = common::result_prefix("migrate");
    println!(
        "{result} records_per_s={migrate_per_s:.0} ratio_vs_raw={:.2} verified={verified} ratio_vs_read={:.2} \
         ratio_vs_single_calls={:.1} raw_records_per_s={raw_per_s:.0} read_records_per_s={read_per_s:.0} \
         single_call_records_per_s={single_per_s:.0} records={records}",
        migrate_per_s / raw_per_s,
        migrate_per_s / read_per_s,
        migrate_per_s / single_per_s
    );
    server.stop();
}
