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

use crate::document::{ExtractError, Extracted};
use crate::extract::{extract, format_of, unwinding};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

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
    /// The document's text, or the next section of a streamed one.
    Text {
        text: String,
        page_starts: Vec<usize>,
    },
    /// A streamed document has no more sections.
    End,
    Refused(String),
}

/// A request: `w` (read whole) or `s` (stream sections), then the path.
const WHOLE: char = 'w';
const STREAM: char = 's';

/// If this process was started as an extraction worker, serve and exit: one
/// request a line on stdin (the mode, then the hex of the path's bytes, so
/// any file name fits), JSON replies a line each on stdout: one for a whole
/// document, one per section and an `End` for a streamed one. The time
/// budget counts from one reply to the next, so a streamed document gets it
/// per section. Ends when stdin closes (its ingest is gone).
pub fn serve_if_worker() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    use std::io::{BufRead, Write};
    use std::os::unix::ffi::OsStrExt;
    // A panic is caught and answered (`unwinding`); its message goes in the answer, not to stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = std::io::stdout().lock();
    let mut send = |reply: Reply| {
        let written = serde_json::to_writer(&mut out, &reply).map_err(std::io::Error::other);
        written.and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).is_ok()
    };
    let reply = |extracted: Result<Extracted, ExtractError>| match extracted {
        Ok(Extracted { text, page_starts }) => Reply::Text { text, page_starts },
        Err(error) => Reply::Refused(error.to_string()),
    };
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let line = line.trim();
        let mode = line.chars().next();
        let Some(bytes) = line.get(1..).and_then(|text| hex::decode(text).ok()) else { break };
        let path = Path::new(std::ffi::OsStr::from_bytes(&bytes));
        let sent = match mode {
            Some(STREAM) => match unwinding(&format_of(path), || crate::stream::sections(path)) {
                Ok(mut sections) => loop {
                    match unwinding(&format_of(path), || sections.next().transpose()) {
                        Ok(Some(section)) => {
                            if !send(reply(Ok(section))) {
                                break false;
                            }
                        }
                        Ok(None) => break send(Reply::End),
                        Err(error) => break send(reply(Err(error))),
                    }
                },
                Err(error) => send(reply(Err(error))),
            },
            _ => send(reply(extract(path))),
        };
        if !sent {
            break;
        }
    }
    std::process::exit(0);
}

struct Worker {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    /// What it says when it dies (a failed allocation, a stack overflow).
    stderr: tokio::process::ChildStderr,
}

/// Extraction for one ingest run: a worker kept across files, replaced after one is killed.
#[derive(Default)]
pub struct Extractor {
    worker: Option<Worker>,
    /// The type of the document in hand (for a crash's sentence).
    format: String,
}

impl Extractor {
    /// The whole text of the document at `path`.
    pub async fn extract(&mut self, path: &Path) -> Result<Extracted, ExtractError> {
        if WORKER.get().is_none() {
            return extract(path);
        }
        self.send(WHOLE, path).await?;
        match self.receive().await? {
            Some(extracted) => Ok(extracted),
            None => Err(ExtractError::Malformed("the extractor answered out of turn".into())),
        }
    }

    /// The sections of the large document at `path` (see `stream.rs`), as they are read.
    pub async fn sections(&mut self, path: &Path) -> Result<SectionReader<'_>, ExtractError> {
        if WORKER.get().is_none() {
            return Ok(SectionReader::InProcess(crate::stream::sections(path)?));
        }
        self.send(STREAM, path).await?;
        Ok(SectionReader::Worker { extractor: self, ended: false })
    }

    async fn send(&mut self, mode: char, path: &Path) -> Result<(), ExtractError> {
        let (program, budget) = WORKER.get().expect("only sent to a worker");
        let worker = match &mut self.worker {
            Some(worker) => worker,
            None => self.worker.insert(spawn(program, budget)?),
        };
        use std::os::unix::ffi::OsStrExt;
        let request = format!("{mode}{}\n", hex::encode(path.as_os_str().as_bytes()));
        self.format = format_of(path);
        let sent = async {
            worker.stdin.write_all(request.as_bytes()).await?;
            worker.stdin.flush().await
        };
        match tokio::time::timeout(budget.time, sent).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(self.lost(budget).await),
        }
    }

    /// The worker's next reply, within the time budget: a text, or `None` at a stream's end.
    async fn receive(&mut self) -> Result<Option<Extracted>, ExtractError> {
        let (_, budget) = WORKER.get().expect("only asked of a worker");
        let Some(worker) = self.worker.as_mut() else {
            return Err(ExtractError::Malformed("the extractor is gone".into()));
        };
        let mut line = String::new();
        match tokio::time::timeout(budget.time, worker.stdout.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => match serde_json::from_str(&line) {
                Ok(Reply::Text { text, page_starts }) => Ok(Some(Extracted { text, page_starts })),
                Ok(Reply::End) => Ok(None),
                Ok(Reply::Refused(sentence)) => Err(ExtractError::Malformed(sentence)),
                Err(e) => Err(ExtractError::Malformed(format!("the extractor's answer was not understood: {e}"))),
            },
            Ok(_) => {
                // It died on this file: a failed allocation (its memory budget) aborts it; so does a stack overflow.
                let mut gone = self.worker.take().expect("the worker that just answered");
                let status = gone.child.wait().await.ok().map(|s| s.to_string());
                let mut said = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(1), gone.stderr.read_to_end(&mut said)).await;
                let said = String::from_utf8_lossy(&said);
                let last_words = said.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default().trim();
                // A failed allocation says so first; a backtrace note may follow it.
                if last_words.is_empty() || said.contains("memory allocation") {
                    Err(ExtractError::OverMemory { mib: budget.memory_mib, status })
                } else {
                    let detail = format!("{last_words}; {}", status.unwrap_or_default());
                    Err(ExtractError::Crashed { format: self.format.clone(), detail })
                }
            }
            Err(_) => Err(self.lost(budget).await),
        }
    }

    /// The worker ran out of time: it is killed, and the next file gets a new one.
    async fn lost(&mut self, budget: &Budget) -> ExtractError {
        if let Some(mut late) = self.worker.take() {
            let _ = late.child.kill().await;
        }
        ExtractError::OverTime { secs: budget.time.as_secs() }
    }
}

/// A large document's sections, read in this process or from the worker.
pub enum SectionReader<'a> {
    InProcess(crate::stream::Sections),
    Worker { extractor: &'a mut Extractor, ended: bool },
}

impl SectionReader<'_> {
    /// The next section; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Extracted>, ExtractError> {
        match self {
            SectionReader::InProcess(sections) => sections.next().transpose(),
            SectionReader::Worker { extractor, ended } => {
                let next = extractor.receive().await;
                *ended = !matches!(next, Ok(Some(_)));
                next
            }
        }
    }
}

impl Drop for SectionReader<'_> {
    fn drop(&mut self) {
        // Left before its end (the document failed on our side): the worker is
        // still sending its sections, so it cannot serve the next file.
        if let SectionReader::Worker { extractor, ended: false } = self {
            extractor.worker = None;
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
        .stderr(std::process::Stdio::piped())
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
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ExtractError::Malformed("the extractor has no pipes".into()));
    };
    Ok(Worker { child, stdin, stdout: BufReader::new(stdout), stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_come_from_the_environment_or_defaults() {
        assert_eq!(Budget::from_env(), Ok(Budget::DEFAULT));
    }
}
