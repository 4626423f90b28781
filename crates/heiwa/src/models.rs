//! `heiwa models`: the owner's GGUF model store.

use anyhow::Context;
use clap::Subcommand;
use heiwa_config::data_dir;
use heiwa_inference::models::ModelStore;
use limb_core::models::{Pull, HF_ENDPOINT};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Copy a GGUF file into the models directory (checked first).
    Import {
        path: PathBuf,
    },
    /// Download a GGUF model: resumable (a killed or dropped pull continues
    /// where it stopped), checked against --sha256 before it is installed.
    Pull {
        /// An http(s) URL, or hf:OWNER/REPO/FILE[@REVISION] (Hugging Face, or
        /// the mirror HF_ENDPOINT names).
        source: String,
        /// The file's SHA-256 (hex): a file that differs is deleted, never installed.
        #[arg(long)]
        sha256: Option<String>,
        /// The model's file name (default: the URL's last part).
        #[arg(long)]
        name: Option<String>,
        /// A file holding a token for gated repositories (default: HF_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Seconds without a byte before the download is retried from where it stands.
        #[arg(long, default_value_t = 30)]
        stall_secs: u64,
        /// Take at most this many MiB a second from the link.
        #[arg(long, value_name = "MIB")]
        max_mib_per_s: Option<u64>,
    },
    /// Every imported model with what its metadata says.
    List,
    Rm {
        id: String,
    },
    /// Use this model for chat (heiwa ask, serve, limb run) instead of the configured one.
    Default {
        id: String,
    },
    /// Keep this model on this machine: when the tenant's catalogue drops a
    /// model the limb fetched, it is deleted after a grace period unless pinned.
    Pin {
        id: String,
    },
    /// Let a model the catalogue dropped be deleted again.
    Unpin {
        id: String,
    },
}

/// A token file must be this user's alone (0600), as an SSH key must: a
/// token others can read is refused, never sent.
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?.permissions().mode();
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} can be read by other users (mode {:o}): chmod 600 it first",
        path.display(),
        mode & 0o777
    );
    std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))
}

pub async fn models(command: ModelsCommand) -> anyhow::Result<()> {
    let store = ModelStore::new(data_dir().join("models"));
    match command {
        ModelsCommand::Pull { source, sha256, name, token_file, stall_secs, max_mib_per_s } => {
            let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| HF_ENDPOINT.into());
            let mut pull = Pull::new(source, endpoint);
            pull.sha256 = sha256;
            pull.name = name;
            pull.token = match token_file {
                Some(path) => Some(read_token(&path)?),
                None => std::env::var("HF_TOKEN").ok(),
            };
            pull.stall = std::time::Duration::from_secs(stall_secs);
            pull.max_bytes_per_sec = max_mib_per_s.map(|mib| mib.saturating_mul(1 << 20));
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("a valid template"),
            );
            let pulled = limb_core::models::pull(&store, &pull, |p| {
                bar.set_length(p.total.unwrap_or(p.have));
                bar.set_position(p.have);
            })
            .await;
            bar.finish_and_clear();
            let pulled = pulled?;
            if pulled.already {
                println!("{} is already a model here", pulled.info.id);
                return Ok(());
            }
            let checked = if pulled.checked { "checked" } else { "not checked: no --sha256 given" };
            let default = if store.default_id().as_deref() == Some(&pulled.info.id) {
                "; it answers tasks (the default model)"
            } else {
                ""
            };
            println!(
                "pulled {} ({} bytes, sha256 {} {checked}; {} bytes received by this pull){default}",
                pulled.info.id, pulled.bytes, pulled.sha256, pulled.received
            );
        }
        ModelsCommand::Import { path } => {
            let info = store.import(&path)?;
            println!("imported {} ({})", info.id, info.path.display());
        }
        ModelsCommand::List => {
            let models = store.list()?;
            for m in &models {
                let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
                println!(
                    "{} {:<40} {:<10} {:>6} {:<8} ctx {:>6}  {} MB{}{}",
                    if m.is_default { "*" } else { " " },
                    m.id,
                    or_unknown(&m.architecture),
                    or_unknown(&m.parameters),
                    or_unknown(&m.quantization),
                    m.context_length.map_or("?".into(), |c| c.to_string()),
                    m.size_bytes >> 20,
                    if m.has_chat_template { ", chat template" } else { "" },
                    if m.pinned { ", pinned" } else { "" }
                );
            }
            println!("{} models in {}", models.len(), data_dir().join("models").display());
        }
        ModelsCommand::Rm { id } => {
            store.remove(&id)?;
            println!("removed {id}");
        }
        ModelsCommand::Default { id } => {
            store.set_default(&id)?;
            println!("{id} is the default chat model");
        }
        ModelsCommand::Pin { id } => {
            store.set_pinned(&id, true)?;
            println!("{id} is pinned: it stays here whatever the tenant's catalogue says");
        }
        ModelsCommand::Unpin { id } => {
            store.set_pinned(&id, false)?;
            println!("{id} is no longer pinned");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::read_token;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hf.token");
        std::fs::write(&path, "hf_secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = read_token(&path).unwrap_err().to_string();
        assert!(refused.contains("can be read by other users (mode 644): chmod 600"), "{refused}");
        assert!(!refused.contains("hf_secret"), "the token is never in an error: {refused}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&path).unwrap(), "hf_secret\n");
    }
}
