//! Small JSON records the limb keeps in its data directory (what it fetched
//! for the catalogue, what it gave): written whole and renamed, so a crash
//! leaves the old record or the new one, never half of one.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Write `value` to `path` through a partial file renamed over it.
pub fn save(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let partial = path.with_extension("json.partial");
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

/// The record at `path`; `None` when there is none. One that cannot be
/// read is renamed to `<name>.unreadable-<unix time>` (kept for a person to
/// look at, not overwritten by the next save) and `None` is returned.
pub fn load_or_set_aside<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".unreadable-{secs}"));
            let moved = std::fs::rename(path, &aside);
            tracing::warn!(%error, path = %path.display(), kept = ?moved.map(|()| aside), "a record could not be read; starting a new one");
            None
        }
    }
}
