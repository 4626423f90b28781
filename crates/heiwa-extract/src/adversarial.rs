//! The adversarial corpus: hostile and broken documents of every format
//! memory takes, made on demand (the generator is kept, not the files). The
//! ingest test runs `heiwa ingest` over it and requires each case to end in
//! bounded time as its own error or as text; the fuzz targets start from it.
//!
//! Each case names the trouble it carries, so a report line says which one
//! misbehaved.

use std::io::Write;
use std::path::{Path, PathBuf};

/// What a case may end as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Text: it is a valid document, only an awkward one.
    Text,
    /// Its own error (the folder goes on).
    Error,
    /// Either: a parser may salvage text from it or refuse it.
    Either,
}

/// One generated file.
#[derive(Clone, Debug)]
pub struct Case {
    pub path: PathBuf,
    pub expect: Expect,
}

/// Write the corpus into `dir` (created if needed); the cases written.
pub fn write_corpus(dir: &Path) -> std::io::Result<Vec<Case>> {
    std::fs::create_dir_all(dir)?;
    let mut cases = Vec::new();
    let mut add = |name: &str, bytes: &[u8], expect: Expect| -> std::io::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        cases.push(Case { path, expect });
        Ok(())
    };
    // Deep nesting and millions of tiny elements.
    let deep = format!("<html><body>{}deep{}</body></html>", "<div>".repeat(100_000), "</div>".repeat(100_000));
    add("deep-nesting.html", deep.as_bytes(), Expect::Either)?;
    add("tiny-elements.html", "<i>x</i>".repeat(30_000).as_bytes(), Expect::Either)?;
    add("unclosed-tags.html", "<p><b><i><table><tr><td>".repeat(20_000).as_bytes(), Expect::Either)?;
    // Giant single lines: a whole-read one, and a streamed one (over the 8 MiB
    // limit; blank but for its ends, so embedding it is not what takes time).
    add("one-line.txt", "word ".repeat(10_000).trim_end().as_bytes(), Expect::Text)?;
    add("one-line-streamed.md", format!("start{}end", " ".repeat(9 << 20)).as_bytes(), Expect::Text)?;
    let wide_csv = format!(
        "{}\n{}\n",
        (0..2_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(","),
        "1,".repeat(1_999) + "1"
    );
    add("wide-row.csv", wide_csv.as_bytes(), Expect::Text)?;
    add("ragged.csv", b"a,b\n1,2,3\n\"unterminated\n", Expect::Error)?;
    // Broken encodings.
    add("latin1.txt", b"caf\xe9 cr\xe8me br\xfbl\xe9e", Expect::Error)?;
    add("utf16-bom.txt", &utf16("a UTF-16 note with its byte order mark"), Expect::Error)?;
    add("overlong-utf8.md", b"# title\n\xc0\xaf\xe0\x80\xaf", Expect::Error)?;
    add("nul-in-csv.csv", b"a,b\n\0\0\0,1\n", Expect::Error)?;
    add("bom-only.txt", b"\xef\xbb\xbf", Expect::Either)?;
    // Compression bombs: one part past the budget; many parts past it together; a workbook.
    let bomb_xml =
        format!("<w:document><w:body><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:body></w:document>", "a".repeat(64 << 20));
    add("bomb.docx", &zip(&[("word/document.xml", bomb_xml.as_bytes())]), Expect::Error)?;
    let slide = format!("<p:sld><a:p><a:t>{}</a:t></a:p></p:sld>", "b".repeat(12 << 20));
    let slides: Vec<(String, &[u8])> =
        (1..=4).map(|n| (format!("ppt/slides/slide{n}.xml"), slide.as_bytes())).collect();
    let slides: Vec<(&str, &[u8])> = slides.iter().map(|(name, bytes)| (name.as_str(), *bytes)).collect();
    add("bomb-in-parts.pptx", &zip(&slides), Expect::Error)?;
    let sheet = format!(
        r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{}</sheetData></worksheet>"#,
        (1..5_000)
            .map(|r| format!(r#"<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>x</t></is></c></row>"#))
            .collect::<String>()
    );
    add("sheet-without-workbook.xlsx", &zip(&[("xl/worksheets/sheet1.xml", sheet.as_bytes())]), Expect::Error)?;
    // Lies about what it is: truncated, the wrong magic, a zip of nothing.
    add("truncated.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R", Expect::Error)?;
    add("html-named.pdf", b"<html><body>not a pdf</body></html>", Expect::Error)?;
    let nested_pdf = format!(
        "%PDF-1.4\n1 0 obj {}{} endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    add("nested-arrays.pdf", nested_pdf.as_bytes(), Expect::Error)?;
    add("text-named.docx", b"just words, no zip", Expect::Error)?;
    add("empty-zip.odt", &zip(&[]), Expect::Error)?;
    add("epub-without-spine.epub", &zip(&[("META-INF/container.xml", b"<container/>")]), Expect::Error)?;
    let spine_loop = zip(&[
        ("META-INF/container.xml", br#"<container><rootfiles><rootfile full-path="a.opf"/></rootfiles></container>"#),
        ("a.opf", br#"<package><manifest><item id="x" href="a.opf"/></manifest><spine><itemref idref="x"/></spine></package>"#),
    ]);
    add("spine-points-at-itself.epub", &spine_loop, Expect::Either)?;
    add("garbage.xls", &[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0xff, 0xff], Expect::Error)?;
    add("garbage.ods", b"PK\x03\x04garbage", Expect::Error)?;
    // Mail: headers without end, MIME nested deep, a mailbox of empty messages.
    let long_header = format!("Subject: {}\r\n\r\nbody", "s".repeat(16 << 10));
    add("long-header.eml", long_header.as_bytes(), Expect::Either)?;
    let mut nested = String::from("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
    for depth in 1..2_000 {
        nested.push_str(&format!("--b{}\r\nContent-Type: multipart/mixed; boundary=\"b{depth}\"\r\n\r\n", depth - 1));
    }
    add("nested-mime.eml", nested.as_bytes(), Expect::Either)?;
    add("empty-messages.mbox", "From x\n\n".repeat(100_000).as_bytes(), Expect::Either)?;
    add("no-headers.eml", b"\r\n\r\n\r\n", Expect::Error)?;
    // Source code on one line (minified), and one with nothing but braces.
    add("minified.js", format!("var a={};", "function(){return 1},".repeat(1_500)).as_bytes(), Expect::Text)?;
    add("braces.rs", "{\n".repeat(20_000).as_bytes(), Expect::Text)?;
    // Empty files of each kind.
    for extension in ["txt", "html", "csv", "pdf", "docx", "epub", "eml", "mbox", "xlsx", "py"] {
        add(&format!("empty.{extension}"), b"", Expect::Error)?;
    }
    Ok(cases)
}

/// A zip of `parts`, deflated (what the package formats are).
fn zip(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        archive.start_file(*name, options).expect("writing to memory");
        archive.write_all(content).expect("writing to memory");
    }
    archive.finish().expect("writing to memory").into_inner()
}

fn utf16(text: &str) -> Vec<u8> {
    [0xff, 0xfe].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect()
}
