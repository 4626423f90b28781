//! A Heiwa limb: syncs with the hub, answers tasks with local inference, local
//! memory and one sandboxed tool. Knows nothing about Tauri or any UI.

pub mod agent;
pub mod claim;
pub mod doctor;
pub mod governor;
pub mod mesh;

use heiwa_config::{MissingPart, Parts};
use std::path::Path;

/// This limb's version, as it reports itself and signs its results.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The parts from the environment, with the chat model the owner chose in
/// `data_dir`'s model store (`heiwa models default`, the app's Settings).
pub fn chosen_parts(data_dir: &Path) -> Result<Parts, MissingPart> {
    let mut parts = Parts::from_env()?;
    if let Some(chosen) = heiwa_inference::models::ModelStore::new(data_dir.join("models")).default_path() {
        parts.chat_model = chosen;
    }
    Ok(parts)
}

/// What the desktop app and `heiwa status` show about this limb.
#[derive(Clone, Debug, serde::Serialize, ts_rs::TS)]
pub struct LimbInfo {
    pub version: &'static str,
    pub data_dir: String,
    /// Each part and whether it is configured, without starting anything.
    pub parts: Vec<PartInfo>,
}

#[derive(Clone, Debug, serde::Serialize, ts_rs::TS)]
pub struct PartInfo {
    pub name: &'static str,
    pub detail: String,
    pub state: PartState,
}

/// What can be known about a part without starting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    /// Its file is where the configuration says.
    Found,
    /// Configured, but its file is not there.
    Missing,
    /// Configured; only starting it can tell more (the sandbox image lives in the engine).
    Configured,
    NotConfigured,
}

impl LimbInfo {
    pub fn gather() -> Self {
        let not_configured = |name| PartInfo { name, state: PartState::NotConfigured, detail: String::new() };
        let file = |name, path: Option<std::path::PathBuf>| match path {
            Some(p) => PartInfo {
                name,
                state: if p.exists() { PartState::Found } else { PartState::Missing },
                detail: p.display().to_string(),
            },
            None => not_configured(name),
        };
        let parts = Parts::from_env().ok();
        LimbInfo {
            version: VERSION,
            data_dir: heiwa_config::data_dir().display().to_string(),
            parts: vec![
                file("hub server", parts.as_ref().map(|p| p.spacetimedb_bin.clone())),
                file("memory (PostgreSQL)", parts.as_ref().map(|p| p.pg_dir.clone())),
                file("chat model", parts.as_ref().map(|p| p.chat_model.clone())),
                file("embedding model", parts.as_ref().map(|p| p.embed_model.clone())),
                match parts {
                    Some(p) => {
                        PartInfo { name: "sandbox image", state: PartState::Configured, detail: p.sandbox_image }
                    }
                    None => not_configured("sandbox image"),
                },
            ],
        }
    }
}
