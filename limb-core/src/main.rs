//! `heiwa`: the headless limb. Thin glue over `limb_core`.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use limb_core::hub::{run_limb, EchoExecutor, HubHttp, HubServer, HubServerConfig, LimbEvent, LimbOptions};
use limb_core::agent::local::LocalAgent;
use limb_core::agent::Budget;
use limb_core::{config, doctor, LimbInfo};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "heiwa", version, about = "A limb of the Heiwa agent mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct HubArgs {
    /// The hub's HTTP address.
    #[arg(long, env = "HEIWA_HUB", default_value = "http://127.0.0.1:3000")]
    hub: String,
    /// The hub's database name.
    #[arg(long, env = "HEIWA_DATABASE", default_value = "heiwa")]
    database: String,
    /// This client's identity token (created on first use, kept private).
    #[arg(long, env = "HEIWA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl HubArgs {
    fn token_file(&self, default_name: &str) -> PathBuf {
        self.token_file.clone().unwrap_or_else(|| config::data_dir().join(default_name))
    }

    fn ws_uri(&self) -> String {
        self.hub.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Start every real part once (hub, memory, model, sandbox), use it, report, stop.
    Doctor {
        /// Print one JSON object per check instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show this limb's version, data directory and configured parts.
    Status,
    /// Run a local hub.
    #[command(subcommand)]
    Hub(HubCommand),
    /// Create a tenant owned by this client's identity.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Submit and inspect tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Run this machine as a limb.
    #[command(subcommand)]
    Limb(LimbCommand),
    /// Add a file or folder to local memory (offline; nothing leaves this machine).
    Ingest {
        path: PathBuf,
        #[arg(long, default_value = "local")]
        tenant: String,
        /// Keep watching: new, changed and deleted files are picked up until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Answer a question here, without a hub: the same agent loop a limb runs
    /// for a task (local memory, local model, the sandboxed run_python).
    Ask {
        question: String,
        /// The memory tenant whose documents are searched.
        #[arg(long, default_value = "local")]
        tenant: String,
        #[arg(long, default_value_t = Budget::default().max_steps)]
        max_steps: usize,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Serve the sandboxed run_python tool over MCP: on stdio, or with --http
    /// over streamable HTTP at http://ADDR/mcp (loopback addresses only).
    Mcp {
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
    },
    /// List or remove documents in local memory (the files are not touched).
    #[command(subcommand)]
    Docs(DocsCommand),
    /// Serve this limb's chat and embedding models as an OpenAI-compatible API
    /// on loopback (bearer key kept in the data directory as api.key).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Requests that may run or wait for the model at once; more get 503.
        #[arg(long, default_value_t = 8)]
        max_waiting: usize,
        /// CPU threads (default: all cores).
        #[arg(long)]
        threads: Option<i32>,
        /// Layers offloaded to the GPU; 0 keeps the model on the CPU.
        #[arg(long, default_value_t = 0)]
        gpu_layers: u32,
        /// Context length in tokens.
        #[arg(long, default_value_t = 4096)]
        context: u32,
        /// Chat template to use instead of the model's own: a llama.cpp name (chatml, llama3, gemma, …).
        #[arg(long)]
        chat_template: Option<String>,
    },
    /// Import, list, remove GGUF models and choose the default chat model.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Search local memory; every hit cites its file, chunk and byte span.
    Search {
        query: String,
        #[arg(short, default_value_t = 5)]
        k: i64,
        #[arg(long, default_value = "local")]
        tenant: String,
    },
}

/// Local memory for one command: the app's PostgreSQL and the embedding model.
async fn open_memory() -> anyhow::Result<limb_core::memory::LocalMemory> {
    let parts = config::Parts::from_env()?;
    Ok(limb_core::memory::LocalMemory::open(&parts.pg_dir, &parts.embed_model, &config::data_dir().join("memory")).await?)
}

/// The configured parts, with the chat model replaced by the one chosen with
/// `heiwa models default`, if any.
fn parts() -> anyhow::Result<config::Parts> {
    Ok(config::Parts::chosen(&config::data_dir())?)
}

/// A remote OpenAI-compatible server to chat with instead of the local model.
#[derive(Args, Clone)]
struct RemoteArgs {
    /// Base URL of an OpenAI-compatible API (vLLM, LiteLLM, another limb's `heiwa serve`), e.g. http://127.0.0.1:8000/v1.
    #[arg(long, env = "HEIWA_REMOTE_URL")]
    remote_url: Option<String>,
    /// The remote model's id.
    #[arg(long, env = "HEIWA_REMOTE_MODEL", requires = "remote_url")]
    remote_model: Option<String>,
    /// Seconds per remote request.
    #[arg(long, default_value_t = 120)]
    remote_timeout_secs: u64,
}

impl RemoteArgs {
    fn options(&self) -> anyhow::Result<Option<limb_core::remote::RemoteOptions>> {
        let Some(base_url) = self.remote_url.clone() else { return Ok(None) };
        let model = self.remote_model.clone().context("--remote-model is needed with --remote-url")?;
        Ok(Some(limb_core::remote::RemoteOptions {
            base_url,
            // From the environment only: a key on the command line would show in `ps`.
            api_key: std::env::var("HEIWA_REMOTE_KEY").ok().filter(|k| !k.is_empty()),
            model,
            timeout: std::time::Duration::from_secs(self.remote_timeout_secs),
            attempts: 3,
        }))
    }
}

async fn open_agent(tenant: &str, max_steps: usize, remote: &RemoteArgs) -> anyhow::Result<LocalAgent> {
    let parts = parts()?;
    let budget = Budget { max_steps, ..Budget::default() };
    let agent = LocalAgent::open(&parts, &config::data_dir(), tenant, budget, remote.options()?).await?;
    if let Some(problem) = agent.tool_problem() {
        eprintln!("warning: answering without run_python: {problem}");
    }
    Ok(agent)
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExecutorKind {
    /// The agent: local memory, the local model and the sandboxed run_python.
    Agent,
    /// Answers with the payload's size after --work-ms (for tests and load runs).
    Echo,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Copy a GGUF file into the models directory (checked first).
    Import { path: PathBuf },
    /// Every imported model with what its metadata says.
    List,
    Rm { id: String },
    /// Use this model for chat (heiwa ask, serve, limb run) instead of the configured one.
    Default { id: String },
}

#[derive(Subcommand)]
enum DocsCommand {
    List {
        #[arg(long, default_value = "local")]
        tenant: String,
    },
    /// Forget a document, or every document under a folder.
    Rm {
        path: PathBuf,
        #[arg(long, default_value = "local")]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum HubCommand {
    /// Start a SpacetimeDB server on loopback, publish hub-module, serve until Ctrl-C.
    Up {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "HEIWA_DATABASE", default_value = "heiwa")]
        database: String,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    Create {
        name: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Create an invite code a new limb joins with.
    Invite {
        #[arg(long, default_value_t = 1)]
        uses: u32,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u32,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Subcommand)]
enum TaskCommand {
    Submit {
        payload: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    Show {
        id: u64,
        #[command(flatten)]
        hub: HubArgs,
    },
    Cancel {
        id: u64,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Subcommand)]
enum LimbCommand {
    /// Claim and answer this tenant's tasks until Ctrl-C (releases what it holds on exit).
    Run {
        #[arg(long, env = "HEIWA_INVITE")]
        invite: Option<String>,
        #[arg(long, default_value = "limb")]
        name: String,
        #[arg(long, default_value_t = 30)]
        lease_secs: u32,
        #[arg(long, default_value_t = 2)]
        max_in_flight: usize,
        /// What answers the tasks.
        #[arg(long, value_enum, default_value = "agent")]
        executor: ExecutorKind,
        /// With the agent: the memory tenant whose documents are searched.
        #[arg(long, default_value = "local")]
        memory_tenant: String,
        /// With the echo executor: how long it works on each task.
        #[arg(long, default_value_t = 0)]
        work_ms: u64,
        /// When and how much to give: a JSON donation policy, as in the desktop
        /// app's settings.json ("donation"). Without it the limb always gives.
        #[arg(long)]
        donation: Option<PathBuf>,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        hub: HubArgs,
    },
}

async fn hub_client(args: &HubArgs) -> anyhow::Result<(HubHttp, String)> {
    let http = HubHttp::new(args.hub.trim_end_matches('/'));
    let token = http.identity_token(&args.token_file("identity.token")).await?;
    Ok((http, token))
}

/// SpacetimeDB's JSON writes a sum type as `[variant index, value]`.
fn state_name(state: &serde_json::Value) -> &'static str {
    ["pending", "claimed", "done", "failed", "cancelled"].get(state[0].as_u64().unwrap_or(99) as usize).copied().unwrap_or("?")
}

/// `Option` is the sum `some(x) | none`: `[0, x]` or `[1, []]`.
fn option(value: &serde_json::Value) -> Option<&serde_json::Value> {
    (value[0] == 0).then(|| &value[1])
}

/// Rows as objects named by the reply's schema, with SpacetimeDB's JSON made
/// readable: `state` by name, options as a value or null, one-field products
/// (timestamps, identities) unwrapped.
fn named_rows(reply: &serde_json::Value) -> Vec<serde_json::Value> {
    let names: Vec<String> = reply[0]["schema"]["elements"]
        .as_array()
        .map(|e| e.iter().map(|el| el["name"]["some"].as_str().unwrap_or("?").to_string()).collect())
        .unwrap_or_default();
    let readable = |name: &str, value: &serde_json::Value| match value {
        _ if name == "state" => json!(state_name(value)),
        serde_json::Value::Array(items) if items.len() == 1 => items[0].clone(),
        serde_json::Value::Array(items) if items.len() == 2 && (items[0] == 0 || items[0] == 1) => {
            option(value).map(|v| if v.as_array().map(Vec::len) == Some(1) { v[0].clone() } else { v.clone() }).unwrap_or(serde_json::Value::Null)
        }
        other => other.clone(),
    };
    rows(reply)
        .iter()
        .map(|row| names.iter().zip(row.as_array().into_iter().flatten()).map(|(n, v)| (n.clone(), readable(n, v))).collect())
        .collect()
}

fn rows(reply: &serde_json::Value) -> Vec<serde_json::Value> {
    reply[0]["rows"].as_array().cloned().unwrap_or_default()
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HEIWA_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Doctor { json } => {
            let parts = config::Parts::from_env()?;
            let work = config::data_dir().join("doctor");
            std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
            let ok = doctor::run(&parts, &work, &mut |check| {
                if json {
                    println!("{}", serde_json::to_string(check).expect("a check serialises"));
                } else {
                    let mark = if check.ok { "ok  " } else { "FAIL" };
                    println!("[{mark}] {:<9} {:>6} ms  {}", check.part, check.millis, check.detail);
                }
            })
            .await;
            anyhow::ensure!(ok, "some parts failed; see above");
        }
        Command::Status => println!("{}", serde_json::to_string_pretty(&LimbInfo::gather())?),
        Command::Hub(HubCommand::Up { listen, database }) => {
            let parts = config::Parts::from_env()?;
            let dir = config::data_dir().join("hub");
            let config = HubServerConfig { binary: parts.spacetimedb_bin, data_dir: dir.join("server"), listen };
            let server = HubServer::start(&config)?;
            let http = HubHttp::new(server.http_url());
            // The database owner's token is kept so later runs update the same database.
            let owner = http.identity_token(&dir.join("owner.token")).await?;
            http.publish(&database, &parts.hub_wasm, &owner).await?;
            println!("hub up: {} (database {database}); Ctrl-C stops it", server.http_url());
            shutdown_signal().await;
            server.stop();
        }
        Command::Tenant(TenantCommand::Create { name, hub }) => {
            let (http, token) = hub_client(&hub).await?;
            http.call(&hub.database, "create_tenant", json!([name]), &token).await?;
            println!("tenant {name} created; `heiwa tenant invite` makes a code for a limb");
        }
        Command::Tenant(TenantCommand::Invite { uses, ttl_secs, hub }) => {
            let (http, token) = hub_client(&hub).await?;
            let before = rows(&http.sql(&hub.database, "SELECT code FROM invite", &token).await?);
            http.call(&hub.database, "create_invite", json!([uses, ttl_secs]), &token).await?;
            let after = rows(&http.sql(&hub.database, "SELECT code FROM invite", &token).await?);
            let code = after.into_iter().find(|row| !before.contains(row)).context("the new invite is not visible")?;
            println!("{}", code[0].as_str().unwrap_or_default());
        }
        Command::Task(command) => task_command(command).await?,
        Command::Ingest { path, tenant, watch } => {
            let path = std::fs::canonicalize(&path).with_context(|| format!("{}", path.display()))?;
            let local = open_memory().await?;
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("a valid template"),
            );
            // Lines go through `suspend` so they print whether or not the bar is drawn (not on a terminal).
            let mut progress = |step: limb_core::memory::Progress| {
                use limb_core::memory::Outcome;
                bar.set_length(step.total as u64);
                bar.set_position(step.done as u64);
                bar.set_message(step.path.display().to_string());
                bar.suspend(|| match &step.outcome {
                    Outcome::Added => println!("added      {}", step.path.display()),
                    Outcome::Unchanged => println!("unchanged  {}", step.path.display()),
                    Outcome::Failed(reason) => println!("not added  {}: {reason}", step.path.display()),
                });
            };
            let mut summary = |report: limb_core::memory::IngestReport| {
                bar.suspend(|| {
                    for file in &report.removed {
                        println!("removed    {file} (no longer on disk)");
                    }
                    println!(
                        "{} added, {} unchanged, {} removed, {} not added",
                        report.added.len(),
                        report.unchanged.len(),
                        report.removed.len(),
                        report.failed.len()
                    );
                    if watch {
                        println!("watching {} for changes; Ctrl-C stops", path.display());
                    }
                });
            };
            let outcome = if watch {
                let quiet = std::time::Duration::from_millis(500);
                limb_core::memory::watch_path(&local.memory, &local.embedder, &tenant, &path, quiet, &mut progress, &mut summary, shutdown_signal()).await
            } else {
                limb_core::memory::ingest_path(&local.memory, &local.embedder, &tenant, &path, &mut progress).await.map(&mut summary)
            };
            bar.finish_and_clear();
            local.close().await?;
            outcome?;
        }
        Command::Ask { question, tenant, max_steps, remote } => {
            let local = open_agent(&tenant, max_steps, &remote).await?;
            let answered = local.agent.answer(&question).await;
            local.close().await?;
            let answer = answered?;
            for (n, tool) in answer.tool_uses.iter().enumerate() {
                let stopped = tool.limit.map(|l| format!(" (stopped: {l:?})")).unwrap_or_default();
                println!("tool call {}: run_python{stopped}\n{}\n  → {}", n + 1, indent(&tool.code), tool.stdout.trim());
            }
            println!("{}", answer.text);
            if !answer.citations.is_empty() {
                println!("\nsources:");
            }
            for (n, c) in answer.citations.iter().enumerate() {
                println!("[{}] {} (chunk {}, bytes {}..{})", n + 1, c.path, c.position, c.span.0, c.span.1);
            }
        }
        Command::Mcp { http } => {
            use limb_core::mcp::{serve_http, serve_stdio, RunPythonServer};
            let parts = config::Parts::from_env()?;
            let sandbox = limb_core::sandbox::Sandbox::connect(&parts.sandbox_image, Default::default()).await?;
            let pool = Arc::new(limb_core::sandbox::WarmPool::new(Arc::new(sandbox), 1));
            let server = RunPythonServer::new(pool.clone());
            let served = match http {
                None => serve_stdio(server).await,
                Some(addr) => match config::bind_loopback(addr).await {
                    Ok(listener) => {
                        // On stderr: stdout stays clean for tools that read it.
                        eprintln!("MCP on http://{}/mcp; Ctrl-C stops it", listener.local_addr()?);
                        serve_http(server, listener, shutdown_signal()).await
                    }
                    Err(e) => Err(e.into()),
                },
            };
            pool.close().await;
            served?;
        }
        Command::Models(command) => {
            let store = limb_core::models::ModelStore::new(config::data_dir().join("models"));
            match command {
                ModelsCommand::Import { path } => {
                    let info = store.import(&path)?;
                    println!("imported {} ({})", info.id, info.path.display());
                }
                ModelsCommand::List => {
                    let models = store.list()?;
                    for m in &models {
                        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
                        println!(
                            "{} {:<40} {:<10} {:>6} {:<8} ctx {:>6}  {} MB{}",
                            if m.is_default { "*" } else { " " },
                            m.id,
                            or_unknown(&m.architecture),
                            or_unknown(&m.parameters),
                            or_unknown(&m.quantization),
                            m.context_length.map_or("?".into(), |c| c.to_string()),
                            m.size_bytes >> 20,
                            if m.has_chat_template { ", chat template" } else { "" }
                        );
                    }
                    println!("{} models in {}", models.len(), config::data_dir().join("models").display());
                }
                ModelsCommand::Rm { id } => {
                    store.remove(&id)?;
                    println!("removed {id}");
                }
                ModelsCommand::Default { id } => {
                    store.set_default(&id)?;
                    println!("{id} is the default chat model");
                }
            }
        }
        Command::Docs(DocsCommand::List { tenant }) => {
            let local = open_memory().await?;
            let documents = local.memory.documents(&tenant).await;
            local.close().await?;
            let documents = documents?;
            for doc in &documents {
                println!("{:>6} chunks  {:>9} bytes  {}", doc.chunks, doc.text_bytes, doc.path);
            }
            println!("{} documents in {tenant}'s memory", documents.len());
        }
        Command::Docs(DocsCommand::Rm { path, tenant }) => {
            // The file may be gone already: then the path is taken as written, made absolute.
            let path = std::fs::canonicalize(&path).unwrap_or_else(|_| std::path::absolute(&path).unwrap_or(path));
            let local = open_memory().await?;
            let removed = local.memory.remove_documents(&tenant, &path.to_string_lossy()).await;
            local.close().await?;
            let removed = removed?;
            if removed.is_empty() {
                bail!("nothing stored at {} in {tenant}'s memory (see `heiwa docs list`)", path.display());
            }
            for path in &removed {
                println!("removed  {path}");
            }
        }
        Command::Serve { listen, max_waiting, threads, gpu_layers, context, chat_template } => {
            use limb_core::serve::{api_key, model_id, serve, Models, ServeState};
            let parts = parts()?;
            let listener = config::bind_loopback(listen).await?;
            let key_file = config::data_dir().join("api.key");
            let key = api_key(&key_file).with_context(|| format!("creating {}", key_file.display()))?;
            let threads = threads.unwrap_or_else(limb_core::inference::all_cores);
            let options = limb_core::inference::ModelOptions { threads, gpu_layers, context_len: context };
            let models = Models {
                chat: match chat_template {
                    Some(template) => limb_core::inference::ChatModel::load(&parts.chat_model, options)?.with_template(template),
                    None => limb_core::inference::ChatModel::load(&parts.chat_model, options)?,
                },
                chat_id: model_id(&parts.chat_model),
                embedder: limb_core::inference::Embedder::load(&parts.embed_model, options)?,
                embed_id: model_id(&parts.embed_model),
            };
            // The key itself is never printed: it lives in a 0600 file.
            eprintln!(
                "OpenAI-compatible API on http://{}/v1 (models: {}, {}); bearer key in {}; Ctrl-C stops it",
                listener.local_addr()?,
                models.chat_id,
                models.embed_id,
                key_file.display()
            );
            serve(listener, ServeState::new(models, key, max_waiting), shutdown_signal()).await?;
        }
        Command::Search { query, k, tenant } => {
            let local = open_memory().await?;
            let embedding = local.embedder.embed(&[query.as_str()])?.remove(0);
            let hits = local.memory.search(&tenant, &query, &embedding, k).await?;
            if hits.is_empty() {
                println!("no matches in {tenant}'s memory; add documents with `heiwa ingest PATH`");
            }
            for (rank, hit) in hits.iter().enumerate() {
                let excerpt: String = hit.content.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect();
                println!(
                    "{}. {}{} (chunk {}, bytes {}..{}, score {:.4}, similarity {:.2})\n   {excerpt}",
                    rank + 1,
                    hit.path,
                    hit.page.map(|p| format!(", page {p}")).unwrap_or_default(),
                    hit.position,
                    hit.span.0,
                    hit.span.1,
                    hit.score,
                    hit.similarity
                );
            }
            local.close().await?;
        }
        Command::Limb(LimbCommand::Run { invite, name, lease_secs, max_in_flight, executor, memory_tenant, work_ms, donation, remote, hub }) => {
            let governor = match &donation {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    let policy: limb_core::governor::DonationPolicy =
                        serde_json::from_str(&text).with_context(|| format!("{} is not a donation policy", path.display()))?;
                    policy.validate()?;
                    let signals = limb_core::governor::SystemSignals::default();
                    let governor = limb_core::governor::Governor::new(policy, signals, limb_core::inference::all_cores());
                    governor.spawn_ticker(std::time::Duration::from_secs(5));
                    Some(governor)
                }
                None => None,
            };
            let options = LimbOptions {
                uri: hub.ws_uri(),
                database: hub.database.clone(),
                token_file: hub.token_file("limb.token"),
                invite,
                name,
                lease_secs,
                max_in_flight,
                governor: governor.as_ref().map(|g| g.subscribe()),
                tasks: None,
            };
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            // The agent (and the PostgreSQL it started) is closed once the limb has released its tasks.
            let (executor, agent): (Arc<dyn limb_core::hub::Executor>, _) = match executor {
                ExecutorKind::Echo => (Arc::new(EchoExecutor { work: std::time::Duration::from_millis(work_ms) }), None),
                ExecutorKind::Agent => {
                    let agent = open_agent(&memory_tenant, Budget::default().max_steps, &remote).await?;
                    if let Some(governor) = &governor {
                        // Threads and GPU layers as the policy says (read once: the file does not change under us).
                        agent.follow(&governor.decision());
                    }
                    (Arc::new(agent.executor(tokio::runtime::Handle::current())), Some(agent))
                }
            };
            let limb = tokio::spawn(run_limb(options, executor, stop_rx, events_tx));
            // One line per event on stdout: what the limb is doing, for people and tests.
            while let Some(event) = events.recv().await {
                match event {
                    LimbEvent::Ready { limb_id, .. } => println!("ready limb={limb_id}"),
                    LimbEvent::Claimed(id) => println!("claimed {id}"),
                    LimbEvent::Executed(id) => println!("executed {id}"),
                    LimbEvent::Completed(id) => println!("completed {id}"),
                    LimbEvent::Failed(id, reason) => println!("failed {id}: {reason}"),
                    LimbEvent::Lost(id) => println!("lost {id}"),
                    LimbEvent::Released(id) => println!("released {id}"),
                    LimbEvent::Disconnected(reason) => println!("disconnected: {reason}"),
                    LimbEvent::Reconnected => println!("reconnected"),
                    LimbEvent::Governed(decision) => {
                        println!("{} ({})", if decision.give { "giving" } else { "not giving" }, decision.reason)
                    }
                }
            }
            let outcome = limb.await;
            if let Some(agent) = agent {
                agent.close().await?;
            }
            outcome??;
            // An executor still working on a released task runs on a blocking
            // thread the runtime would wait for at shutdown; its task is back
            // on the hub already, so leave now.
            use std::io::Write;
            std::io::stdout().flush()?;
            std::process::exit(0);
        }
    }
    Ok(())
}

async fn task_command(command: TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::Submit { payload, hub } => {
            let (http, token) = hub_client(&hub).await?;
            http.call(&hub.database, "submit_task", json!([payload]), &token).await?;
            println!("submitted");
        }
        TaskCommand::List { hub } => {
            let (http, token) = hub_client(&hub).await?;
            let reply = http.sql(&hub.database, "SELECT id, state, claimed_by, attempts, payload FROM task", &token).await?;
            println!("{:>6}  {:<9}  {:>5}  {:>8}  payload", "id", "state", "limb", "attempts");
            for row in rows(&reply) {
                let limb = option(&row[2]).map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                let payload: String = row[4].as_str().unwrap_or_default().chars().take(60).collect();
                println!("{:>6}  {:<9}  {:>5}  {:>8}  {payload}", row[0].to_string(), state_name(&row[1]), limb, row[3].to_string());
            }
        }
        TaskCommand::Show { id, hub } => {
            let (http, token) = hub_client(&hub).await?;
            let task = named_rows(&http.sql(&hub.database, &format!("SELECT * FROM task WHERE id = {id}"), &token).await?);
            if task.is_empty() {
                bail!("no task {id} in your tenant");
            }
            let mut result = named_rows(&http.sql(&hub.database, &format!("SELECT * FROM task_result WHERE task_id = {id}"), &token).await?);
            // An agent's summary is JSON itself: show it as such, not as an escaped string.
            if let Some(result) = result.first_mut() {
                if let Some(parsed) = result["summary"].as_str().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) {
                    result["summary"] = parsed;
                }
            }
            println!("{}", serde_json::to_string_pretty(&json!({ "task": task[0], "result": result.first() }))?);
        }
        TaskCommand::Cancel { id, hub } => {
            let (http, token) = hub_client(&hub).await?;
            http.call(&hub.database, "cancel_task", json!([id]), &token).await?;
            println!("cancelled {id}");
        }
    }
    Ok(())
}
