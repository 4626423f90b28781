//! Replication with a quorum on a real hub, with real limbs (`trust_limbs`):
//! honest ones and one that lies.

use super::trust_limbs::{computed, decided, limb, rows};
use super::{local_hub, parts};
use heiwa_hub::InviteRole;
use std::time::Duration;

/// Limb id → donor (the invite it joined with), as the test made them.
fn donor(names: &[(u64, &str)], limb_id: u64) -> String {
    let name = names.iter().find(|(id, _)| *id == limb_id).map(|(_, n)| *n).unwrap_or("?");
    name.trim_end_matches(char::is_numeric).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_go_to_different_donors_an_honest_pair_agrees_and_a_liar_is_outvoted() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let owner = http.new_identity().await.unwrap().token;
    super::call(&http, &owner, "create_tenant", serde_json::json!(["trust"])).await;
    let invite = |uses| {
        let (http, owner) = (&http, &owner);
        async move { http.create_invite("heiwa", uses, 600, InviteRole::Limb, owner).await.unwrap().0 }
    };
    // Donor "a" has two limbs (one invite); donors "b" and "liar" one each.
    let (a, b, liar) = (invite(2).await, invite(1).await, invite(1).await);
    let _a1 = limb(&http, dir.path(), &a, "a1", false).await;
    let _a2 = limb(&http, dir.path(), &a, "a2", false).await;

    // Only donor a is here: the second copy waits rather than go to a's other limb.
    http.submit_task_replicated("heiwa", None, "the first payload", None, 2, &owner).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks = rows(&http, &owner, "SELECT * FROM task").await;
    assert_eq!(tasks.len(), 2, "two copies: {tasks:#?}");
    let states: Vec<&str> = tasks.iter().filter_map(|t| t["state"].as_str()).collect();
    assert!(states.contains(&"done") && states.contains(&"pending"), "one answered, one waiting: {states:?}");
    let _b = limb(&http, dir.path(), &b, "b", false).await;
    let first = decided(&http, &owner, 1).await;
    assert_eq!(first[0]["verdict"], "agreed", "{first:#?}");

    // The liar joins; replicated tasks go on.
    let _liar = limb(&http, dir.path(), &liar, "liar", true).await;
    const TASKS: usize = 24;
    for i in 0..TASKS {
        let payload = format!("replicated payload {i}");
        http.submit_task_replicated("heiwa", Some(&payload), &payload, None, 2, &owner).await.unwrap();
    }
    let sets = decided(&http, &owner, TASKS + 1).await;
    let limbs = rows(&http, &owner, "SELECT * FROM limb").await;
    let names: Vec<(u64, &str)> =
        limbs.iter().map(|l| (l["id"].as_u64().unwrap(), l["name"].as_str().unwrap())).collect();
    let results = rows(&http, &owner, "SELECT * FROM task_result").await;
    let answered_by = |task: u64| {
        results.iter().find(|r| r["task_id"].as_u64() == Some(task)).and_then(|r| r["limb_id"].as_u64()).unwrap()
    };
    let tasks = rows(&http, &owner, "SELECT * FROM task").await;
    let liar_id = names.iter().find(|(_, n)| *n == "liar").unwrap().0;
    let (mut with_liar, mut trusted) = (0, 0);
    for set in &sets {
        let copies: Vec<u64> = set["copies"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
        let payload = tasks.iter().find(|t| t["id"].as_u64() == Some(copies[0])).unwrap()["payload"].as_str().unwrap();
        if set["verdict"] == "trusted" {
            // An honest limb that earned its streak here answered alone; the liar never earns one.
            assert_eq!(copies.len(), 1, "{set:#?}");
            assert_ne!(answered_by(copies[0]), liar_id, "{set:#?}");
            let summary = results.iter().find(|r| r["task_id"].as_u64() == Some(copies[0])).unwrap()["summary"].clone();
            assert_eq!(summary, computed(payload).as_str());
            trusted += 1;
            continue;
        }
        assert_eq!(set["verdict"], "agreed", "every set agrees: two honest donors outvote one liar: {set:#?}");
        assert_eq!(set["answer"], computed(payload).as_str(), "the agreed answer is the true one: {set:#?}");
        let donors: Vec<String> = copies.iter().map(|c| donor(&names, answered_by(*c))).collect();
        let mut distinct = donors.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), donors.len(), "never two copies to one donor's limbs: {donors:?}");
        let lied = copies.iter().any(|c| answered_by(*c) == liar_id);
        assert_eq!(copies.len(), if lied { 3 } else { 2 }, "a third copy exactly when the liar was in: {set:#?}");
        assert!(!set["agreeing"].as_array().unwrap().contains(&serde_json::json!(liar_id)));
        with_liar += usize::from(lied);
    }
    assert!(with_liar > 0, "the liar got copies (it is a third of the donors)");
    eprintln!(
        "{} replicated tasks: {with_liar} with the liar, each outvoted; {trusted} answered by a trusted limb alone",
        sets.len()
    );

    // The records: the liar disputed every time, honest limbs never (no false alarms).
    let trust = rows(&http, &owner, "SELECT * FROM limb_trust").await;
    for record in &trust {
        let (id, disputed, agreed) = (
            record["limb_id"].as_u64().unwrap(),
            record["disputed"].as_u64().unwrap(),
            record["agreed"].as_u64().unwrap(),
        );
        if id == liar_id {
            assert_eq!((disputed, agreed, record["streak"].as_u64()), (with_liar as u64, 0, Some(0)), "{record:#?}");
        } else {
            assert_eq!(disputed, 0, "an honest limb is never disputed: {record:#?}");
        }
    }
    // The owner sees the records.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["tenant", "limbs", "--hub", http.base_url()])
        .env("HEIWA_TOKEN_FILE", {
            let file = dir.path().join("owner.token");
            std::fs::write(&file, &owner).unwrap();
            file
        })
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let liar_line = listed.lines().find(|l| l.contains("liar")).unwrap_or_else(|| panic!("{listed}"));
    assert!(liar_line.contains(&format!(" {with_liar} ")) && liar_line.contains("every replicated task"), "{listed}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limb_with_a_long_clean_record_is_spot_checked_instead_of_copied() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let owner = http.new_identity().await.unwrap().token;
    super::call(&http, &owner, "create_tenant", serde_json::json!(["trust"])).await;
    let mut stops = Vec::new();
    for name in ["a", "b"] {
        let code = http.create_invite("heiwa", 1, 600, InviteRole::Limb, &owner).await.unwrap().0;
        stops.push(limb(&http, dir.path(), &code, name, false).await);
    }
    // Until both limbs have TRUSTED_STREAK agreed results, every task is copied.
    let streak = heiwa_hub::TRUSTED_STREAK as usize;
    for i in 0..streak {
        http.submit_task_replicated("heiwa", None, &format!("earning {i}"), None, 2, &owner).await.unwrap();
    }
    let sets = decided(&http, &owner, streak).await;
    assert!(sets.iter().all(|s| s["verdict"] == "agreed"), "no limb is trusted before its streak: {sets:#?}");
    // Now both are trusted: most replicated tasks run once; about one in ten is still copied.
    const MORE: usize = 30;
    for i in 0..MORE {
        http.submit_task_replicated("heiwa", None, &format!("trusted {i}"), None, 2, &owner).await.unwrap();
    }
    let mut sets = decided(&http, &owner, streak + MORE).await;
    sets.sort_by_key(|s| s["task_id"].as_u64());
    let trusted = sets.iter().filter(|s| s["verdict"] == "trusted").count();
    let checked = sets.iter().skip(streak).filter(|s| s["verdict"] == "agreed").count();
    assert_eq!(trusted + checked, MORE, "{sets:#?}");
    // 10 % spot checks of 30: P(trusted < 15) is below 1e-9.
    assert!(trusted >= 15, "trusted limbs are mostly not copied: {trusted} of {MORE}");
    let trust = rows(&http, &owner, "SELECT * FROM limb_trust").await;
    let skips: u64 = trust.iter().map(|r| r["trusted_skips"].as_u64().unwrap()).sum();
    let spot: u64 = trust.iter().map(|r| r["spot_checks"].as_u64().unwrap()).sum();
    assert_eq!((skips as usize, spot as usize), (trusted, checked), "{trust:#?}");
    server.stop();
}
