//! Text out of a person's files: plain text and Markdown as they are; HTML,
//! CSV and PDF through well-kept crates; the zip packages (DOCX, PPTX, ODT,
//! EPUB) with zip + quick-xml, so what they expand to is bounded; mail (EML,
//! MBOX) with mail-parser; spreadsheets (XLSX, XLS, ODS) with calamine. Paged
//! formats keep their pages for citations: a PDF's pages, a presentation's
//! slides, a book's chapters, a mailbox's messages, a workbook's sheets. Every failure is a sentence
//! for the ingest report, never a panic or a half-read document.
//!
//! Spans of chunks point into the text returned here: for txt/md these are the
//! file's own bytes; for the other formats, the extracted text's.

use crate::document::{
    extension, malformed, ExtractError, Extracted, MAX_PACKAGE_XML_BYTES, MAX_TEXT_BYTES, MAX_WHOLE_BYTES, SUPPORTED,
};
use crate::mail::mail_message;
use crate::stream::{concatenate, CsvSections, MailboxSections};
use std::io::Read;
use std::path::Path;

/// Whether memory takes files of `path`'s type at all (by extension).
pub fn supported(path: &Path) -> bool {
    let extension = extension(path);
    SUPPORTED.contains(&extension.as_str()) || crate::code::is_source(&extension)
}

/// Whether `path` is source code: chunked along its structure, cited by lines.
pub fn is_source(path: &Path) -> bool {
    crate::code::is_source(&extension(path))
}

/// The text of the file at `path`, or why it has none we can use.
pub fn extract(path: &Path) -> Result<Extracted, ExtractError> {
    let extension = extension(path);
    if !supported(path) {
        return Err(ExtractError::Unsupported(extension));
    }
    let limit = if crate::stream::streamable(&extension) { MAX_TEXT_BYTES } else { MAX_WHOLE_BYTES };
    let size = std::fs::metadata(path)?.len();
    if size > limit {
        return Err(ExtractError::TooLarge { size, limit, extension });
    }
    extract_bytes(&extension, std::fs::read(path)?)
}

/// The text of a document of type `extension` (lower case, no dot) held in
/// memory, or why it has none we can use (what the fuzz targets call). A
/// reader that panics on it (pdf-extract does, on a dangling object
/// reference, as the fuzzer found) makes that the document's error.
pub fn extract_bytes(extension: &str, bytes: Vec<u8>) -> Result<Extracted, ExtractError> {
    unwinding(&extension.to_uppercase(), || read_bytes(extension, bytes))
}

/// The type of the file at `path` as a sentence names it (`PDF`).
pub(crate) fn format_of(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_uppercase()).unwrap_or_else(|| "text".into())
}

/// `read`, with a panic inside it turned into the document's error.
pub(crate) fn unwinding<T>(format: &str, read: impl FnOnce() -> Result<T, ExtractError>) -> Result<T, ExtractError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(ExtractError::Crashed { format: format.to_string(), detail: format!("it panicked: {why}") })
    })
}

fn read_bytes(extension: &str, bytes: Vec<u8>) -> Result<Extracted, ExtractError> {
    let size = bytes.len();
    let extracted = match extension {
        "html" | "htm" => Extracted::plain(html(&text(bytes)?)?),
        "csv" => Extracted::plain(csv(&text(bytes)?)?),
        "docx" => Extracted::plain(docx(&bytes)?),
        "odt" => Extracted::plain(odt(&bytes)?),
        "pptx" => pptx(&bytes)?,
        "epub" => epub(&bytes)?,
        "eml" => Extracted::plain(mail_message(&bytes)?),
        "xlsx" | "xls" | "ods" => spreadsheet(&bytes, extension)?,
        "mbox" => mailbox(&bytes)?,
        "pdf" => pdf(&bytes)?,
        other if extension_is_text(other) => Extracted::plain(text(bytes)?),
        other => return Err(ExtractError::Unsupported(other.to_string())),
    };
    if extracted.text.trim().is_empty() {
        return Err(if size == 0 || extension_is_text(extension) { ExtractError::Empty } else { ExtractError::NoText });
    }
    Ok(extracted)
}

fn extension_is_text(extension: &str) -> bool {
    matches!(extension, "txt" | "md" | "markdown") || crate::code::is_source(extension)
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

/// One line per record, each value named by its column (the streamed reader, whole).
fn csv(source: &str) -> Result<String, ExtractError> {
    Ok(concatenate(CsvSections::new(source.as_bytes())?)?.text)
}

/// A mailbox message by message, a message a page (the streamed reader, whole).
fn mailbox(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    concatenate(MailboxSections::new(std::io::Cursor::new(bytes)))
}

/// A zip package (DOCX, PPTX, ODT, EPUB), whose parts are read within one
/// budget of [`MAX_PACKAGE_XML_BYTES`] in all, whatever the archive claims.
struct Package<'a> {
    archive: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    format: &'static str,
    left: u64,
}

impl<'a> Package<'a> {
    fn open(bytes: &'a [u8], format: &'static str) -> Result<Self, ExtractError> {
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| ExtractError::Malformed(format!("not readable as {format} (a zip package): {e}")))?;
        Ok(Package { archive, format, left: MAX_PACKAGE_XML_BYTES })
    }

    fn names(&self) -> Vec<String> {
        (0..self.archive.len()).filter_map(|i| Some(self.archive.name_for_index(i)?.ok()?.into_owned())).collect()
    }

    /// Part `name`'s bytes; a part past what is left of the budget is a zip bomb.
    fn read(&mut self, name: &str) -> Result<Vec<u8>, ExtractError> {
        let format = self.format;
        let part = self
            .archive
            .by_name(name)
            .map_err(|_| ExtractError::Malformed(format!("not a {format}: no {name} inside")))?;
        let spent = MAX_PACKAGE_XML_BYTES - self.left;
        if part.size() > self.left {
            return Err(ExtractError::ZipBomb(spent + part.size()));
        }
        let mut bytes = Vec::new();
        part.take(self.left + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ExtractError::Malformed(format!("corrupt {format}: {e}")))?;
        if bytes.len() as u64 > self.left {
            // The archive understated the size: what was read is the measure.
            return Err(ExtractError::ZipBomb(spent + bytes.len() as u64));
        }
        self.left -= bytes.len() as u64;
        Ok(bytes)
    }

    /// Parts named `prefix<N>.xml`, in the order of N (slides, by number).
    fn numbered(&self, prefix: &str) -> Vec<String> {
        let mut parts: Vec<(u64, String)> = self
            .names()
            .into_iter()
            .filter_map(|name| Some((name.strip_prefix(prefix)?.strip_suffix(".xml")?.parse().ok()?, name.clone())))
            .collect();
        parts.sort();
        parts.into_iter().map(|(_, name)| name).collect()
    }
}

/// How an XML vocabulary marks its text: characters count inside `text`
/// elements; `paragraph` elements end with a blank line; `tab` and `line`
/// are empty elements for a tab and a line break.
struct Vocabulary {
    text: &'static [&'static str],
    paragraph: &'static [&'static str],
    tab: &'static str,
    line: &'static str,
}

const WORD: Vocabulary = Vocabulary { text: &["w:t"], paragraph: &["w:p"], tab: "w:tab", line: "w:br" };
const SLIDE: Vocabulary = Vocabulary { text: &["a:t"], paragraph: &["a:p"], tab: "a:tab", line: "a:br" };
/// ODF text: everything inside a paragraph or heading (spans and links included).
const ODF: Vocabulary = Vocabulary {
    text: &["text:p", "text:h"],
    paragraph: &["text:p", "text:h"],
    tab: "text:tab",
    line: "text:line-break",
};

/// The text of one XML part in `vocabulary`.
fn xml_text(xml: &[u8], vocabulary: &Vocabulary, format: &'static str) -> Result<String, ExtractError> {
    use quick_xml::events::Event;
    let is = |names: &[&str], name: &str| names.contains(&name);
    let mut reader = quick_xml::Reader::from_reader(xml);
    let (mut out, mut depth, mut buf) = (String::new(), 0usize, Vec::new());
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| ExtractError::Malformed(format!("corrupt {format} XML: {e}")))?
        {
            Event::Start(e) if is(vocabulary.text, e.name().0) => depth += 1,
            Event::End(e) => {
                if is(vocabulary.text, e.name().0) {
                    depth = depth.saturating_sub(1);
                }
                if is(vocabulary.paragraph, e.name().0) {
                    out.push_str("\n\n");
                }
            }
            Event::Empty(e) if e.name().0 == vocabulary.tab => out.push('\t'),
            Event::Empty(e) if e.name().0 == vocabulary.line => out.push('\n'),
            // ODF writes runs of spaces as <text:s text:c="N"/>.
            Event::Empty(e) if depth > 0 && e.name().0 == "text:s" => out.push(' '),
            Event::Text(t) if depth > 0 => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if depth > 0 => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                } else {
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
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// The paragraphs of `word/document.xml`.
fn docx(bytes: &[u8]) -> Result<String, ExtractError> {
    let mut package = Package::open(bytes, "DOCX")?;
    xml_text(&package.read("word/document.xml")?, &WORD, "DOCX")
}

/// An OpenDocument text's `content.xml`.
fn odt(bytes: &[u8]) -> Result<String, ExtractError> {
    let mut package = Package::open(bytes, "ODT")?;
    xml_text(&package.read("content.xml")?, &ODF, "ODT")
}

/// Slide by slide (`ppt/slides/slideN.xml` in the order of N); a slide is a
/// page, so citations name the slide.
fn pptx(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut package = Package::open(bytes, "PPTX")?;
    let slides = package.numbered("ppt/slides/slide");
    if slides.is_empty() {
        return Err(ExtractError::Malformed("not a PPTX: no slides inside".into()));
    }
    let mut extracted = Extracted::default();
    for slide in slides {
        let text = xml_text(&package.read(&slide)?, &SLIDE, "PPTX")?;
        extracted.push_page(&text);
    }
    Ok(extracted)
}

/// Chapter by chapter in the book's reading order (the spine of the package
/// document named by `META-INF/container.xml`); a chapter is a page.
fn epub(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut package = Package::open(bytes, "EPUB")?;
    let container = package.read("META-INF/container.xml")?;
    let opf_path = first_attribute(&container, "rootfile", "full-path", "EPUB")?
        .ok_or_else(|| ExtractError::Malformed("not an EPUB: its container names no package document".into()))?;
    let opf = package.read(&opf_path)?;
    let base = opf_path.rsplit_once('/').map(|(dir, _)| format!("{dir}/")).unwrap_or_default();
    let mut extracted = Extracted::default();
    for href in spine(&opf)? {
        let chapter = package.read(&format!("{base}{href}"))?;
        extracted.push_page(&html(&String::from_utf8_lossy(&chapter))?);
    }
    Ok(extracted)
}

/// The value of `attribute` on the first `element` of an XML part.
fn first_attribute(
    xml: &[u8],
    element: &str,
    attribute: &str,
    format: &'static str,
) -> Result<Option<String>, ExtractError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| ExtractError::Malformed(format!("corrupt {format} XML: {e}")))?
        {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == element => {
                return Ok(attribute_of(&e, attribute));
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
        buf.clear();
    }
}

/// The value of an element's attribute `key` (by local name), if it has one.
fn attribute_of(element: &quick_xml::events::BytesStart<'_>, key: &str) -> Option<String> {
    element.attributes().flatten().find(|a| a.key.local_name().as_ref() == key).map(|a| a.value.to_string())
}

/// The hrefs of an EPUB package document's spine, in reading order.
fn spine(opf: &[u8]) -> Result<Vec<String>, ExtractError> {
    use quick_xml::events::Event;
    let bad = |e: &dyn std::fmt::Display| ExtractError::Malformed(format!("corrupt EPUB package document: {e}"));
    let mut reader = quick_xml::Reader::from_reader(opf);
    let (mut manifest, mut order, mut buf) = (std::collections::HashMap::new(), Vec::new(), Vec::new());
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(&e))? {
            Event::Start(e) | Event::Empty(e) => {
                let attribute = |key: &str| attribute_of(&e, key);
                match e.local_name().as_ref() {
                    "item" => {
                        if let (Some(id), Some(href)) = (attribute("id"), attribute("href")) {
                            manifest.insert(id, href);
                        }
                    }
                    "itemref" => order.extend(attribute("idref")),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let hrefs: Vec<String> = order.iter().filter_map(|id| manifest.get(id).cloned()).collect();
    if hrefs.is_empty() {
        return Err(ExtractError::Malformed("not an EPUB: its spine lists no chapters".into()));
    }
    Ok(hrefs)
}

/// A workbook sheet by sheet (a sheet is a page): its name, then each row
/// below the first as one line naming its row number and each value by its
/// column's header, as CSV rows are (`row 7: city: Oslo; rain: high`), so a
/// citation leads to the sheet and the row. Empty cells are left out.
fn spreadsheet(bytes: &[u8], extension: &str) -> Result<Extracted, ExtractError> {
    use calamine::{open_workbook_from_rs, Reader, Sheets};
    let unreadable = malformed("unreadable spreadsheet");
    // The reader of the format the file says it is: its error says what is wrong
    // (a missing part, a bad record), where guessing among all says only that none fit.
    let cursor = std::io::Cursor::new(bytes);
    let opened = match extension {
        "xls" => open_workbook_from_rs(cursor).map(Sheets::Xls).map_err(|e| unreadable(&e)),
        "ods" => open_workbook_from_rs(cursor).map(Sheets::Ods).map_err(|e| unreadable(&e)),
        _ => open_workbook_from_rs(cursor).map(Sheets::Xlsx).map_err(|e| unreadable(&e)),
    };
    let mut book = opened?;
    let mut extracted = Extracted::default();
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name).map_err(|e| unreadable(&e))?;
        let first_row = range.start().map_or(0, |(row, _)| row as usize);
        let mut rows = range.rows();
        let headers: Vec<String> =
            rows.next().map(|row| row.iter().map(|cell| cell.to_string()).collect()).unwrap_or_default();
        let mut text = format!("Sheet {name}\n");
        for (i, row) in rows.enumerate() {
            let fields: Vec<String> = row
                .iter()
                .enumerate()
                .filter(|(_, cell)| !matches!(cell, calamine::Data::Empty))
                .map(|(column, cell)| match headers.get(column).filter(|h| !h.is_empty()) {
                    Some(header) => format!("{header}: {cell}"),
                    None => format!("column {}: {cell}", column + 1),
                })
                .collect();
            if !fields.is_empty() {
                // 1-based, as the spreadsheet shows it: the header row is first_row + 1.
                text.push_str(&format!("row {}: {}\n", first_row + i + 2, fields.join("; ")));
            }
        }
        extracted.push_page(&text);
    }
    Ok(extracted)
}

/// Text page by page. pdf-extract panics on some malformed files; a panic
/// here is that file's error, not the ingest's end.
fn pdf(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    use pdf_extract::{output_doc_page, Document, PlainTextOutput};
    let unreadable = malformed("unreadable PDF");
    // pdf-extract's own steps (load, an empty user password), page by page,
    // with the page tree checked first. It panics on some malformed files:
    // `extract_bytes` makes that this document's error.
    let mut doc = Document::load_mem(bytes).map_err(|e| unreadable(&e))?;
    if doc.is_encrypted() {
        doc.decrypt("").map_err(|e| unreadable(&e))?;
    }
    let pages = doc.get_pages();
    for page in pages.values() {
        check_page_parents(&doc, *page)?;
    }
    let mut extracted = Extracted::default();
    for number in pages.keys() {
        let mut text = String::new();
        // A page that cannot be read is an empty page: the others keep their numbers.
        if output_doc_page(&doc, &mut PlainTextOutput::new(&mut text), *number).is_err() {
            text.clear();
        }
        extracted.push_page(&text);
    }
    Ok(extracted)
}

/// A page's chain of parents must end: a page that is its own ancestor sends
/// pdf-extract's lookup of inherited attributes round for ever (the fuzzer
/// found one; the process never returned).
fn check_page_parents(doc: &pdf_extract::Document, page: pdf_extract::ObjectId) -> Result<(), ExtractError> {
    let mut seen = std::collections::HashSet::new();
    let mut at = page;
    loop {
        if !seen.insert(at) || seen.len() > 1024 {
            return Err(ExtractError::Malformed("unreadable PDF: its page tree loops".into()));
        }
        let Ok(parent) = doc.get_dictionary(at).and_then(|d| d.get(b"Parent")).and_then(|p| p.as_reference()) else {
            return Ok(());
        };
        at = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer: pdf-extract panics on a dangling object
    /// reference. It is that document's error, in any process.
    #[test]
    fn a_reader_that_panics_is_the_documents_error() {
        let pdf = crate::adversarial::minimal_pdf("Rain fell.");
        let dangling = String::from_utf8_lossy(&pdf).replace("/F1 5 0 R", "/F1 9 0 R").into_bytes();
        assert_eq!(dangling.len(), pdf.len(), "the cross-reference offsets still hold");
        let error = extract_bytes("pdf", dangling).unwrap_err();
        assert!(matches!(error, ExtractError::Crashed { .. }), "{error}");
        assert!(error.to_string().starts_with("the PDF reader crashed on it (it panicked: missing object"), "{error}");
        assert!(extract_bytes("pdf", pdf).is_ok(), "the same document, whole, reads");
    }

    /// Found by the fuzzer: a page that is its own parent kept pdf-extract
    /// busy for ever. It is refused before reading.
    #[test]
    fn a_pdf_whose_page_tree_loops_is_refused_at_once() {
        let pdf = crate::adversarial::minimal_pdf("Rain fell.");
        let looped = String::from_utf8_lossy(&pdf).replace("/Parent 2 0 R", "/Parent 3 0 R").into_bytes();
        assert_eq!(looped.len(), pdf.len());
        let error = extract_bytes("pdf", looped).unwrap_err().to_string();
        assert_eq!(error, "unreadable PDF: its page tree loops");
    }

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

    /// A zip of `parts` (name, content), deflated.
    fn package(parts: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, content) in parts {
            zip.start_file(*name, options).unwrap();
            zip.write_all(content.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn slide(texts: &[&str]) -> String {
        let shapes: String = texts
            .iter()
            .map(|t| format!("<p:sp><p:txBody><a:p><a:r><a:t>{t}</a:t></a:r></a:p></p:txBody></p:sp>"))
            .collect();
        format!(
            r#"<?xml version="1.0"?><p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree>{shapes}</p:spTree></p:cSld></p:sld>"#
        )
    }

    #[test]
    fn slides_are_pages_in_their_numbered_order() {
        let deck = package(&[
            ("ppt/slides/slide10.xml", &slide(&["Ten: the budget"])),
            ("ppt/slides/slide2.xml", &slide(&["Two: the plan &amp; the team", "caf&#233;"])),
            ("ppt/slides/_rels/slide2.xml.rels", "<Relationships/>"),
            ("ppt/presentation.xml", "<p:presentation/>"),
        ]);
        let extracted = pptx(&deck).unwrap();
        assert_eq!(extracted.text, "Two: the plan & the team\n\ncafé\n\n\n\nTen: the budget\n\n\n\n");
        let budget = extracted.text.find("budget").unwrap();
        assert_eq!((extracted.page_of(0), extracted.page_of(budget)), (Some(1), Some(2)));
        assert!(pptx(&package(&[("ppt/presentation.xml", "")])).unwrap_err().to_string().contains("no slides"));
    }

    #[test]
    fn odt_paragraphs_keep_their_spans_and_spaces() {
        let content = r#"<office:document-content xmlns:office="o" xmlns:text="t"><office:body><office:text>
            <text:h>Minutes</text:h><text:p>The board <text:span>approved</text:span><text:s text:c="2"/>the budget.</text:p>
            <office:annotation-end/></office:text></office:body></office:document-content>"#;
        let text = odt(&package(&[("content.xml", content), ("styles.xml", "<x>not text</x>")])).unwrap();
        assert_eq!(text, "Minutes\n\nThe board approved the budget.\n\n");
        assert!(odt(b"plain bytes").unwrap_err().to_string().starts_with("not readable as ODT (a zip package)"));
    }

    #[test]
    fn epub_chapters_follow_the_spine() {
        let book = package(&[
            ("mimetype", "application/epub+zip"),
            (
                "META-INF/container.xml",
                r#"<container><rootfiles><rootfile full-path="OEBPS/book.opf"/></rootfiles></container>"#,
            ),
            (
                "OEBPS/book.opf",
                r#"<package><manifest><item id="c2" href="two.xhtml"/><item id="c1" href="text/one.xhtml"/></manifest>
                <spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>"#,
            ),
            ("OEBPS/text/one.xhtml", "<html><body><h1>One</h1><p>The starter is fed.</p></body></html>"),
            ("OEBPS/two.xhtml", "<html><body><p>The dough proofs overnight.</p></body></html>"),
        ]);
        let extracted = epub(&book).unwrap();
        let (fed, proofs) = (extracted.text.find("fed").unwrap(), extracted.text.find("proofs").unwrap());
        assert!(fed < proofs, "{:?}", extracted.text);
        assert_eq!((extracted.page_of(fed), extracted.page_of(proofs)), (Some(1), Some(2)));
        let broken = package(&[("META-INF/container.xml", r#"<rootfile full-path="missing.opf"/>"#)]);
        assert!(epub(&broken).unwrap_err().to_string().contains("no missing.opf"));
    }

    #[test]
    fn a_package_is_read_within_one_budget_for_all_its_parts() {
        let big = " ".repeat((MAX_PACKAGE_XML_BYTES / 2 + 1) as usize);
        let deck = package(&[("ppt/slides/slide1.xml", &big), ("ppt/slides/slide2.xml", &big)]);
        assert!(matches!(pptx(&deck), Err(ExtractError::ZipBomb(_))));
    }

    #[test]
    fn mail_is_read_with_its_headers_and_a_mailbox_message_by_message() {
        let message =
            "From: Ana Ruiz <ana@example.org>\r\nTo: board@example.org\r\nSubject: =?UTF-8?Q?Caf=C3=A9_budget?=\r\n\
            Date: Tue, 1 Dec 2026 09:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nThe board approved the caf=C3=A9 budget.\r\n";
        let text = mail_message(message.as_bytes()).unwrap();
        assert!(text.starts_with("From: Ana Ruiz <ana@example.org>\nTo: board@example.org\nDate: 2026-12-01T09:00:00Z\nSubject: Café budget\n"), "{text}");
        assert!(text.contains("The board approved the café budget."), "{text}");
        assert!(mail_message(b"").is_err());

        let html =
            "From: bot@example.org\nSubject: Report\nContent-Type: text/html\n\n<p>Rain <b>fell</b> all week.</p>\n";
        let mbox = format!("From ana@example.org Tue Dec  1 09:00:00 2026\n{message}\nFrom bot@example.org Tue Dec  1 10:00:00 2026\n{html}");
        let extracted = mailbox(mbox.as_bytes()).unwrap();
        let (cafe, rain) = (extracted.text.find("café budget.").unwrap(), extracted.text.find("Rain fell").unwrap());
        assert_eq!((extracted.page_of(cafe), extracted.page_of(rain)), (Some(1), Some(2)), "{:?}", extracted.text);
    }

    /// The smallest XLSX calamine reads: a workbook of `sheets` (name, rows of
    /// inline strings), as a spreadsheet program writes it.
    fn xlsx(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
        let mut parts = vec![
            ("[Content_Types].xml".to_string(), r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#.to_string()),
            ("_rels/.rels".to_string(), r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string()),
        ];
        let (mut listed, mut rels) = (String::new(), String::new());
        for (i, (name, rows)) in sheets.iter().enumerate() {
            let n = i + 1;
            listed.push_str(&format!(r#"<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>"#));
            rels.push_str(&format!(r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#));
            let body: String = rows
                .iter()
                .enumerate()
                .map(|(r, cells)| {
                    let cells: String = cells
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(c, v)| {
                            format!(
                                r#"<c r="{}{}" t="inlineStr"><is><t>{v}</t></is></c>"#,
                                (b'A' + c as u8) as char,
                                r + 1
                            )
                        })
                        .collect();
                    format!(r#"<row r="{}">{cells}</row>"#, r + 1)
                })
                .collect();
            parts.push((format!("xl/worksheets/sheet{n}.xml"), format!(r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{body}</sheetData></worksheet>"#)));
        }
        parts.push(("xl/workbook.xml".into(), format!(r#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{listed}</sheets></workbook>"#)));
        parts.push(("xl/_rels/workbook.xml.rels".into(), format!(r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#)));
        let parts: Vec<(&str, &str)> = parts.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
        package(&parts)
    }

    #[test]
    fn spreadsheet_rows_name_their_sheet_row_and_columns() {
        let book = xlsx(&[
            ("Rain", &[&["city", "mm"], &["Bergen", "2250"], &["", ""], &["Lima", ""]]),
            ("Notes", &[&["note"], &["Wettest: Bergen", "extra"]]),
        ]);
        let extracted = spreadsheet(&book, "xlsx").unwrap();
        assert!(
            extracted.text.contains("Sheet Rain\nrow 2: city: Bergen; mm: 2250\nrow 4: city: Lima\n"),
            "{:?}",
            extracted.text
        );
        let note = extracted.text.find("row 2: note: Wettest: Bergen; column 2: extra").unwrap();
        assert_eq!(extracted.page_of(note), Some(2), "{:?}", extracted.text);
        let refused = spreadsheet(b"not a workbook", "xlsx").unwrap_err().to_string();
        assert!(refused.starts_with("unreadable spreadsheet: ") && !refused.contains("Cannot detect"), "{refused}");
        let (_, ods) = crate::adversarial::valid_documents().into_iter().find(|(e, _)| e == "ods").unwrap();
        let read = spreadsheet(&ods, "ods");
        assert!(read.as_ref().is_ok_and(|e| e.text.contains("Oslo")), "{read:?}");
        let named_wrong = spreadsheet(&ods, "xlsx").unwrap_err().to_string();
        assert!(named_wrong.starts_with("unreadable spreadsheet: "), "{named_wrong}");
    }

    #[test]
    fn html_loses_its_markup() {
        let text = html("<html><head><title>t</title><script>var x = 1;</script></head><body><h1>Rain</h1><p>It rains <b>often</b>.</p></body></html>").unwrap();
        assert!(text.contains("Rain") && text.contains("It rains often."), "{text}");
        assert!(!text.contains("<b>") && !text.contains("var x"), "{text}");
    }
}
