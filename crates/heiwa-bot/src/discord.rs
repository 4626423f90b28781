//! Discord's REST API, outbound only: post a message, install the commands.
//! A 429 is waited out as Discord says (`retry_after`), a bounded number of
//! times. The bot token is sent in a header and appears nowhere else.

use crate::BotError;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The environment variable that may hold the bot token (else a 0600 file).
pub const TOKEN_ENV: &str = "HEIWA_DISCORD_TOKEN";
/// Tries of one request through rate limits before giving up.
const MAX_TRIES: u32 = 5;
/// A wait longer than this is not waited out: the request fails and says so.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The bot's token. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct BotToken(String);

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotToken(hidden)")
    }
}

impl BotToken {
    /// From `HEIWA_DISCORD_TOKEN`, else from `file`, which must be readable by
    /// this user only (as `heiwa bot set-token` writes it).
    pub fn load(file: &Path) -> Result<BotToken, BotError> {
        BotToken::from_sources(std::env::var(TOKEN_ENV).ok(), file)
    }

    fn from_sources(env: Option<String>, file: &Path) -> Result<BotToken, BotError> {
        if let Some(token) = env.filter(|t| !t.trim().is_empty()) {
            return Ok(BotToken(token.trim().to_string()));
        }
        use std::os::unix::fs::PermissionsExt;
        let missing = || BotError::NoToken { path: file.to_path_buf() };
        let meta = std::fs::metadata(file).map_err(|_| missing())?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(BotError::TokenFileOpen { path: file.to_path_buf() });
        }
        let token = std::fs::read_to_string(file).map_err(|_| missing())?;
        let token = token.trim();
        if token.is_empty() {
            return Err(missing());
        }
        Ok(BotToken(token.to_string()))
    }

    pub fn new(token: String) -> BotToken {
        BotToken(token)
    }
}

#[derive(Clone, Debug)]
pub struct Discord {
    client: reqwest::Client,
    base: url::Url,
    token: BotToken,
}

impl Discord {
    pub fn new(base: url::Url, token: BotToken) -> Discord {
        let client = reqwest::Client::builder()
            // Discord asks bots to say who they are in this form.
            .user_agent(concat!("DiscordBot (https://heiwa.invalid, ", env!("CARGO_PKG_VERSION"), ")"))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("a TLS client builds");
        Discord { client, base, token }
    }

    /// Post a message to a channel.
    pub async fn post_message(&self, channel: &str, message: &Value) -> Result<Value, BotError> {
        self.send(reqwest::Method::POST, &format!("channels/{channel}/messages"), message).await
    }

    /// Replace the application's commands with `commands`: in one server
    /// (`guild`; they appear at once) or globally.
    pub async fn register(&self, application: &str, guild: Option<&str>, commands: &Value) -> Result<Value, BotError> {
        let path = match guild {
            Some(guild) => format!("applications/{application}/guilds/{guild}/commands"),
            None => format!("applications/{application}/commands"),
        };
        self.send(reqwest::Method::PUT, &path, commands).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Result<Value, BotError> {
        let url = format!("{}/{path}", self.base.as_str().trim_end_matches('/'));
        for _ in 0..MAX_TRIES {
            let response = self
                .client
                .request(method.clone(), &url)
                .header("authorization", format!("Bot {}", self.token.0))
                .json(body)
                .send()
                .await
                .map_err(|e| BotError::Discord { what: path.into(), why: e.without_url().to_string() })?;
            let status = response.status();
            let header_wait =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
            let text = response.text().await.unwrap_or_default();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&text).or(header_wait).unwrap_or(1.0);
                let wait = Duration::try_from_secs_f64(wait).unwrap_or(MAX_RETRY_AFTER);
                if wait > MAX_RETRY_AFTER {
                    return Err(BotError::RateLimited { what: path.into(), secs: wait.as_secs() });
                }
                tracing::info!(path, wait_ms = wait.as_millis() as u64, "Discord rate limit: waiting as it asks");
                tokio::time::sleep(wait).await;
                continue;
            }
            if !status.is_success() {
                let why = format!("{status}: {}", crate::text::cut(&text, 300));
                return Err(BotError::Discord { what: path.into(), why });
            }
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        Err(BotError::Discord { what: path.into(), why: format!("still rate limited after {MAX_TRIES} tries") })
    }
}

/// The seconds a 429's JSON body asks to wait.
fn retry_after(body: &str) -> Option<f64> {
    serde_json::from_str::<Value>(body).ok()?.get("retry_after")?.as_f64().filter(|s| s.is_finite() && *s >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_never_in_debug_output_and_a_shared_file_is_refused() {
        assert_eq!(format!("{:?}", BotToken::new("secret-token".into())), "BotToken(hidden)");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("discord.token");
        std::fs::write(&file, "abc").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(BotToken::from_sources(None, &file), Err(BotError::TokenFileOpen { .. })));
        heiwa_config::write_secret(&file, "abc\n").unwrap();
        assert_eq!(BotToken::from_sources(None, &file).unwrap().0, "abc");
        assert_eq!(BotToken::from_sources(Some(" env ".into()), &file).unwrap().0, "env", "the environment first");
        assert!(matches!(BotToken::from_sources(None, &dir.path().join("none")), Err(BotError::NoToken { .. })));
        assert_eq!(
            retry_after(r#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#),
            Some(0.25)
        );
        assert_eq!(retry_after("<html>"), None);
    }
}
