//! `heiwa`: the headless limb. Thin glue over `limb_core` and the part crates:
//! one file per command group, `anyhow` only here.

mod agent;
mod bot;
mod catalogue;
mod credit;
mod doctor;
mod gpu;
mod hub;
mod hub_args;
mod memory;
mod migrate;
mod models;
mod servers;
mod service;
mod show;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "heiwa", version, about = "A limb of the Heiwa agent mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    Hub(hub::HubCommand),
    /// Create a tenant owned by this client's identity.
    #[command(subcommand)]
    Tenant(hub::TenantCommand),
    /// Submit and inspect tasks.
    #[command(subcommand)]
    Task(hub::TaskCommand),
    /// Run this machine as a limb.
    #[command(subcommand)]
    Limb(agent::LimbCommand),
    /// Run the limb as a systemd user service (headless donors): install, status, remove.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Add a file or folder to local memory (offline; nothing leaves this machine).
    Ingest(memory::IngestArgs),
    /// Answer a question here, without a hub: the same agent loop a limb runs
    /// for a task (local memory, local model, the sandboxed run_python).
    Ask(agent::AskArgs),
    /// Serve the sandboxed run_python tool over MCP: on stdio, or with --http
    /// over streamable HTTP at http://ADDR/mcp (loopback addresses only).
    Mcp(servers::McpArgs),
    /// List or remove documents in local memory (the files are not touched).
    #[command(subcommand)]
    Docs(memory::DocsCommand),
    /// Serve this limb's chat and embedding models as an OpenAI-compatible API
    /// on loopback (bearer key kept in the data directory as api.key).
    Serve(servers::ServeArgs),
    /// Pull, import, list, remove GGUF models and choose the default chat model.
    #[command(subcommand, alias = "model")]
    Models(models::ModelsCommand),
    /// Search local memory; every hit cites its file, chunk and byte span.
    Search(memory::SearchArgs),
    /// Serve the web dashboard (the Face) on loopback; browsers sign in with
    /// `heiwa tenant dashboard-invite` and talk to the hub directly.
    Dashboard(servers::DashboardArgs),
    /// This machine's GPUs as llama.cpp sees them.
    #[command(subcommand)]
    Gpu(gpu::GpuCommand),
    /// The admin bot: steer the tenant from Discord (see the README).
    #[command(subcommand)]
    Bot(bot::BotCommand),
    /// The cutover from a legacy deployment (see the README).
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
}

/// Ctrl-C or SIGTERM: how every long-running command is asked to stop.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> anyhow::Result<()> {
    // Started as a document extractor for an ingest (see heiwa_memory::isolate): serve, and never run the CLI.
    heiwa_memory::serve_if_worker();
    let budget = heiwa_memory::Budget::from_env().map_err(anyhow::Error::msg)?;
    heiwa_memory::isolate_with(std::env::current_exe()?, budget);
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HEIWA_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Doctor { json } => doctor::doctor(json).await,
        Command::Status => doctor::status(),
        Command::Hub(command) => hub::hub(command).await,
        Command::Tenant(command) => hub::tenant(command).await,
        Command::Task(command) => hub::task(command).await,
        Command::Limb(command) => agent::limb(command).await,
        Command::Service(command) => service::service(command),
        Command::Ingest(args) => memory::ingest(args).await,
        Command::Ask(args) => agent::ask(args).await,
        Command::Mcp(args) => servers::mcp(args).await,
        Command::Docs(command) => memory::docs(command).await,
        Command::Serve(args) => servers::serve(args).await,
        Command::Models(command) => models::models(command).await,
        Command::Search(args) => memory::search(args).await,
        Command::Gpu(command) => gpu::gpu(command),
        Command::Dashboard(args) => servers::dashboard(args).await,
        Command::Bot(command) => bot::bot(command).await,
        Command::Migrate(command) => migrate::migrate(command).await,
    }
}

#[cfg(test)]
mod tests {
    /// clap checks a command's definition only when it is parsed: check every one here.
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
