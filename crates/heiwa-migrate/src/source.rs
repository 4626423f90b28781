//! The legacy side: SurrealDB read by SurrealDB's own engine, through its
//! official Python package. `surreal_reader.py` (compiled into heiwa, run by
//! the interpreter given) streams one JSON line per record; a task of ours
//! reads them ahead into a channel, so the hub is written while SurrealDB is
//! still being read.

use crate::MigrateError;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const READER: &str = include_str!("surreal_reader.py");
/// Records read ahead of the hub's writes (a few MiB at most).
const READ_AHEAD: usize = 4096;
/// Records the reader asks SurrealDB for at once.
const PAGE: usize = 1000;

/// Where the legacy data is. Credentials, when the server wants them, are
/// `SURREAL_USER` and `SURREAL_PASS` in the environment, which the reader inherits.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    /// `surrealkv:///path/to/db` (an embedded database file), `ws://`, `wss://`, `http(s)://`.
    pub url: String,
    pub namespace: String,
    pub database: String,
    /// A Python with `surrealdb==2.0.0` installed (a virtual environment's `bin/python`).
    pub python: PathBuf,
}

/// One legacy record: its table, its id (`table:key`, as SurrealQL writes it) and its other fields.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    pub table: String,
    pub id: String,
    pub fields: Map<String, Value>,
}

#[derive(Debug)]
pub enum Line {
    Record(RawRecord),
    /// A table read to its end: how many records it had.
    End {
        table: String,
        count: u64,
    },
}

pub struct Source {
    lines: mpsc::Receiver<Result<Line, MigrateError>>,
    // Kept for the reader's lifetime: the script it runs.
    _script: tempfile::NamedTempFile,
}

impl Source {
    /// Start reading `tables`, in order. The reader never outlives heiwa: it
    /// is killed when this is dropped, and if heiwa is killed outright its
    /// next write finds the pipe closed and it ends.
    pub async fn open(spec: &SourceSpec, tables: &[String]) -> Result<Self, MigrateError> {
        let mut script = tempfile::Builder::new().prefix("heiwa-surreal-reader").suffix(".py").tempfile()?;
        std::io::Write::write_all(&mut script, READER.as_bytes())?;
        let python = spec.python.display().to_string();
        let mut child = tokio::process::Command::new(&spec.python)
            // Isolated: no user site-packages, no PYTHON* variables steering it.
            .arg("-I")
            .arg(script.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| MigrateError::ReaderStart { python, source })?;
        let request = serde_json::json!({
            "url": spec.url, "namespace": spec.namespace, "database": spec.database,
            "tables": tables, "page": PAGE,
        });
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(request.to_string().as_bytes()).await?;
        drop(stdin);
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = mpsc::channel(READ_AHEAD);
        tokio::spawn(async move {
            let errors = tokio::spawn(async move {
                let mut text = String::new();
                let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut text).await;
                text
            });
            let mut reader = BufReader::new(stdout).lines();
            loop {
                match reader.next_line().await {
                    Ok(Some(text)) => {
                        let line = parse_line(&text);
                        let failed = line.is_err();
                        if sender.send(line).await.is_err() || failed {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = sender.send(Err(MigrateError::Reader(format!("reading its output: {e}")))).await;
                        return;
                    }
                }
            }
            let status = child.wait().await;
            let errors = errors.await.unwrap_or_default();
            if !matches!(&status, Ok(status) if status.success()) {
                let why = errors.trim();
                let why = if why.is_empty() { format!("it exited with {status:?}") } else { why.to_string() };
                let _ = sender.send(Err(MigrateError::Reader(why))).await;
            }
        });
        Ok(Source { lines, _script: script })
    }

    /// The next line, `None` when every table has been read.
    pub async fn next(&mut self) -> Option<Result<Line, MigrateError>> {
        self.lines.recv().await
    }
}

fn parse_line(text: &str) -> Result<Line, MigrateError> {
    let bad = || MigrateError::Reader(format!("a line it wrote is not understood: {}", cut(text)));
    let mut value: Map<String, Value> = serde_json::from_str(text).map_err(|_| bad())?;
    let table = value.get("table").and_then(Value::as_str).ok_or_else(bad)?.to_string();
    if let Some(count) = value.get("end") {
        return Ok(Line::End { table, count: count.as_u64().ok_or_else(bad)? });
    }
    let id = value.get("id").and_then(Value::as_str).ok_or_else(bad)?.to_string();
    let Some(Value::Object(fields)) = value.remove("fields") else { return Err(bad()) };
    Ok(Line::Record(RawRecord { table, id, fields }))
}

fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_or_refused() {
        let record = parse_line(r#"{"table":"user","id":"user:ada","fields":{"email":"a@x"}}"#).unwrap();
        assert!(matches!(record, Line::Record(RawRecord { ref id, .. }) if id == "user:ada"));
        assert!(matches!(parse_line(r#"{"table":"user","end":3}"#).unwrap(), Line::End { count: 3, .. }));
        assert!(parse_line("Traceback (most recent call last):").is_err());
        assert!(parse_line(r#"{"table":"user","id":"user:ada"}"#).is_err(), "no fields");
    }
}
