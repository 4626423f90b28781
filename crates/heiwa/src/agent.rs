//! `heiwa ask` and `heiwa limb run`: the agent answering here, or answering a
//! hub's tasks as a limb.

use crate::gpu::GpuArgs;
use crate::hub_args::HubArgs;
use anyhow::Context;
use clap::{Args, Subcommand};
use heiwa_config::data_dir;
use heiwa_hub::ModelOffer;
use heiwa_inference::remote::RemoteOptions;
use limb_core::agent::local::LocalAgent;
use limb_core::agent::Budget;
use limb_core::claim::{run_limb, EchoExecutor, Executor, LimbEvent, LimbOptions, ModelFetching, Offer};
use limb_core::governor::{DonationPolicy, Governor, SystemSignals};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A remote OpenAI-compatible server to chat with instead of the local model.
#[derive(Args, Clone)]
pub struct RemoteArgs {
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
    fn options(&self) -> anyhow::Result<Option<RemoteOptions>> {
        let Some(base_url) = self.remote_url.clone() else { return Ok(None) };
        let model = self.remote_model.clone().context("--remote-model is needed with --remote-url")?;
        Ok(Some(RemoteOptions {
            base_url,
            // From the environment only: a key on the command line would show in `ps`.
            api_key: std::env::var("HEIWA_REMOTE_KEY").ok().filter(|k| !k.is_empty()),
            model,
            timeout: Duration::from_secs(self.remote_timeout_secs),
            attempts: 3,
        }))
    }
}

#[derive(Args)]
pub struct AskArgs {
    question: String,
    /// The memory tenant whose documents are searched.
    #[arg(long, default_value = "local")]
    tenant: String,
    #[arg(long, default_value_t = Budget::default().max_steps)]
    max_steps: usize,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExecutorKind {
    /// The agent: local memory, the local model and the sandboxed run_python.
    Agent,
    /// Answers with the payload's size after --work-ms (for tests and load runs).
    Echo,
}

#[derive(Subcommand)]
pub enum LimbCommand {
    /// Claim and answer this tenant's tasks until Ctrl-C (releases what it holds on exit).
    Run(Box<LimbRunArgs>),
    /// What this limb has finished that the hub has not acknowledged yet (its
    /// outbox): delivered at its next connection.
    Status {
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Args)]
pub struct LimbRunArgs {
    /// The tenant's invite code (HEIWA_INVITE keeps it out of the process list).
    #[arg(long, env = "HEIWA_INVITE", hide_env_values = true)]
    invite: Option<String>,
    #[arg(long, default_value = "limb")]
    name: String,
    #[arg(long, default_value_t = 30)]
    lease_secs: u32,
    /// Tasks taken at once; the chat model answers them together, their
    /// agent turns sharing its decode steps (a donation policy's
    /// `max_concurrent` decides instead when one is given).
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
    /// A model this limb offers besides the agent's own, as ID or ID@SHA256;
    /// tasks pinned to a model go only to limbs that offer it. Repeatable.
    #[arg(long = "offer-model", value_name = "ID[@SHA256]")]
    offer_models: Vec<String>,
    /// The most disk (MiB) the tenant's catalogue models this limb fetches may
    /// take together: a model that does not fit is never fetched, nor assigned
    /// here (default: a --donation policy's `models_disk_cap_mib`, else no cap).
    #[arg(long, value_name = "MIB")]
    models_disk_cap_mib: Option<u64>,
    /// The most MiB a second those downloads may take from the link (default:
    /// a --donation policy's `models_download_mib_per_s`, else no cap).
    #[arg(long, value_name = "MIB")]
    models_download_mib_per_s: Option<u64>,
    /// Download those models only in this daily window, local time (e.g.
    /// 01:00-06:00; repeatable; default: a --donation policy's
    /// `models_download_hours`, else any time).
    #[arg(long = "models-download-hours", value_name = "HH:MM-HH:MM", value_parser = download_window)]
    models_download_hours: Vec<limb_core::governor::Window>,
    /// Hours a model the catalogue dropped stays on disk before it is deleted,
    /// unless pinned (`heiwa models pin`) (default: a --donation policy's
    /// `models_keep_dropped_hours`, else 24; 0: at once).
    #[arg(long, value_name = "HOURS")]
    models_keep_dropped_hours: Option<u32>,
    /// Fetch nothing from the tenant's catalogue (offer only this limb's own model).
    #[arg(long)]
    no_fetch: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Where the model's layers go (a --donation policy's GPU settings win).
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(flatten)]
    hub: HubArgs,
}

fn limb_status(hub: &HubArgs) -> anyhow::Result<()> {
    let token_file = hub.token_file("limb.token");
    let mut waiting: Vec<u64> = limb_core::claim::Outbox::beside(&token_file)?.waiting()?.into_keys().collect();
    waiting.sort_unstable();
    let ids = waiting.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    match waiting.len() {
        0 => println!("no result waiting to be delivered"),
        1 => println!("1 result waiting to be delivered (task {ids})"),
        n => println!("{n} results waiting to be delivered (tasks {ids})"),
    }
    Ok(())
}

/// `ID` or `ID@SHA256`, as `--offer-model` takes it.
fn model_offer(text: &str) -> ModelOffer {
    let (id, sha256) = text.split_once('@').unwrap_or((text, ""));
    ModelOffer { id: id.into(), sha256: sha256.into() }
}

async fn open_agent(tenant: &str, max_steps: usize, remote: &RemoteArgs, gpu: GpuArgs) -> anyhow::Result<LocalAgent> {
    let parts = limb_core::chosen_parts(&data_dir())?;
    let budget = Budget { max_steps, ..Budget::default() };
    let agent = LocalAgent::open(&parts, &data_dir(), tenant, budget, remote.options()?).await?;
    if let Some(local) = agent.local_model() {
        local.set_resources(heiwa_inference::all_cores(), gpu.offload());
    }
    if let Some(problem) = agent.tool_problem() {
        eprintln!("warning: answering without run_python: {problem}");
    }
    Ok(agent)
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

pub async fn ask(AskArgs { question, tenant, max_steps, remote, gpu }: AskArgs) -> anyhow::Result<()> {
    let local = open_agent(&tenant, max_steps, &remote, gpu).await?;
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
    Ok(())
}

/// The governor for a donation policy file, ticking every few seconds.
fn governor_from(path: &PathBuf) -> anyhow::Result<Arc<Governor>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let policy: DonationPolicy =
        serde_json::from_str(&text).with_context(|| format!("{} is not a donation policy", path.display()))?;
    policy.validate()?;
    let governor = Governor::new(policy, SystemSignals::default(), heiwa_inference::all_cores());
    governor.spawn_ticker(Duration::from_secs(5));
    Ok(governor)
}

/// One line per event on stdout: what the limb is doing, for people and tests.
fn print_event(event: LimbEvent) {
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
        // One line per change would double the log; `heiwa limb status` lists what waits.
        LimbEvent::Waiting(_) => {}
        LimbEvent::Governed(decision) => {
            println!("{} ({})", if decision.give { "giving" } else { "not giving" }, decision.reason)
        }
        LimbEvent::PausedByTenant(Some(reason)) => println!("paused by the tenant: {reason}"),
        LimbEvent::PausedByTenant(None) => println!("resumed by the tenant"),
        LimbEvent::Model(copy) => println!("{copy}"),
        LimbEvent::ModelDropped(model_id) => println!("model {model_id}: no longer asked for"),
    }
}

pub async fn limb(command: LimbCommand) -> anyhow::Result<()> {
    let args = match command {
        LimbCommand::Run(args) => *args,
        LimbCommand::Status { hub } => return limb_status(&hub),
    };
    let governor = args.donation.as_ref().map(governor_from).transpose()?;
    let mut options = LimbOptions {
        uri: args.hub.ws_uri()?,
        database: args.hub.database.clone(),
        token_file: args.hub.token_file("limb.token"),
        invite: args.invite,
        name: args.name,
        lease_secs: args.lease_secs,
        max_in_flight: args.max_in_flight,
        offer: Offer { models: args.offer_models.iter().map(|m| model_offer(m)).collect(), ..Offer::default() },
        governor: governor.as_ref().map(|g| g.subscribe()),
        tasks: None,
        // A remote model answers with the server's weights: fetched files would sit unused.
        models: (!args.no_fetch && args.remote.remote_model.is_none()).then(|| {
            let policy = governor.as_ref().map(|g| g.policy()).unwrap_or_default();
            let store = heiwa_inference::models::ModelStore::new(data_dir().join("models"));
            let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| limb_core::models::HF_ENDPOINT.into());
            let mut how = ModelFetching::for_policy(store, &policy, endpoint);
            if let Some(mib) = args.models_disk_cap_mib {
                how.cap_bytes = Some(mib.saturating_mul(1 << 20));
            }
            if let Some(mib) = args.models_download_mib_per_s {
                how.max_bytes_per_sec = Some(mib.saturating_mul(1 << 20));
            }
            if !args.models_download_hours.is_empty() {
                how.hours = args.models_download_hours.clone();
            }
            if let Some(hours) = args.models_keep_dropped_hours {
                how.keep_dropped = Duration::from_secs(u64::from(hours) * 3600);
            }
            how
        }),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    // The agent (and the PostgreSQL it started) is closed once the limb has released its tasks.
    let (executor, agent): (Arc<dyn Executor>, _) = match args.executor {
        ExecutorKind::Echo => (Arc::new(EchoExecutor { work: Duration::from_millis(args.work_ms) }), None),
        ExecutorKind::Agent => {
            let agent = open_agent(&args.memory_tenant, Budget::default().max_steps, &args.remote, args.gpu).await?;
            if let Some(local) = agent.local_model() {
                local.set_slots(args.max_in_flight);
            }
            if let Some(governor) = &governor {
                // Threads, offload and keep-alive as the policy says, now and
                // whenever the governor decides again (heat, GPU pause).
                agent.follow(&governor.decision());
                let mut decisions = governor.subscribe();
                let followed = agent.followed();
                tokio::spawn(async move {
                    while decisions.changed().await.is_ok() {
                        let decision = decisions.borrow_and_update().clone();
                        followed.follow(&decision);
                    }
                });
            }
            // What it answers with: the model it chats with (a remote server's
            // by that server's id), and the tool when the sandbox is there.
            let chat_model = match &args.remote.remote_model {
                Some(remote) => remote.clone(),
                None => heiwa_inference::models::model_id(&limb_core::chosen_parts(&data_dir())?.chat_model()?),
            };
            options.offer.models.push(ModelOffer { id: chat_model, sha256: String::new() });
            options.offer.tool = agent.tool_problem().is_none();
            (Arc::new(agent.executor(tokio::runtime::Handle::current())), Some(agent))
        }
    };
    let limb = tokio::spawn(run_limb(options, executor, stop_rx, events_tx));
    while let Some(event) = events.recv().await {
        print_event(event);
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

/// `--models-download-hours`: "HH:MM-HH:MM", checked as a donation policy's windows are.
fn download_window(text: &str) -> Result<limb_core::governor::Window, String> {
    let (start, end) = text.split_once('-').ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM"))?;
    let window = limb_core::governor::Window { start: start.trim().into(), end: end.trim().into() };
    let policy =
        limb_core::governor::DonationPolicy { models_download_hours: vec![window.clone()], ..Default::default() };
    policy.validate().map_err(|error| error.to_string())?;
    Ok(window)
}
