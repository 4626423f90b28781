//! How every hub command finds its hub and its identity: `--hub`,
//! `--database`, `--token-file` (and their environment variables).

use clap::Args;
use heiwa_config::data_dir;
use heiwa_hub::HubHttp;
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

    pub(crate) async fn client(&self) -> anyhow::Result<(HubHttp, String)> {
        let http = HubHttp::new(self.hub.trim_end_matches('/'));
        let token = http.identity_token(&self.token_file("identity.token")).await?;
        Ok((http, token))
    }
}
