//! Batching benchmark (issue 39): aggregate generated tokens/s at 1, 4 and 8
//! concurrent streamed requests through `heiwa serve` (its `Batcher`, 8 slots),
//! against llama-server with the same model, context per slot, threads and
//! `--parallel` in the same run, and against the engine `heiwa serve` used
//! before it batched (a context per request, one request at a time; run in
//! process, so its side pays no HTTP); time to first token at 8; and prefix
//! reuse: the time to first token after a ~1,000-token system prompt the
//! server has seen (a hit) against one it has not (a miss).
//!
//! Tokens are counted as the streams' content chunks (one token each on both
//! servers); every request asks for `GENERATE` greedy tokens of a long story,
//! so both sides do the same work.
//!
//! `HEIWA_BENCH_LLAMA_SERVER_ROOT=DIR cargo bench --profile dev --workspace --bench batch`
//! (after `source scripts/lib/env.sh`): DIR is a root with Debian's
//! `llama.cpp-tools` (shared/toolchain.md says how to make one; its
//! `llama-server` runs there by `chroot`, as root). Without it the llama-server
//! figures are not measured, and the bench says so; a measurement run (not
//! `HEIWA_BENCH_QUICK`) refuses to go on without it. `HEIWA_BENCH_GPU_LAYERS=N`
//! offloads N layers on both servers (`-ngl N` for llama-server; 0 unless set).
//! The last line is machine-readable: `RESULT batch …`.

mod common;

use common::percentile;
use heiwa_inference::{all_cores, ChatModel, Embedder, GenerateOptions, ModelOptions};
use heiwa_serve::{model_id, router, Models, ServeState};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SLOTS: usize = 8;
const CONTEXT: u32 = 2048;
fn generate() -> usize {
    common::sized(64, 8)
}
fn rounds() -> usize {
    common::sized(3, 1)
}

const TOPICS: [&str; 8] = [
    "a lighthouse",
    "a mountain pass",
    "a river barge",
    "a night train",
    "a desert well",
    "an old clock",
    "a harbour",
    "a glacier",
];

/// One streamed answer: time to its first content, and its content chunks.
struct Streamed {
    first: Duration,
    tokens: usize,
}

/// A served OpenAI API to measure.
struct Api {
    url: String,
    key: String,
    model: String,
    http: reqwest::Client,
}

impl Api {
    async fn stream(&self, messages: Value, max_tokens: usize) -> Streamed {
        let started = Instant::now();
        let body = json!({ "model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": true });
        let mut response = self
            .http
            .post(format!("{}/chat/completions", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        let (mut buffer, mut first, mut tokens) = (String::new(), None, 0);
        while let Some(bytes) = response.chunk().await.unwrap() {
            buffer.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let Some(data) = line.trim().strip_prefix("data:") else { continue };
                let Ok(event) = serde_json::from_str::<Value>(data.trim()) else { continue };
                let content = event["choices"][0]["delta"]["content"].as_str().unwrap_or_default();
                if !content.is_empty() {
                    first.get_or_insert_with(|| started.elapsed());
                    tokens += 1;
                }
            }
        }
        Streamed { first: first.expect("some content"), tokens }
    }

    /// `n` requests at once (different stories): aggregate tokens/s and each one's time to first token.
    async fn wave(&self, n: usize) -> (f64, Vec<f64>) {
        let started = Instant::now();
        let runs = (0..n).map(|i| self.stream(story(i), generate()));
        let done = futures::future::join_all(runs).await;
        let tokens: usize = done.iter().map(|s| s.tokens).sum();
        assert!(tokens >= n * generate() * 9 / 10, "each asked for {} tokens; {tokens} in all", generate());
        (tokens as f64 / started.elapsed().as_secs_f64(), done.iter().map(|s| s.first.as_secs_f64() * 1000.0).collect())
    }
}

fn story_request(i: usize) -> String {
    format!("Write a long, detailed story about {}.", TOPICS[i % TOPICS.len()])
}

fn story(i: usize) -> Value {
    json!([{ "role": "user", "content": story_request(i) }])
}

/// A system prompt of about 1,000 tokens (200 in the quick mode), different for each `n`.
fn long_system(n: usize) -> String {
    let rules: String = (0..common::sized(45, 9))
        .map(|r| format!("Rule {r} of house {n}: cite the passage, keep answers short, never guess. "))
        .collect();
    format!("You are limb {n} of a volunteer mesh. {rules}")
}

/// llama-server from a root with Debian's llama.cpp-tools, killed when dropped.
struct LlamaServer {
    child: std::process::Child,
    api: Api,
}

impl LlamaServer {
    async fn start(root: &std::path::Path, model: &std::path::Path, threads: i32, gpu_layers: u32) -> Self {
        let inside = root.join("tmp/heiwa-bench-model.gguf");
        if std::fs::metadata(&inside).map(|m| m.len()).ok() != std::fs::metadata(model).map(|m| m.len()).ok() {
            std::fs::copy(model, &inside).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let context = (CONTEXT as usize * SLOTS).to_string();
        let child = std::process::Command::new("chroot")
            .arg(root)
            .args(["llama-server", "-m", "/tmp/heiwa-bench-model.gguf", "-c", &context, "-np", &SLOTS.to_string()])
            .args(["-t", &threads.to_string(), "-ngl", &gpu_layers.to_string()])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chroot runs llama-server");
        let api = Api {
            url: format!("http://127.0.0.1:{port}/v1"),
            key: "none".into(),
            model: "any".into(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let health = api.http.get(format!("http://127.0.0.1:{port}/health")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "llama-server did not become healthy in 120 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        LlamaServer { child, api }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Aggregate tokens/s at 1, 4 and 8 at once (medians of the rounds) and the p95 time to first token at 8.
async fn curve(api: &Api) -> ([f64; 3], f64) {
    let (mut tps, mut firsts) = ([vec![], vec![], vec![]], vec![]);
    for _ in 0..rounds() {
        for (i, n) in [1, 4, 8].into_iter().enumerate() {
            let (rate, first) = api.wave(n).await;
            tps[i].push(rate);
            if n == 8 {
                firsts.extend(first);
            }
        }
    }
    let [a, b, c] = tps.map(|mut v| percentile(&mut v, 0.5));
    ([a, b, c], percentile(&mut firsts, 0.95))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let parts = heiwa_config::Parts::find(None).expect("parts (scripts/setup)");
    let threads = all_cores();
    let gpu_layers = common::gpu_layers();
    let offload = heiwa_inference::Offload::Layers { layers: gpu_layers };
    let options =
        ModelOptions { threads, offload, context_len: CONTEXT, sequences: SLOTS as u32, ..ModelOptions::default() };
    let chat_path = parts.chat_model().unwrap();
    let llama_root = std::env::var_os("HEIWA_BENCH_LLAMA_SERVER_ROOT").map(PathBuf::from);
    assert!(
        llama_root.is_some() || common::quick(),
        "a measurement compares with llama-server: set HEIWA_BENCH_LLAMA_SERVER_ROOT (see this file's header)"
    );

    // The engine before batching: a context per request, one at a time.
    let chat = Arc::new(ChatModel::load(&chat_path, options).unwrap());
    let before = {
        let started = Instant::now();
        let mut tokens = 0;
        for i in 0..common::sized(SLOTS, 2) {
            let prompt = chat.format_chat(&[("user", &story_request(i))]).unwrap();
            tokens +=
                chat.generate(&prompt, &GenerateOptions::greedy(generate()), &mut |_| true).unwrap().generated_tokens;
        }
        tokens as f64 / started.elapsed().as_secs_f64()
    };

    // heiwa serve, in process, on loopback.
    let models = Models {
        chat: chat.clone(),
        chat_id: model_id(&chat_path),
        embedder: Embedder::lazy(&parts.embed_model, ModelOptions::default()).unwrap(),
        embed_id: model_id(&parts.embed_model),
    };
    let state = ServeState::new(models, "bench-key".into(), 4 * SLOTS).unwrap();
    let listener = heiwa_config::bind_loopback("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let heiwa = Api {
        url: format!("http://{}/v1", listener.local_addr().unwrap()),
        key: "bench-key".into(),
        model: model_id(&chat_path),
        http: reqwest::Client::new(),
    };
    tokio::spawn({
        let state = state.clone();
        async move { axum::serve(listener, router(state)).await }
    });
    let ([tps_1, tps_4, tps_8], ttft_p95_8) = curve(&heiwa).await;

    // Prefix reuse: a system prompt seen before (a hit) against a new one (a miss).
    let (mut misses, mut hits) = (vec![], vec![]);
    let reused_before = state.batch_stats().reused_tokens;
    for n in 0..rounds() {
        let ask = |question: &str| json!([{ "role": "system", "content": long_system(n) }, { "role": "user", "content": question }]);
        misses.push(heiwa.stream(ask("Name a river."), 4).await.first.as_secs_f64());
        hits.push(heiwa.stream(ask("Name a mountain."), 4).await.first.as_secs_f64());
    }
    let stats = state.batch_stats();
    let shared = chat.count_tokens(&long_system(0));
    assert!(
        (stats.reused_tokens - reused_before) as usize >= rounds() * shared * 9 / 10,
        "the hits reuse their ~{shared}-token prefix: {stats:?}"
    );
    let (miss, hit) = (percentile(&mut misses, 0.5), percentile(&mut hits, 0.5));

    let llama = match &llama_root {
        Some(root) => {
            let server = LlamaServer::start(root, &chat_path, threads, gpu_layers).await;
            Some(curve(&server.api).await)
        }
        None => None,
    };

    println!(
        "model {}, {threads} threads, {SLOTS} slots of {CONTEXT} tokens, {} greedy tokens per request",
        model_id(&chat_path),
        generate()
    );
    println!("before batching (a context per request, one at a time, in process): {before:.1} tok/s");
    println!(
        "heiwa serve: 1 at once {tps_1:.1} tok/s, 4 {tps_4:.1}, 8 {tps_8:.1}; time to first token p95 at 8: {:.0} ms",
        ttft_p95_8
    );
    println!(
        "prefix reuse: {shared}-token system prompt, first token after {:.0} ms on a miss, {:.0} ms on a hit",
        miss * 1000.0,
        hit * 1000.0
    );
    let llama_fields = match llama {
        Some(([l1, l4, l8], l_ttft)) => {
            println!("llama-server -np {SLOTS}: 1 at once {l1:.1} tok/s, 4 {l4:.1}, 8 {l8:.1}; time to first token p95 at 8: {l_ttft:.0} ms");
            format!(
                " ratio_vs_llama_server_8={:.2} ratio_vs_llama_server_1={:.2} llama_server_tps_8={l8:.1} llama_server_speedup_8={:.2}",
                tps_8 / l8,
                tps_1 / l1,
                l8 / l1
            )
        }
        None => {
            println!("llama-server: not measured (HEIWA_BENCH_LLAMA_SERVER_ROOT is not set)");
            String::new()
        }
    };
    println!(
        "{} tps_1={tps_1:.1} tps_4={tps_4:.1} tps_8={tps_8:.1} speedup_8={:.2} vs_before_8={:.2} ttft_p95_8_ms={ttft_p95_8:.0} prefix_ttft_ratio={:.2} gpu_layers={gpu_layers}{llama_fields}",
        common::result_prefix("batch"),
        tps_8 / tps_1,
        tps_8 / before,
        hit / miss
    );
}
