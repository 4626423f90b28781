//! Credit on a real hub, earned by a limb over a real WebSocket: only a signed
//! result the hub accepts pays; the ledger is the hub's alone to write; a limb
//! reads its own sums, the tenant's readers the ledger, another tenant
//! nothing. (Escrow, release and revocation: `trust.rs`, with a lying limb.)

use super::mesh::tenant_with_invite;
use super::{call, local_hub_as_admin, parts, recv, ws_limb, WsLimb};
use heiwa_hub::bindings::{complete_task, complete_task_signed};
use heiwa_hub::{HubHttp, HubLimits, InviteRole, TaskState};
use serde_json::json;
use std::time::{Duration, Instant};

/// The next task assigned to `limb` other than `not`.
fn assigned(limb: &WsLimb, not: u64) -> heiwa_hub::bindings::Task {
    loop {
        let task = recv(&limb.tasks, "an assigned task");
        if task.id != not && task.assigned_to == limb.id {
            return task;
        }
    }
}

async fn state_of(http: &HubHttp, owner: &str, task: u64) -> String {
    let rows = http.rows("heiwa", &format!("SELECT * FROM task WHERE id = {task}"), owner).await.unwrap();
    rows[0]["state"].as_str().unwrap_or_default().to_string()
}

async fn until_done(http: &HubHttp, owner: &str, task: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while state_of(http, owner, task).await != TaskState::Done.name() {
        assert!(Instant::now() < deadline, "task {task} was never done");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_signed_accepted_results_earn_credit_and_nobody_but_the_hub_writes_the_ledger() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, admin) = local_hub_as_admin(&parts, dir.path()).await;
    let (owner, invite) = tenant_with_invite(&http, 1).await;
    let (limb, limb_token) = ws_limb(&server, &http, &invite, "donor", 1).await;

    // An unsigned result is accepted as the task's answer, and earns nothing.
    http.submit_task("heiwa", "unsigned, please", None, &owner).await.unwrap();
    let first = assigned(&limb, 0);
    limb.conn.conn.reducers.complete_task(first.id, limb.id, "an answer nobody signed".into()).unwrap();
    until_done(&http, &owner, first.id).await;
    assert!(http.credit_ledger("heiwa", None, &owner).await.unwrap().is_empty(), "no credit without a signature");

    // A signed one earns what the rule says of it, once.
    http.submit_task("heiwa", "signed, please", None, &owner).await.unwrap();
    let second = assigned(&limb, first.id);
    let summary = "a signed answer ".repeat(50);
    let statement = json!({ "task": second.id, "limb": limb.id }).to_string();
    limb.conn.conn.reducers.complete_task_signed(second.id, limb.id, summary.clone(), statement, vec![7; 64]).unwrap();
    until_done(&http, &owner, second.id).await;
    let ledger = http.credit_ledger("heiwa", None, &owner).await.unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    let milli = heiwa_hub::result_credit("signed, please", &summary, 0);
    assert_eq!(milli, 3000, "a credit, and two for 800 characters");
    assert_eq!(
        (ledger[0].limb_id, ledger[0].task_id, ledger[0].kind.as_str(), ledger[0].milli),
        (limb.id, second.id, "earned", milli)
    );

    // The limb reads its own sums (a donor needs no reader's rights); the owner reads the ledger.
    let own = http.rows("heiwa", "SELECT * FROM limb_credit", &limb_token).await.unwrap();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!((own[0]["milli"].as_u64(), own[0]["tasks"].as_u64()), (Some(milli), Some(1)), "{own:?}");
    assert!(http.rows("heiwa", "SELECT * FROM credit_event", &limb_token).await.unwrap().is_empty(), "not a reader");
    // Another tenant's owner sees none of it.
    let stranger = http.new_identity().await.unwrap().token;
    call(&http, &stranger, "create_tenant", json!(["elsewhere"])).await;
    assert!(http.credit_ledger("heiwa", None, &stranger).await.unwrap().is_empty());
    assert!(http.rows("heiwa", "SELECT * FROM limb_credit", &stranger).await.unwrap().is_empty());

    // Nobody but the hub writes it: not the owner, a submitter, a browser, nor the limb itself.
    let submitter = http.new_identity().await.unwrap().token;
    let code = http.create_invite("heiwa", 1, 600, InviteRole::Submitter, &owner).await.unwrap();
    http.join_tenant("heiwa", &code.0, &submitter).await.unwrap();
    let browser = http.new_identity().await.unwrap().token;
    let code = http.create_browser_invite("heiwa", true, "credit test", 600, &owner).await.unwrap();
    call(&http, &browser, "join_dashboard", json!([code.0])).await;
    for (who, token) in [("owner", &owner), ("submitter", &submitter), ("browser", &browser), ("limb", &limb_token)] {
        for dml in [
            "DELETE FROM credit_event",
            "UPDATE credit_event SET milli = 1000000",
            "UPDATE limb_credit SET milli = 1000000",
        ] {
            let refused = http.sql("heiwa", dml, token).await.expect_err(dml).to_string();
            // The database's owner is the hub's publisher (its admin), never a tenant's identity.
            assert!(refused.contains("Only owners are authorized to run SQL DML"), "{who}, {dml:?}: {refused}");
        }
    }
    // Nor turns it off: that is the hub's admin's (the credit benchmark's baseline).
    let refused = super::refusal(&http, &owner, "set_credit", json!([false])).await;
    assert!(refused.contains("only the hub's admin"), "{refused}");
    assert_eq!(http.credit_ledger("heiwa", None, &owner).await.unwrap(), ledger, "the ledger is as the hub wrote it");
    let own_after = http.rows("heiwa", "SELECT * FROM limb_credit", &limb_token).await.unwrap();
    assert_eq!(own_after[0]["milli"].as_u64(), Some(milli));

    // Past the hub's retention the rows go, their sums stay (rolled up per limb).
    let sums = http.credit("heiwa", None, &owner).await.unwrap();
    assert_eq!((sums.len(), sums[0].all.milli, sums[0].all.tasks), (1, milli, 1), "{sums:?}");
    let defaults = http.limits("heiwa", &admin).await.unwrap();
    http.configure("heiwa", &HubLimits { retain_secs: 1, prune_every_secs: 1, ..defaults }, &admin).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !http.credit_ledger("heiwa", None, &owner).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the ledger was never rolled up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rolled = http.credit("heiwa", None, &owner).await.unwrap();
    assert_eq!(rolled[0].all, sums[0].all, "the same sums from the rollup: {rolled:?}");
    assert_eq!(rolled[0].week.milli, 0, "a rolled row counts in all time only");
    assert!(
        http.rows("heiwa", "SELECT * FROM credit_rollup", &stranger).await.unwrap().is_empty(),
        "nor another tenant's"
    );
    server.stop();
}

/// Sign and complete `task` as `limb` (the hub stores the proof as sent).
fn complete_signed(limb: &WsLimb, task: u64) {
    let statement = json!({ "task": task, "limb": limb.id }).to_string();
    limb.conn.conn.reducers.complete_task_signed(task, limb.id, "an answer".into(), statement, vec![7; 64]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_credit_first_a_donors_own_task_goes_ahead_of_the_queue_and_off_it_waits_its_turn() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, _admin) = local_hub_as_admin(&parts, dir.path()).await;
    let (owner, invite) = tenant_with_invite(&http, 1).await;
    let (limb, limb_token) = ws_limb(&server, &http, &invite, "donor", 1).await;
    // The donor submits as its limb (as the desktop app joined to a hub does), once the owner lets it.
    call(&http, &owner, "grant_limb", json!([limb.id, false, true])).await;
    assert!(!http.credit_priority("heiwa", &owner).await.unwrap(), "off by default");
    let refused = super::refusal(&http, &limb_token, "set_credit_priority", json!([true])).await;
    assert!(refused.contains("only the tenant's owner"), "{refused}");

    // The donor earns credit, then its one slot is taken while tasks queue: two of the owner's, then the donor's own.
    http.submit_task("heiwa", "earn", None, &owner).await.unwrap();
    let earned = assigned(&limb, 0);
    complete_signed(&limb, earned.id);
    until_done(&http, &owner, earned.id).await;
    http.set_credit_priority("heiwa", true, &owner).await.unwrap();
    assert!(http.credit_priority("heiwa", &owner).await.unwrap());
    http.submit_task("heiwa", "busy", None, &owner).await.unwrap();
    let busy = assigned(&limb, earned.id);
    let mut queued = Vec::new();
    for (payload, token) in [("owner first", &owner), ("owner second", &owner), ("donor own", &limb_token)] {
        http.submit_task("heiwa", payload, None, token).await.unwrap();
        let rows =
            http.rows("heiwa", &format!("SELECT * FROM task WHERE payload = '{payload}'"), &owner).await.unwrap();
        queued.push(rows[0]["id"].as_u64().unwrap());
    }
    complete_signed(&limb, busy.id);
    let next = assigned(&limb, busy.id);
    assert_eq!(next.id, queued[2], "the donor's own task went ahead of the older ones");
    complete_signed(&limb, next.id);
    let after = assigned(&limb, next.id);
    assert_eq!(after.id, queued[0], "then the oldest");

    // Off again: a donor's task waits its turn, oldest first.
    http.set_credit_priority("heiwa", false, &owner).await.unwrap();
    http.submit_task("heiwa", "donor second", None, &limb_token).await.unwrap();
    complete_signed(&limb, after.id);
    assert_eq!(assigned(&limb, after.id).id, queued[1], "the owner's older task first");
    server.stop();
}
