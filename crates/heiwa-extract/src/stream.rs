//! Large files in bounded pieces. Plain text, Markdown, source code, CSV and
//! mailboxes larger than [`MAX_TEXT_BYTES`] are read as a stream of sections
//! of about [`SECTION_BYTES`] each (cut between paragraphs, records or
//! messages), so that memory holds one section, its chunks and their
//! embeddings at a time, however large the file. The ingest stores a streamed
//! document's sections in one transaction: it is searchable whole or not at all.
//!
//! The small-file readers are these same readers over the file's bytes, so a
//! file reads the same whichever way it is read.

use crate::document::{extension, ExtractError, Extracted, MAX_TEXT_BYTES};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// A section holds about this much text (a few hundred chunks).
pub const SECTION_BYTES: usize = 1 << 20;
/// Streamed files larger than this are refused: chunk spans are 32-bit offsets.
pub const MAX_STREAMED_BYTES: u64 = 1 << 30;
/// Formats that can be read as a stream (source code too).
const STREAMABLE: [&str; 5] = ["txt", "md", "markdown", "csv", "mbox"];

/// A document's text, section by section; pages (a mailbox's messages)
/// are numbered from each section's start.
pub type Sections = Box<dyn Iterator<Item = Result<Extracted, ExtractError>> + Send>;

/// Whether files of type `extension` can be read as a stream.
pub(crate) fn streamable(extension: &str) -> bool {
    STREAMABLE.contains(&extension) || crate::code::is_source(extension)
}

/// Whether the file at `path` is read as a stream: a streamable format, larger than [`MAX_TEXT_BYTES`].
pub fn is_streamed(path: &Path) -> bool {
    streamable(&extension(path)) && std::fs::metadata(path).is_ok_and(|meta| meta.len() > MAX_TEXT_BYTES)
}

/// The sections of the streamable file at `path`.
pub fn sections(path: &Path) -> Result<Sections, ExtractError> {
    let size = std::fs::metadata(path)?.len();
    let extension = extension(path);
    if size > MAX_STREAMED_BYTES {
        return Err(ExtractError::TooLarge { size, limit: MAX_STREAMED_BYTES, extension });
    }
    let file = BufReader::with_capacity(64 << 10, std::fs::File::open(path)?);
    Ok(match extension.as_str() {
        "csv" => Box::new(CsvSections::new(file)?),
        "mbox" => Box::new(MailboxSections::new(file)),
        _ => Box::new(TextSections::new(file)),
    })
}

/// Sections read whole into one document (a small file).
pub(crate) fn concatenate(
    sections: impl Iterator<Item = Result<Extracted, ExtractError>>,
) -> Result<Extracted, ExtractError> {
    let mut whole = Extracted::default();
    for section in sections {
        let section = section?;
        let base = whole.text.len();
        whole.page_starts.extend(section.page_starts.iter().map(|start| base + start));
        whole.text.push_str(&section.text);
    }
    Ok(whole)
}

/// UTF-8 text cut between paragraphs (else lines, else characters); its
/// sections together are the file's bytes, so spans stay file offsets.
struct TextSections<R> {
    reader: R,
    pending: Vec<u8>,
    /// Bytes of the file already given out.
    offset: usize,
    started: bool,
    ended: bool,
}

impl<R: BufRead> TextSections<R> {
    fn new(reader: R) -> Self {
        TextSections { reader, pending: Vec::new(), offset: 0, started: false, ended: false }
    }

    fn next_section(&mut self) -> Result<Option<String>, ExtractError> {
        let mut at_end = false;
        while self.pending.len() < SECTION_BYTES {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                at_end = true;
                break;
            }
            let take = buffer.len().min(SECTION_BYTES - self.pending.len());
            self.pending.extend_from_slice(&buffer[..take]);
            self.reader.consume(take);
        }
        if !self.started {
            self.started = true;
            if self.pending.iter().take(8192).any(|b| *b == 0) {
                return Err(ExtractError::Binary);
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let cut = if at_end { self.pending.len() } else { cut_point(&self.pending) };
        let piece: Vec<u8> = self.pending.drain(..cut).collect();
        let text =
            String::from_utf8(piece).map_err(|e| ExtractError::NotUtf8(self.offset + e.utf8_error().valid_up_to()))?;
        self.offset += cut;
        Ok(Some(text))
    }
}

/// Where to end a full buffer: after its last blank line in the second half,
/// else after its last line, else before a character that starts there.
fn cut_point(buffer: &[u8]) -> usize {
    let half = buffer.len() / 2;
    if let Some(at) = buffer[half..].windows(2).rposition(|pair| pair == b"\n\n") {
        return half + at + 2;
    }
    if let Some(at) = buffer.iter().rposition(|b| *b == b'\n') {
        return at + 1;
    }
    // No line break in a whole section: cut before a UTF-8 lead byte.
    (1..buffer.len()).rev().find(|&i| buffer[i] & 0b1100_0000 != 0b1000_0000).unwrap_or(buffer.len())
}

impl<R: BufRead> Iterator for TextSections<R> {
    type Item = Result<Extracted, ExtractError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let section = self.next_section().transpose();
        self.ended = !matches!(section, Some(Ok(_)));
        section.map(|text| text.map(Extracted::plain))
    }
}

/// CSV, one line per record, each value named by its column: `name: value; …`.
pub(crate) struct CsvSections<R> {
    reader: csv::Reader<R>,
    headers: csv::StringRecord,
    ended: bool,
}

impl<R: std::io::Read> CsvSections<R> {
    pub(crate) fn new(reader: R) -> Result<Self, ExtractError> {
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
        let headers = reader.headers().map_err(|e| bad_csv(&e))?.clone();
        Ok(CsvSections { reader, headers, ended: false })
    }
}

fn bad_csv(error: &csv::Error) -> ExtractError {
    ExtractError::Malformed(format!("malformed CSV: {error}"))
}

impl<R: std::io::Read> Iterator for CsvSections<R> {
    type Item = Result<Extracted, ExtractError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut out = String::new();
        let mut record = csv::StringRecord::new();
        while !self.ended && out.len() < SECTION_BYTES {
            match self.reader.read_record(&mut record) {
                Ok(true) => {
                    let fields: Vec<String> =
                        self.headers.iter().zip(record.iter()).map(|(h, v)| format!("{h}: {v}")).collect();
                    out.push_str(&fields.join("; "));
                    out.push('\n');
                }
                Ok(false) => self.ended = true,
                Err(e) => {
                    self.ended = true;
                    return Some(Err(bad_csv(&e)));
                }
            }
        }
        (!out.is_empty()).then(|| Ok(Extracted::plain(out)))
    }
}

/// A mailbox message by message; a message is a page, so citations name it.
/// A message without readable headers keeps its raw text (nothing is dropped).
pub(crate) struct MailboxSections<R> {
    messages: mail_parser::mailbox::mbox::MessageIterator<R>,
    ended: bool,
}

impl<R: BufRead> MailboxSections<R> {
    pub(crate) fn new(reader: R) -> Self {
        MailboxSections { messages: mail_parser::mailbox::mbox::MessageIterator::new(reader), ended: false }
    }
}

impl<R: BufRead> Iterator for MailboxSections<R> {
    type Item = Result<Extracted, ExtractError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut section = Extracted::default();
        while !self.ended && section.text.len() < SECTION_BYTES {
            match self.messages.next() {
                Some(Ok(message)) => {
                    let raw = message.contents();
                    let text =
                        crate::mail::mail_message(raw).unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned());
                    section.push_page(&text);
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Some(Err(ExtractError::Read(e)));
                }
                None => self.ended = true,
            }
        }
        (!section.text.is_empty()).then_some(Ok(section))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections_of(bytes: &[u8]) -> Vec<Result<Extracted, ExtractError>> {
        TextSections::new(std::io::Cursor::new(bytes)).collect()
    }

    #[test]
    fn text_sections_are_the_bytes_cut_between_paragraphs() {
        let paragraph = "a sentence of the archive. ".repeat(40) + "\n\n";
        let text = paragraph.repeat(SECTION_BYTES * 3 / paragraph.len());
        let sections: Vec<String> = sections_of(text.as_bytes()).into_iter().map(|s| s.unwrap().text).collect();
        assert!(sections.len() >= 3, "{}", sections.len());
        assert!(sections.iter().all(|s| s.len() <= SECTION_BYTES));
        assert!(sections[..sections.len() - 1].iter().all(|s| s.ends_with("\n\n")), "cut between paragraphs");
        assert_eq!(sections.concat(), text, "together they are the file");
    }

    #[test]
    fn a_line_longer_than_a_section_is_cut_between_characters() {
        let text = "ö".repeat(SECTION_BYTES);
        let sections: Vec<String> = sections_of(text.as_bytes()).into_iter().map(|s| s.unwrap().text).collect();
        assert!(sections.len() >= 2 && sections.iter().all(|s| s.len() <= SECTION_BYTES));
        assert_eq!(sections.concat(), text, "no character split");
    }

    #[test]
    fn bad_bytes_are_an_error_at_their_offset_in_the_file() {
        let mut bytes = "line\n".repeat(SECTION_BYTES / 2).into_bytes();
        bytes.extend_from_slice(b"caf\xe9\n");
        let sections = sections_of(&bytes);
        let error = sections.last().unwrap().as_ref().unwrap_err();
        assert!(matches!(error, ExtractError::NotUtf8(at) if *at == bytes.len() - 2), "{error}");
        assert!(matches!(sections_of(b"\0\0binary")[0], Err(ExtractError::Binary)));
    }

    #[test]
    fn csv_and_mailbox_sections_read_as_the_whole_file_does() {
        let rows: String = (0..50_000).map(|i| format!("{i},city {i}\n")).collect();
        let csv = format!("n,name\n{rows}");
        let sections: Vec<_> = CsvSections::new(csv.as_bytes()).unwrap().collect();
        assert!(sections.len() > 1);
        let whole = concatenate(sections.into_iter()).unwrap();
        assert!(whole.text.starts_with("n: 0; name: city 0\nn: 1; name: city 1\n"));
        assert_eq!(whole.text.lines().count(), 50_000);

        let message =
            |i: usize| format!("From a@b Mon Jan 1 00:00:00 2024\nSubject: note {i}\n\n{}\n", "body ".repeat(100));
        let mbox: String = (0..3000).map(message).collect();
        let sections: Vec<_> = MailboxSections::new(std::io::Cursor::new(mbox.as_bytes())).collect();
        assert!(sections.len() > 1);
        let whole = concatenate(sections.into_iter()).unwrap();
        assert_eq!(whole.page_starts.len(), 3000, "a message is a page, numbered across sections");
        let last = &whole.text[whole.page_starts[2999]..];
        assert!(last.starts_with("Subject: note 2999"), "{last:.40}");
    }
}
