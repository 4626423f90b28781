//! Credit's cost and its sums on the claims drain (issue 37): the same backlog
//! drained by the same number of in-process limbs (the real claim loop,
//! signing every result) on two fresh hubs per round in one run, one with
//! credit on — each accepted result appends a ledger row and updates its
//! limb's sums in the result's own transaction — and one with it off (the
//! admin's `set_credit(false)`), the order alternated by round. `drain_ratio`
//! is the median over rounds of each round's on/off ratio: a round's two
//! drains run back to back, so a machine that speeds up or slows down over
//! the minutes of a run (as this one does) moves both; the ratio of the two
//! sides' medians is reported beside it. Then each "on"
//! hub's ledger against the credit rule applied to the results it accepted:
//! `drift` is the difference in milli-credits (0 expected), `paid_twice` the
//! tasks with more than one ledger row; the limbs' sums (`limb_credit`) must
//! add up to the ledger.
//!
//! `cargo bench --profile dev --workspace --bench credit` (after `source scripts/lib/env.sh`).
//! The last line is machine-readable: `RESULT credit drain_ratio=… drift=0 …`.

use std::collections::HashMap;

mod common;
use common::drain::{drain, hub};
use common::{percentile, result_prefix, sized};

#[derive(serde::Deserialize)]
struct Done {
    task_id: u64,
    summary: String,
}

#[derive(serde::Deserialize)]
struct Sums {
    milli: u64,
    tasks: u64,
}

#[derive(serde::Deserialize)]
struct Payload {
    id: u64,
    payload: String,
}

/// The ledger of `hub` against the rule applied to every result it accepted:
/// (|paid − expected| in milli-credits, tasks with more than one ledger row).
async fn audit(hub: &common::drain::Hub, tasks: usize) -> (u64, usize) {
    let (http, owner) = (&hub.http, &hub.owner);
    let ledger = http.credit_ledger("heiwa", None, owner).await.unwrap();
    let results: Vec<Done> = http.rows_as("heiwa", "SELECT * FROM task_result", owner).await.unwrap();
    let payloads: HashMap<u64, String> = http
        .rows_as::<Payload>("heiwa", "SELECT * FROM task", owner)
        .await
        .unwrap()
        .into_iter()
        .map(|task| (task.id, task.payload))
        .collect();
    assert_eq!(results.len(), tasks, "every task has its result");
    let expected: u64 = results.iter().map(|r| heiwa_hub::result_credit(&payloads[&r.task_id], &r.summary, 0)).sum();
    let paid: u64 = ledger.iter().filter(|row| row.kind == "earned").map(|row| row.milli).sum();
    // Each limb's sums, added to once per call of results (`credit::Payee`), are its ledger rows added up.
    let sums: Vec<Sums> = http.rows_as("heiwa", "SELECT * FROM limb_credit", &hub.admin).await.unwrap();
    let summed = (sums.iter().map(|s| s.milli).sum::<u64>(), sums.iter().map(|s| s.tasks).sum::<u64>());
    assert_eq!(summed, (paid, tasks as u64), "the limbs' sums (milli, tasks) are the ledger's");
    let mut rows_per_task: HashMap<u64, usize> = HashMap::new();
    for row in &ledger {
        *rows_per_task.entry(row.task_id).or_default() += 1;
    }
    (paid.abs_diff(expected), rows_per_task.values().filter(|n| **n > 1).count())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let parts = heiwa_testkit::parts();
    let dir = tempfile::tempdir().unwrap();
    let (limbs, tasks, rounds) = (sized(20, 4), sized(6000, 100), sized(9, 1));
    let (mut on, mut off, mut paired) = (Vec::new(), Vec::new(), Vec::new());
    let (mut drift, mut paid_twice) = (0, 0);
    for round in 0..rounds {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for credit in order {
            let at = dir.path().join(format!("{round}-{credit}"));
            let hub = hub(&parts, &at.join("hub"), limbs as u32).await;
            if !credit {
                hub.http.set_credit("heiwa", false, &hub.admin).await.unwrap();
            }
            let (tasks_per_s, doubles) = drain(&hub, &at, limbs, tasks).await;
            assert_eq!(doubles, 0, "no task ran twice");
            if credit {
                let (off_by, twice) = audit(&hub, tasks).await;
                drift += off_by;
                paid_twice += twice;
                on.push(tasks_per_s);
            } else {
                assert!(hub.http.credit_ledger("heiwa", None, &hub.owner).await.unwrap().is_empty(), "off: no rows");
                off.push(tasks_per_s);
            }
            println!("round {round}: credit {} — {tasks_per_s:.0} tasks/s", if credit { "on" } else { "off" });
            hub.server.stop();
        }
        paired.push(on[round] / off[round]);
    }
    let (on_tps, off_tps) = (percentile(&mut on, 0.5), percentile(&mut off, 0.5));
    let each_round = paired.iter().map(|ratio| format!("{ratio:.3}")).collect::<Vec<_>>().join(" ");
    let drain_ratio = percentile(&mut paired, 0.5);
    println!(
        "{limbs} limbs draining {tasks} signed results, median of {rounds} round(s): credit on {on_tps:.0} tasks/s, \
         off {off_tps:.0} tasks/s; each round's on/off {each_round}; ledger drift {drift} milli-credits, \
         {paid_twice} tasks paid twice"
    );
    println!(
        "{} drain_ratio={drain_ratio:.3} ratio_of_medians={:.3} drift={drift} paid_twice={paid_twice} \
         on_tasks_per_s={on_tps:.0} off_tasks_per_s={off_tps:.0} limbs={limbs} tasks={tasks} rounds={rounds}",
        result_prefix("credit"),
        on_tps / off_tps
    );
}
