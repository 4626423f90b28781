//! `heiwa tenant model`: the tenant's model catalogue, as its owner (or an
//! operator) keeps it, and where each limb's copy of each model stands.

use crate::hub_args::HubArgs;
use clap::Subcommand;
use heiwa_hub::CatalogueRow;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Add a model the tenant's tasks may name (or change the entry of the
    /// same id): limbs fetch it, verified by its SHA-256, and offer it.
    Add {
        /// What tasks name with --model.
        model_id: String,
        /// Where to fetch it from: an http(s) URL or hf:OWNER/REPO/FILE, tried
        /// in order (repeatable).
        #[arg(long = "source", required = true)]
        sources: Vec<String>,
        /// The file's SHA-256 (hex): a copy that differs is deleted, never run.
        #[arg(long)]
        sha256: String,
        /// The file's size in bytes (checked against donors' disk caps before a byte is fetched).
        #[arg(long)]
        size: u64,
        /// The file name on the limbs' disks (default: the first source's last part).
        #[arg(long)]
        file: Option<String>,
        #[arg(long, default_value = "")]
        license: String,
        /// Every limb fetches it now, not only when a task waits for it.
        #[arg(long)]
        keep_ready: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// The catalogue, with each limb's copy of each model (held, fetching, failed, no room).
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Take a model out of the catalogue: limbs stop fetching it.
    Remove {
        model_id: String,
        #[command(flatten)]
        hub: HubArgs,
    },
}

/// A source's last path part, as the file's default name.
fn file_name(source: &str) -> String {
    let last = source.split(['?', '#']).next().unwrap_or_default().rsplit(['/', ':']).next().unwrap_or_default();
    // hf:OWNER/REPO/FILE@REVISION: the revision is not part of the name.
    if source.starts_with("hf:") { last.split('@').next().unwrap_or_default() } else { last }.into()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

pub async fn model(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Add { model_id, sources, sha256, size, file, license, keep_ready, hub } => {
            let (http, token) = hub.client().await?;
            let file = file.unwrap_or_else(|| file_name(&sources[0]));
            let row = CatalogueRow {
                model_id,
                file,
                size_bytes: size,
                sha256: sha256.trim().to_ascii_lowercase(),
                sources,
                license,
                keep_ready,
            };
            http.add_catalogue_model(&hub.database, &row, &token).await?;
            let when = if keep_ready { "every limb fetches it now" } else { "limbs fetch it when a task needs it" };
            println!("{} is in the catalogue ({}, {}): {when}", row.model_id, row.file, mib(row.size_bytes));
        }
        ModelCommand::List { hub } => {
            let (http, token) = hub.client().await?;
            let copies = http.model_copies(&hub.database, &token).await?;
            let catalogue = http.catalogue(&hub.database, &token).await?;
            for entry in &catalogue {
                let ready = if entry.keep_ready { ", kept ready" } else { "" };
                println!(
                    "{}  {}  {}  sha256 {}{ready}",
                    entry.model_id,
                    entry.file,
                    mib(entry.size_bytes),
                    entry.sha256
                );
                for copy in copies.iter().filter(|c| c.model_id == entry.model_id) {
                    let progress = match copy.stage.as_str() {
                        "fetching" => format!(" {} of {}", mib(copy.have), mib(copy.size_bytes)),
                        _ => String::new(),
                    };
                    let why = if copy.reason.is_empty() { String::new() } else { format!(": {}", copy.reason) };
                    println!("    limb {:>4}  {}{progress}{why}", copy.limb_id, copy.stage);
                }
            }
            let models =
                if catalogue.len() == 1 { "1 model".to_string() } else { format!("{} models", catalogue.len()) };
            println!("{models} in the catalogue");
        }
        ModelCommand::Remove { model_id, hub } => {
            let (http, token) = hub.client().await?;
            http.remove_catalogue_model(&hub.database, &model_id, &token).await?;
            println!("{model_id} is no longer in the catalogue");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_models_file_is_named_by_its_sources_last_part() {
        assert_eq!(super::file_name("http://127.0.0.1:8080/m/minilm.gguf?x=1"), "minilm.gguf");
        assert_eq!(super::file_name("hf:Qwen/Qwen2.5-GGUF/q4.gguf@main"), "q4.gguf");
    }
}
