//! `heiwa bot`: the Discord admin bot (heiwa-bot) as a command.

use crate::hub_args::HubArgs;
use anyhow::Context;
use clap::{Args, Subcommand};
use heiwa_bot::{Asked, Bot, BotConfig, BotToken, Discord, HubLink};
use heiwa_config::data_dir;
use heiwa_hub::HubHttp;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// The bot's hub identity: its own, never the owner's.
const IDENTITY_FILE: &str = "bot-identity.token";

#[derive(Args, Clone)]
pub struct DiscordArgs {
    /// The bot's settings (see the README: application id, public key, grants).
    #[arg(long, env = "HEIWA_BOT_CONFIG")]
    config: Option<PathBuf>,
    /// Where the bot token is kept (0600) when HEIWA_DISCORD_TOKEN is not set.
    #[arg(long = "discord-token-file", env = "HEIWA_DISCORD_TOKEN_FILE")]
    discord_token_file: Option<PathBuf>,
}

impl DiscordArgs {
    fn config(&self) -> anyhow::Result<BotConfig> {
        let path = self.config.clone().unwrap_or_else(|| data_dir().join("discord.toml"));
        Ok(BotConfig::load(&path)?)
    }

    fn token_file(&self) -> PathBuf {
        self.discord_token_file.clone().unwrap_or_else(|| data_dir().join("discord.token"))
    }
}

#[derive(Subcommand)]
pub enum BotCommand {
    /// Join the tenant as its operator, once, with a code from the owner's
    /// `heiwa tenant operator-invite`.
    Join {
        code: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Run the Discord bot until Ctrl-C: answer slash commands (signed
    /// interactions, on loopback behind your tunnel) and post finished tasks.
    Discord {
        #[command(flatten)]
        discord: DiscordArgs,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Install the bot's slash commands in Discord (in `guild_id` if the
    /// settings name one, where they appear at once; globally otherwise).
    Register {
        #[command(flatten)]
        discord: DiscordArgs,
    },
    /// Keep the bot token: read from standard input (never an argument),
    /// written readable by you only.
    SetToken {
        #[command(flatten)]
        discord: DiscordArgs,
    },
}

pub async fn bot(command: BotCommand) -> anyhow::Result<()> {
    match command {
        BotCommand::Join { code, hub } => {
            let http = HubHttp::new(hub.hub.trim_end_matches('/'));
            let token = http.identity_token(&hub.token_file(IDENTITY_FILE)).await?;
            http.join_operator(&hub.database, code.trim(), &token).await?;
            println!("the bot joined the tenant as its operator");
        }
        BotCommand::Discord { discord, hub } => run(&discord, &hub).await?,
        BotCommand::Register { discord } => {
            let config = discord.config()?;
            let client = Discord::new(config.api_base.clone(), BotToken::load(&discord.token_file())?);
            let commands = heiwa_bot::interaction::definitions();
            client.register(&config.application_id, config.guild_id.as_deref(), &commands).await?;
            let count = commands.as_array().map_or(0, Vec::len);
            match &config.guild_id {
                Some(guild) => println!("registered {count} commands in server {guild}"),
                None => println!("registered {count} global commands (Discord may take a while to show them)"),
            }
        }
        BotCommand::SetToken { discord } => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token).context("reading the token from standard input")?;
            let token = token.trim();
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            let path = discord.token_file();
            heiwa_config::write_secret(&path, token).with_context(|| format!("writing {}", path.display()))?;
            println!("kept the bot token in {} (readable by you only)", path.display());
        }
    }
    Ok(())
}

async fn run(discord: &DiscordArgs, hub: &HubArgs) -> anyhow::Result<()> {
    let config = discord.config()?;
    let client = Discord::new(config.api_base.clone(), BotToken::load(&discord.token_file())?);
    let http = HubHttp::new(hub.hub.trim_end_matches('/'));
    let identity_file = hub.token_file(IDENTITY_FILE);
    let token = std::fs::read_to_string(&identity_file)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .with_context(|| {
            format!("the bot has no hub identity yet ({}): run `heiwa bot join CODE` first", identity_file.display())
        })?;
    let identity = whoami(&http, &hub.database, &token).await?;
    let listener = heiwa_config::bind_loopback(config.listen).await?;
    let address = listener.local_addr()?;
    let tenant = heiwa_bot::tenant::Tenant::new(http, hub.database.clone(), token.clone(), identity);
    let asked = Asked::open(data_dir().join("discord-asked.json"));
    let bot = Arc::new(Bot { config, tenant, discord: client, asked, submitting: Default::default() });
    let link = HubLink { ws: hub.ws_uri()?, database: hub.database.clone(), token };
    let (following_tx, mut following) = tokio::sync::watch::channel(false);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    println!("listening on http://{address}/interactions");
    tokio::spawn(async move {
        while following.changed().await.is_ok() {
            if *following.borrow_and_update() {
                println!("following the tenant's tasks");
            }
        }
    });
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    heiwa_bot::serve(bot, listener, link, following_tx, stop).await?;
    println!("stopped");
    Ok(())
}

/// The identity the bot's token stands for, once it is an operator of a tenant.
async fn whoami(http: &HubHttp, database: &str, token: &str) -> anyhow::Result<String> {
    let not_yet = "the bot's hub identity is not an operator of any tenant: run `heiwa bot join CODE` with a code \
                   from the owner's `heiwa tenant operator-invite`";
    let me = http.own_identity(database, token).await?.context(not_yet)?;
    anyhow::ensure!(http.is_operator(database, &me, token).await?, not_yet);
    Ok(me)
}
