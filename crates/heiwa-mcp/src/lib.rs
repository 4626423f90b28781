//! `heiwa mcp`: an MCP server (official Rust SDK, `rmcp`) with exactly one
//! tool, `run_python`, backed by the container sandbox. Served over stdio, or
//! over streamable HTTP on a loopback address only.

use heiwa_sandbox::WarmPool;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(transparent)]
    Bind(#[from] heiwa_config::BindError),
    #[error("MCP transport: {0}")]
    Io(#[from] std::io::Error),
    #[error("MCP session: {0}")]
    Session(String),
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct RunPythonArgs {
    /// Python 3 code. What it prints is returned; the value of a last bare expression is printed too.
    pub code: String,
}

/// The server: one tool, the sandbox (kept warm) behind it.
#[derive(Clone)]
pub struct RunPythonServer {
    sandbox: Arc<WarmPool>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl RunPythonServer {
    pub fn new(sandbox: Arc<WarmPool>) -> Self {
        RunPythonServer { sandbox, tool_router: Self::tool_router() }
    }

    /// A run that fails inside the sandbox (an exception, a limit) is a tool
    /// error the caller sees; only a sandbox that cannot run at all is a
    /// protocol error.
    #[tool(
        description = "Run Python 3 code in an isolated sandbox (no network, read-only root, time and memory limits) and return its output as JSON: stdout, stderr, exit_code, and the limit that stopped it, if any."
    )]
    async fn run_python(
        &self,
        Parameters(RunPythonArgs { code }): Parameters<RunPythonArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let output =
            self.sandbox.run_python(&code).await.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let ok = output.exit_code == Some(0) && output.limit.is_none();
        let text = serde_json::to_string(&output).expect("a run output serialises");
        Ok(if ok {
            CallToolResult::success(vec![ContentBlock::text(text)])
        } else {
            CallToolResult::error(vec![ContentBlock::text(text)])
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for RunPythonServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("One tool: run_python, which runs code in Heiwa's locked-down container sandbox.")
    }
}

/// Serve one MCP session on stdin/stdout until the client goes away.
pub async fn serve_stdio(server: RunPythonServer) -> Result<(), McpError> {
    let running = server.serve(rmcp::transport::stdio()).await.map_err(|e| McpError::Session(e.to_string()))?;
    running.waiting().await.map_err(|e| McpError::Session(e.to_string()))?;
    Ok(())
}

/// Serve streamable HTTP at `/mcp` on `listener` (from `config::bind_loopback`) until `shutdown` resolves.
/// rmcp's default configuration accepts only requests whose Host is local.
pub async fn serve_http(
    server: RunPythonServer,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), McpError> {
    let service: StreamableHttpService<RunPythonServer, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(server.clone()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
