//! `heiwa migrate`: the cutover from a legacy SurrealDB deployment (heiwa-migrate).

use crate::hub_args::HubArgs;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use heiwa_config::data_dir;
use heiwa_hub::HubHttp;
use heiwa_memory::LocalMemory;
use heiwa_migrate::claims::ClaimJournal;
use heiwa_migrate::documents::{MemorySink, Store};
use heiwa_migrate::source::SourceSpec;
use heiwa_migrate::target::HubTarget;
use heiwa_migrate::{Event, Kind, Mapping, Options, Report};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum MigrateCommand {
    /// Migrate a legacy SurrealDB deployment: organizations become tenants,
    /// users claim codes, tasks tasks (with their results), documents this
    /// limb's memory. Run as the hub's admin; safe to rerun (it goes on where
    /// a killed run stopped, and a finished one changes nothing).
    Surrealdb(SurrealArgs),
    /// Sign in as a migrated user: bind this client's identity to the tenant
    /// and role the claim code was made for (once).
    Claim {
        /// The code from the claims CSV (or HEIWA_CLAIM_CODE, which keeps it out of the process list).
        #[arg(env = "HEIWA_CLAIM_CODE", hide_env_values = true)]
        code: String,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Args)]
pub struct SurrealArgs {
    /// The legacy database: surrealkv:///path (an embedded database file), or
    /// a server at ws(s):// or http(s)://, signed in with SURREAL_USER and
    /// SURREAL_PASS from the environment.
    #[arg(long, required_unless_present = "print_mapping")]
    source: Option<String>,
    /// The legacy namespace and database in it.
    #[arg(long, default_value = "legacy")]
    source_namespace: String,
    #[arg(long, default_value = "app")]
    source_database: String,
    /// Which legacy tables and fields become what (default: --print-mapping).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Print the default mapping, documented, and exit.
    #[arg(long)]
    print_mapping: bool,
    /// Say what would happen (counts per table, problems) and change nothing.
    #[arg(long, conflicts_with = "verify")]
    dry_run: bool,
    /// Compare the source with the hub (and memory): counts and a checksum per table.
    /// Exits non-zero unless everything matches.
    #[arg(long)]
    verify: bool,
    /// The organization (legacy id, e.g. organization:acme) whose documents go
    /// into this machine's memory; without it no document is touched.
    #[arg(long)]
    documents_for: Option<String>,
    /// Only the documents of --documents-for, into this machine's memory: for
    /// a limb other than the hub's machine, which needs no admin token for it.
    #[arg(long, requires = "documents_for", conflicts_with = "dry_run")]
    documents_only: bool,
    /// The memory tenant documents go into (the one `heiwa limb run` answers from).
    #[arg(long, default_value = "local")]
    memory_tenant: String,
    /// Where the claim codes are written (CSV, 0600).
    #[arg(long, default_value = "claims.csv")]
    claims: PathBuf,
    /// A Python with SurrealDB's package: `pip install surrealdb==2.0.0` in a virtual environment.
    #[arg(long, env = "HEIWA_MIGRATE_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// The hub, as its admin: the identity that published it (default token: hub/owner.token).
    #[command(flatten)]
    hub: HubArgs,
}

pub async fn migrate(command: MigrateCommand) -> anyhow::Result<()> {
    match command {
        MigrateCommand::Surrealdb(args) => surrealdb(args).await,
        MigrateCommand::Claim { code, hub } => {
            let http = HubHttp::new(hub.hub.trim_end_matches('/'));
            let token = http.identity_token(&hub.token_file("identity.token")).await?;
            http.claim_legacy(&hub.database, &code, &token).await?;
            println!("claimed: this identity is now the migrated user in its tenant (see `heiwa task list`)");
            Ok(())
        }
    }
}

async fn surrealdb(args: SurrealArgs) -> anyhow::Result<()> {
    if args.print_mapping {
        print!("{}", heiwa_migrate::mapping::DEFAULT);
        return Ok(());
    }
    let mapping = match &args.mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Mapping::parse(&text, &path.display().to_string())?
        }
        None => Mapping::default_mapping(),
    };
    let hub = if args.documents_only { None } else { Some(admin_target(&args.hub, &args.claims)?) };
    let options = Options {
        source: SourceSpec {
            url: args.source.clone().expect("clap requires --source"),
            namespace: args.source_namespace.clone(),
            database: args.source_database.clone(),
            python: args.python.clone(),
        },
        mapping,
        dry_run: args.dry_run,
        documents_for: args.documents_for.clone(),
    };
    // Memory is started only to store or compare documents; a dry run only extracts them.
    let local = match &args.documents_for {
        Some(_) if !args.dry_run => {
            let parts = limb_core::chosen_parts(&data_dir())?;
            Some(LocalMemory::open(&parts.pg_dir, &parts.embed_model, &data_dir().join("memory")).await?)
        }
        _ => None,
    };
    let store = local.as_ref().map(|local| Store { memory: &local.memory, embedder: &local.embedder });
    let mut sink = match &args.documents_for {
        Some(_) => Some(MemorySink::new(store, &args.memory_tenant)?),
        None => None,
    };
    let outcome = if args.verify {
        verify(&options, hub.as_ref(), sink.as_mut()).await
    } else {
        run(&args, &options, hub.as_ref(), sink.as_mut()).await
    };
    drop(sink);
    if let Some(local) = local {
        local.close().await?;
    }
    outcome
}

/// The hub as its admin, whose token `heiwa hub up` keeps (or --token-file names).
fn admin_target(hub: &HubArgs, claims: &std::path::Path) -> anyhow::Result<HubTarget> {
    let token_file = hub.token_file("hub/owner.token");
    let token = std::fs::read_to_string(&token_file).map(|token| token.trim().to_string()).with_context(|| {
        format!(
            "no admin token at {}: migrating takes the hub's admin, the identity that published it \
             (`heiwa hub up` keeps its token there); pass --token-file, or --documents-only on a limb",
            token_file.display()
        )
    })?;
    Ok(HubTarget::new(HubHttp::new(hub.hub.trim_end_matches('/')), &hub.database, token, ClaimJournal::beside(claims)))
}

async fn run(
    args: &SurrealArgs,
    options: &Options,
    hub: Option<&HubTarget>,
    sink: Option<&mut MemorySink<'_>>,
) -> anyhow::Result<()> {
    // A spinner on a terminal (hidden otherwise); problems print above it as they are found.
    let bar = indicatif::ProgressBar::new_spinner()
        .with_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut on_event = |event: Event| match event {
        Event::Problem(problem) => bar.suspend(|| println!("problem  {problem} (skipped)")),
        Event::Read { kind, read } => bar.set_message(format!("{}: {read} read", plural(kind))),
    };
    let report = heiwa_migrate::migrate(options, hub, sink, &mut on_event).await;
    bar.finish_and_clear();
    let report = report?;
    print_report(&report, options, hub.is_some());
    if let Some(hub) = hub.filter(|_| !options.dry_run) {
        let claims = heiwa_migrate::run::export_claims(hub, &args.claims).await?;
        if claims.reissued > 0 {
            println!(
                "claim codes: {} unclaimed users had no code this machine knows (made by an older hub, whose codes \
                 could be guessed, or its journal is gone): they have new ones, and their old ones no longer work",
                claims.reissued
            );
        }
        println!(
            "claim codes: {} users, written to {} (0600; the codes are also kept in {}): give each person theirs; \
             `heiwa migrate claim CODE` signs in",
            claims.users,
            args.claims.display(),
            hub.journal().path().display()
        );
    }
    Ok(())
}

fn print_report(report: &Report, options: &Options, to_hub: bool) {
    let verb = if options.dry_run { "would add" } else { "added" };
    for kind in Kind::ALL {
        let Some(counts) = report.counts.get(&kind).filter(|_| to_hub || kind == Kind::Document) else { continue };
        let mut line = format!(
            "{:<9} read {:>6}  {verb} {:>6}  already there {:>6}  problems {:>4}",
            plural(kind),
            counts.read,
            counts.added,
            counts.already,
            counts.problems
        );
        if counts.elsewhere > 0 {
            let hint =
                if options.documents_for.is_some() { "" } else { "; pass --documents-for ORGANIZATION on its limb" };
            line.push_str(&format!("  left for other limbs {}{hint}", counts.elsewhere));
        }
        println!("{line}");
    }
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{} records in {:.1} s ({:.0}/s), {} problems{}",
        report.records(),
        seconds,
        report.records() as f64 / seconds,
        report.problems.len(),
        if options.dry_run { "; dry run: nothing was changed" } else { "" }
    );
}

fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Tenant => "tenants",
        Kind::Member => "members",
        Kind::Task => "tasks",
        Kind::Document => "documents",
    }
}

async fn verify(options: &Options, hub: Option<&HubTarget>, sink: Option<&mut MemorySink<'_>>) -> anyhow::Result<()> {
    let checks = heiwa_migrate::verify::verify(options, hub, sink).await?;
    let mut all = true;
    for check in &checks {
        all &= check.matches();
        let verdict = if check.matches() { "match" } else { "DIFFER" };
        println!(
            "{:<9} source {:>6}  migrated {:>6}  checksum {} / {}  {verdict}",
            plural(check.kind),
            check.source_count,
            check.target_count,
            &check.source_checksum[..16],
            &check.target_checksum[..16]
        );
        for (what, ids) in
            [("not migrated", &check.missing), ("not in the source", &check.extra), ("different", &check.differing)]
        {
            if !ids.is_empty() {
                let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
                let more = if ids.len() > 10 { format!(" and {} more", ids.len() - 10) } else { String::new() };
                println!("          {what}: {}{more}", shown.join(", "));
            }
        }
    }
    if !all {
        bail!("the hub does not match the source (see above); rerun the migration, then --verify again");
    }
    println!("verified: every table matches");
    Ok(())
}
