//! A Heiwa limb: syncs with the hub, answers tasks with local inference, local
//! memory and one sandboxed tool. Knows nothing about Tauri or any UI.

pub mod agent;
pub mod claim;
pub mod doctor;
pub mod given;
pub mod governor;
mod json_file;
pub mod mesh;
pub mod models;

use heiwa_config::{MissingPart, Parts};
use std::path::Path;

/// This limb's version, as it reports itself and signs its results.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The parts from the package or the environment, with the chat model the
/// owner chose in `data_dir`'s model store (`heiwa models default`, the app).
pub fn chosen_parts(data_dir: &Path) -> Result<Parts, MissingPart> {
    Parts::find(heiwa_inference::models::ModelStore::new(data_dir.join("models")).default_path())
}

/// What the desktop app and `heiwa status` show about this limb.
#[derive(Clone, Debug, serde::Serialize, ts_rs::TS)]
pub struct LimbInfo {
    pub version: &'static str,
    pub data_dir: String,
    /// Each part and whether it is configured, without starting anything.
    pub parts: Vec<PartInfo>,
    /// What this machine's limb did, as last saved (after each task).
    pub given: given::Given,
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
    /// Each part where it was found (the package or an override), without
    /// starting anything; a part found nowhere is named with where it was looked for.
    pub fn gather(data_dir: &Path) -> Self {
        let file = |name, path: std::path::PathBuf| PartInfo {
            name,
            state: if path.exists() { PartState::Found } else { PartState::Missing },
            detail: path.display().to_string(),
        };
        let parts = match chosen_parts(data_dir) {
            Ok(p) => vec![
                file("hub server", p.spacetimedb_bin.clone()),
                file("memory (PostgreSQL)", p.pg_dir.clone()),
                match p.chat_model() {
                    Ok(path) => file("chat model", path),
                    Err(missing) => {
                        PartInfo { name: "chat model", state: PartState::NotConfigured, detail: missing.to_string() }
                    }
                },
                file("embedding model", p.embed_model.clone()),
                PartInfo { name: "sandbox image", state: PartState::Configured, detail: p.sandbox_image },
            ],
            Err(missing) => {
                vec![PartInfo { name: missing.what, state: PartState::Missing, detail: missing.to_string() }]
            }
        };
        let given = given::WorkLog::open(data_dir).given();
        LimbInfo { version: VERSION, data_dir: data_dir.display().to_string(), parts, given }
    }
}
