//! `heiwa`: the headless limb. Thin glue over `limb_core`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use limb_core::{config, doctor, LimbInfo};

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
    }
    Ok(())
}
