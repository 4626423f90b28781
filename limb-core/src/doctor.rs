//! `heiwa doctor`: bring up every real part once, do one small real thing with
//! each, report it, and stop everything that was started.

use heiwa_config::{free_loopback_port, Parts};
use heiwa_hub::bindings::TaskTableAccess;
use heiwa_hub::{connect, HubError, HubHttp, HubServer, HubServerConfig};
use heiwa_inference::{ChatModel, InferenceError, ModelOptions, Offload};
use heiwa_memory::{Memory, MemoryError, PgServer, PgServerConfig};
use heiwa_sandbox::{Limits, Sandbox, SandboxError};
use spacetimedb_sdk::{DbContext, Table};
use std::path::Path;
use std::time::{Duration, Instant};

/// One part's outcome, reported as soon as it is known.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub part: &'static str,
    pub ok: bool,
    /// Not there, and optional: the limb works without it (the sandbox without
    /// a container engine). `ok` stays true; `detail` says how to turn it on.
    pub off: bool,
    pub detail: String,
    pub millis: u128,
}

/// Why a check failed: the part's own error, or what the check saw.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the check itself stopped: {0}")]
    Panicked(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Unexpected(String),
}

/// Run every check; returns whether all passed. `work_dir` holds the
/// throw-away hub database and the memory server's files.
pub async fn run(parts: &Parts, work_dir: &Path, report: &mut dyn FnMut(&Check)) -> bool {
    let mut all_ok = true;
    let mut record = |part: &'static str, started: Instant, result: Result<String, CheckError>| {
        let off = matches!(result, Err(CheckError::Sandbox(SandboxError::EngineUnavailable { .. })));
        let check = Check {
            part,
            ok: result.is_ok() || off,
            off,
            millis: started.elapsed().as_millis(),
            detail: result.unwrap_or_else(|e| e.to_string()),
        };
        all_ok &= check.ok;
        report(&check);
    };
    let started = Instant::now();
    record("hub", started, check_hub(parts, &work_dir.join("hub")).await);
    let started = Instant::now();
    record("memory", started, check_memory(parts, &work_dir.join("memory")).await);
    let started = Instant::now();
    record("cpu", started, check_cpu());
    let started = Instant::now();
    record("gpu", started, check_gpu());
    let started = Instant::now();
    let inference = match parts.chat_model() {
        Ok(chat_model) => tokio::task::spawn_blocking(move || check_inference(&chat_model)).await,
        Err(missing) => Ok(Err(CheckError::Unexpected(missing.to_string()))),
    };
    record("inference", started, inference.unwrap_or_else(|e| Err(e.into())));
    let started = Instant::now();
    record("sandbox", started, check_sandbox(parts).await);
    all_ok
}

async fn check_hub(parts: &Parts, dir: &Path) -> Result<String, CheckError> {
    // A throw-away hub: a database left by an earlier run belongs to another identity.
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|source| CheckError::Io { what: format!("clearing {}", dir.display()), source })?;
    }
    let port = free_loopback_port().map_err(|source| CheckError::Io { what: "finding a free port".into(), source })?;
    let listen = format!("127.0.0.1:{port}").parse().expect("a loopback address");
    let config = HubServerConfig { binary: parts.spacetimedb_bin.clone(), data_dir: dir.to_path_buf(), listen };
    let server = tokio::task::spawn_blocking(move || HubServer::start(&config)).await??;
    let http = HubHttp::new(server.http_url());
    let owner = http.new_identity().await?;
    http.publish("heiwa", &parts.hub_wasm, &owner.token).await?;
    let uri = server.ws_url();
    let token = owner.token.clone();
    let connected =
        tokio::task::spawn_blocking(move || connect(&uri, "heiwa", Some(token), heiwa_hub::tenant_tables(), |_| {}))
            .await??;
    http.create_tenant("heiwa", "doctor", &owner.token).await?;
    http.submit_task("heiwa", "doctor: hello hub", None, &owner.token).await?;
    // Watched in the subscription's cache, not by an `on_insert` registered
    // now: the 1.2 SDK applies a callback registration and an arriving row in
    // either order when both wait (its message thread's `select!`), and a row
    // applied first fires nothing.
    let arrived = || connected.conn.db.task().iter().map(|task| task.payload).next();
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        if let Some(payload) = arrived() {
            break payload;
        }
        if Instant::now() > deadline {
            return Err(CheckError::Unexpected("the submitted task never arrived through the subscription".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = connected.conn.disconnect();
    server.stop();
    Ok(format!("SpacetimeDB on {listen}: published hub-module, created a tenant, submitted a task, saw \"{seen}\" arrive by subscription"))
}

async fn check_memory(parts: &Parts, dir: &Path) -> Result<String, CheckError> {
    let config = PgServerConfig { install_dir: parts.pg_dir.clone(), root: dir.to_path_buf() };
    let mut server = PgServer::new(config)?;
    server.start()?;
    let memory = Memory::open(&server).await?;
    let (server_version, version) = memory.versions().await?;
    memory.close().await;
    server.stop()?;
    Ok(format!("PostgreSQL {server_version} with pgvector {version} on a private Unix socket in {}", dir.display()))
}

/// Which CPU kernels llama.cpp runs here (a CPU without the build's level fails).
fn check_cpu() -> Result<String, CheckError> {
    heiwa_inference::backend()?;
    Ok(heiwa_inference::cpu_kernels())
}

/// The GPUs llama.cpp found; none is not a failure (the model runs on the
/// CPU), but the reason is said.
fn check_gpu() -> Result<String, CheckError> {
    let gpus = heiwa_inference::gpu::gpus()?;
    if let Some(why) = heiwa_inference::gpu::cpu_only_reason(&gpus) {
        return Ok(format!("none used: {why}"));
    }
    let listed: Vec<String> = gpus
        .iter()
        .map(|g| format!("{} {} ({}, {} of {} MiB free)", g.backend, g.name, g.description, g.free_mib, g.total_mib))
        .collect();
    Ok(listed.join("; "))
}

fn check_inference(model: &Path) -> Result<String, CheckError> {
    let loaded = Instant::now();
    // As a limb loads it: as many layers on the GPU as fit.
    let options = ModelOptions { offload: Offload::Fit { cap_mib: None }, ..ModelOptions::default() };
    let chat = ChatModel::load(model, options)?;
    let load_ms = loaded.elapsed().as_millis();
    let prompt = chat.format_chat(&[("user", "What is 6 times 7? Answer with a number.")])?;
    let generated = Instant::now();
    let completion = chat.complete(&prompt, 16)?;
    let secs = generated.elapsed().as_secs_f64();
    Ok(format!(
        "{} loaded in {load_ms} ms ({}); generated {} tokens ({:.1} tok/s incl. prompt): {:?}",
        model.file_name().unwrap_or_default().to_string_lossy(),
        chat.offload().why,
        completion.generated_tokens,
        completion.generated_tokens as f64 / secs,
        completion.text.trim()
    ))
}

async fn check_sandbox(parts: &Parts) -> Result<String, CheckError> {
    let sandbox = Sandbox::connect(&parts.sandbox_image, Limits::default()).await?;
    let output = sandbox.run_python("print(6*7)").await?;
    if output.stdout.trim() != "42" {
        return Err(CheckError::Unexpected(format!("expected 42, got {output:?}")));
    }
    Ok(format!("print(6*7) in {} (no network, read-only root) printed {}", parts.sandbox_image, output.stdout.trim()))
}
