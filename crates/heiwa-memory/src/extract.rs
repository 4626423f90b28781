//! Text out of a person's files: plain text and Markdown as they are; HTML,
//! CSV, DOCX and PDF through well-kept crates. Every failure is a sentence
//! for the ingest report, never a panic or a half-read document.
//!
//! Spans of chunks point into the text returned here: for txt/md these are the
//! file's own bytes; for the other formats, the extracted text's.

use std::io::Read;
use std::path::Path;

/// Plain-text files larger than this are refused.
pub const MAX_TEXT_BYTES: u64 = 8 << 20;
/// Container formats (PDF, DOCX) larger than this are refused.
const MAX_CONTAINER_BYTES: u64 = 32 << 20;
/// A DOCX's main XML part may expand to at most this much: a zip bomb stops here.
pub const MAX_DOCX_XML_BYTES: u64 = 32 << 20;

const SUPPORTED: [&str; 8] = ["txt", "md", "markdown", "html", "htm", "csv", "docx", "pdf"];

/// A document's text, and where its pages start (PDF only).
#[derive(Debug, Default, PartialEq)]
pub struct Extracted {
    pub text: String,
    /// Byte offsets into `text` at which pages 1, 2, … start.
    pub page_starts: Vec<usize>,
}

impl Extracted {
    fn plain(text: String) -> Self {
        Extracted { text, page_starts: Vec::new() }
    }

    /// The 1-based page that byte `offset` falls on, for paged documents.
    pub fn page_of(&self, offset: usize) -> Option<i32> {
        (!self.page_starts.is_empty()).then(|| self.page_starts.partition_point(|start| *start <= offset).max(1) as i32)
    }
}

/// Why a file has no text we can use: one sentence for the ingest report.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("unsupported file type .{0} (supported: {list})", list = SUPPORTED.join(", "))]
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
    #[error("DOCX text part expands to {0} bytes (limit {MAX_DOCX_XML_BYTES}): refused as a possible zip bomb")]
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
}

fn malformed(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> ExtractError {
    move |e| ExtractError::Malformed(format!("{what}: {e}"))
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default()
}

/// Whether memory takes files of `path`'s type at all (by extension).
pub fn supported(path: &Path) -> bool {
    SUPPORTED.contains(&extension(path).as_str())
}

/// The text of the file at `path`, or why it has none we can use.
pub fn extract(path: &Path) -> Result<Extracted, ExtractError> {
    let extension = extension(path);
    if !SUPPORTED.contains(&extension.as_str()) {
        return Err(ExtractError::Unsupported(extension));
    }
    let limit = if matches!(extension.as_str(), "pdf" | "docx") { MAX_CONTAINER_BYTES } else { MAX_TEXT_BYTES };
    let size = std::fs::metadata(path)?.len();
    if size > limit {
        return Err(ExtractError::TooLarge { size, limit, extension });
    }
    let bytes = std::fs::read(path)?;
    let extracted = match extension.as_str() {
        "html" | "htm" => Extracted::plain(html(&text(bytes)?)?),
        "csv" => Extracted::plain(csv(&text(bytes)?)?),
        "docx" => Extracted::plain(docx(&bytes)?),
        "pdf" => pdf(&bytes)?,
        _ => Extracted::plain(text(bytes)?),
    };
    if extracted.text.trim().is_empty() {
        return Err(if size == 0 || extension_is_text(&extension) {
            ExtractError::Empty
        } else {
            ExtractError::NoText
        });
    }
    Ok(extracted)
}

fn extension_is_text(extension: &str) -> bool {
    matches!(extension, "txt" | "md" | "markdown")
}

/// UTF-8 text, refusing binary content.
fn text(bytes: Vec<u8>) -> Result<String, ExtractError> {
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return Err(ExtractError::Binary);
    }
    String::from_utf8(bytes).map_err(|e| ExtractError::NotUtf8(e.utf8_error().valid_up_to()))
}

fn html(source: &str) -> Result<String, ExtractError> {
    // A wide line keeps paragraphs whole; the chunker splits them later.
    html2text::config::plain_no_decorate()
        .string_from_read(source.as_bytes(), 10_000)
        .map_err(|e| malformed("unreadable HTML")(&e))
}

/// One line per record, each value named by its column: `name: value; …`.
fn csv(source: &str) -> Result<String, ExtractError> {
    let bad = malformed("malformed CSV");
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(source.as_bytes());
    let headers = reader.headers().map_err(|e| bad(&e))?.clone();
    let mut out = String::new();
    for record in reader.records() {
        let record = record.map_err(|e| bad(&e))?;
        let fields: Vec<String> = headers.iter().zip(record.iter()).map(|(h, v)| format!("{h}: {v}")).collect();
        out.push_str(&fields.join("; "));
        out.push('\n');
    }
    Ok(out)
}

/// The paragraphs of `word/document.xml`, reading at most
/// [`MAX_DOCX_XML_BYTES`] of it whatever the archive claims.
fn docx(bytes: &[u8]) -> Result<String, ExtractError> {
    use quick_xml::events::Event;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| malformed("not a DOCX (zip)")(&e))?;
    let part = archive
        .by_name("word/document.xml")
        .map_err(|_| ExtractError::Malformed("not a DOCX: no word/document.xml inside".into()))?;
    if part.size() > MAX_DOCX_XML_BYTES {
        return Err(ExtractError::ZipBomb(part.size()));
    }
    let mut xml = Vec::new();
    part.take(MAX_DOCX_XML_BYTES + 1).read_to_end(&mut xml).map_err(|e| malformed("corrupt DOCX")(&e))?;
    if xml.len() as u64 > MAX_DOCX_XML_BYTES {
        // The archive understated the size: what was read is the measure.
        return Err(ExtractError::ZipBomb(xml.len() as u64));
    }
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let (mut out, mut in_text, mut buf) = (String::new(), false, Vec::new());
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| malformed("corrupt DOCX XML")(&e))? {
            Event::Start(e) if e.name().0 == "w:t" => in_text = true,
            Event::End(e) if e.name().0 == "w:t" => in_text = false,
            Event::End(e) if e.name().0 == "w:p" => out.push_str("\n\n"),
            Event::Empty(e) if e.name().0 == "w:tab" => out.push('\t'),
            Event::Empty(e) if e.name().0 == "w:br" => out.push('\n'),
            Event::Text(t) if in_text => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                let name: &str = r.as_ref();
                out.push_str(match name {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// Text page by page. pdf-extract panics on some malformed files; a panic
/// here is that file's error, not the ingest's end.
fn pdf(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| ExtractError::Malformed("unreadable PDF (truncated or malformed)".into()))?
        .map_err(|e| malformed("unreadable PDF")(&e))?;
    let mut extracted = Extracted::default();
    for page in pages {
        extracted.page_starts.push(extracted.text.len());
        extracted.text.push_str(&page);
        extracted.text.push_str("\n\n");
    }
    Ok(extracted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_found_by_offset() {
        let e = Extracted { text: "a\n\nbb\n\nccc".into(), page_starts: vec![0, 3, 7] };
        assert_eq!((e.page_of(0), e.page_of(2), e.page_of(3), e.page_of(9)), (Some(1), Some(1), Some(2), Some(3)));
        assert_eq!(Extracted::plain("x".into()).page_of(0), None);
    }

    #[test]
    fn csv_records_become_named_lines_and_ragged_rows_are_errors() {
        assert_eq!(csv("city,rain\nOslo,high\nLima,low\n").unwrap(), "city: Oslo; rain: high\ncity: Lima; rain: low\n");
        assert!(csv("a,b\n1,2,3\n").unwrap_err().to_string().starts_with("malformed CSV"));
    }

    #[test]
    fn html_loses_its_markup() {
        let text = html("<html><head><title>t</title><script>var x = 1;</script></head><body><h1>Rain</h1><p>It rains <b>often</b>.</p></body></html>").unwrap();
        assert!(text.contains("Rain") && text.contains("It rains often."), "{text}");
        assert!(!text.contains("<b>") && !text.contains("var x"), "{text}");
    }
}
