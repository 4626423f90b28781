//! Downloads that survive what happens to large files on people's links: a
//! kill, a dropped connection, a server that stops sending. One job: bring
//! one file from a URL to a path, whole and verified, or say why not.
//!
//! - **Resumable**: bytes go to `DEST.partial`, and a sidecar
//!   (`DEST.partial.json`) says which URL (or expected SHA-256: a mirror's
//!   copy continues it) and which version of it (`ETag`, length) they are from. The next fetch of the same source asks for the
//!   rest (`Range`), and starts over only when the server's file changed or it
//!   ignores ranges.
//! - **Stalls**: no byte for `stall` is a failure like a dropped link; both are
//!   retried from where the file stands, with backoff, `retries` times.
//! - **Integrity**: the SHA-256 is computed as bytes arrive (over what was on
//!   disk first, when resuming) and checked before the file is renamed into
//!   place; a mismatch deletes it. Nothing half-written is ever at `DEST`.
//! - **Space**: the size the server announces is checked against the disk's
//!   free space (and a caller's cap) before the first byte.
//! - **One at a time**: [`exclusive`], a lock beside the file; a second
//!   fetch of the same file waits for the first and then finds it done.
//! - Redirects are followed and `HTTPS_PROXY`/`NO_PROXY` honoured (reqwest's
//!   defaults); a bearer token, if given, is never logged.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: the server answered {status}{hint}")]
    Status { url: String, status: u16, hint: &'static str },
    #[error("{url}: no byte for {secs} s, {tries} times: giving up (what arrived is kept; fetch again to resume)")]
    Stalled { url: String, secs: u64, tries: u32 },
    #[error("{url}: the file's SHA-256 is {actual}, not the expected {expected}: deleted")]
    Mismatch { url: String, expected: String, actual: String },
    #[error("{url} is {needed} MiB; {dest} has {free} MiB free{cap}: nothing was downloaded")]
    NoSpace { url: String, needed: u64, dest: String, free: u64, cap: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    BadSource(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.into(), source }
}

/// What to fetch and how patiently.
#[derive(Clone, Debug)]
pub struct Fetch {
    pub url: String,
    /// Where the whole, verified file ends up.
    pub dest: PathBuf,
    /// Lowercase hex; `None` trusts the transport (and says so to the caller).
    pub sha256: Option<String>,
    /// A bearer token (gated Hugging Face repositories).
    pub token: Option<String>,
    /// No byte for this long is a stall.
    pub stall: Duration,
    /// Attempts after the first, each resuming.
    pub retries: u32,
    /// At most this many bytes on the destination's disk for this file (a donor's cap).
    pub max_bytes: Option<u64>,
    /// At most this many bytes a second from the network (a donor's bandwidth cap): the reading is paced, so
    /// the sender is held back by TCP's own flow control.
    pub max_bytes_per_sec: Option<u64>,
}

impl Fetch {
    pub fn new(url: impl Into<String>, dest: impl Into<PathBuf>) -> Fetch {
        Fetch {
            url: url.into(),
            dest: dest.into(),
            sha256: None,
            token: None,
            stall: Duration::from_secs(30),
            retries: 5,
            max_bytes: None,
            max_bytes_per_sec: None,
        }
    }

    fn partial(&self) -> PathBuf {
        with_suffix(&self.dest, ".partial")
    }

    fn sidecar(&self) -> PathBuf {
        with_suffix(&self.dest, ".partial.json")
    }
}

/// How long to wait before reading on, having read `bytes` in `elapsed`, to
/// stay under `per_sec` (`None`: no wait).
fn pace(bytes: u64, per_sec: Option<u64>, elapsed: Duration) -> Option<Duration> {
    let due = Duration::from_secs_f64(bytes as f64 / per_sec.filter(|rate| *rate > 0)? as f64);
    due.checked_sub(elapsed).filter(|wait| !wait.is_zero())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// How far a fetch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub have: u64,
    pub total: Option<u64>,
    /// Bytes this call received from the network (not what was already on disk).
    pub received: u64,
}

/// What the sidecar says the partial file is part of.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Origin {
    url: String,
    /// The SHA-256 the file was expected to have: the same file from
    /// another URL (a mirror) continues it, and the end checks it anyway.
    sha256: Option<String>,
    etag: Option<String>,
    total: Option<u64>,
}

impl Origin {
    fn continues(&self, what: &Fetch) -> bool {
        self.url == what.url || (self.sha256.is_some() && self.sha256 == what.sha256)
    }
}

/// What a finished fetch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// Bytes received from the network by this call.
    pub received: u64,
    /// The file was already there, whole (another fetch finished it).
    pub already: bool,
}

/// `hf:OWNER/REPO/PATH[@REVISION]` as a URL under `endpoint` (Hugging Face's,
/// or a mirror's: `HF_ENDPOINT`); any other source is taken as a URL.
pub fn resolve_source(source: &str, endpoint: &str) -> Result<String, FetchError> {
    let Some(reference) = source.strip_prefix("hf:") else {
        if source.starts_with("http://") || source.starts_with("https://") {
            return Ok(source.to_string());
        }
        return Err(FetchError::BadSource(format!("{source:?}: give an http(s) URL or hf:OWNER/REPO/FILE[@REVISION]")));
    };
    let (path, revision) = reference.split_once('@').unwrap_or((reference, "main"));
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 3 || parts.iter().any(|p| p.is_empty() || *p == "..") || revision.is_empty() {
        return Err(FetchError::BadSource(format!("{source:?}: an hf: reference is hf:OWNER/REPO/FILE[@REVISION]")));
    }
    let (repo, file) = (parts[..2].join("/"), parts[2..].join("/"));
    Ok(format!("{}/{repo}/resolve/{revision}/{file}", endpoint.trim_end_matches('/')))
}

/// Hold the lock for `dest` (a file beside it) until the guard is dropped:
/// callers take it around "is it there yet? fetch, install" so that two
/// pulls of one file make one download (a lock, not a check: the second
/// waits and then finds the file there).
pub async fn exclusive(dest: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, FetchError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let lock_path = with_suffix(dest, ".lock");
    tokio::task::spawn_blocking(move || lock_file(&lock_path))
        .await
        .map_err(|e| FetchError::BadSource(format!("the lock's thread failed: {e}")))?
}

/// An exclusive lock on `path`, held until the guard is dropped.
fn lock_file(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, FetchError> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io(path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| FetchError::Io { path: path.into(), source: errno.into() })
}

/// A client for fetches: redirects followed (up to 10), the system's proxy
/// settings honoured, a connection that cannot be made in 30 s given up.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .expect("a client with these settings builds")
}

/// Fetch `what`, calling `progress` as bytes arrive. Hold [`exclusive`] for
/// `what.dest` around it where another process might fetch the same file.
pub async fn fetch(
    client: &reqwest::Client,
    what: &Fetch,
    mut progress: impl FnMut(Progress),
) -> Result<Fetched, FetchError> {
    if let Some(dir) = what.dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    fetch_locked(client, what, &mut progress).await
}

async fn fetch_locked(
    client: &reqwest::Client,
    what: &Fetch,
    progress: &mut impl FnMut(Progress),
) -> Result<Fetched, FetchError> {
    if what.dest.is_file() {
        let (bytes, sha256) = hash_file(&what.dest)?;
        if what.sha256.as_ref().is_none_or(|expected| *expected == sha256) {
            return Ok(Fetched { path: what.dest.clone(), bytes, sha256, received: 0, already: true });
        }
    }
    let mut received = 0;
    let mut tries = 0;
    loop {
        match attempt(client, what, &mut received, progress).await {
            Ok(fetched) => return Ok(fetched),
            Err(Attempt::Fatal(error)) => return Err(error),
            Err(Attempt::Again(error)) if tries >= what.retries => {
                return Err(match error {
                    Some(error) => error,
                    None => FetchError::Stalled { url: what.url.clone(), secs: what.stall.as_secs(), tries: tries + 1 },
                })
            }
            Err(Attempt::Again(_)) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(tries.min(3)))).await;
            }
        }
    }
}

enum Attempt {
    /// A dropped link or a stall (`None`): try again from where the file stands.
    Again(Option<FetchError>),
    Fatal(FetchError),
}

async fn attempt(
    client: &reqwest::Client,
    what: &Fetch,
    received: &mut u64,
    progress: &mut impl FnMut(Progress),
) -> Result<Fetched, Attempt> {
    let fatal = Attempt::Fatal;
    let (partial, sidecar) = (what.partial(), what.sidecar());
    let origin: Option<Origin> = std::fs::read(&sidecar)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .filter(|o: &Origin| o.continues(what));
    let have = match (&origin, std::fs::metadata(&partial)) {
        (Some(_), Ok(meta)) => meta.len(),
        _ => 0,
    };
    let mut request = client.get(&what.url);
    if let Some(token) = &what.token {
        request = request.bearer_auth(token);
    }
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        if let Some(etag) = origin.as_ref().and_then(|o| o.etag.clone()) {
            request = request.header(reqwest::header::IF_RANGE, etag);
        }
    }
    let send = tokio::time::timeout(what.stall, request.send()).await;
    let mut response = match send {
        Err(_) => return Err(Attempt::Again(None)),
        Ok(Err(source)) if source.is_connect() || source.is_timeout() || source.is_request() => {
            return Err(Attempt::Again(Some(FetchError::Http { url: what.url.clone(), source })))
        }
        Ok(Err(source)) => return Err(fatal(FetchError::Http { url: what.url.clone(), source })),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let resumed = status == 206 && have > 0;
    if !(status == 200 || resumed) {
        let hint = match status {
            401 | 403 => " (a gated or private file: give a token, HF_TOKEN or --token-file)",
            404 => " (no such file: check the URL, repository, file name and revision)",
            416 => " (the partial file is longer than the server's: it is started over)",
            _ => "",
        };
        if status == 416 {
            remove_partial(what);
            return Err(Attempt::Again(Some(FetchError::Status { url: what.url.clone(), status, hint })));
        }
        let error = FetchError::Status { url: what.url.clone(), status, hint };
        return Err(if status >= 500 { Attempt::Again(Some(error)) } else { fatal(error) });
    }
    let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
    let length = response.content_length();
    let start = if resumed { have } else { 0 };
    let total = length.map(|len| start + len);
    if let Some(total) = total {
        check_space(what, total - start, total).map_err(fatal)?;
    }
    // The hash of what is already there, then of what arrives.
    let mut hasher = Sha256::new();
    let mut file = if resumed {
        hash_into(&partial, &mut hasher).map_err(fatal)?;
        std::fs::OpenOptions::new().append(true).open(&partial).map_err(io(&partial)).map_err(fatal)?
    } else {
        std::fs::File::create(&partial).map_err(io(&partial)).map_err(fatal)?
    };
    let origin = Origin { url: what.url.clone(), sha256: what.sha256.clone(), etag, total };
    let text = serde_json::to_vec(&origin).expect("an origin serializes");
    std::fs::write(&sidecar, text).map_err(io(&sidecar)).map_err(fatal)?;
    let mut have = start;
    progress(Progress { have, total, received: *received });
    let (paced_from, mut paced) = (std::time::Instant::now(), 0u64);
    loop {
        let chunk = match tokio::time::timeout(what.stall, response.chunk()).await {
            Err(_) => return Err(Attempt::Again(None)),
            Ok(Err(source)) => return Err(Attempt::Again(Some(FetchError::Http { url: what.url.clone(), source }))),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        file.write_all(&chunk).map_err(io(&partial)).map_err(fatal)?;
        hasher.update(&chunk);
        have += chunk.len() as u64;
        *received += chunk.len() as u64;
        progress(Progress { have, total, received: *received });
        paced += chunk.len() as u64;
        if let Some(wait) = pace(paced, what.max_bytes_per_sec, paced_from.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    if total.is_some_and(|total| have < total) {
        return Err(Attempt::Again(None));
    }
    file.sync_all().map_err(io(&partial)).map_err(fatal)?;
    let sha256 = hex::encode(hasher.finalize());
    if let Some(expected) = what.sha256.as_ref().filter(|expected| **expected != sha256) {
        remove_partial(what);
        return Err(fatal(FetchError::Mismatch { url: what.url.clone(), expected: expected.clone(), actual: sha256 }));
    }
    std::fs::rename(&partial, &what.dest).map_err(io(&what.dest)).map_err(fatal)?;
    let _ = std::fs::remove_file(&sidecar);
    Ok(Fetched { path: what.dest.clone(), bytes: have, sha256, received: *received, already: false })
}

fn remove_partial(what: &Fetch) {
    let _ = std::fs::remove_file(what.partial());
    let _ = std::fs::remove_file(what.sidecar());
}

/// Refuse before the first byte when `needed` more bytes do not fit.
fn check_space(what: &Fetch, needed: u64, total: u64) -> Result<(), FetchError> {
    let dir = what.dest.parent().unwrap_or(Path::new("."));
    let stat =
        nix::sys::statvfs::statvfs(dir).map_err(|errno| FetchError::Io { path: dir.into(), source: errno.into() })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let over_cap = what.max_bytes.is_some_and(|cap| total > cap);
    if needed > free || over_cap {
        remove_partial(what);
        let cap = what.max_bytes.map_or(String::new(), |cap| format!(" and a cap of {} MiB for models", cap >> 20));
        return Err(FetchError::NoSpace {
            url: what.url.clone(),
            needed: total.div_ceil(1 << 20),
            dest: dir.display().to_string(),
            free: free >> 20,
            cap,
        });
    }
    Ok(())
}

fn hash_into(path: &Path, hasher: &mut Sha256) -> Result<u64, FetchError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0;
    loop {
        let read = file.read(&mut buffer).map_err(io(path))?;
        if read == 0 {
            return Ok(bytes);
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
}

/// The size and SHA-256 (hex) of a file on disk.
pub fn hash_file(path: &Path) -> Result<(u64, String), FetchError> {
    let mut hasher = Sha256::new();
    let bytes = hash_into(path, &mut hasher)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bandwidth_cap_paces_the_reading() {
        let (mib, second) = (1u64 << 20, Duration::from_secs(1));
        assert_eq!(pace(10 * mib, None, second), None, "no cap, no wait");
        assert_eq!(pace(10 * mib, Some(0), second), None, "0 is no cap");
        assert_eq!(pace(10 * mib, Some(10 * mib), second), None, "on pace");
        assert_eq!(pace(20 * mib, Some(10 * mib), second), Some(second), "ahead by a second");
        assert_eq!(pace(5 * mib, Some(10 * mib), second), None, "behind: read on");
    }

    #[test]
    fn hugging_face_references_become_resolve_urls() {
        let endpoint = "http://127.0.0.1:8080/";
        assert_eq!(
            resolve_source("hf:Qwen/Qwen2.5-0.5B-GGUF/q4.gguf@abc123", endpoint).unwrap(),
            "http://127.0.0.1:8080/Qwen/Qwen2.5-0.5B-GGUF/resolve/abc123/q4.gguf"
        );
        assert_eq!(
            resolve_source("hf:o/r/sub/dir/f.gguf", endpoint).unwrap(),
            "http://127.0.0.1:8080/o/r/resolve/main/sub/dir/f.gguf"
        );
        assert_eq!(resolve_source("http://x/y.gguf", endpoint).unwrap(), "http://x/y.gguf");
        for bad in ["hf:o/r", "hf:o//f", "hf:o/r/../f", "hf:o/r/f@", "ftp://x/y", "model.gguf"] {
            assert!(resolve_source(bad, endpoint).is_err(), "{bad}");
        }
    }

    #[test]
    fn partial_files_sit_beside_the_destination() {
        let fetch = Fetch::new("http://x/m.gguf", "/models/m.gguf");
        assert_eq!(fetch.partial(), Path::new("/models/m.gguf.partial"));
        assert_eq!(fetch.sidecar(), Path::new("/models/m.gguf.partial.json"));
    }
}
