//! The legacy side: SurrealDB read by SurrealDB's own engine (or server),
//! through its official Python package. `surreal_reader.py` (compiled into
//! heiwa, run by the interpreter given) streams SurrealDB's own answers, page
//! by page, as the CBOR its RPC protocol speaks; a task of ours decodes them
//! ([`crate::cbor`]) and reads ahead into a channel, so the hub is written
//! while SurrealDB is still being read.

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
}

impl Source {
    /// Start reading `tables`, in order. The reader never outlives heiwa: it
    /// is killed when this is dropped, and if heiwa is killed outright its
    /// next write finds the pipe closed and it ends.
    pub async fn open(spec: &SourceSpec, tables: &[String]) -> Result<Self, MigrateError> {
        let python = spec.python.display().to_string();
        let mut child = tokio::process::Command::new(&spec.python)
            // Isolated: no user site-packages, no PYTHON* variables steering it.
            // The program itself is an argument (it holds no secret), so no
            // file of it is left behind whatever ends heiwa.
            .args(["-I", "-c", READER])
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
            let mut reader = BufReader::new(stdout);
            loop {
                match read_frame(&mut reader).await {
                    Ok(Some(lines)) => {
                        for line in lines {
                            let failed = line.is_err();
                            if sender.send(line).await.is_err() || failed {
                                return;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
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
        Ok(Source { lines })
    }

    /// The next line, `None` when every table has been read.
    pub async fn next(&mut self) -> Option<Result<Line, MigrateError>> {
        self.lines.recv().await
    }
}

/// The next frame the reader wrote: a page of records, or a table's end;
/// `None` at the end of its output.
async fn read_frame(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> Result<Option<Vec<Result<Line, MigrateError>>>, MigrateError> {
    let mut header = String::new();
    if reader.read_line(&mut header).await.map_err(|e| MigrateError::Reader(format!("reading its output: {e}")))? == 0 {
        return Ok(None);
    }
    let bad = || MigrateError::Reader(format!("a line it wrote is not understood: {}", cut(header.trim_end())));
    let frame: Map<String, Value> = serde_json::from_str(&header).map_err(|_| bad())?;
    let table = frame.get("table").and_then(Value::as_str).ok_or_else(bad)?.to_string();
    if let Some(count) = frame.get("end") {
        return Ok(Some(vec![Ok(Line::End { table, count: count.as_u64().ok_or_else(bad)? })]));
    }
    let length = frame.get("cbor").and_then(Value::as_u64).ok_or_else(bad)?;
    let mut answer = vec![0; usize::try_from(length).map_err(|_| bad())?];
    reader
        .read_exact(&mut answer)
        .await
        .map_err(|e| MigrateError::Reader(format!("reading a page of {table}: {e}")))?;
    let rows = crate::cbor::page_rows(&answer).map_err(|e| MigrateError::Reader(format!("a page of {table}: {e}")))?;
    Ok(Some(
        rows.into_iter().map(|(id, fields)| Ok(Line::Record(RawRecord { table: table.clone(), id, fields }))).collect(),
    ))
}

fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(bytes: Vec<u8>) -> Vec<Result<Line, MigrateError>> {
        let mut reader = tokio::io::BufReader::new(&bytes[..]);
        let mut lines = Vec::new();
        while let Some(frame) = read_frame(&mut reader).await.transpose() {
            match frame {
                Ok(page) => lines.extend(page),
                Err(e) => lines.push(Err(e)),
            }
            if lines.last().is_some_and(Result::is_err) {
                break;
            }
        }
        lines
    }

    #[tokio::test]
    async fn frames_are_read_or_refused() {
        let answer = crate::cbor::tests::answer(vec![crate::cbor::tests::row("user", "ada", "email", "a@x")]);
        let mut bytes = format!("{{\"table\":\"user\",\"cbor\":{}}}\n", answer.len()).into_bytes();
        bytes.extend(answer);
        bytes.extend(b"{\"table\":\"user\",\"end\":1}\n");
        let lines = frames(bytes).await;
        assert!(
            matches!(&lines[0], Ok(Line::Record(RawRecord { id, fields, .. })) if id == "user:ada" && fields["email"] == "a@x")
        );
        assert!(matches!(lines[1], Ok(Line::End { count: 1, .. })));
        let broken = frames(b"Traceback (most recent call last):\n".to_vec()).await;
        assert!(matches!(&broken[0], Err(MigrateError::Reader(why)) if why.contains("Traceback")));
        let short = frames(b"{\"table\":\"user\",\"cbor\":99}\n\x80".to_vec()).await;
        assert!(matches!(&short[0], Err(MigrateError::Reader(why)) if why.contains("a page of user")));
    }
}
