//! The bot's settings: a TOML file its operator writes (`discord.toml` in the
//! data directory), checked as a whole before anything starts. The bot
//! token is not in it: it comes from the environment or a 0600 file
//! ([`crate::BotToken`]).

use crate::access::{Grant, Permission};
use crate::BotError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// Discord's REST API (v10); tests point `api_base` at a recorder on loopback.
pub const DISCORD_API: &str = "https://discord.com/api/v10";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    application_id: String,
    public_key: String,
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_api_base")]
    api_base: String,
    guild_id: Option<String>,
    notify_channel: Option<String>,
    #[serde(default)]
    notify: Notify,
    #[serde(default)]
    grants: Vec<GrantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantEntry {
    user: Option<String>,
    role: Option<String>,
    may: Vec<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8790))
}

fn default_api_base() -> String {
    DISCORD_API.into()
}

/// Which finished tasks are posted to the notification channel.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Notify {
    /// Those submitted from Discord (through this bot).
    #[default]
    Submitted,
    /// Every task of the tenant.
    All,
}

/// The checked settings.
#[derive(Clone, Debug)]
pub struct BotConfig {
    /// The Discord application's id (a snowflake).
    pub application_id: String,
    /// The application's public key: every interaction must be signed by it.
    pub public_key: ed25519_dalek::VerifyingKey,
    /// Where the interactions endpoint listens: loopback only (a tunnel or a
    /// reverse proxy brings Discord's requests to it).
    pub listen: SocketAddr,
    /// Discord's REST API: `https://`, or `http://` to loopback (tests).
    pub api_base: url::Url,
    /// Register the commands in this server only (they appear at once); globally otherwise.
    pub guild_id: Option<String>,
    /// Where finished tasks are posted; none: no notifications.
    pub notify_channel: Option<String>,
    pub notify: Notify,
    pub grants: Vec<Grant>,
}

impl BotConfig {
    pub fn load(path: &Path) -> Result<BotConfig, BotError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BotError::ConfigFile { path: path.to_path_buf(), source })?;
        BotConfig::parse(&text).map_err(|why| BotError::Config { path: path.to_path_buf(), why })
    }

    /// Read and check settings; the error is one sentence saying what to fix.
    pub fn parse(text: &str) -> Result<BotConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let application_id = snowflake("application_id", &file.application_id)?;
        let key: [u8; 32] = hex::decode(file.public_key.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("public_key must be the application's public key: 64 hex digits (the Developer Portal shows it)")?;
        let public_key = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|_| "public_key is not a valid Ed25519 public key".to_string())?;
        if !file.listen.ip().is_loopback() {
            return Err(format!(
                "listen = {} is not a loopback address: the bot listens on this machine only, behind a tunnel",
                file.listen
            ));
        }
        let api_base = url::Url::parse(file.api_base.trim_end_matches('/'))
            .map_err(|e| format!("api_base {:?} is not a URL: {e}", file.api_base))?;
        let plain_ok = api_base.scheme() == "http" && heiwa_config::is_loopback_url(&api_base);
        if api_base.scheme() != "https" && !plain_ok {
            return Err(format!("api_base {api_base} must be https:// (plain http only to this machine)"));
        }
        let guild_id = file.guild_id.map(|id| snowflake("guild_id", &id)).transpose()?;
        let notify_channel = file.notify_channel.map(|id| snowflake("notify_channel", &id)).transpose()?;
        let grants = file.grants.into_iter().map(grant).collect::<Result<_, _>>()?;
        Ok(BotConfig {
            application_id,
            public_key,
            listen: file.listen,
            api_base,
            guild_id,
            notify_channel,
            notify: file.notify,
            grants,
        })
    }
}

/// A Discord id: digits only (they are 64-bit numbers written as strings).
fn snowflake(what: &str, id: &str) -> Result<String, String> {
    let id = id.trim();
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {id:?} is not a Discord id (digits, as Developer Mode's \"Copy ID\" gives)"));
    }
    Ok(id.to_string())
}

fn grant(entry: GrantEntry) -> Result<Grant, String> {
    let may = entry
        .may
        .iter()
        .map(|word| Permission::named(word))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    match (entry.user, entry.role) {
        (Some(user), None) => Ok(Grant::User { id: snowflake("grant user", &user)?, may }),
        (None, Some(role)) => Ok(Grant::Role { id: snowflake("grant role", &role)?, may }),
        _ => Err("each [[grants]] entry names exactly one user or one role".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn a_whole_file_reads_with_its_defaults() {
        let config = BotConfig::parse(&format!(
            r#"
            application_id = "1100000000000000001"
            public_key = "{KEY}"
            notify_channel = "1200000000000000002"
            [[grants]]
            user = "1300000000000000003"
            may = ["owner"]
            [[grants]]
            role = "1400000000000000004"
            may = ["view", "submit"]
            "#
        ))
        .unwrap();
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.api_base.as_str(), "https://discord.com/api/v10");
        assert_eq!(config.notify, Notify::Submitted);
        assert_eq!(config.grants.len(), 2);
        assert_eq!(config.grants[0].may().len(), 5, "owner is every permission");
    }

    #[test]
    fn what_would_be_unsafe_or_wrong_is_refused_with_what_to_fix() {
        let base = format!("application_id = \"1\"\npublic_key = \"{KEY}\"\n");
        let refused = |extra: &str| BotConfig::parse(&format!("{base}{extra}")).unwrap_err();
        assert!(refused("listen = \"0.0.0.0:8790\"").contains("loopback"));
        assert!(refused("api_base = \"http://discord.example\"").contains("https"));
        assert!(refused("[[grants]]\nuser = \"1\"\nmay = [\"fly\"]").contains("fly"));
        assert!(refused("[[grants]]\nuser = \"1\"\nrole = \"2\"\nmay = []").contains("exactly one"));
        assert!(refused("[[grants]]\nuser = \"bob\"\nmay = []").contains("not a Discord id"));
        assert!(refused("token = \"x\"").contains("unknown field"), "the token never goes in this file");
        assert!(BotConfig::parse("application_id = \"1\"\npublic_key = \"abcd\"").unwrap_err().contains("64 hex"));
        assert!(BotConfig::parse(&format!("{base}api_base = \"http://127.0.0.1:9/api\"")).is_ok());
    }
}
