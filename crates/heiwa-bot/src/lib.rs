//! The admin bot: steer a tenant from Discord. It holds one hub identity of
//! its own, joined as the tenant's operator (`heiwa bot join`), and maps
//! Discord users and roles (by id, in its config) to what they may do.
//!
//! Discord reaches it as an **HTTP interactions endpoint**: every slash
//! command is a request Discord signs with Ed25519, checked here before
//! anything else ([`signature`]). Chosen over the gateway because it needs
//! no long-lived connection to keep, resume and shard, each request is
//! verifiable on its own, and the endpoint is tested with Discord's real
//! signing and formats end to end. It listens on loopback only: a tunnel
//! (cloudflared, a reverse proxy) brings Discord's requests to it. Outbound,
//! the bot calls Discord's REST API for notifications and to install its
//! commands ([`discord`]). The hub's row-level security and reducers decide
//! what its identity may see and do, whatever a Discord user asks.

pub mod access;
pub mod bot;
pub mod config;
pub mod discord;
pub mod interaction;
pub mod notify;
pub mod render;
pub mod server;
pub mod signature;
pub mod tenant;
pub mod text;

pub use bot::{Asked, Bot};
pub use config::{BotConfig, Notify, DISCORD_API};
pub use discord::{BotToken, Discord, TOKEN_ENV};

pub use notify::HubLink;

use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// Answer interactions on `listener` (from `heiwa_config::bind_loopback`)
/// and post notifications, until `shutdown` turns true.
pub async fn serve(
    bot: Arc<Bot>,
    listener: tokio::net::TcpListener,
    hub: HubLink,
    following: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), BotError> {
    let notifier = tokio::spawn(notify::run(bot.clone(), hub, following, shutdown.clone()));
    let mut stop = shutdown;
    let served = axum::serve(listener, server::router(bot))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(BotError::Serve);
    let _ = notifier.await;
    served
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("cannot read the bot's settings {path}: {source}")]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the bot's settings {path}: {why}")]
    Config { path: PathBuf, why: String },
    #[error(
        "no Discord bot token: set {TOKEN_ENV}, or store it with `heiwa bot set-token` (it reads it from standard \
         input into {path})"
    )]
    NoToken { path: PathBuf },
    #[error("{path} holds the bot token but others may read it: `chmod 600` it")]
    TokenFileOpen { path: PathBuf },
    #[error("Discord refused {what}: {why}")]
    Discord { what: String, why: String },
    #[error("Discord asks to wait {secs} s before {what}: too long, not retried")]
    RateLimited { what: String, secs: u64 },
    #[error(transparent)]
    Hub(#[from] heiwa_hub::HubError),
    #[error(transparent)]
    Bind(#[from] heiwa_config::BindError),
    #[error("the interactions endpoint failed: {0}")]
    Serve(std::io::Error),
}
