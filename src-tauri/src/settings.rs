//! The owner's settings, kept as JSON in the data directory. Written whole to
//! a temporary file and renamed, so a crash mid-save never leaves half a file.

use limb_core::governor::DonationPolicy;
use limb_core::mesh::RemoteHub;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Settings {
    pub donation: DonationPolicy,
    pub updates: UpdateSettings,
    /// Someone else's hub to give to; `None` runs the local hub.
    pub hub: Option<RemoteHub>,
    /// Where `hf:` models are downloaded from instead of Hugging Face (a
    /// mirror, as `HF_ENDPOINT` names one); `None`: Hugging Face.
    pub model_mirror: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct UpdateSettings {
    /// Where to look for `latest.json`; `None` until the owner sets one.
    pub endpoint: Option<String>,
    /// "stable" or "beta": substituted for `{{channel}}` in the endpoint.
    pub channel: String,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings { endpoint: None, channel: "stable".into() }
    }
}

pub const CHANNELS: [&str; 2] = ["stable", "beta"];

/// A model mirror's address, checked as update endpoints are: HTTPS, or
/// plain HTTP to this machine only.
pub fn mirror_url(mirror: &str) -> Result<url::Url, UpdateUrlError> {
    let url = url::Url::parse(mirror).map_err(|reason| UpdateUrlError::NotAUrl { endpoint: mirror.into(), reason })?;
    secure(url)
}

fn secure(url: url::Url) -> Result<url::Url, UpdateUrlError> {
    match url.scheme() {
        "https" => Ok(url),
        "http" if heiwa_config::is_loopback_url(&url) => Ok(url),
        _ => Err(UpdateUrlError::Insecure(url)),
    }
}

/// The endpoint for `channel`, checked: HTTPS, or plain HTTP to this machine
/// only (a local mirror). The signature protects the artifact either way; the
/// rule keeps the release notes and versions from travelling in clear text.
pub fn update_url(endpoint: &str, channel: &str) -> Result<url::Url, UpdateUrlError> {
    if !CHANNELS.contains(&channel) {
        return Err(UpdateUrlError::Channel(channel.into()));
    }
    let url = url::Url::parse(&endpoint.replace("{{channel}}", channel))
        .map_err(|reason| UpdateUrlError::NotAUrl { endpoint: endpoint.into(), reason })?;
    secure(url)
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateUrlError {
    #[error("unknown update channel \"{0}\": choose stable or beta")]
    Channel(String),
    #[error("\"{endpoint}\" is not a URL ({reason}): give e.g. https://example.org/heiwa/{{{{channel}}}}/latest.json")]
    NotAUrl { endpoint: String, reason: url::ParseError },
    #[error("downloads are made over HTTPS (plain HTTP only from this machine), not from {0}")]
    Insecure(url::Url),
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("could not save {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl Settings {
    /// The saved settings; defaults when there are none. A damaged file is
    /// kept aside (never overwritten) and the defaults are used.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(source) => return Err(SettingsError::Read { path: path.into(), source }),
        };
        match serde_json::from_str(&text) {
            Ok(settings) => Ok(settings),
            Err(error) => {
                let aside = path.with_extension("json.damaged");
                tracing::warn!(%error, aside = %aside.display(), "settings unreadable; kept aside, using defaults");
                std::fs::rename(path, &aside).map_err(|source| SettingsError::Write { path: aside, source })?;
                Ok(Settings::default())
            }
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let write = |source| SettingsError::Write { path: path.into(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let partial = path.with_extension("json.partial");
        let text = serde_json::to_string_pretty(self).expect("settings serialise");
        std::fs::write(&partial, text).map_err(write)?;
        std::fs::rename(&partial, path).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_save_and_a_damaged_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let mut settings = Settings::default();
        settings.donation.paused = true;
        settings.updates.endpoint = Some("https://example.org/{{channel}}/latest.json".into());
        settings.save(&path).unwrap();
        assert_eq!(Settings::load(&path).unwrap(), settings);

        std::fs::write(&path, "{ not json").unwrap();
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        assert_eq!(std::fs::read_to_string(path.with_extension("json.damaged")).unwrap(), "{ not json");
    }

    #[test]
    fn update_endpoints_must_be_https_or_this_machine() {
        let url = update_url("https://example.org/heiwa/{{channel}}/latest.json", "beta").unwrap();
        assert_eq!(url.as_str(), "https://example.org/heiwa/beta/latest.json");
        assert!(update_url("http://127.0.0.1:8080/latest.json", "stable").is_ok());
        assert!(update_url("http://[::1]:8080/latest.json", "stable").is_ok());
        assert!(update_url("http://example.org/latest.json", "stable").unwrap_err().to_string().contains("HTTPS"));
        assert!(update_url("file:///tmp/latest.json", "stable").is_err());
        assert!(update_url("not a url", "stable").unwrap_err().to_string().contains("not a URL"));
        assert!(update_url("https://example.org/latest.json", "nightly").unwrap_err().to_string().contains("channel"));
    }
}
