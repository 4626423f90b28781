//! The hub's own rules against a real server: quotas, retention with export
//! first, and tasks pinned to a model.

use super::mesh::{executions, result_limbs, tasks, tenant_with_invite, LimbProcess, PENDING};
use super::{local_hub_as_admin, local_hub_with_config, parts};
use heiwa_hub::{HubHttp, HubLimits};
use std::time::Duration;

async fn submit(http: &HubHttp, token: &str, payload: &str) -> Result<(), String> {
    http.submit_task("heiwa", payload, None, token).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_submits_with_a_clear_error_and_lose_nothing_accepted() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, admin) = local_hub_as_admin(&parts, dir.path()).await;
    let (owner, _) = tenant_with_invite(&http, 1).await;
    let defaults = http.limits("heiwa", &owner).await.unwrap();
    let strict = HubLimits { max_open_tasks: 5, submits_per_sec: 2, submit_burst: 3, ..defaults };
    let refused = http.configure("heiwa", &strict, &owner).await.unwrap_err().to_string();
    assert!(refused.contains("only the hub's admin"), "a tenant owner is not the hub's admin: {refused}");

    // The admin sets them as `heiwa hub limits` (its token in a 0600 file).
    let admin_file = dir.path().join("admin.token");
    heiwa_config::write_secret(&admin_file, &admin).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["hub", "limits", "--max-open-tasks", "5", "--submits-per-sec", "2", "--submit-burst", "3"])
        .env("HEIWA_HUB", http.base_url())
        .env("HEIWA_TOKEN_FILE", &admin_file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((shown["max_open_tasks"].as_u64(), shown["submit_burst"].as_u64()), (Some(5), Some(3)));
    assert_eq!(http.limits("heiwa", &owner).await.unwrap(), strict, "members read the limits");

    // A burst of 3, then the rate: the 4th at once is refused with when to retry.
    for i in 0..3 {
        submit(&http, &owner, &format!("burst {i}")).await.unwrap();
    }
    let too_fast = submit(&http, &owner, "one too many").await.unwrap_err();
    assert!(too_fast.contains("at most 2 tasks a second") && too_fast.contains("try again in"), "{too_fast}");

    // Refilled, two more reach the open-task limit of 5; the next is refused for that.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    submit(&http, &owner, "fourth").await.unwrap();
    submit(&http, &owner, "fifth").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let full = submit(&http, &owner, "sixth").await.unwrap_err();
    assert!(full.contains("5 unfinished tasks, its limit") && full.contains("nothing was lost"), "{full}");

    let all = tasks(&http, &owner).await;
    assert_eq!(all.len(), 5, "every accepted task is there, no refused one: {all:?}");
    assert!(all.iter().all(|t| t.1 == PENDING));

    // A finished task frees its place under the limit.
    http.cancel_task("heiwa", all[0].0, &owner).await.unwrap();
    submit(&http, &owner, "sixth, later").await.expect("room again");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_pruned_after_the_retention_and_an_export_keeps_them() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, admin) = local_hub_as_admin(&parts, &dir.path().join("hub")).await;
    let (owner, _) = tenant_with_invite(&http, 1).await;
    for payload in ["keep me waiting", "done soon", "also done"] {
        submit(&http, &owner, payload).await.unwrap();
    }
    let ids: Vec<u64> = tasks(&http, &owner).await.into_iter().map(|t| t.0).collect();
    for id in &ids[1..] {
        http.cancel_task("heiwa", *id, &owner).await.unwrap();
    }

    // Export first, as `heiwa task export` (the owner's token in a 0600 file).
    let token_file = dir.path().join("owner.token");
    heiwa_config::write_secret(&token_file, &owner).unwrap();
    let out = dir.path().join("tasks.jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["task", "export", "--out", out.to_str().unwrap()])
        .env("HEIWA_HUB", http.base_url())
        .env("HEIWA_TOKEN_FILE", &token_file)
        .status()
        .unwrap();
    assert!(status.success());
    let exported: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 3, "{exported:?}");
    assert_eq!(exported.iter().filter(|t| t["task"]["state"] == "cancelled").count(), 2);
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["task", "export", "--out", out.to_str().unwrap()])
        .env("HEIWA_HUB", http.base_url())
        .env("HEIWA_TOKEN_FILE", &token_file)
        .output()
        .unwrap();
    assert!(!again.status.success(), "an export never overwrites an earlier one");

    // Retention of 1 s, pruned every second: the finished two go, the pending one stays.
    let defaults = http.limits("heiwa", &admin).await.unwrap();
    let short = HubLimits { retain_secs: 1, prune_every_secs: 1, ..defaults };
    http.configure("heiwa", &short, &admin).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = tasks(&http, &owner).await;
        if left.len() == 1 {
            assert_eq!((left[0].0, left[0].1.as_str()), (ids[0], PENDING), "only the unfinished task is kept");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not pruned: {left:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_pinned_task_reaches_only_a_limb_that_offers_the_model() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _) = local_hub_with_config(&parts, &dir.path().join("hub")).await;
    let (owner, invite) = tenant_with_invite(&http, 2).await;
    let echo = ["--executor", "echo", "--max-in-flight", "4"];
    let plain = LimbProcess::launch(&http, dir.path(), &invite, "plain", &echo);
    let with_model = [&echo[..], &["--offer-model", "tiny-chat@0badc0de"]].concat();
    let gifted = LimbProcess::launch(&http, dir.path(), &invite, "gifted", &with_model);
    let plain_id: u64 =
        plain.wait_for_line_within("ready limb=", Duration::from_secs(30))["ready limb=".len()..].parse().unwrap();
    let gifted_id: u64 =
        gifted.wait_for_line_within("ready limb=", Duration::from_secs(30))["ready limb=".len()..].parse().unwrap();

    for i in 0..6 {
        let model = ["tiny-chat", "0badc0de", ""][i % 3];
        http.submit_task("heiwa", &format!("pinned to {model:?} #{i}"), Some(model), &owner).await.unwrap();
    }
    http.submit_task("heiwa", "nobody has this", Some("llama-70b"), &owner).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while result_limbs(&http, &owner).await.len() < 6 {
        assert!(std::time::Instant::now() < deadline, "the six runnable tasks did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results = result_limbs(&http, &owner).await;
    let all = tasks(&http, &owner).await;
    let payloads = http.rows("heiwa", "SELECT * FROM task", &owner).await.unwrap();
    for row in &payloads {
        let (id, model) = (row["id"].as_u64().unwrap(), row["model"].as_str().unwrap());
        match model {
            "tiny-chat" | "0badc0de" => assert_eq!(results.get(&id), Some(&gifted_id), "pinned task {id}"),
            "" => assert!(results.get(&id).is_some_and(|l| [plain_id, gifted_id].contains(l))),
            _ => assert_eq!(
                all.iter().find(|t| t.0 == id).map(|t| t.1.as_str()),
                Some(PENDING),
                "a task for a model nobody offers waits"
            ),
        }
    }
    let unpinned = |id: &u64| payloads.iter().any(|row| row["id"] == *id && row["model"] == "");
    let ran_plain = executions(&[plain.stop()]);
    assert!(ran_plain.keys().all(unpinned), "the plain limb ran only unpinned tasks: {ran_plain:?}");
    gifted.stop();
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_submit_sent_twice_makes_one_task_per_tenant() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _) = local_hub_with_config(&parts, &dir.path().join("hub")).await;
    let (owner, _) = tenant_with_invite(&http, 1).await;
    for _ in 0..3 {
        http.submit_task_once("heiwa", "nightly-42", "summarise the logs", None, &owner).await.unwrap();
    }
    // The CLI's --key is the same call.
    let token_file = dir.path().join("owner.token");
    heiwa_config::write_secret(&token_file, &owner).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["task", "submit", "summarise the logs", "--key", "nightly-42"])
        .env("HEIWA_HUB", http.base_url())
        .env("HEIWA_TOKEN_FILE", &token_file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(tasks(&http, &owner).await.len(), 1, "one task for one key");

    let (other, _) = tenant_with_invite(&http, 1).await;
    http.submit_task_once("heiwa", "nightly-42", "another tenant's job", None, &other).await.unwrap();
    assert_eq!(tasks(&http, &other).await.len(), 1, "keys are per tenant");
    let refused = http.submit_task_once("heiwa", "", "no key", None, &owner).await.unwrap_err().to_string();
    assert!(refused.contains("a submit key is 1 to 128"), "{refused}");
    server.stop();
}
