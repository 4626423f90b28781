//! Models a person can get from inside the app or `heiwa models pull`: the
//! built-in catalogue, and one pull into the model store (resumable and
//! verified by `heiwa-fetch`, checked by loading before it is listed).

use heiwa_fetch::{Fetch, FetchError, Progress};
use heiwa_inference::models::{ModelError, ModelInfo, ModelStore};
use std::time::Duration;

/// Hugging Face's own address, where no mirror is named (`HF_ENDPOINT`, or the app's setting).
pub const HF_ENDPOINT: &str = "https://huggingface.co";

/// One model the app offers to download.
#[derive(Clone, Debug, serde::Serialize, ts_rs::TS)]
pub struct CatalogueEntry {
    pub name: &'static str,
    /// Where from: an `hf:` reference (resolved under the chosen endpoint) or a URL.
    pub source: &'static str,
    pub file: &'static str,
    #[ts(type = "number")]
    pub size_bytes: u64,
    pub sha256: &'static str,
    pub license: &'static str,
    pub good_at: &'static str,
}

/// The built-in catalogue. Only files whose SHA-256 was checked here are
/// listed (a wrong hash would refuse every download); anything else is added
/// by URL or `hf:` reference.
pub const CATALOGUE: &[CatalogueEntry] = &[CatalogueEntry {
    name: "Qwen2.5 Coder 0.5B Instruct (Q4_K_M)",
    source: "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size_bytes: 491_400_064,
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    license: "Apache-2.0",
    good_at: "small and fast on any CPU: short answers from your documents, Python for the sandbox",
}];

/// What to pull into the store.
#[derive(Clone, Debug)]
pub struct Pull {
    /// An http(s) URL or `hf:OWNER/REPO/FILE[@REVISION]`.
    pub source: String,
    /// Lowercase hex; without it the file is trusted as the transport gave it.
    pub sha256: Option<String>,
    /// The model's file name (default: the URL's last part).
    pub name: Option<String>,
    /// Where `hf:` references resolve (Hugging Face, or a mirror).
    pub endpoint: String,
    /// For gated repositories; never logged.
    pub token: Option<String>,
    pub stall: Duration,
    /// The pulled model answers tasks if the store has no default yet (a
    /// person's first model does; a model fetched for the tenant's catalogue does not).
    pub default_if_first: bool,
    /// A bandwidth cap, bytes a second (`None`: as fast as the link goes).
    pub max_bytes_per_sec: Option<u64>,
}

impl Pull {
    pub fn new(source: impl Into<String>, endpoint: impl Into<String>) -> Pull {
        Pull {
            source: source.into(),
            sha256: None,
            name: None,
            endpoint: endpoint.into(),
            token: None,
            stall: Duration::from_secs(30),
            default_if_first: true,
            max_bytes_per_sec: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The store already has a file of that name, and it is not the one asked for.
    #[error(
        "{path} is another file (SHA-256 {actual}, not {expected}): remove it, or give the model another file name"
    )]
    Different { path: String, actual: String, expected: String },
}

/// A pulled model.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub info: ModelInfo,
    pub bytes: u64,
    pub sha256: String,
    /// Bytes this pull received (less than `bytes` when it resumed).
    pub received: u64,
    /// It was already in the store (another pull brought it).
    pub already: bool,
    pub checked: bool,
}

/// The file name a pull of `url` gets when none is given.
fn file_name(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().rsplit('/').next().unwrap_or_default().into()
}

/// Bring one model into `store`: downloaded beside it (resuming what an
/// earlier pull left), verified, checked by loading, then listed. The first
/// model a store gets answers tasks (it becomes the default) unless
/// `default_if_first` is off. Dropping the
/// future cancels it; what arrived is kept for the next pull.
pub async fn pull(store: &ModelStore, what: &Pull, progress: impl FnMut(Progress)) -> Result<Pulled, PullError> {
    let url = heiwa_fetch::resolve_source(&what.source, &what.endpoint)?;
    let name = what.name.clone().unwrap_or_else(|| file_name(&url));
    let dest = store.downloads_dir().join(&name);
    // Two pulls of one model make one download: the second waits, then finds it.
    let _one_at_a_time = heiwa_fetch::exclusive(&dest).await?;
    let checked = what.sha256.is_some();
    let pulled = if let Some(info) = store.find(&name) {
        // A file of that name is no proof it is the one asked for: with a hash to check, it is checked
        // (off the async threads: a large model takes seconds to hash).
        let mut sha256 = String::new();
        if let Some(expected) = what.sha256.as_deref().map(|hex| hex.trim().to_ascii_lowercase()) {
            let path = info.path.clone();
            let hashed = tokio::task::spawn_blocking(move || heiwa_fetch::hash_file(&path));
            let (_, actual) =
                hashed.await.map_err(|e| FetchError::BadSource(format!("checking the model failed: {e}")))??;
            if actual != expected {
                return Err(PullError::Different { path: info.path.display().to_string(), actual, expected });
            }
            sha256 = actual;
        }
        Pulled { bytes: info.size_bytes, sha256, received: 0, already: true, checked, info }
    } else {
        let mut fetch = Fetch::new(url, dest);
        fetch.sha256 = what.sha256.as_deref().map(|hex| hex.trim().to_ascii_lowercase());
        fetch.token = what.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(Into::into);
        fetch.stall = what.stall.max(Duration::from_secs(1));
        fetch.max_bytes_per_sec = what.max_bytes_per_sec;
        let fetched = heiwa_fetch::fetch(&heiwa_fetch::client(), &fetch, progress).await?;
        // Loading the model to check it takes a while: off the async threads.
        let adopt = {
            let (path, name, store) = (fetched.path.clone(), name.clone(), store.clone());
            tokio::task::spawn_blocking(move || store.adopt(&path, &name))
        };
        let info = adopt.await.map_err(|e| FetchError::BadSource(format!("checking the model failed: {e}")))??;
        Pulled {
            bytes: fetched.bytes,
            sha256: fetched.sha256,
            received: fetched.received,
            already: false,
            checked,
            info,
        }
    };
    if what.default_if_first && store.default_id().is_none() {
        store.set_default(&pulled.info.id)?;
    }
    Ok(pulled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_is_named_by_the_urls_last_part() {
        assert_eq!(file_name("http://127.0.0.1:8080/m/q.gguf?download=true"), "q.gguf");
        assert_eq!(file_name("https://example.test/a/b/c.gguf#x"), "c.gguf");
    }

    #[test]
    fn the_catalogue_names_files_by_sha256_and_hf_reference() {
        for entry in CATALOGUE {
            assert_eq!(entry.sha256.len(), 64, "{}", entry.name);
            assert!(entry.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{}", entry.name);
            let url = heiwa_fetch::resolve_source(entry.source, HF_ENDPOINT).unwrap();
            assert_eq!(file_name(&url), entry.file, "{}", entry.name);
        }
    }
}
