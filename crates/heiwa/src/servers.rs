//! `heiwa serve` (the OpenAI-compatible API), `heiwa mcp` (run_python over
//! MCP) and `heiwa dashboard` (the web Face's static files): the servers a limb
//! offers, on loopback only.

use anyhow::Context;
use clap::Args;
use heiwa_config::{bind_loopback, data_dir};
use heiwa_inference::{all_cores, ChatModel, Embedder, ModelOptions, Offload};
use std::sync::Arc;

#[derive(Args)]
pub struct McpArgs {
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Requests that may run or wait for the model at once; more get 503.
    #[arg(long, default_value_t = 8)]
    max_waiting: usize,
    /// Chat requests decoded together, each with the whole context (llama-server's
    /// --parallel, LM Studio's max concurrent predictions); more wait their turn.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=heiwa_inference::MAX_SLOTS as i64))]
    parallel: u16,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    #[command(flatten)]
    gpu: crate::gpu::GpuArgs,
    /// Context length in tokens.
    #[arg(long, default_value_t = 4096)]
    context: u32,
    /// Chat template to use instead of the model's own: a llama.cpp name (chatml, llama3, gemma, …).
    #[arg(long)]
    chat_template: Option<String>,
}

#[derive(Args)]
pub struct DashboardArgs {
    #[arg(long, default_value = "127.0.0.1:8788")]
    listen: std::net::SocketAddr,
    /// The built dashboard (default: the package's; `npm run build:face` in ui/ writes ui/build-face).
    #[arg(long, env = "HEIWA_FACE_DIR")]
    dir: Option<std::path::PathBuf>,
    /// The hub the page connects to (its HTTP address; the browser uses its WebSocket).
    #[arg(long, env = "HEIWA_HUB", default_value = "http://127.0.0.1:3000")]
    hub: String,
    #[arg(long, env = "HEIWA_DATABASE", default_value = "heiwa")]
    database: String,
}

/// Serve the dashboard's files and `/hub.json` (which hub the page talks to;
/// a sign-in link can name another). The page then talks to the hub itself:
/// this server sees no token, no row and no reducer call.
pub async fn dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    use tower_http::services::{ServeDir, ServeFile};
    let dir = match args.dir {
        Some(dir) => dir,
        None => heiwa_config::find_part("HEIWA_FACE_DIR", "the web dashboard", "face")?,
    };
    let index = dir.join("index.html");
    anyhow::ensure!(
        index.is_file(),
        "no dashboard at {}: build it with `npm run build:face` in ui/ (scripts/setup does)",
        dir.display()
    );
    let hub = serde_json::json!({ "hub": heiwa_hub::ws_url(&args.hub)?, "database": args.database });
    let files = ServeDir::new(&dir).fallback(ServeFile::new(index));
    let app = axum::Router::new()
        .route("/hub.json", axum::routing::get(move || async move { axum::Json(hub) }))
        .fallback_service(files);
    let listener = bind_loopback(args.listen).await?;
    println!("dashboard on http://{}/ (hub {}); Ctrl-C stops it", listener.local_addr()?, args.hub);
    axum::serve(listener, app).with_graceful_shutdown(crate::shutdown_signal()).await?;
    Ok(())
}

pub async fn mcp(McpArgs { http }: McpArgs) -> anyhow::Result<()> {
    use heiwa_mcp::{serve_http, serve_stdio, RunPythonServer};
    let parts = limb_core::chosen_parts(&data_dir())?;
    let sandbox = heiwa_sandbox::Sandbox::connect(&parts.sandbox_image, Default::default()).await?;
    let pool = Arc::new(heiwa_sandbox::WarmPool::new(Arc::new(sandbox), 1));
    let server = RunPythonServer::new(pool.clone());
    let served = match http {
        None => serve_stdio(server).await,
        Some(addr) => match bind_loopback(addr).await {
            Ok(listener) => {
                // On stderr: stdout stays clean for tools that read it.
                eprintln!("MCP on http://{}/mcp; Ctrl-C stops it", listener.local_addr()?);
                serve_http(server, listener, crate::shutdown_signal()).await
            }
            Err(e) => Err(e.into()),
        },
    };
    pool.close().await;
    Ok(served?)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    use heiwa_serve::{api_key, model_id, serve, Models, ServeState};
    let parts = limb_core::chosen_parts(&data_dir())?;
    let listener = bind_loopback(args.listen).await?;
    let key_file = data_dir().join("api.key");
    let key = api_key(&key_file).with_context(|| format!("creating {}", key_file.display()))?;
    let threads = args.threads.unwrap_or_else(all_cores);
    let options = ModelOptions {
        threads,
        offload: args.gpu.offload(),
        context_len: args.context,
        sequences: args.parallel.into(),
        ..ModelOptions::default()
    };
    let chat_model = parts.chat_model()?;
    let chat = ChatModel::load(&chat_model, options)?;
    // One line: whoever reads the banner may stop reading after it.
    let offload = chat.offload().why.clone();
    let models = Models {
        chat: Arc::new(match args.chat_template {
            Some(template) => chat.with_template(template),
            None => chat,
        }),
        chat_id: model_id(&chat_model),
        // A small model: the CPU embeds fast enough, and the GPU stays the chat model's.
        embedder: Embedder::load(&parts.embed_model, ModelOptions { offload: Offload::CPU, ..options })?,
        embed_id: model_id(&parts.embed_model),
    };
    // The key itself is never printed: it lives in a 0600 file.
    eprintln!(
        "OpenAI-compatible API on http://{}/v1 (models: {}, {}; {offload}); bearer key in {}; Ctrl-C stops it",
        listener.local_addr()?,
        models.chat_id,
        models.embed_id,
        key_file.display()
    );
    let state = ServeState::new(models, key, args.max_waiting)?;
    serve(listener, state, crate::shutdown_signal()).await?;
    Ok(())
}
