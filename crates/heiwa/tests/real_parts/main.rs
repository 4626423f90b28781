//! Every real part, started for real: a SpacetimeDB server, PostgreSQL with
//! pgvector, llama.cpp with real GGUF models, a container engine. None of these
//! tests skips: a missing part fails with the variable that should name it
//! (scripts/test sets them all).

use heiwa_config::Parts;
use heiwa_hub::bindings::{
    complete_task, offer, register_limb, AssigneeTableAccess, LimbTableAccess, TaskState, TaskTableAccess,
};
use heiwa_hub::{connect, tenant_tables, HubHttp, HubPolicy, HubServer, HubServerConfig, InviteRole};
use heiwa_inference::{cosine, ChatModel, Embedder, ModelOptions, SCORE_TOLERANCE};
use heiwa_memory::{explain_nearest_on, nearest_on, Memory, PgServer, PgServerConfig};
use heiwa_sandbox::{LimitHit, Limits, Sandbox};
use hub_rules::secrets::TenantCreation;
use spacetimedb_sdk::{DbContext, Table, TableWithPrimaryKey};
use std::sync::mpsc;
use std::time::Duration;

fn parts() -> Parts {
    heiwa_testkit::parts()
}

/// A base (not chat-tuned) model: only the tests use one, so no package carries it.
fn base_model() -> std::path::PathBuf {
    std::env::var_os("HEIWA_BASE_MODEL")
        .expect("HEIWA_BASE_MODEL names the base GGUF model (scripts/lib/env.sh)")
        .into()
}

fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

mod agent;
mod batch;
mod bot;
mod catalogue;
mod credit;
mod exclusive;
mod folders;
mod hub;
mod ingest;
mod mcp;
mod mesh;
mod migrate;
mod models;
mod pg_lifetime;
mod pull;
mod remote;
mod sandbox;
mod secrets;
mod serve;
mod service;
mod trust;

use heiwa_testkit::{resident, trust_limbs, TestHub};

/// A local hub with hub-module published; returns the server and its HTTP API.
async fn local_hub(parts: &Parts, dir: &std::path::Path) -> (HubServer, HubHttp) {
    let (server, http, _) = local_hub_with_config(parts, dir).await;
    (server, http)
}

/// [`local_hub`], and how it was started (to restart it on its data).
async fn local_hub_with_config(parts: &Parts, dir: &std::path::Path) -> (HubServer, HubHttp, HubServerConfig) {
    let hub = TestHub::start(parts, dir).await;
    // Tests submit hundreds of tasks at once (the quota test sets its own limits).
    hub.lift_limits(100_000).await;
    (hub.server, hub.http, hub.config)
}

/// A published hub with its default limits, and its admin's (the publisher's) token.
async fn local_hub_as_admin(parts: &Parts, dir: &std::path::Path) -> (HubServer, HubHttp, HubServerConfig, String) {
    let TestHub { server, http, config, admin } = TestHub::start(parts, dir).await;
    (server, http, config, admin)
}

async fn call(http: &HubHttp, token: &str, reducer: &str, args: serde_json::Value) {
    http.call("heiwa", reducer, args, token).await.unwrap_or_else(|e| panic!("{reducer}: {e}"));
}

/// A limb over a real WebSocket: joined, registered, subscribed as `run_limb`
/// is, and offering `capacity` slots. Its task inserts
/// and updates arrive on the returned channel.
struct WsLimb {
    conn: heiwa_hub::Connected,
    id: u64,
    tasks: mpsc::Receiver<heiwa_hub::bindings::Task>,
}

async fn ws_limb(server: &HubServer, http: &HubHttp, invite: &str, name: &str, capacity: u32) -> (WsLimb, String) {
    let identity = http.new_identity().await.unwrap();
    http.join_tenant("heiwa", invite, &identity.token).await.expect("the invite admits the limb");
    let (uri, token) = (server.ws_url(), identity.token.clone());
    let conn =
        tokio::task::spawn_blocking(move || connect(&uri, "heiwa", Some(token), heiwa_hub::limb_tables(), |_| {}))
            .await
            .unwrap()
            .expect("limb connects");
    assert_eq!(conn.identity.to_hex().to_string(), identity.identity, "the token's identity is the connection's");
    let (task_tx, tasks) = mpsc::channel();
    let updates = task_tx.clone();
    conn.conn.db.task().on_insert(move |_, task| task_tx.send(task.clone()).unwrap());
    conn.conn.db.task().on_update(move |_, _, task| updates.send(task.clone()).unwrap());
    let (limb_tx, limb_rx) = mpsc::channel();
    conn.conn.db.assignee().on_insert(move |_, seat| limb_tx.send(seat.limb_id).unwrap());
    conn.conn.reducers.register_limb(name.into(), 30).unwrap();
    let id = recv(&limb_rx, "the registered limb");
    conn.conn.reducers.offer(id, capacity, vec![], false, false).unwrap();
    (WsLimb { conn, id, tasks }, identity.token)
}

async fn refusal(http: &HubHttp, token: &str, reducer: &str, args: serde_json::Value) -> String {
    http.call("heiwa", reducer, args, token).await.expect_err(reducer).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_assigns_a_task_to_one_limb_and_nobody_else_sees_it() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, dir.path()).await;

    // Tenant A: an owner who submits, and two limbs that joined by invite.
    let owner = http.new_identity().await.unwrap();
    call(&http, &owner.token, "create_tenant", serde_json::json!(["tenant A"])).await;
    let code = http.create_invite("heiwa", 2, 60, InviteRole::Limb, &owner.token).await.expect("the owner sees it").0;
    let (a, a_token) = ws_limb(&server, &http, &code, "worker", 1).await;
    let (idle, idle_token) = ws_limb(&server, &http, &code, "idle", 0).await;
    let spent =
        http.join_tenant("heiwa", &code, &http.new_identity().await.unwrap().token).await.unwrap_err().to_string();
    assert!(spent.contains("unknown or used-up invite"), "a two-use invite is spent: {spent}");

    http.submit_task("heiwa", "what is 6*7?", None, &owner.token).await.unwrap();
    let task = recv(&a.tasks, "the task, assigned by the hub, in the limb's subscription");
    assert_eq!(
        (task.payload.as_str(), task.state, task.assigned_to, task.attempts),
        ("what is 6*7?", TaskState::Claimed, a.id, 1)
    );

    // The other limb of the same tenant sees none of it and cannot touch it.
    assert!(idle.tasks.recv_timeout(Duration::from_millis(500)).is_err(), "nothing reached the idle limb");
    assert_eq!(http.rows("heiwa", "SELECT * FROM task", &idle_token).await.unwrap().len(), 0, "not by SQL either");
    let limbs = http.rows("heiwa", "SELECT * FROM limb", &idle_token).await.unwrap();
    assert!(limbs.is_empty(), "a limb reads no limb rows, only its own id (assignee): {limbs:?}");
    let seats = http.rows("heiwa", "SELECT * FROM assignee", &idle_token).await.unwrap();
    assert_eq!(seats.len(), 1, "{seats:?}");
    for (reducer, args, words) in [
        ("complete_task", serde_json::json!([task.id, idle.id, "stolen"]), "is not held by limb"),
        ("release_task", serde_json::json!([task.id, idle.id]), "is not held by limb"),
        ("cancel_task", serde_json::json!([task.id]), "only the submitter, the tenant's owner or an operator"),
        ("submit_task", serde_json::json!(["let me in", ""]), "may not submit"),
        ("heartbeat", serde_json::json!([a.id]), "no limb"),
        ("grant_limb", serde_json::json!([idle.id, true, true]), "only the tenant's owner"),
        (
            "create_invite",
            serde_json::json!([heiwa_hub::InviteCode::fresh().unwrap().hash(), 1, 60, {"Submitter": []}]),
            "only the tenant's owner",
        ),
    ] {
        let refused = refusal(&http, &idle_token, reducer, args).await;
        assert!(refused.contains(words), "{reducer}: {refused}");
    }

    // Tenant B sees none of A's rows and cannot touch A's task.
    let b = http.new_identity().await.unwrap();
    call(&http, &b.token, "create_tenant", serde_json::json!(["tenant B"])).await;
    call(&http, &b.token, "register_limb", serde_json::json!(["b-limb", 30])).await;
    for table in ["task", "limb", "tenant", "member", "invite", "task_result"] {
        let rows = http.rows("heiwa", &format!("SELECT * FROM {table}"), &b.token).await.unwrap();
        let own = if matches!(table, "tenant" | "member" | "limb") { 1 } else { 0 };
        assert_eq!(rows.len(), own, "tenant B sees only its own {table}: {rows:?}");
    }
    let (uri, b_token) = (server.ws_url(), b.token.clone());
    let b_conn = tokio::task::spawn_blocking(move || connect(&uri, "heiwa", Some(b_token), tenant_tables(), |_| {}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b_conn.conn.db.task().count(), 0, "tenant B's subscription carries none of A's tasks");
    assert_eq!(b_conn.conn.db.limb().count(), 1, "only B's own limb");
    let _ = b_conn.conn.disconnect();
    let b_limb = http.rows("heiwa", "SELECT id FROM limb", &b.token).await.unwrap()[0]["id"].as_u64().unwrap();
    for (reducer, args) in [
        ("complete_task", serde_json::json!([task.id, b_limb, "stolen"])),
        ("cancel_task", serde_json::json!([task.id])),
        ("heartbeat", serde_json::json!([a.id])),
        ("grant_limb", serde_json::json!([a.id, true, true])),
    ] {
        let refused = refusal(&http, &b.token, reducer, args).await;
        assert!(refused.contains("no task") || refused.contains("no limb"), "{reducer}: {refused}");
    }

    // Bad input gets the reducer's own words (and changes nothing: the task stays held).
    for (token, reducer, args, words) in [
        (&owner.token, "submit_task", serde_json::json!([" ", ""]), "payload is empty"),
        (&owner.token, "submit_task", serde_json::json!(["x".repeat(16 * 1024 + 1), ""]), "the limit is 16384"),
        (&owner.token, "submit_task", serde_json::json!(["ok", "m".repeat(129)]), "at most 128"),
        (
            &owner.token,
            "create_invite",
            serde_json::json!([heiwa_hub::InviteCode::fresh().unwrap().hash(), 1, 60, {"Owner": []}]),
            "one owner",
        ),
        (&owner.token, "create_invite", serde_json::json!(["a code in clear", 1, 60, {"Limb": []}]), "its SHA-256"),
        (&a_token, "register_limb", serde_json::json!(["l", 1]), "lease must be"),
        (&a_token, "offer", serde_json::json!([a.id, 65, [], false, false]), "at most 64 tasks"),
        (&a_token, "complete_task", serde_json::json!([task.id, a.id, "y".repeat(8 * 1024 + 1)]), "the limit is 8192"),
        (&a_token, "complete_task", serde_json::json!([999_999, a.id, "y"]), "no task 999999"),
    ] {
        let refused = refusal(&http, token, reducer, args).await;
        assert!(refused.contains(words), "{reducer}: {refused}");
    }

    a.conn.conn.reducers.complete_task(task.id, a.id, "42".into()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let result = loop {
        let rows = http.rows("heiwa", "SELECT * FROM task_result", &owner.token).await.unwrap();
        if let Some(row) = rows.into_iter().next() {
            break row;
        }
        assert!(std::time::Instant::now() < deadline, "no task_result row 30 s after complete_task");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((result["summary"].as_str(), result["limb_id"].as_u64()), (Some("42"), Some(a.id)), "{result:?}");
    assert!(
        http.rows("heiwa", "SELECT * FROM task_result", &idle_token).await.unwrap().is_empty(),
        "another limb's result is not the idle limb's to read"
    );

    // Granted by the owner, the idle limb reads the tenant and submits.
    http.grant_limb("heiwa", idle.id, true, true, &owner.token).await.unwrap();
    assert_eq!(http.rows("heiwa", "SELECT * FROM task_result", &idle_token).await.unwrap().len(), 1);
    http.submit_task("heiwa", "from a granted limb", None, &idle_token).await.expect("granted, it submits");

    // A submitter (a dashboard, a bot) reads and submits, but is no limb.
    let desk_code = http.create_invite("heiwa", 1, 60, InviteRole::Submitter, &owner.token).await.unwrap().0;
    let desk = http.new_identity().await.unwrap();
    http.join_tenant("heiwa", &desk_code, &desk.token).await.unwrap();
    http.submit_task("heiwa", "from the dashboard", None, &desk.token).await.expect("a submitter submits");
    assert_eq!(http.rows("heiwa", "SELECT * FROM task", &desk.token).await.unwrap().len(), 3, "and reads the tenant");
    let refused = refusal(&http, &desk.token, "register_limb", serde_json::json!(["sneaky", 30])).await;
    assert!(refused.contains("cannot be a limb"), "{refused}");

    let _ = a.conn.conn.disconnect();
    let _ = idle.conn.conn.disconnect();
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_runs_pgvector_and_answers_top_k_from_the_hnsw_index() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        PgServer::new(PgServerConfig { install_dir: parts.pg_dir.clone(), root: dir.path().into() }).unwrap();
    server.start().expect("PostgreSQL starts");
    if nix::unistd::Uid::effective().is_root() {
        let pid = server.pid().expect("postmaster.pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            !uid_line.split_whitespace().skip(1).any(|uid| uid == "0"),
            "postgres must not run as root: {uid_line}"
        );
    }
    let memory = Memory::open(&server).await.expect("memory opens and migrates");

    // Deterministic pseudo-random unit vectors, two tenants.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut vector = || {
        let v: Vec<f32> = (0..384)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let mut tenant_a = Vec::new();
    for i in 0..1500 {
        let v = vector();
        let tenant = if i % 2 == 0 { "tenant-a" } else { "tenant-b" };
        let id = memory.add_chunk(tenant, &format!("chunk {i}"), &v).await.unwrap();
        if tenant == "tenant-a" {
            tenant_a.push((id, v));
        }
    }
    sqlx::query("ANALYZE chunk").execute(memory.pool()).await.unwrap();

    let (target_id, target) = &tenant_a[123];
    let hits = memory.nearest("tenant-a", target, 10).await.unwrap();
    assert_eq!(hits.len(), 10, "a tenant-filtered query still fills k");
    assert_eq!(hits[0].chunk_id, *target_id, "the vector itself is its own nearest neighbour");
    assert!(hits[0].distance < 1e-4);
    let ids_a: std::collections::HashSet<i64> = tenant_a.iter().map(|(id, _)| *id).collect();
    assert!(hits.iter().all(|h| ids_a.contains(&h.chunk_id)), "only tenant A's chunks");

    // At this size the planner rightly prefers a scan; force the index to prove
    // it serves a tenant-filtered top-k in full (iterative scans, pgvector 0.8).
    let mut conn = memory.pool().acquire().await.unwrap();
    for setting in ["SET enable_seqscan = off", "SET enable_bitmapscan = off", "SET enable_sort = off"] {
        sqlx::query(setting).execute(&mut *conn).await.unwrap();
    }
    let plan: String = explain_nearest_on(&mut *conn, "tenant-a", target, 10)
        .await
        .unwrap()
        .lines()
        .map(|line| line.chars().take(120).collect::<String>() + "\n")
        .collect();
    assert!(plan.contains("chunk_embedding_hnsw"), "the HNSW index serves the query:\n{plan}");
    let indexed = nearest_on(&mut *conn, "tenant-a", target, 10).await.unwrap();
    assert_eq!(indexed.len(), 10, "the index path also fills k for a 50%-selective tenant filter");
    assert_eq!(indexed[0].chunk_id, *target_id);
    assert!(indexed.iter().all(|h| ids_a.contains(&h.chunk_id)));
    drop(conn);

    let err = memory.add_chunk("tenant-a", "short", &[0.0; 3]).await.unwrap_err();
    assert!(err.to_string().contains("3 dimensions"), "{err}");
    memory.close().await;
    server.stop().unwrap();
}

#[test]
fn chat_model_generates_the_same_tokens_twice_with_greedy_sampling() {
    let chat = ChatModel::load(&parts().chat_model().unwrap(), ModelOptions::default()).expect("chat model loads");
    let prompt = chat.format_chat(&[("user", "Name a colour.")]).expect("the GGUF carries a chat template");
    assert!(prompt.contains("Name a colour."));
    let first = chat.complete(&prompt, 8).unwrap();
    assert!(first.generated_tokens > 0 && !first.text.trim().is_empty(), "{first:?}");
    assert_eq!(first, chat.complete(&prompt, 8).unwrap(), "greedy generation is deterministic");

    let overflow = chat.complete(&"word ".repeat(3000), 8).unwrap_err();
    assert!(overflow.to_string().contains("context holds 2048"), "{overflow}");
}

/// Two limbs with the same model file (two loads, CPU) answer a greedy task
/// alike, and a third scores that answer teacher-forced in one prefill: every
/// token is its top choice; a changed answer is caught at the changed token.
#[test]
fn greedy_answers_agree_across_loads_and_scoring_passes_them_and_catches_a_change_or_another_model() {
    let path = parts().chat_model().unwrap();
    let load = || ChatModel::load(&path, ModelOptions::default()).expect("chat model loads");
    let (first, second, scorer) = (load(), load(), load());
    let prompt =
        first.format_chat(&[("user", "Explain in two sentences what a volunteer computing project is.")]).unwrap();
    let answer = first.complete(&prompt, 48).unwrap().text;
    assert_eq!(answer, second.complete(&prompt, 48).unwrap().text, "the same model answers a greedy task alike");

    let scored = scorer.score(&prompt, &answer).unwrap();
    assert!(scored.tokens() > 10, "{scored:?}");
    assert_eq!(
        scored.first_miss(SCORE_TOLERANCE),
        None,
        "its own greedy answer is the top choice everywhere (within the tolerance): {scored:?}"
    );

    // A liar's answer: the same start, then a word of its own.
    let words: Vec<&str> = answer.split(' ').collect();
    let cut = words.len() / 2;
    let changed = format!("{} banana {}", words[..cut].join(" "), words[cut..].join(" "));
    let caught = scorer.score(&prompt, &changed).unwrap();
    let miss = caught.first_miss(SCORE_TOLERANCE).expect("a changed answer is not the model's");
    let before = scorer.score(&prompt, &words[..cut].join(" ")).unwrap().tokens();
    assert!(miss >= before.saturating_sub(1) && miss <= before + 1, "caught where it changed: {caught:?}, {before}");

    // A limb that claims this model but runs another (the base model, same family) is caught too.
    let other = ChatModel::load(&base_model(), ModelOptions::default()).expect("base model loads");
    let impostor = other.complete(&prompt, 48).unwrap().text;
    assert_ne!(impostor, answer);
    let scored = scorer.score(&prompt, &impostor).unwrap();
    assert!(scored.first_miss(SCORE_TOLERANCE).is_some(), "another model's answer is caught: {scored:?}");
}

#[test]
fn base_model_continues_text() {
    let base = ChatModel::load(&base_model(), ModelOptions::default()).expect("base model loads");
    let completion = base.complete("The capital of France is", 6).unwrap();
    assert_eq!(completion.generated_tokens, 6, "{completion:?}");

    // It carries no chat template: formatting a chat says so and how to fix it; an override works.
    let err = base.format_chat(&[("user", "hi")]).unwrap_err();
    assert!(err.to_string().contains("template override"), "{err}");
    let chatml = base.with_template("chatml").format_chat(&[("user", "hi")]).unwrap();
    assert_eq!(chatml, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

#[test]
fn seeded_sampling_is_reproducible_and_stop_sequences_end_the_text() {
    use heiwa_inference::{FinishReason, GenerateOptions, Sampling};
    let chat = ChatModel::load(&parts().chat_model().unwrap(), ModelOptions::default()).unwrap();
    let prompt = chat.format_chat(&[("user", "Write one sentence about the sea.")]).unwrap();
    let sampled = |seed| GenerateOptions {
        max_tokens: 16,
        stop: vec![],
        sampling: Sampling::Random { temperature: 0.9, top_p: 0.95, top_k: 40, seed },
        ..GenerateOptions::greedy(16)
    };
    let a = chat.generate(&prompt, &sampled(7), &mut |_| true).unwrap();
    let b = chat.generate(&prompt, &sampled(7), &mut |_| true).unwrap();
    assert_eq!(a.text, b.text, "same seed, same text");

    let mut streamed = String::new();
    let whole = chat.complete(&prompt, 24).unwrap();
    let stop_at = whole.text.split_whitespace().nth(3).expect("a few words").to_string();
    let options = GenerateOptions { stop: vec![stop_at.clone()], ..GenerateOptions::greedy(24) };
    let stopped = chat
        .generate(&prompt, &options, &mut |piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(stopped.finish, FinishReason::Stop);
    assert!(whole.text.starts_with(&stopped.text) && !stopped.text.contains(&stop_at), "{stopped:?} vs {whole:?}");
    assert_eq!(streamed, stopped.text, "what streamed is exactly the text");
    let short = chat.generate(&prompt, &GenerateOptions::greedy(3), &mut |_| true).unwrap();
    assert_eq!((short.finish, short.generated_tokens), (FinishReason::Length, 3));
}

#[test]
fn embeddings_are_384_dimensional_and_paraphrases_are_closest() {
    let embedder = Embedder::load(&parts().embed_model, ModelOptions::default()).expect("embedding model loads");
    assert_eq!(embedder.dimensions().unwrap(), 384);
    let v = embedder
        .embed(&[
            "The cat sat on the mat.",
            "A cat was sitting on the rug.",
            "Quarterly revenue grew by eight percent.",
        ])
        .unwrap();
    assert!(v.iter().all(|e| e.len() == 384));
    let paraphrase = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(paraphrase > unrelated + 0.2, "paraphrase {paraphrase} vs unrelated {unrelated}");
    // A passage longer than the context (a wide CSV row) is embedded by its
    // beginning; asked whole, it is an error that names the limit.
    let long = format!("Cats sit on mats. {}", "c7: 1; ".repeat(400));
    let cut = embedder.embed(&[&long]).unwrap().remove(0);
    assert!(cosine(&cut, &v[0]) > cosine(&cut, &v[2]), "the kept beginning still speaks of cats");
    let whole = embedder.embed_whole(&[&long]).unwrap_err().to_string();
    assert!(whole.contains("context holds 512"), "{whole}");
}

#[test]
fn a_corrupt_gguf_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.gguf");
    std::fs::write(&path, b"GGUF but not really a model").unwrap();
    let err = ChatModel::load(&path, ModelOptions::default()).err().expect("junk must not load");
    assert!(err.to_string().contains("could not load"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_runs_python_with_no_network_a_read_only_root_and_no_root_user() {
    let parts = parts();
    let sandbox = Sandbox::connect(&parts.sandbox_image, Limits::default()).await.expect("engine and image present");
    let out = sandbox.run_python("print(6*7)").await.unwrap();
    assert_eq!((out.stdout.as_str(), out.exit_code, out.limit), ("42\n", Some(0), None), "{out:?}");

    let probe = r#"
import os, socket
print("uid", os.getuid())
try:
    open("/escape", "w")
    print("root writable")
except OSError as e:
    print("root read-only", e.errno)
print("interfaces", sorted(n for _, n in socket.if_nameindex()))
"#;
    let out = sandbox.run_python(probe).await.unwrap();
    assert!(out.stdout.contains("uid 65533"), "a user of its own, not the host's nobody: {out:?}");
    assert!(out.stdout.contains("root read-only"), "{out:?}");
    assert!(out.stdout.contains("interfaces ['lo']"), "no network but loopback: {out:?}");

    // A listener on the host's loopback is out of reach from inside.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('reached host')\nexcept OSError as e:\n    print('refused', type(e).__name__)"
    );
    let out = sandbox.run_python(&connect).await.unwrap();
    assert!(out.stdout.starts_with("refused"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_stops_a_run_at_its_timeout() {
    let limits = Limits { timeout: Duration::from_secs(2), ..Limits::default() };
    let sandbox = Sandbox::connect(&parts().sandbox_image, limits).await.unwrap();
    let started = std::time::Instant::now();
    let out = sandbox.run_python("while True: pass").await.unwrap();
    assert_eq!(out.limit, Some(LimitHit::Timeout), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "killed promptly, took {:?}", started.elapsed());
}
