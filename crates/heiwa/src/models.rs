//! `heiwa models`: the owner's GGUF model store.

use clap::Subcommand;
use heiwa_config::data_dir;
use heiwa_inference::models::ModelStore;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Copy a GGUF file into the models directory (checked first).
    Import {
        path: PathBuf,
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
}

pub fn models(command: ModelsCommand) -> anyhow::Result<()> {
    let store = ModelStore::new(data_dir().join("models"));
    match command {
        ModelsCommand::Import { path } => {
            let info = store.import(&path)?;
            println!("imported {} ({})", info.id, info.path.display());
        }
        ModelsCommand::List => {
            let models = store.list()?;
            for m in &models {
                let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
                println!(
                    "{} {:<40} {:<10} {:>6} {:<8} ctx {:>6}  {} MB{}",
                    if m.is_default { "*" } else { " " },
                    m.id,
                    or_unknown(&m.architecture),
                    or_unknown(&m.parameters),
                    or_unknown(&m.quantization),
                    m.context_length.map_or("?".into(), |c| c.to_string()),
                    m.size_bytes >> 20,
                    if m.has_chat_template { ", chat template" } else { "" }
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
    }
    Ok(())
}
