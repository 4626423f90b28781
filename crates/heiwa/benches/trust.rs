//! Trust benchmark, two parts, each against a baseline measured in the same run.
//!
//! Scoring: the chat model answers 12 questions greedily (the baseline: what
//! a second limb spends to generate the answer again), then a second load of
//! the same model scores each answer teacher-forced (`ChatModel::score`, one
//! prefill); the ratio is verify time ÷ generate time. Each answer is also
//! changed by one word in the middle (a liar's answer): a false alarm is an
//! honest answer not on top everywhere, a catch a changed one that is not.
//!
//! Quorum: a real hub, three honest donors and one liar (limbs running the
//! real claim loop in this process, `tests/real_parts/trust_limbs.rs`).
//! 60 plain tasks (the baseline), then 60 with `replicas: 2`: executions
//! per task and wall time against the baseline, the liar's results outvoted,
//! honest results disputed.
//! The last line is machine-readable: `RESULT trust …`.
//!
//!   source scripts/lib/env.sh; cargo bench --profile dev --workspace --bench trust

mod common;

use heiwa_config::Parts;
use heiwa_hub::{HubHttp, InviteRole};
use heiwa_inference::{ChatModel, SCORE_TOLERANCE};
use heiwa_testkit::trust_limbs::{decided, limb, rows};
use heiwa_testkit::TestHub;
use limb_core::agent::local::{chat_options, GENERATE_MAX_TOKENS};
use std::time::{Duration, Instant};

const QUESTIONS: [&str; 12] = [
    "Explain in two sentences what a volunteer computing project is.",
    "Why does a hash function need to be collision resistant?",
    "Describe how a lease works in a task queue.",
    "What is the difference between a process and a thread?",
    "Give two reasons to keep a database on the same machine as its app.",
    "How does TLS protect a WebSocket connection?",
    "What does it mean for generation to be greedy?",
    "Why would a volunteer limit the GPU memory a program may use?",
    "Explain quorum voting in two sentences.",
    "What is a content hash used for?",
    "Describe a network partition in one paragraph.",
    "What is teacher forcing in language models?",
];
fn tasks() -> usize {
    common::sized(60, 8)
}

fn scoring(parts: &Parts) -> (f64, usize, usize, usize) {
    // Loaded as a limb loads it, answering as long as a generation task may.
    let generator = ChatModel::load(&parts.chat_model().unwrap(), chat_options()).expect("chat model loads");
    let scorer = ChatModel::load(&parts.chat_model().unwrap(), chat_options()).expect("chat model loads");
    let (mut generate_s, mut verify_s, mut false_alarms, mut caught) = (0.0, 0.0, 0, 0);
    // The largest gap below the top among honest tokens, and the smallest largest gap of a changed answer.
    let (mut honest_gap, mut liar_gap, mut off_top) = (0.0f32, f32::INFINITY, 0);
    let questions = &QUESTIONS[..common::sized(QUESTIONS.len(), 2)];
    for question in questions {
        let prompt = generator.format_chat(&[("user", question)]).unwrap();
        let started = Instant::now();
        let answer = generator.complete(&prompt, GENERATE_MAX_TOKENS).unwrap().text;
        generate_s += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let scored = scorer.score(&prompt, &answer).unwrap();
        verify_s += started.elapsed().as_secs_f64();
        honest_gap = scored.gaps.iter().copied().fold(honest_gap, f32::max);
        off_top += scored.gaps.iter().filter(|gap| **gap > 0.0).count();
        false_alarms += usize::from(scored.first_miss(SCORE_TOLERANCE).is_some());
        let words: Vec<&str> = answer.split(' ').collect();
        let cut = words.len() / 2;
        let changed = format!("{} banana {}", words[..cut].join(" "), words[cut..].join(" "));
        let liar = scorer.score(&prompt, &changed).unwrap();
        liar_gap = liar_gap.min(liar.gaps.iter().copied().fold(0.0, f32::max));
        caught += usize::from(liar.first_miss(SCORE_TOLERANCE).is_some());
    }
    println!(
        "scoring {} greedy answers: generate {generate_s:.2} s, verify {verify_s:.2} s (ratio {:.3}); \
         {false_alarms} false alarms; {caught} of {} changed answers caught",
        questions.len(),
        verify_s / generate_s,
        questions.len()
    );
    println!(
        "honest tokens not exactly on top: {off_top}, at most {honest_gap:.3} logits below; every changed answer had \
         a token at least {liar_gap:.1} below (tolerance {SCORE_TOLERANCE})"
    );
    (verify_s / generate_s, false_alarms, caught, questions.len())
}

/// Wait until every task the owner sees is done; seconds since `since`.
async fn drained(http: &HubHttp, owner: &str, count: usize, since: Instant) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tasks = rows(http, owner, "SELECT * FROM task").await;
        if tasks.len() >= count && tasks.iter().all(|t| t["state"] == "done") {
            return since.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "tasks stalled: {tasks:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let parts = Parts::find(None).unwrap_or_else(|missing| panic!("{missing}"));
    let (verify_cost_ratio, score_false_alarms, score_caught, scored) = scoring(&parts);

    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(&parts, &dir.path().join("hub")).await;
    hub.lift_limits(100_000).await;
    let TestHub { server, http, .. } = hub;
    let owner = http.new_identity().await.unwrap().token;
    http.call("heiwa", "create_tenant", serde_json::json!(["trust"]), &owner).await.unwrap();
    let mut stops = Vec::new();
    for (name, lies) in [("a", false), ("b", false), ("c", false), ("liar", true)] {
        let code = http.create_invite("heiwa", 1, 600, InviteRole::Limb, &owner).await.unwrap().0;
        stops.push(limb(&http, dir.path(), &code, name, lies).await);
    }

    let started = Instant::now();
    for i in 0..tasks() {
        http.submit_task("heiwa", &format!("plain {i}"), None, &owner).await.unwrap();
    }
    let plain_s = drained(&http, &owner, tasks(), started).await;

    let started = Instant::now();
    for i in 0..tasks() {
        let payload = format!("replicated {i}");
        http.submit_task_replicated("heiwa", None, &payload, None, 2, &owner).await.unwrap();
    }
    let sets = decided(&http, &owner, tasks()).await;
    let copies: usize = sets.iter().map(|s| s["copies"].as_array().map_or(0, Vec::len)).sum();
    let replicated_s = drained(&http, &owner, tasks() + copies, started).await;

    let limbs = rows(&http, &owner, "SELECT * FROM limb").await;
    let liar_id = limbs.iter().find(|l| l["name"] == "liar").and_then(|l| l["id"].as_u64()).unwrap();
    let trust = rows(&http, &owner, "SELECT * FROM limb_trust").await;
    let count = |liar: bool, field: &str| -> u64 {
        trust
            .iter()
            .filter(|r| (r["limb_id"].as_u64() == Some(liar_id)) == liar)
            .filter_map(|r| r[field].as_u64())
            .sum()
    };
    let (liar_results, caught) = (count(true, "agreed") + count(true, "disputed"), count(true, "disputed"));
    let (honest_results, false_alarms) = (count(false, "agreed") + count(false, "disputed"), count(false, "disputed"));
    let verdict = |v: &str| sets.iter().filter(|s| s["verdict"] == v).count();
    let quorum_overhead = copies as f64 / tasks() as f64;
    let tasks = tasks();
    println!(
        "{tasks} plain tasks: {plain_s:.2} s; {tasks} with replicas 2: {replicated_s:.2} s ({:.2}×), {copies} executions \
         ({quorum_overhead:.2} per task); {} agreed, {} trusted (not copied), {} disputed",
        replicated_s / plain_s,
        verdict("agreed"),
        verdict("trusted"),
        verdict("disputed")
    );
    println!(
        "the liar: {caught} of {liar_results} results outvoted; honest limbs: {false_alarms} of {honest_results} disputed"
    );
    let result = common::result_prefix("trust");
    println!(
        "{result} verify_cost_ratio={verify_cost_ratio:.3} quorum_overhead={quorum_overhead:.2} \
         quorum_time_ratio={:.2} caught_liars={caught}/{liar_results} false_alarms={false_alarms}/{honest_results} \
         score_caught={score_caught}/{scored} score_false_alarms={score_false_alarms}/{scored}",
        replicated_s / plain_s
    );
    for stop in stops {
        let _ = stop.send(true);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
}
