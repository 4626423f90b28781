//! The agent loop on real parts: MiniLM + pgvector retrieval, the Qwen GGUF
//! through llama.cpp, `run_python` in the container sandbox; and a `heiwa limb
//! run` process answering a hub task with it (the main job, end to end).

use super::mesh::{tenant_with_invite, LimbProcess};
use super::{local_hub, parts};
use heiwa_memory::{ingest_path, WalkOptions};
use limb_core::agent::local::LocalAgent;
use limb_core::agent::Budget;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/docs")
}

const QUESTION: &str = "What happens to a work unit when a volunteer's computer disappears?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limb_answers_a_hub_task_with_retrieved_passages_and_cites_them() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let (owner, invite) = tenant_with_invite(&http, 1).await;

    let ingest = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["ingest"])
        .arg(samples())
        .env("HEIWA_DATA_DIR", dir.path().join("limbs/workstation"))
        .output()
        .unwrap();
    assert!(ingest.status.success(), "{}", String::from_utf8_lossy(&ingest.stderr));
    assert!(String::from_utf8_lossy(&ingest.stdout).contains("4 added"));

    let limb = LimbProcess::launch(&http, &dir.path().join("limbs"), &invite, "workstation", &["--executor", "agent"]);
    limb.wait_for_line_within("ready", Duration::from_secs(120));
    super::call(&http, &owner, "submit_task", serde_json::json!([QUESTION, ""])).await;
    let completed = limb.wait_for_line_within("completed", Duration::from_secs(180));
    let task_id: u64 = completed.trim_start_matches("completed ").parse().unwrap();

    let reply = http
        .rows("heiwa", &format!("SELECT summary FROM task_result WHERE task_id = {task_id}"), &owner)
        .await
        .unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(reply[0]["summary"].as_str().expect("the owner sees the result")).unwrap();
    assert!(!summary["answer"].as_str().unwrap().trim().is_empty(), "{summary}");
    assert_eq!(summary["citations"][0]["file"], "volunteer-computing.md", "{summary}");
    assert!(!summary.to_string().contains(dir.path().to_str().unwrap()), "no local path reaches the hub: {summary}");
    let lines = limb.stop();
    assert!(lines.iter().any(|l| l == &format!("claimed {task_id}")), "{lines:?}");
    // What this machine gave, counted by the limb and kept across its restarts: `heiwa status` reads it.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .arg("status")
        .env("HEIWA_DATA_DIR", dir.path().join("limbs/workstation"))
        .output()
        .unwrap();
    let given: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let all = &given["given"]["all"];
    assert_eq!(all["tasks"], 1, "{given:#}");
    assert!(all["tokens"].as_u64().unwrap() > 0 && all["model_ms"].as_u64().unwrap() > 0, "{given:#}");
    assert!(all["gpu_ms"].as_u64().unwrap() <= all["model_ms"].as_u64().unwrap(), "{given:#}");
    assert_eq!(given["given"]["week"], *all, "{given:#}");

    // The result is signed: `heiwa task verify` checks it against the limb's registered key.
    let owner_token = dir.path().join("owner.token");
    std::fs::write(&owner_token, &owner).unwrap();
    let heiwa = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
            .args(args)
            .env("HEIWA_HUB", http.base_url())
            .env("HEIWA_TOKEN_FILE", &owner_token)
            .output()
            .unwrap()
    };
    let id = task_id.to_string();
    let verified = heiwa(&["task", "verify", &id]);
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{said}{}", String::from_utf8_lossy(&verified.stderr));
    let model_sha256 = heiwa_provenance::sha256_of(std::fs::File::open(parts.chat_model().unwrap()).unwrap()).unwrap();
    assert!(said.contains(&format!("task {task_id}: VERIFIED")), "{said}");
    assert!(said.contains(&model_sha256), "the model file's sha256 is signed: {said}");
    assert!(said.contains("llama.cpp") && said.contains("passage(s)"), "{said}");
    assert!(said.contains("it does not prove"), "{said}");
    // `task show` reads as text from the real hub's rows; --json keeps the rows for scripts.
    let shown = heiwa(&["task", "show", &id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text}{}", String::from_utf8_lossy(&shown.stderr));
    assert!(text.starts_with(&format!("task {task_id}: done\n  asked     ")), "{text}");
    assert!(text.contains("  answered  by limb ") && text.contains(" s after it was asked)"), "{text}");
    assert!(text.contains("\n  answer    "), "{text}");
    assert!(!text.contains("0x0") && !text.contains('{'), "no raw rows: {text}");
    let rows: serde_json::Value = serde_json::from_slice(&heiwa(&["task", "show", &id, "--json"]).stdout).unwrap();
    assert_eq!(rows["task"]["state"], "done", "{rows:#}");

    // Offline, from an export: a tampered summary, another key, a proof moved to another task each fail.
    let export = dir.path().join("export.jsonl");
    let exported = heiwa(&["task", "export", "--out", export.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&export).unwrap().trim()).unwrap();
    let offline = |name: &str, line: &serde_json::Value, id: u64| {
        let file = dir.path().join(name);
        std::fs::write(&file, line.to_string()).unwrap();
        let out = heiwa(&["task", "verify", &id.to_string(), "--rows", file.to_str().unwrap()]);
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, said) = offline("as-exported.jsonl", &line, task_id);
    assert!(ok, "the export verifies offline: {said}");
    let mut tampered = line.clone();
    tampered["result"]["summary"] = serde_json::Value::String(summary.to_string().replace('"', "'"));
    let (ok, said) = offline("tampered.jsonl", &tampered, task_id);
    assert!(!ok && said.contains("altered"), "{said}");
    let mut other_key = line.clone();
    let stranger = heiwa_provenance::LimbKey::beside(&dir.path().join("stranger.token")).unwrap();
    other_key["limb_key"]["public_key"] = serde_json::json!(stranger.public());
    let (ok, said) = offline("other-key.jsonl", &other_key, task_id);
    assert!(!ok && said.contains("another key"), "{said}");
    let mut moved = line.clone();
    moved["task"]["id"] = serde_json::json!(task_id + 1);
    let (ok, said) = offline("moved.jsonl", &moved, task_id + 1);
    assert!(!ok && said.contains(&format!("about task {task_id}, not task {}", task_id + 1)), "{said}");
    server.stop();
}

/// The agent on its real parts, in a limb taking four tasks at once (issue
/// 39): eight agent tasks submitted at once — questions its memory answers,
/// citing the passage that answers them and never an irrelevant one, and
/// sums it works out with `run_python` in the sandbox — every one answered,
/// the agent turns of several sharing the model's decode steps, and the
/// system prompt (the agent's instructions and tool) computed once per slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limb_with_four_slots_answers_eight_agent_tasks_together() {
    use heiwa_testkit::trust_limbs::{limb_running_at_once, rows};
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let (owner, invite) = tenant_with_invite(&http, 1).await;
    // Shorter turns than a limb's default: a sum's call and an answer from a passage fit well within them.
    let budget = Budget { max_tokens_per_step: 128, ..Budget::default() };
    let local = LocalAgent::open(&parts, &dir.path().join("limb"), "local", budget, None).await.unwrap();
    let memory = local.memory();
    let report =
        ingest_path(&memory.memory, &memory.embedder, "local", &samples(), WalkOptions::default(), &mut |_| {})
            .await
            .unwrap();
    assert_eq!(report.added.len(), 4, "{report:?}");
    let chat = local.local_model().expect("a local model");
    chat.set_slots(4);
    let executor = std::sync::Arc::new(local.executor(tokio::runtime::Handle::current()));
    let offer = limb_core::claim::Offer { tool: true, ..Default::default() };
    let stop = limb_running_at_once(&http, dir.path(), &invite, "four-slots", executor, offer, 4).await;

    // (question, the file its answer cites or the number run_python prints)
    let tasks = [
        (QUESTION, "volunteer-computing.md"),
        ("What is 17 * 23?", "391"),
        ("In Rust, how many mutable references to a value may exist at once?", "rust-ownership.md"),
        ("What is 19 * 29?", "551"),
        ("Which index does pgvector use for approximate nearest neighbour search?", "vector-search.md"),
        ("What is 123 * 45?", "5535"),
        ("When does a BOINC server send a work unit to another volunteer?", "volunteer-computing.md"),
        ("What is 2 ** 20?", "1048576"),
    ];
    for (question, _) in tasks {
        super::call(&http, &owner, "submit_task", serde_json::json!([question, ""])).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let done = loop {
        let done = rows(&http, &owner, "SELECT * FROM task_result").await;
        if done.len() == tasks.len() {
            break done;
        }
        let all = rows(&http, &owner, "SELECT * FROM task").await;
        let failed: Vec<_> = all.iter().filter(|t| t["state"] == "failed").collect();
        assert!(failed.is_empty(), "no task fails: {failed:#?}");
        assert!(std::time::Instant::now() < deadline, "{} of {} answered in time", done.len(), tasks.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let slots = chat.slots();
    let payloads: std::collections::HashMap<u64, String> = rows(&http, &owner, "SELECT * FROM task")
        .await
        .into_iter()
        .map(|t| (t["id"].as_u64().unwrap(), t["payload"].as_str().unwrap().to_string()))
        .collect();
    let mut tool_runs = 0;
    for result in &done {
        let question = &payloads[&result["task_id"].as_u64().unwrap()];
        let expected = tasks.iter().find(|(q, _)| q == question).unwrap().1;
        let summary: serde_json::Value = serde_json::from_str(result["summary"].as_str().unwrap()).unwrap();
        assert!(!summary["answer"].as_str().unwrap().trim().is_empty(), "{question}: {summary}");
        let cited = summary["citations"].as_array().unwrap();
        assert!(cited.iter().all(|c| c["file"] != "sourdough.txt"), "irrelevant passages stay out: {summary}");
        if expected.ends_with(".md") {
            assert_eq!(cited[0]["file"], expected, "{question}: {summary}");
        } else {
            assert!(cited.is_empty(), "nothing in memory is about a sum: {summary}");
            tool_runs += summary["tool_calls"].as_u64().unwrap();
            assert!(summary["answer"].as_str().unwrap().contains(expected), "{question}: {summary}");
        }
    }
    println!("8 agent tasks, 4 slots: {slots:?}, {tool_runs} run_python call(s)");
    // Every sum is right; most go through run_python (4 of 4 in one run, 3 in another): decoded beside
    // other turns, the small model may flip a near-tie and work one out itself.
    assert!(tool_runs >= 1, "run_python calls ran between the other tasks' turns: {tool_runs} calls");
    assert_eq!(slots.slots, 4, "{slots:?}");
    assert!(slots.most_in_use >= 2, "agent turns shared the model's steps: {slots:?}");
    assert!(slots.reused_tokens > 0, "a slot's cached system prompt was not computed again: {slots:?}");
    stop.send(true).unwrap();
    local.close().await.unwrap();
    server.stop();
}

/// No container engine: the agent still answers from memory (with its
/// citation) and says why its tool is missing; code never runs on the host.
#[test]
fn without_a_container_engine_the_agent_answers_from_memory_and_says_why_the_tool_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let heiwa = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
            .args(args)
            .env("HEIWA_DATA_DIR", &data)
            .env("DOCKER_HOST", format!("unix://{}/no-engine.sock", dir.path().display()))
            .output()
            .unwrap()
    };
    let ingest = heiwa(&["ingest", samples().to_str().unwrap()]);
    assert!(ingest.status.success(), "{}", String::from_utf8_lossy(&ingest.stderr));
    let asked = heiwa(&["ask", QUESTION]);
    let (stdout, stderr) = (String::from_utf8_lossy(&asked.stdout), String::from_utf8_lossy(&asked.stderr));
    assert!(asked.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: answering without run_python: no container engine answered at unix://"),
        "{stderr}"
    );
    assert!(stderr.contains("install Docker (docker.io) or Podman and start it"), "with the way forward: {stderr}");
    assert!(stdout.contains("volunteer-computing.md"), "the answer cites memory: {stdout}");
}
