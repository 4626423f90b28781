//! What every reader shares and returns: a document's text with its pages
//! ([`Extracted`]), the one-sentence reasons a file has none
//! ([`ExtractError`]), the size limits and the file types taken. A leaf: the
//! whole-file readers (`extract.rs`), the streamed ones (`stream.rs`) and the
//! worker (`isolate.rs`) all build on it, none of them on each other's types.

use std::path::Path;

/// Plain text, Markdown, source code, CSV and mailboxes up to this size are
/// read whole; larger ones are streamed (`stream.rs`).
pub const MAX_TEXT_BYTES: u64 = 8 << 20;
/// The other formats (PDF, the zip packages, workbooks, HTML, e-mail) are read
/// whole — their structure needs the whole file — up to this size, within the
/// worker's budget of time and memory; larger ones are refused.
pub const MAX_WHOLE_BYTES: u64 = 256 << 20;
/// The parts a zip package (DOCX, PPTX, ODT, EPUB) is read from may expand
/// to at most this much in all: a zip bomb stops here.
pub const MAX_PACKAGE_XML_BYTES: u64 = 32 << 20;

pub(crate) const SUPPORTED: [&str; 16] = [
    "txt", "md", "markdown", "html", "htm", "csv", "docx", "pdf", "pptx", "odt", "epub", "eml", "mbox", "xlsx", "xls",
    "ods",
];

/// A document's text, and where its pages start (PDF only).
#[derive(Debug, Default, PartialEq)]
pub struct Extracted {
    pub text: String,
    /// Byte offsets into `text` at which pages 1, 2, … start.
    pub page_starts: Vec<usize>,
}

impl Extracted {
    pub(crate) fn plain(text: String) -> Self {
        Extracted { text, page_starts: Vec::new() }
    }

    /// Append the next page (a PDF page, a slide, a chapter).
    pub(crate) fn push_page(&mut self, text: &str) {
        self.page_starts.push(self.text.len());
        self.text.push_str(text);
        self.text.push_str("\n\n");
    }

    /// The 1-based page that byte `offset` falls on, for paged documents.
    pub fn page_of(&self, offset: usize) -> Option<i32> {
        (!self.page_starts.is_empty()).then(|| self.page_starts.partition_point(|start| *start <= offset).max(1) as i32)
    }
}

/// Why a file has no text we can use: one sentence for the ingest report.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("unsupported file type .{0} (supported: {list}, and source code: {code})", list = SUPPORTED.join(", "), code = crate::code::SOURCE.join(", "))]
    Unsupported(String),
    #[error("file is {size} bytes; the limit is {limit} for .{extension}")]
    TooLarge { size: u64, limit: u64, extension: String },
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("no text in it")]
    NoText,
    #[error("binary content, not text")]
    Binary,
    #[error("not valid UTF-8 text (at byte {0})")]
    NotUtf8(usize),
    #[error("its text parts expand to {0} bytes (limit {MAX_PACKAGE_XML_BYTES}): refused as a possible zip bomb")]
    ZipBomb(u64),
    /// The format's own reader refused it; the sentence names the format.
    #[error("{0}")]
    Malformed(String),
    #[error("extracting its text took longer than its budget of {secs} s (HEIWA_EXTRACT_TIMEOUT_SECS); stopped")]
    OverTime { secs: u64 },
    #[error(
        "extracting its text needed more than its memory budget of {mib} MiB (HEIWA_EXTRACT_MEMORY_MIB); stopped{}",
        status.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()
    )]
    OverMemory { mib: u64, status: Option<String> },
    /// The reader died on it some other way (a stack overflow, an abort): the worker's last words.
    #[error("the {format} reader crashed on it ({detail})")]
    Crashed { format: String, detail: String },
}

pub(crate) fn malformed(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> ExtractError {
    move |e| ExtractError::Malformed(format!("{what}: {e}"))
}

pub(crate) fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default()
}
