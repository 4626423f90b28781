//! Network benchmark: the test network of `tests/network` (a hub host, three
//! limb hosts in network namespaces, nginx terminating TLS, echo limbs that
//! answer at once). Submit → done for zero-work tasks, one at a time, on clean
//! links (the baseline, same run) and with 5 % of packets dropped at random on
//! every limb link (`iptables -m statistic`); then every limb cut off for
//! twice its lease with a task waiting, and the time from the links coming
//! back to that task being done; last, one limb cut off for 60 s with results
//! finished during the outage, and the time from the link coming back to the
//! hub having them all (from its outbox, run once). This process measures from the hub host: it
//! enters the hub's namespace and talks to the hub on that host's loopback as
//! the tenant's owner, watching `tenant_task` over one WebSocket.
//! The last line is machine-readable: `RESULT network …`.
//!
//!   source scripts/lib/env.sh; cargo bench --profile dev --workspace --bench network

mod common;
#[path = "../tests/network/net.rs"]
mod net;

use common::percentile;
use heiwa_hub::bindings::{tenant_task_table::TenantTaskTableAccess, TaskState};
use heiwa_hub::HubHttp;
use spacetimedb_sdk::{DbContext, TableWithPrimaryKey};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn task_count() -> usize {
    common::sized(100, 10)
}
/// Results a limb finishes while cut off, and how long the outage lasts.
const OUTBOX_TASKS: usize = 5;
fn outage() -> Duration {
    Duration::from_secs(common::sized(60, 4))
}

/// Submit → done, one task at a time, in ms.
fn latencies(
    http: &HubHttp,
    rt: &tokio::runtime::Runtime,
    token: &str,
    done: &mpsc::Receiver<u64>,
    from: usize,
) -> Vec<f64> {
    (from..from + task_count())
        .map(|i| {
            let sent = Instant::now();
            rt.block_on(http.submit_task_once("heiwa", &format!("b{i}"), &format!("bench {i}"), None, token)).unwrap();
            done.recv_timeout(Duration::from_secs(60)).expect("the task is done");
            sent.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn main() {
    let mut net = net::Net::new(3);
    net.start_hub();
    net.start_proxy();
    let invite = net::tenant(&net, 3);
    let limbs: Vec<net::Proc> = (1..=3).map(|n| net.start_limb(n, &invite)).collect();

    // From here on this process is on the hub host: its sockets open in that namespace.
    let netns = std::fs::File::open(format!("/var/run/netns/{}", net.host("hub"))).unwrap();
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("entering the hub host's namespace");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let base = format!("http://127.0.0.1:{}", net.hub_port);
    let http = HubHttp::new(&base);
    let token = std::fs::read_to_string(net.path("owner").join("identity.token")).unwrap().trim().to_string();
    let (done_tx, done) = mpsc::channel();
    let watcher = heiwa_hub::connect(
        &heiwa_hub::ws_url(&base).unwrap(),
        "heiwa",
        Some(token.clone()),
        vec!["SELECT * FROM tenant_task".into()],
        |_| {},
    )
    .expect("the owner's subscription");
    watcher.conn.db.tenant_task().on_update(move |_, old, new| {
        if new.state == TaskState::Done && old.state != TaskState::Done {
            let _ = done_tx.send(new.id);
        }
    });

    let mut clean = latencies(&http, &rt, &token, &done, 0);
    for n in 1..=3 {
        net.drop_packets(n, Some(0.05));
    }
    let mut lossy = latencies(&http, &rt, &token, &done, task_count());

    // Every limb cut off past its lease, a task waiting; the links come back.
    for n in 1..=3 {
        net.heal(n);
        net.drop_packets(n, None);
    }
    std::thread::sleep(Duration::from_secs(u64::from(net::LEASE_SECS) * 2 + 2));
    rt.block_on(http.submit_task_once("heiwa", "partitioned", "while every limb was cut off", None, &token)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let healed = Instant::now();
    for n in 1..=3 {
        net.heal(n);
    }
    done.recv_timeout(Duration::from_secs(60)).expect("the waiting task is done after healing");
    let heal_ms = healed.elapsed().as_secs_f64() * 1000.0;

    // One limb left, with a lease longer than the outage (its tasks stay its
    // own); it finishes its tasks while cut off, and the link is back 60 s later.
    let mut limbs = limbs;
    // Every execution by task id, from each limb's own lines ("executed ID"): a double is a second run.
    let mut runs: HashMap<u64, usize> = HashMap::new();
    let mut count_runs = |lines: Vec<String>| {
        for id in lines.iter().filter_map(|l| l.strip_prefix("executed ")).filter_map(|id| id.trim().parse().ok()) {
            *runs.entry(id).or_default() += 1;
        }
    };
    limbs.iter().for_each(|l| count_runs(l.lines()));
    limbs.clear();
    let away = net.start_limb_with(3, &invite, &["--lease-secs", "120", "--work-ms", "1500", "--max-in-flight", "5"]);
    for i in 0..OUTBOX_TASKS {
        rt.block_on(http.submit_task_once("heiwa", &format!("o{i}"), &format!("outbox {i}"), None, &token)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while away.count("claimed") < OUTBOX_TASKS {
        assert!(Instant::now() < deadline, "the limb took {} of {OUTBOX_TASKS}", away.count("claimed"));
        std::thread::sleep(Duration::from_millis(20));
    }
    net.drop_packets(3, None);
    std::thread::sleep(outage());
    // Read as the limb reads it (a fresh handle replays the journal each time).
    let waiting =
        || limb_core::claim::Outbox::beside(&net.path("limb3").join("limb.token")).unwrap().waiting().unwrap().len();
    let kept = waiting();
    let back = Instant::now();
    net.heal(3);
    for _ in 0..OUTBOX_TASKS {
        done.recv_timeout(Duration::from_secs(120)).expect("a result from the outbox reaches the hub");
    }
    let outbox_ms = back.elapsed().as_secs_f64() * 1000.0;
    // The hub's acknowledgement reaches the limb a moment after the owner sees the task done.
    let emptied = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        waiting() == 0
    });
    let outbox_ok = kept == OUTBOX_TASKS && away.count("executed") == OUTBOX_TASKS && emptied;

    let tasks: HashMap<u64, (String, bool)> = net.tasks();
    let expected = 2 * task_count() + 1 + OUTBOX_TASKS;
    let done_once = tasks.values().filter(|(state, result)| state == "done" && *result).count();
    let lost = expected - done_once;
    count_runs(away.lines());
    let executed: usize = runs.values().sum();
    let doubles: usize = runs.values().map(|n| n - 1).sum();
    let extra_rows = tasks.len().saturating_sub(expected);
    let (clean_p50, clean_p99) = (percentile(&mut clean, 0.5), percentile(&mut clean, 0.99));
    let (p50, p99) = (percentile(&mut lossy, 0.5), percentile(&mut lossy, 0.99));
    let task_count = task_count();
    println!(
        "clean links: submit → done p50 {clean_p50:.1} ms, p99 {clean_p99:.1} ms ({task_count} tasks, one at a time)"
    );
    println!(
        "5% packet loss on every limb link: p50 {p50:.1} ms, p99 {p99:.1} ms ({:.2}× the clean p50)",
        p50 / clean_p50
    );
    println!(
        "every limb cut off for {} s with a task waiting: done {heal_ms:.0} ms after the links came back",
        net::LEASE_SECS * 2 + 2
    );
    println!(
        "one limb cut off for {} s with {OUTBOX_TASKS} results finished: {kept} kept in its outbox, all at the hub \
         {outbox_ms:.0} ms after the link came back, the outbox then {}",
        outage().as_secs(),
        if emptied { "empty" } else { "NOT empty" }
    );
    println!(
        "{expected} tasks: {done_once} done with one result, {lost} lost, {extra_rows} extra task rows; \
         {executed} executions, {doubles} of them a second run of a task"
    );
    let result = common::result_prefix("network");
    println!(
        "{result} p50_ms={p50:.1} p99_ms={p99:.1} clean_p50_ms={clean_p50:.1} clean_p99_ms={clean_p99:.1} \
         loss_ratio={:.2} heal_ms={heal_ms:.0} outbox_ok={outbox_ok} outbox_ms={outbox_ms:.0} lost={lost} \
         doubles={doubles}",
        p50 / clean_p50
    );
    let _ = watcher.conn.disconnect();
}
