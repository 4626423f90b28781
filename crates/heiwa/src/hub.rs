//! `heiwa hub`, `heiwa tenant` and `heiwa task`: a local hub, and the hub's
//! API as its owner uses it.

use anyhow::bail;
use clap::{Args, Subcommand};
use heiwa_config::{data_dir, Parts};
use heiwa_hub::{HubHttp, HubServer, HubServerConfig, Summary};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct HubArgs {
    /// The hub's HTTP address.
    #[arg(long, env = "HEIWA_HUB", default_value = "http://127.0.0.1:3000")]
    pub hub: String,
    /// The hub's database name.
    #[arg(long, env = "HEIWA_DATABASE", default_value = "heiwa")]
    pub database: String,
    /// This client's identity token (created on first use, kept private).
    #[arg(long, env = "HEIWA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl HubArgs {
    pub fn token_file(&self, default_name: &str) -> PathBuf {
        self.token_file.clone().unwrap_or_else(|| data_dir().join(default_name))
    }

    /// The hub's WebSocket address; plain `ws://` only to this machine.
    pub fn ws_uri(&self) -> anyhow::Result<String> {
        Ok(heiwa_hub::ws_url(&self.hub)?)
    }

    async fn client(&self) -> anyhow::Result<(HubHttp, String)> {
        let http = HubHttp::new(self.hub.trim_end_matches('/'));
        let token = http.identity_token(&self.token_file("identity.token")).await?;
        Ok((http, token))
    }
}

#[derive(Subcommand)]
pub enum HubCommand {
    /// Start a SpacetimeDB server on loopback, publish hub-module, serve until Ctrl-C.
    Up {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "HEIWA_DATABASE", default_value = "heiwa")]
        database: String,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
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
pub enum TaskCommand {
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

pub async fn hub(command: HubCommand) -> anyhow::Result<()> {
    let HubCommand::Up { listen, database } = command;
    let parts = Parts::from_env()?;
    let dir = data_dir().join("hub");
    let config = HubServerConfig { binary: parts.spacetimedb_bin, data_dir: dir.join("server"), listen };
    let server = HubServer::start(&config)?;
    let http = HubHttp::new(server.http_url());
    // The database owner's token is kept so later runs update the same database.
    let owner = http.identity_token(&dir.join("owner.token")).await?;
    http.publish(&database, &parts.hub_wasm, &owner).await?;
    println!("hub up: {} (database {database}); Ctrl-C stops it", server.http_url());
    crate::shutdown_signal().await;
    server.stop();
    Ok(())
}

pub async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, hub } => {
            let (http, token) = hub.client().await?;
            http.create_tenant(&hub.database, &name, &token).await?;
            println!("tenant {name} created; `heiwa tenant invite` makes a code for a limb");
        }
        TenantCommand::Invite { uses, ttl_secs, hub } => {
            let (http, token) = hub.client().await?;
            println!("{}", http.create_invite(&hub.database, uses, ttl_secs, &token).await?);
        }
    }
    Ok(())
}

/// A task as `heiwa task list` shows it.
#[derive(serde::Deserialize)]
struct TaskLine {
    id: u64,
    state: String,
    claimed_by: Option<u64>,
    attempts: u32,
    payload: String,
}

pub async fn task(command: TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::Submit { payload, hub } => {
            let (http, token) = hub.client().await?;
            http.submit_task(&hub.database, &payload, &token).await?;
            println!("submitted");
        }
        TaskCommand::List { hub } => {
            let (http, token) = hub.client().await?;
            let query = "SELECT id, state, claimed_by, attempts, payload FROM task";
            let tasks: Vec<TaskLine> = http.rows_as(&hub.database, query, &token).await?;
            println!("{:>6}  {:<9}  {:>5}  {:>8}  payload", "id", "state", "limb", "attempts");
            for task in tasks {
                let limb = task.claimed_by.map_or_else(|| "-".into(), |id| id.to_string());
                let payload: String = task.payload.chars().take(60).collect();
                println!("{:>6}  {:<9}  {:>5}  {:>8}  {payload}", task.id, task.state, limb, task.attempts);
            }
        }
        TaskCommand::Show { id, hub } => {
            let (http, token) = hub.client().await?;
            let task = http.rows(&hub.database, &format!("SELECT * FROM task WHERE id = {id}"), &token).await?;
            let Some(task) = task.into_iter().next() else { bail!("no task {id} in your tenant") };
            let mut result =
                http.rows(&hub.database, &format!("SELECT * FROM task_result WHERE task_id = {id}"), &token).await?;
            // An agent's summary is shown as the object it is, not as an escaped string.
            if let Some(result) = result.first_mut() {
                if let Some(summary) = result["summary"].as_str().and_then(Summary::parse) {
                    result["summary"] = serde_json::to_value(summary)?;
                }
            }
            println!("{}", serde_json::to_string_pretty(&json!({ "task": task, "result": result.first() }))?);
        }
        TaskCommand::Cancel { id, hub } => {
            let (http, token) = hub.client().await?;
            http.cancel_task(&hub.database, id, &token).await?;
            println!("cancelled {id}");
        }
    }
    Ok(())
}
