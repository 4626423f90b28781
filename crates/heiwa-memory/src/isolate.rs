//! Extraction under a budget enforced from outside the parser. A parser that
//! loops or grows without end on one hostile document (html2text took minutes
//! on a deeply nested HTML file) cannot be stopped by a check it never
//! reaches, and a thread cannot be killed; a process can. So the ingest hands
//! each file to a worker process — the app's own binary, started again with
//! [`WORKER_ENV`] set — that answers one JSON line per path. Over its time
//! budget the worker is killed and that file is the file's error; over its
//! memory budget (`RLIMIT_DATA`) its allocation fails and it dies, the same.
//! The next file gets a fresh worker; the rest of the folder goes on.
//!
//! A binary opts in: its `main` calls [`serve_if_worker`] first and
//! [`isolate_with`] once. Without that (a library user, a test calling
//! `ingest_path` in its own process), extraction runs in-process as before.

use crate::extract::{extract, ExtractError, Extracted};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Set in a worker's environment: the process serves extraction and exits.
pub const WORKER_ENV: &str = "HEIWA_EXTRACT_WORKER";

/// What one document's extraction may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub time: Duration,
    pub memory_mib: u64,
}

impl Budget {
    pub const DEFAULT: Budget = Budget { time: Duration::from_secs(60), memory_mib: 2048 };

    /// `HEIWA_EXTRACT_TIMEOUT_SECS` and `HEIWA_EXTRACT_MEMORY_MIB`, each the default when unset.
    pub fn from_env() -> Result<Budget, String> {
        let read = |name: &str, default: u64| match std::env::var(name) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name} is a positive whole number, not {text:?}")),
            },
            Err(_) => Ok(default),
        };
        Ok(Budget {
            time: Duration::from_secs(read("HEIWA_EXTRACT_TIMEOUT_SECS", Budget::DEFAULT.time.as_secs())?),
            memory_mib: read("HEIWA_EXTRACT_MEMORY_MIB", Budget::DEFAULT.memory_mib)?,
        })
    }
}

static WORKER: OnceLock<(PathBuf, Budget)> = OnceLock::new();

/// Extract in worker processes started from `program` (a binary whose `main`
/// calls [`serve_if_worker`] first), each document under `budget`. Once per process.
pub fn isolate_with(program: PathBuf, budget: Budget) {
    let _ = WORKER.set((program, budget));
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Reply {
    Text { text: String, page_starts: Vec<usize> },
    Refused(String),
}

/// If this process was started as an extraction worker, serve and exit: one
/// path a line on stdin (hex of its bytes, so any file name fits), one JSON
/// reply a line on stdout. Ends when stdin closes (its ingest is gone).
pub fn serve_if_worker() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    use std::io::{BufRead, Write};
    use std::os::unix::ffi::OsStrExt;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Some(bytes) = from_hex(line.trim()) else { break };
        let path = Path::new(std::ffi::OsStr::from_bytes(&bytes));
        let reply = match extract(path) {
            Ok(Extracted { text, page_starts }) => Reply::Text { text, page_starts },
            Err(error) => Reply::Refused(error.to_string()),
        };
        let written = serde_json::to_writer(&mut out, &reply).map_err(std::io::Error::other);
        if written.and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    std::process::exit(0);
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

struct Worker {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

/// Extraction for one ingest run: a worker kept across files, replaced after one is killed.
#[derive(Default)]
pub(crate) struct Extractor {
    worker: Option<Worker>,
}

impl Extractor {
    pub async fn extract(&mut self, path: &Path) -> Result<Extracted, ExtractError> {
        let Some((program, budget)) = WORKER.get() else {
            return extract(path);
        };
        let worker = match &mut self.worker {
            Some(worker) => worker,
            None => self.worker.insert(spawn(program, budget)?),
        };
        use std::os::unix::ffi::OsStrExt;
        let request = format!("{}\n", to_hex(path.as_os_str().as_bytes()));
        let mut line = String::new();
        let answered = async {
            worker.stdin.write_all(request.as_bytes()).await?;
            worker.stdin.flush().await?;
            worker.stdout.read_line(&mut line).await
        };
        match tokio::time::timeout(budget.time, answered).await {
            Ok(Ok(n)) if n > 0 => match serde_json::from_str(&line) {
                Ok(Reply::Text { text, page_starts }) => Ok(Extracted { text, page_starts }),
                Ok(Reply::Refused(sentence)) => Err(ExtractError::Malformed(sentence)),
                Err(e) => Err(ExtractError::Malformed(format!("the extractor's answer was not understood: {e}"))),
            },
            Ok(_) => {
                // It died on this file: a failed allocation (its memory budget) aborts it.
                let mut gone = self.worker.take().expect("the worker that just answered");
                let status = gone.child.wait().await.ok();
                Err(ExtractError::OverMemory { mib: budget.memory_mib, status: status.map(|s| s.to_string()) })
            }
            Err(_) => {
                if let Some(mut late) = self.worker.take() {
                    let _ = late.child.kill().await;
                }
                Err(ExtractError::OverTime { secs: budget.time.as_secs() })
            }
        }
    }
}

fn spawn(program: &Path, budget: &Budget) -> Result<Worker, ExtractError> {
    let mut command = tokio::process::Command::new(program);
    let memory = budget.memory_mib << 20;
    command
        .env(WORKER_ENV, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_DATA, memory, memory)
                .map_err(std::io::Error::from)
        });
    }
    let mut child =
        command.spawn().map_err(|e| ExtractError::Malformed(format!("the extractor did not start: {e}")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ExtractError::Malformed("the extractor has no pipes".into()));
    };
    Ok(Worker { child, stdin, stdout: BufReader::new(stdout) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_file_name_goes_through_the_line_protocol() {
        let name = b"odd\nname \xff.txt";
        assert_eq!(from_hex(&to_hex(name)).as_deref(), Some(&name[..]));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn budgets_come_from_the_environment_or_defaults() {
        assert_eq!(Budget::from_env(), Ok(Budget::DEFAULT));
    }
}
