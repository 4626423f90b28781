//! Inference benchmark: prompt processing (pp) and generation (tg) tokens/s
//! through the limb's engine (`ChatModel::generate`) and through `heiwa serve`
//! over HTTP (SSE), against a minimal direct llama-cpp-2 decode loop on the same
//! model, threads, context and prompt, in the same run. Greedy; 5 rounds,
//! interleaved; medians. First, before this thread computes anything, where
//! llama.cpp computes (OpenMP's threads spin at their barriers only while no
//! more live than cores, so run it with `OMP_WAIT_POLICY` unset, as a person's
//! process runs: the tests set it): a limb's lone generation after its batch
//! ran, on the batch's thread against on a thread of its own
//! (`lone_on_batch_thread_gain`); then `heiwa serve`'s decode after an
//! embedding through the product's `Embedder` (on a thread of its own)
//! against the same beside a thread that computed and lives on
//! (`lone_team_gain`).
//!
//! `cargo bench --profile dev --workspace --bench inference` (after `source scripts/lib/env.sh`).
//! `HEIWA_BENCH_GPU_LAYERS=N` offloads N layers in every contender (engine,
//! serve and the raw loop alike); on this project's machines the only Vulkan
//! device is lavapipe, which also needs `GGML_VK_VISIBLE_DEVICES=0`.
//! The last line is machine-readable: `RESULT inference …`.

mod common;

use common::percentile;
use heiwa_inference::remote::{RemoteClient, RemoteOptions};
use heiwa_inference::{Batcher, ChatModel, Embedder, GenerateOptions, ModelOptions};
use heiwa_serve::{model_id, router, Models, ServeState};
use limb_core::agent::Message;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use std::num::NonZeroU32;
use std::time::Instant;

/// Tokens generated per call (8 in the smoke mode, which only runs the code).
fn generate() -> usize {
    common::sized(64, 8)
}
fn rounds() -> usize {
    common::sized(5, 1)
}
const CONTEXT: u32 = 2048;

/// (pp tokens/s, tg tokens/s) of the raw loop. The same work as the engine's
/// in the same timed window: tokenize, then a context sized to the call
/// (prompt and generation, rounded up to llama.cpp's 256), as the engine
/// sizes its own, then prefill.
fn raw(backend: &LlamaBackend, model: &LlamaModel, prompt: &str, threads: i32) -> (f64, f64) {
    let started = Instant::now();
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let needed = ((tokens.len() + generate()).div_ceil(256) * 256).min(CONTEXT as usize) as u32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(needed))
        .with_n_batch(needed)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend, params).unwrap();
    let mut batch = LlamaBatch::new(needed as usize, 1);
    for (i, t) in tokens.iter().enumerate() {
        batch.add(*t, i as i32, &[0], i == tokens.len() - 1).unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let mut sampler = LlamaSampler::greedy();
    let mut token = sampler.sample(&ctx, batch.n_tokens() - 1);
    let first = Instant::now();
    let pp = tokens.len() as f64 / (first - started).as_secs_f64();
    for position in 0..generate() - 1 {
        sampler.accept(token);
        batch.clear();
        batch.add(token, (tokens.len() + position) as i32, &[0], true).unwrap();
        ctx.decode(&mut batch).unwrap();
        token = sampler.sample(&ctx, batch.n_tokens() - 1);
    }
    (pp, (generate() - 1) as f64 / first.elapsed().as_secs_f64())
}

/// The raw loop's model parameters: the same placement as the engine's
/// (no device at all for the CPU, as `Offload::CPU` does).
fn raw_params(gpu_layers: u32) -> LlamaModelParams {
    let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
    if gpu_layers == 0 {
        params.with_devices(&[]).unwrap()
    } else {
        params
    }
}

/// (pp, tg) through the engine: time to the first piece, then the rest.
fn engine(chat: &ChatModel, prompt: &str) -> (f64, f64) {
    let started = Instant::now();
    let mut first = None;
    let completion = chat
        .generate(prompt, &GenerateOptions::greedy(generate()), &mut |_| {
            first.get_or_insert_with(Instant::now);
            true
        })
        .unwrap();
    assert_eq!(completion.generated_tokens, generate(), "the prompt must not end early");
    let first = first.unwrap();
    (
        completion.prompt_tokens as f64 / (first - started).as_secs_f64(),
        (generate() - 1) as f64 / first.elapsed().as_secs_f64(),
    )
}

/// tg through HTTP: streamed pieces after the first, per second (through the
/// product's own OpenAI client, so parsing costs count as a user's would).
async fn http(client: &RemoteClient, question: &str) -> f64 {
    let (mut first, mut pieces, mut last) = (None, 0usize, Instant::now());
    client
        .chat_stream(&[Message::new("user", question)], generate(), &mut |piece| {
            if !piece.is_empty() {
                first.get_or_insert_with(Instant::now);
                pieces += 1;
                last = Instant::now();
            }
        })
        .await
        .unwrap();
    (pieces - 1) as f64 / (last - first.unwrap()).as_secs_f64()
}

#[tokio::main]
async fn main() {
    let parts = heiwa_config::Parts::find(None).unwrap_or_else(|missing| panic!("{missing}"));
    let threads = heiwa_inference::all_cores();
    let gpu_layers = common::gpu_layers();
    let offload = heiwa_inference::Offload::Layers { layers: gpu_layers };
    let options = ModelOptions { threads, offload, context_len: CONTEXT, sequences: 1, ..ModelOptions::default() };
    // A few hundred prompt tokens, as a task with retrieved passages has.
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/docs");
    // (One passage in the smoke mode.)
    let passages: String = ["volunteer-computing.md", "vector-search.md", "rust-ownership.md"][..common::sized(3, 1)]
        .iter()
        .map(|f| std::fs::read_to_string(samples.join(f)).unwrap())
        .collect();
    let question = format!("{passages}\n\nWrite a long, detailed story about a lighthouse keeper and a storm.");
    let question = question.as_str();

    let chat = std::sync::Arc::new(ChatModel::load(&parts.chat_model().unwrap(), options).unwrap());
    let prompt = chat.format_chat(&[("user", question)]).unwrap();
    let backend = heiwa_inference::backend().unwrap();
    let raw_model = LlamaModel::load_from_file(backend, parts.chat_model().unwrap(), &raw_params(gpu_layers)).unwrap();

    // heiwa serve, in process, on loopback.
    let models = Models {
        chat: std::sync::Arc::new(ChatModel::load(&parts.chat_model().unwrap(), options).unwrap()),
        chat_id: model_id(&parts.chat_model().unwrap()),
        embedder: Embedder::load(
            &parts.embed_model,
            ModelOptions { offload: heiwa_inference::Offload::CPU, ..options },
        )
        .unwrap(),
        embed_id: model_id(&parts.embed_model),
    };
    let chat_id = models.chat_id.clone();
    let listener = heiwa_config::bind_loopback("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = RemoteClient::new(RemoteOptions {
        base_url: format!("http://{}/v1", listener.local_addr().unwrap()),
        api_key: Some("bench-key".into()),
        model: chat_id.clone(),
        timeout: std::time::Duration::from_secs(120),
        attempts: 1,
    });
    tokio::spawn(async move {
        axum::serve(listener, router(ServeState::new(models, "bench-key".into(), 8).unwrap())).await
    });

    // Before anything computes on this thread (its OpenMP team would stay), a limb's lone work — greedy
    // generation, scoring — after its batch has decoded agent turns (the batch's thread has its team): run on the
    // batch's thread between its steps (`run_alone`: one team) against on a thread of its own beside the batch's
    // idle team (two). The smoke mode only runs it once, unmeasured.
    let limb_batch = Batcher::start(chat.clone()).unwrap();
    limb_batch.generate(&prompt, &GenerateOptions::greedy(8), &mut |_| true).unwrap();
    let (mut lone_on_batch_thread, mut lone_beside) = (vec![], vec![]);
    for _ in 0..common::sized(rounds(), 0) {
        let on_batch_thread = prompt.clone();
        lone_on_batch_thread.push(limb_batch.run_alone(move |model| engine(model, &on_batch_thread).1).unwrap());
        lone_beside.push(heiwa_inference::on_a_thread_of_its_own(|| engine(&chat, &prompt).1));
    }
    if common::quick() {
        assert_eq!(limb_batch.run_alone(|model| model.count_tokens("two words")).unwrap(), 2);
    }
    drop(limb_batch); // its thread, and its team, end here

    // Then: `heiwa serve`'s decode right after an embedding through the product's `Embedder` (computed on a
    // thread of its own, whose team ended with it) against the same decode while a thread that computed with
    // llama.cpp lives on (as a tokio blocking thread does for 10 s after a task: what the limb's lone work and
    // embeddings did before).
    let embedder =
        Embedder::load(&parts.embed_model, ModelOptions { offload: heiwa_inference::Offload::CPU, ..options }).unwrap();
    if rounds() > 1 {
        http(&client, question).await; // warm up the batch (the smoke mode's one round goes without)
    }
    let (mut team_ended, mut team_lingering) = (vec![], vec![]);
    for _ in 0..rounds() {
        embedder.embed(&[question]).unwrap();
        team_ended.push(http(&client, question).await);
        let (computed, linger) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let lingering = {
            let (chat, prompt) = (chat.clone(), prompt.clone());
            std::thread::spawn(move || {
                chat.generate(&prompt, &GenerateOptions::greedy(1), &mut |_| true).unwrap();
                computed.0.send(()).unwrap();
                let _ = linger.1.recv();
            })
        };
        computed.1.recv().unwrap();
        team_lingering.push(http(&client, question).await);
        linger.0.send(()).unwrap();
        lingering.join().unwrap();
    }
    if !common::quick() {
        raw(backend, &raw_model, &prompt, threads); // warm up
    }
    let (mut raw_pp, mut raw_tg, mut eng_pp, mut eng_tg, mut http_tg) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds() {
        let (pp, tg) = raw(backend, &raw_model, &prompt, threads);
        raw_pp.push(pp);
        raw_tg.push(tg);
        let (pp, tg) = engine(&chat, &prompt);
        eng_pp.push(pp);
        eng_tg.push(tg);
        http_tg.push(http(&client, question).await);
    }
    let m = |v: &mut Vec<f64>| percentile(v, 0.5);
    let (raw_pp, raw_tg, eng_pp, eng_tg, http_tg) =
        (m(&mut raw_pp), m(&mut raw_tg), m(&mut eng_pp), m(&mut eng_tg), m(&mut http_tg));
    println!(
        "model {}, {threads} threads, {}, {} prompt tokens, {} generated",
        chat_id,
        chat.offload().why,
        chat.count_tokens(&prompt),
        generate()
    );
    println!("raw llama-cpp-2 loop: pp {raw_pp:.1} tok/s, tg {raw_tg:.1} tok/s");
    println!("limb engine:          pp {eng_pp:.1} tok/s, tg {eng_tg:.1} tok/s");
    println!("heiwa serve (SSE):                      tg {http_tg:.1} tok/s");
    let (team_ended, team_lingering) = (m(&mut team_ended), m(&mut team_lingering));
    let lone = if common::quick() {
        String::new()
    } else {
        let (on_batch_thread, beside) = (m(&mut lone_on_batch_thread), m(&mut lone_beside));
        println!(
            "a limb's lone generation after agent turns: tg {on_batch_thread:.1} tok/s on the batch's thread, \
             {beside:.1} on a thread of its own beside the batch's idle team"
        );
        format!(
            " lone_tg_on_batch_thread={on_batch_thread:.1} lone_tg_beside={beside:.1} lone_on_batch_thread_gain={:.2}",
            on_batch_thread / beside
        )
    };
    println!(
        "heiwa serve (SSE) after an embedding on its own thread: tg {team_ended:.1} tok/s; beside a thread that \
         computed and lives on: tg {team_lingering:.1} tok/s (OMP_WAIT_POLICY={})",
        std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "unset".into())
    );
    let result = common::result_prefix("inference");
    println!(
        "{result} tg_ratio={:.2} pp_ratio={:.2} http_tg_ratio={:.2} raw_tg={raw_tg:.1} raw_pp={raw_pp:.1} \
         team_ended_tg={team_ended:.1} team_lingering_tg={team_lingering:.1} lone_team_gain={:.2}{lone} \
         gpu_layers={gpu_layers}",
        eng_tg / raw_tg,
        eng_pp / raw_pp,
        http_tg / raw_tg,
        team_ended / team_lingering
    );
}
