//! `heiwa hub`, `heiwa tenant` and `heiwa task`: a local hub, and the hub's
//! API as its owner uses it.

use crate::hub_args::HubArgs;
use anyhow::{bail, Context};
use clap::Subcommand;
use heiwa_config::data_dir;
use heiwa_hub::{HubHttp, HubLimits, HubPolicy, HubServer, HubServerConfig, InviteRole, Summary, TenantCreation};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum HubCommand {
    /// Start a SpacetimeDB server on loopback, publish hub-module, serve until Ctrl-C.
    Up {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "HEIWA_DATABASE", default_value = "heiwa")]
        database: String,
        /// Who may create tenants, set at every start: admin (this hub's
        /// owner token only), anyone, or code (holders of `heiwa hub
        /// tenant-code`). Default: anyone on a loopback address (every
        /// caller is on this machine), admin on any other.
        #[arg(long, value_parser = parse_tenant_creation)]
        tenants: Option<TenantCreation>,
    },
    /// Show or change who may create tenants, how many the hub holds, and
    /// how many wrong codes it takes (its admin only).
    Policy {
        /// admin, anyone or code.
        #[arg(long, value_parser = parse_tenant_creation)]
        tenants: Option<TenantCreation>,
        /// Tenants the hub holds, past which only its admin creates more.
        #[arg(long)]
        max_tenants: Option<u32>,
        /// Wrong codes (invites, claims, tenant codes) one identity may present per window …
        #[arg(long)]
        failures_per_identity: Option<u32>,
        /// … and all identities together.
        #[arg(long)]
        failures_hub_wide: Option<u32>,
        #[arg(long)]
        failure_window_secs: Option<u32>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Make a code that lets someone create a tenant on this hub (its admin
    /// only; the hub's policy must be `code`). Printed once: the hub keeps its hash.
    TenantCode {
        #[arg(long, default_value_t = 1)]
        uses: u32,
        #[arg(long, default_value_t = 7 * 86_400)]
        ttl_secs: u32,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show or change the quotas and retention every tenant gets (changing
    /// them takes the hub's admin: the identity that published it, whose token
    /// `heiwa hub up` keeps as hub/owner.token).
    /// Turn donors' credit off for the whole hub (`--off`) or on again (`--on`):
    /// off, results earn nothing and the ledger stays as it is.
    Credit {
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    Limits {
        /// Unfinished tasks a tenant may have at once.
        #[arg(long)]
        max_open_tasks: Option<u32>,
        #[arg(long)]
        submits_per_sec: Option<u32>,
        #[arg(long)]
        submit_burst: Option<u32>,
        /// Finished tasks and results older than this are pruned.
        #[arg(long)]
        retain_secs: Option<u64>,
        #[arg(long)]
        prune_every_secs: Option<u64>,
        #[command(flatten)]
        hub: HubArgs,
    },
}

/// Who joins with an invite.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum InviteFor {
    /// A machine that runs tasks and sees only its own.
    Limb,
    /// A dashboard or bot that reads the tenant and submits tasks.
    Submitter,
}

fn parse_tenant_creation(name: &str) -> Result<TenantCreation, String> {
    TenantCreation::parse(name)
}

/// The hub's admin token: `--token-file`, or the one `heiwa hub up` keeps.
async fn admin_client(hub: &HubArgs) -> anyhow::Result<(HubHttp, String)> {
    let http = HubHttp::new(hub.hub.trim_end_matches('/'));
    let token_file = hub.token_file("hub/owner.token");
    let token = http.identity_token(&token_file).await?;
    Ok((http, token))
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant, owned by this identity.
    Create {
        name: String,
        /// A code from the hub's admin, where its policy asks for one (or
        /// HEIWA_TENANT_CODE, which keeps it out of the process list).
        #[arg(long, env = "HEIWA_TENANT_CODE", hide_env_values = true)]
        code: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Create an invite code a new limb (or a submitter) joins with.
    Invite {
        #[arg(long, default_value_t = 1)]
        uses: u32,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u32,
        #[arg(long = "for", value_enum, default_value = "limb")]
        role: InviteFor,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// A one-use sign-in for one browser on the web dashboard: prints the code
    /// and a link that carries it (read-only unless --submit).
    DashboardInvite {
        /// The browser may submit tasks (and cancel its own).
        #[arg(long)]
        submit: bool,
        /// How the browser is named in `heiwa tenant browsers`.
        #[arg(long, default_value = "browser")]
        label: String,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u32,
        /// Where the dashboard is served (`heiwa dashboard`, or any static host).
        #[arg(long, default_value = heiwa_hub::DEFAULT_DASHBOARD)]
        dashboard: String,
        /// Print one JSON object (code, link) instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// A one-use code for the admin bot (`heiwa bot join CODE`): it may then
    /// read the tenant, submit and cancel tasks, invite limbs and pause them.
    OperatorInvite {
        /// How the operator is named in the tenant.
        #[arg(long, default_value = "discord-bot")]
        label: String,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u32,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// The browsers signed into your tenant's dashboard.
    Browsers {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Take a browser's access back: it is refused at its next connect.
    RevokeBrowser {
        /// Its identity as `heiwa tenant browsers` shows it (a unique prefix is enough).
        identity: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// The operators (admin bots) of your tenant.
    Operators {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Take an operator's access back (a bot retired, or its token leaked): it
    /// is refused at its next connect and can never join again.
    RevokeOperator {
        /// Its identity as `heiwa tenant operators` shows it (a unique prefix is enough).
        identity: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Every limb with its record in replicated work (agreed, disputed, and
    /// whether it has earned spot checks instead of copies).
    Limbs {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// The tenant's model catalogue: models its tasks may name, which limbs fetch and offer.
    #[command(subcommand)]
    Model(crate::catalogue::ModelCommand),
    /// What each donor's limbs earned by verified work: the last day, the last
    /// week, all time, in escrow and revoked (from the hub's ledger).
    Credit {
        /// Every limb's sums as JSON.
        #[arg(long)]
        json: bool,
        /// The owner puts donors' own submissions ahead in the queue by their
        /// credit (`on`), or back to oldest first (`off`, the default).
        #[arg(long, value_parser = ["on", "off"])]
        priority: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Let a limb read the whole tenant and/or submit tasks (no flags: take both back).
    Grant {
        limb_id: u64,
        #[arg(long)]
        read: bool,
        #[arg(long)]
        submit: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    Submit {
        payload: String,
        /// Run it only on a limb that offers this model (its id or sha256).
        #[arg(long)]
        model: Option<String>,
        /// Submit at most once under this key: the same key again (say, after
        /// no answer) changes nothing.
        #[arg(long)]
        key: Option<String>,
        /// Have 2 or 3 limbs of different donors answer it; the hub keeps the
        /// answer they agree on (`heiwa task show` says how they voted).
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Not a question for the agent: the model's greedy answer to the
        /// payload as a prompt (deterministic for one model file and backend,
        /// so copies agree exactly and another limb can score it).
        #[arg(long)]
        generate: bool,
        /// Check the greedy answer by scoring instead of copies: a limb of
        /// another donor with the same model rates it teacher-forced, at a
        /// fraction of generating it again. Needs --model; implies --generate.
        #[arg(long, conflicts_with = "replicas")]
        scored: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Write every task you can see, each with its result, as JSON lines
    /// (before the hub prunes finished ones: see `heiwa hub limits`).
    Export {
        /// The file to write (created, not overwritten); standard output without it.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// What a person reads: state, answer, sources, who answered and when (local time).
    Show {
        id: u64,
        /// The hub's rows as JSON, for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    Cancel {
        id: u64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Check what the answering limb signed about a task's result (its key
    /// as registered on the hub), and say what that proves and what not.
    /// Exits non-zero when it does not hold.
    Verify {
        id: u64,
        /// Check offline, from a file `heiwa task export` wrote, instead of the hub.
        #[arg(long)]
        rows: Option<PathBuf>,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn hub(command: HubCommand) -> anyhow::Result<()> {
    let (listen, database, tenants) = match command {
        HubCommand::Up { listen, database, tenants } => (listen, database, tenants),
        HubCommand::Policy {
            tenants,
            max_tenants,
            failures_per_identity,
            failures_hub_wide,
            failure_window_secs,
            hub,
        } => {
            let (http, token) = admin_client(&hub).await?;
            let now = http.policy(&hub.database, &token).await?;
            let wanted = HubPolicy {
                tenant_creation: tenants.map_or(now.tenant_creation.clone(), |t| t.name().to_string()),
                max_tenants: max_tenants.unwrap_or(now.max_tenants),
                failures_per_identity: failures_per_identity.unwrap_or(now.failures_per_identity),
                failures_hub_wide: failures_hub_wide.unwrap_or(now.failures_hub_wide),
                failure_window_secs: failure_window_secs.unwrap_or(now.failure_window_secs),
            };
            if wanted != now {
                http.set_policy(&hub.database, &wanted, &token).await?;
            }
            println!("{}", serde_json::to_string_pretty(&wanted)?);
            return Ok(());
        }
        HubCommand::TenantCode { uses, ttl_secs, hub } => {
            let (http, token) = admin_client(&hub).await?;
            println!("{}", http.create_tenant_code(&hub.database, uses, ttl_secs, &token).await?);
            return Ok(());
        }
        HubCommand::Credit { on, hub, .. } => {
            let (http, token) = admin_client(&hub).await?;
            http.set_credit(&hub.database, on, &token).await?;
            println!("credit is {} on this hub", if on { "on" } else { "off" });
            return Ok(());
        }
        HubCommand::Limits { max_open_tasks, submits_per_sec, submit_burst, retain_secs, prune_every_secs, hub } => {
            let (http, token) = admin_client(&hub).await?;
            let now = http.limits(&hub.database, &token).await?;
            let wanted = HubLimits {
                max_open_tasks: max_open_tasks.unwrap_or(now.max_open_tasks),
                submits_per_sec: submits_per_sec.unwrap_or(now.submits_per_sec),
                submit_burst: submit_burst.unwrap_or(now.submit_burst),
                retain_secs: retain_secs.unwrap_or(now.retain_secs),
                prune_every_secs: prune_every_secs.unwrap_or(now.prune_every_secs),
            };
            if wanted != now {
                http.configure(&hub.database, &wanted, &token).await?;
            }
            println!("{}", serde_json::to_string_pretty(&wanted)?);
            return Ok(());
        }
    };
    let parts = limb_core::chosen_parts(&data_dir())?;
    let dir = data_dir().join("hub");
    let config = HubServerConfig { binary: parts.spacetimedb_bin, data_dir: dir.join("server"), listen };
    let server = HubServer::start(&config)?;
    let http = HubHttp::new(server.http_url());
    // The database owner's token is kept so later runs update the same database.
    let owner = http.identity_token(&dir.join("owner.token")).await?;
    http.publish(&database, &parts.hub_wasm, &owner).await?;
    let tenants =
        tenants.unwrap_or(if listen.ip().is_loopback() { TenantCreation::Anyone } else { TenantCreation::AdminOnly });
    let policy = match http.policy(&database, &owner).await {
        Ok(policy) => HubPolicy { tenant_creation: tenants.name().into(), ..policy },
        // Published before policies existed: the module's defaults.
        Err(_) => HubPolicy::with_tenant_creation(tenants),
    };
    http.set_policy(&database, &policy, &owner).await?;
    println!(
        "hub up: {} (database {database}, tenants created by: {}); Ctrl-C stops it",
        server.http_url(),
        tenants.name()
    );
    crate::shutdown_signal().await;
    server.stop();
    Ok(())
}

pub async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, code, hub } => {
            let (http, token) = hub.client().await?;
            match code {
                Some(code) => http.create_tenant_with_code(&hub.database, &name, &code, &token).await?,
                None => http.create_tenant(&hub.database, &name, &token).await?,
            }
            println!("tenant {name} created; `heiwa tenant invite` makes a code for a limb");
        }
        TenantCommand::Invite { uses, ttl_secs, role, hub } => {
            let (http, token) = hub.client().await?;
            let role = match role {
                InviteFor::Limb => InviteRole::Limb,
                InviteFor::Submitter => InviteRole::Submitter,
            };
            println!("{}", http.create_invite(&hub.database, uses, ttl_secs, role, &token).await?);
        }
        TenantCommand::DashboardInvite { submit, label, ttl_secs, dashboard, json, hub } => {
            let (http, token) = hub.client().await?;
            let code = http.create_browser_invite(&hub.database, submit, &label, ttl_secs, &token).await?;
            let link = heiwa_hub::dashboard_link(&dashboard, &hub.ws_uri()?, &hub.database, &code.0);
            if json {
                println!("{}", json!({ "code": code.0, "link": link, "submits": submit }));
            } else {
                let role = if submit { "read and submit" } else { "read only" };
                println!("dashboard code {code} ({role}, one use, {ttl_secs} s)\n{link}");
            }
        }
        TenantCommand::OperatorInvite { label, ttl_secs, hub } => {
            let (http, token) = hub.client().await?;
            let code = http.create_operator_invite(&hub.database, &label, ttl_secs, &token).await?;
            println!("{}", code.0);
        }
        TenantCommand::Browsers { hub } => {
            let (http, token) = hub.client().await?;
            println!("{:<64}  {:<13}  label", "identity", "may");
            for browser in http.browsers(&hub.database, &token).await? {
                let may = if browser.submits { "read, submit" } else { "read" };
                println!("{:<64}  {may:<13}  {}", browser.identity, browser.label);
            }
        }
        TenantCommand::RevokeBrowser { identity, hub } => {
            let (http, token) = hub.client().await?;
            let browsers = http.browsers(&hub.database, &token).await?;
            let browser = one_by_prefix(browsers, &identity, |b| &b.identity, "browsers")?;
            http.revoke_browser(&hub.database, &browser.identity, &token).await?;
            println!("revoked {} ({})", browser.identity, browser.label);
        }
        TenantCommand::Operators { hub } => {
            let (http, token) = hub.client().await?;
            println!("{:<64}  label", "identity");
            for operator in http.operators(&hub.database, &token).await? {
                println!("{:<64}  {}", operator.identity, operator.label);
            }
        }
        TenantCommand::RevokeOperator { identity, hub } => {
            let (http, token) = hub.client().await?;
            let operators = http.operators(&hub.database, &token).await?;
            let operator = one_by_prefix(operators, &identity, |o| &o.identity, "operators")?;
            http.revoke_operator(&hub.database, &operator.identity, &token).await?;
            println!("revoked {} ({})", operator.identity, operator.label);
        }
        TenantCommand::Limbs { hub } => {
            let (http, token) = hub.client().await?;
            let trust: std::collections::HashMap<u64, TrustLine> = http
                .rows_as::<TrustLine>(&hub.database, "SELECT * FROM limb_trust", &token)
                .await?
                .into_iter()
                .map(|record| (record.limb_id, record))
                .collect();
            println!(
                "{:>5}  {:<20}  {:<7}  {:>6}  {:>8}  {:>6}  checked",
                "limb", "name", "online", "agreed", "disputed", "streak"
            );
            for limb in http.rows_as::<LimbLine>(&hub.database, "SELECT * FROM limb", &token).await? {
                // A limb not yet in a replicated task has no record: nothing agreed or disputed.
                let record = trust.get(&limb.id).cloned().unwrap_or_default();
                let checked = if record.streak >= heiwa_hub::TRUSTED_STREAK {
                    "spot-checked (trusted)"
                } else {
                    "every replicated task"
                };
                println!(
                    "{:>5}  {:<20}  {:<7}  {:>6}  {:>8}  {:>6}  {checked}",
                    limb.id, limb.name, limb.online, record.agreed, record.disputed, record.streak,
                );
            }
        }
        TenantCommand::Model(command) => crate::catalogue::model(command).await?,
        TenantCommand::Credit { json, priority: None, hub } => crate::credit::credit(json, &hub).await?,
        TenantCommand::Credit { priority: Some(priority), hub, .. } => {
            crate::credit::set_priority(priority == "on", &hub).await?
        }
        TenantCommand::Grant { limb_id, read, submit, hub } => {
            let (http, token) = hub.client().await?;
            http.grant_limb(&hub.database, limb_id, read, submit, &token).await?;
            println!("limb {limb_id}: reads the tenant {read}, submits {submit}");
        }
    }
    Ok(())
}

/// A task as `heiwa task list` shows it.
#[derive(serde::Deserialize)]
struct TaskLine {
    id: u64,
    state: String,
    assigned_to: u64,
    attempts: u32,
    payload: String,
}

/// A limb as `heiwa tenant limbs` shows it.
#[derive(serde::Deserialize)]
struct LimbLine {
    id: u64,
    name: String,
    online: bool,
}

/// A limb's record in replicated tasks (`limb_trust`).
#[derive(serde::Deserialize, Clone, Default)]
struct TrustLine {
    limb_id: u64,
    agreed: u64,
    disputed: u64,
    streak: u32,
}

#[derive(serde::Deserialize)]
struct ResultLine {
    task_id: u64,
    limb_id: u64,
}

/// Every task the token may see with its result, one JSON object a line.
async fn export(http: &HubHttp, database: &str, token: &str, out: &mut dyn std::io::Write) -> anyhow::Result<usize> {
    let tasks = http.rows(database, "SELECT * FROM task", token).await?;
    let mut results: std::collections::HashMap<u64, heiwa_hub::Row> = http
        .rows(database, "SELECT * FROM task_result", token)
        .await?
        .into_iter()
        .filter_map(|row| Some((row.get("task_id")?.as_u64()?, row)))
        .collect();
    let mut proofs = by_u64(http.rows(database, "SELECT * FROM result_proof", token).await?, "task_id");
    let keys = by_u64(http.rows(database, "SELECT * FROM limb_key", token).await?, "limb_id");
    for task in &tasks {
        let id = task.get("id").and_then(serde_json::Value::as_u64);
        let result = id.and_then(|id| results.remove(&id));
        let limb_id = result.as_ref().and_then(|r| r.get("limb_id")).and_then(serde_json::Value::as_u64);
        let key = limb_id.and_then(|limb_id| keys.get(&limb_id));
        let proof = id.and_then(|id| proofs.remove(&id));
        writeln!(out, "{}", json!({ "task": task, "result": result, "proof": proof, "limb_key": key }))?;
    }
    Ok(tasks.len())
}

fn by_u64(rows: Vec<heiwa_hub::Row>, column: &str) -> std::collections::HashMap<u64, heiwa_hub::Row> {
    rows.into_iter().filter_map(|row| Some((row.get(column)?.as_u64()?, row))).collect()
}

/// One task as the hub keeps it, with what checking its result needs: the
/// rows of an export line (`task`, `result`, `proof`, `limb_key`).
fn verify_rows(id: u64, line: &serde_json::Value) -> anyhow::Result<heiwa_provenance::Verified> {
    use heiwa_provenance::{verify, Claimed, Proof};
    let result = &line["result"];
    if result.is_null() {
        bail!("task {id} has no result to verify (state {})", line["task"]["state"]);
    }
    let text = |value: &serde_json::Value, what: &str| {
        value.as_str().map(String::from).with_context(|| format!("the {what} is missing from the rows"))
    };
    let payload = text(&line["task"]["payload"], "task's payload")?;
    let summary = text(&result["summary"], "result's summary")?;
    let limb_id = result["limb_id"].as_u64().context("the result names no limb")?;
    let proof = match &line["proof"] {
        serde_json::Value::Null => None,
        proof => Some(Proof {
            statement: text(&proof["statement"], "signed statement")?,
            signature: bytes(&proof["signature"])?,
        }),
    };
    let key = match &line["limb_key"] {
        serde_json::Value::Null => None,
        key => Some(bytes(&key["public_key"])?),
    };
    let claimed = Claimed { task_id: id, payload: &payload, limb_id, summary: &summary };
    verify(&claimed, proof.as_ref(), key.as_deref()).with_context(|| format!("task {id}: NOT VERIFIED"))
}

/// A byte column as the hub's SQL answer gives it: hex (SpacetimeDB's JSON for
/// `Vec<u8>`), or an array of numbers.
fn bytes(value: &serde_json::Value) -> anyhow::Result<Vec<u8>> {
    if let Some(hex) = value.as_str() {
        let hex = hex.trim_start_matches("0x");
        return (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16).context("not hex"))
            .collect();
    }
    value
        .as_array()
        .context("a byte column is neither hex nor an array")?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()).context("not a byte"))
        .collect()
}

pub async fn task(command: TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::Submit { payload, model, key, replicas, generate, scored, hub } => {
            let (http, token) = hub.client().await?;
            if scored {
                let model = model.context("--scored needs --model: the scorer must run the same model")?;
                http.submit_task_scored(&hub.database, key.as_deref(), &payload, &model, &token).await?;
                println!("submitted");
                return Ok(());
            }
            let payload = if generate { heiwa_hub::generate_payload(&payload) } else { payload };
            let model = model.as_deref();
            match (key, replicas) {
                (Some(key), 1) => http.submit_task_once(&hub.database, &key, &payload, model, &token).await?,
                (None, 1) => http.submit_task(&hub.database, &payload, model, &token).await?,
                (key, replicas) => {
                    let key = key.as_deref();
                    http.submit_task_replicated(&hub.database, key, &payload, model, replicas, &token).await?
                }
            }
            println!("submitted");
        }
        TaskCommand::Export { out, hub } => {
            let (http, token) = hub.client().await?;
            let written = match &out {
                Some(path) => {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut writer = std::io::BufWriter::new(file);
                    let n = export(&http, &hub.database, &token, &mut writer).await?;
                    writer.flush()?;
                    n
                }
                None => export(&http, &hub.database, &token, &mut std::io::stdout().lock()).await?,
            };
            eprintln!("exported {written} tasks");
        }
        TaskCommand::List { hub } => {
            let (http, token) = hub.client().await?;
            let tasks: Vec<TaskLine> = http.rows_as(&hub.database, "SELECT * FROM task", &token).await?;
            // The limb that holds a task, or the one that answered it.
            let answered_by: std::collections::HashMap<u64, u64> = http
                .rows_as::<ResultLine>(&hub.database, "SELECT * FROM task_result", &token)
                .await?
                .into_iter()
                .map(|result| (result.task_id, result.limb_id))
                .collect();
            println!("{:>6}  {:<9}  {:>5}  {:>8}  payload", "id", "state", "limb", "attempts");
            for task in tasks {
                let limb = match (task.assigned_to, answered_by.get(&task.id)) {
                    (0, Some(limb)) => limb.to_string(),
                    (0, None) => "-".into(),
                    (holder, _) => holder.to_string(),
                };
                let payload: String = task.payload.chars().take(60).collect();
                println!("{:>6}  {:<9}  {:>5}  {:>8}  {payload}", task.id, task.state, limb, task.attempts);
            }
        }
        TaskCommand::Show { id, json, hub } => {
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
            // Results limbs sent after the task had gone on without them (kept, never the result).
            let late =
                http.rows(&hub.database, &format!("SELECT * FROM late_result WHERE task_id = {id}"), &token).await?;
            // A replicated task (or a copy of one): how its copies voted.
            let replicas =
                http.rows(&hub.database, "SELECT * FROM replica_set", &token).await?.into_iter().find(|set| {
                    set["copies"].as_array().is_some_and(|copies| copies.iter().any(|c| c.as_u64() == Some(id)))
                });
            // A pending task pinned to a model: why it waits (no limb holds the model, it is being fetched, …).
            // And how long it may wait: the queue ahead of it at the recent pace.
            let (waiting, estimate) = match (task["state"].as_str(), task["model"].as_str()) {
                (Some("pending"), Some(model)) => (
                    http.why_waiting(&hub.database, model, &token).await?,
                    Some(http.wait_estimate(&hub.database, id, model, &token).await?.text),
                ),
                _ => (None, None),
            };
            let shown = json!({ "task": task, "result": result.first(), "late_results": late, "replicas": replicas,
                                "waiting": waiting, "estimate": estimate });
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                print!("{}", crate::show::task(&shown));
            }
        }
        TaskCommand::Verify { id, rows, hub } => {
            let line = match rows {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                        .find(|l| l["task"]["id"].as_u64() == Some(id))
                        .with_context(|| format!("no task {id} in {}", path.display()))?
                }
                None => {
                    let (http, token) = hub.client().await?;
                    let (http, token, database) = (&http, &token, &hub.database);
                    let one = |sql: String| async move {
                        Ok::<_, anyhow::Error>(http.rows(database, &sql, token).await?.into_iter().next())
                    };
                    let task = one(format!("SELECT * FROM task WHERE id = {id}")).await?;
                    let Some(task) = task else { bail!("no task {id} in your tenant") };
                    let result = one(format!("SELECT * FROM task_result WHERE task_id = {id}")).await?;
                    let proof = one(format!("SELECT * FROM result_proof WHERE task_id = {id}")).await?;
                    let limb_id = result.as_ref().and_then(|r| r.get("limb_id")).and_then(serde_json::Value::as_u64);
                    let key = match limb_id {
                        Some(limb_id) => one(format!("SELECT * FROM limb_key WHERE limb_id = {limb_id}")).await?,
                        None => None,
                    };
                    json!({ "task": task, "result": result, "proof": proof, "limb_key": key })
                }
            };
            let verified = verify_rows(id, &line)?;
            println!("task {id}: VERIFIED\nit proves:");
            for line in verified.proves() {
                println!("  - {line}");
            }
            println!("it does not prove:");
            for line in verified.does_not_prove() {
                println!("  - {line}");
            }
        }
        TaskCommand::Cancel { id, hub } => {
            let (http, token) = hub.client().await?;
            http.cancel_task(&hub.database, id, &token).await?;
            println!("cancelled {id}");
        }
    }
    Ok(())
}

/// The one of `rows` whose identity (hex) starts with `wanted` (`0x` optional);
/// `listed` names what `heiwa tenant <listed>` lists, for the error.
fn one_by_prefix<T>(rows: Vec<T>, wanted: &str, identity: impl Fn(&T) -> &String, listed: &str) -> anyhow::Result<T> {
    let prefix = wanted.trim_start_matches("0x").to_lowercase();
    let mut matching: Vec<T> =
        rows.into_iter().filter(|row| !prefix.is_empty() && identity(row).starts_with(&prefix)).collect();
    if matching.len() != 1 {
        bail!("{} {listed} match {wanted:?}; `heiwa tenant {listed}` lists them", matching.len());
    }
    Ok(matching.remove(0))
}
