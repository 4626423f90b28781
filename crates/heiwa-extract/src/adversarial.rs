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

/// Seeds for the fuzz targets, one folder per format (`dir/<extension>/`):
/// a small valid document of each format, so that mutations reach past the
/// container into the parts, and the corpus's cases of that format that are
/// small enough for a fuzzer's inputs.
pub fn write_fuzz_seeds(dir: &Path) -> std::io::Result<()> {
    let mut seeds: Vec<(String, Vec<u8>)> = valid_documents();
    let corpus = dir.join(".corpus");
    for case in write_corpus(&corpus)? {
        let bytes = std::fs::read(&case.path)?;
        let extension = case.path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        if bytes.len() <= 64 << 10 {
            seeds.push((extension, bytes));
        }
    }
    std::fs::remove_dir_all(&corpus)?;
    for (n, (extension, bytes)) in seeds.into_iter().enumerate() {
        let folder = dir.join(&extension);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(format!("seed-{n}")), bytes)?;
    }
    Ok(())
}

/// One small valid document of each format memory takes.
pub(crate) fn valid_documents() -> Vec<(String, Vec<u8>)> {
    let paragraph = |text: &str| format!("<w:p><w:r><w:t>{text}</w:t></w:r></w:p>");
    let docx =
        format!("<w:document><w:body>{}{}</w:body></w:document>", paragraph("Rain fell."), paragraph("It stopped."));
    let slide = |text: &str| {
        format!("<p:sld><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>")
    };
    let odf = r#"<office:document-content><office:body><office:text><text:h>Title</text:h><text:p>A <text:span>span</text:span><text:tab/>tab</text:p></office:text></office:body></office:document-content>"#;
    let opf = r#"<package><manifest><item id="c1" href="one.xhtml"/><item id="c2" href="two.xhtml"/></manifest><spine><itemref idref="c2"/><itemref idref="c1"/></spine></package>"#;
    let sheet = r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>city</t></is></c><c r="B1" t="inlineStr"><is><t>mm</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>Oslo</t></is></c><c r="B2"><v>2250</v></c></row></sheetData></worksheet>"#;
    let workbook = zip(&[
        ("[Content_Types].xml", br#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#),
        ("_rels/.rels", br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#),
        ("xl/workbook.xml", br#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Rain" sheetId="1" r:id="rId1"/></sheets></workbook>"#),
        ("xl/_rels/workbook.xml.rels", br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
    ]);
    let ods = zip(&[
        ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", br#"<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/></manifest:manifest>"#),
        ("content.xml", br#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="Rain"><table:table-row><table:table-cell office:value-type="string"><text:p>city</text:p></table:table-cell></table:table-row><table:table-row><table:table-cell office:value-type="string"><text:p>Oslo</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#),
    ]);
    vec![
        ("html".into(), b"<html><head><title>t</title></head><body><h1>Rain</h1><p>It <b>fell</b> &amp; stopped.</p><table><tr><td>1</td></tr></table></body></html>".to_vec()),
        ("csv".into(), b"city,mm\nOslo,2250\n\"Lima, Peru\",\"6\"\"\"\n".to_vec()),
        ("txt".into(), "Plain words, and some more: caf\u{e9}.\n\nA second paragraph.\n".as_bytes().to_vec()),
        ("eml".into(), b"From: A <a@b.c>\r\nTo: d@e.f\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello =E2=9C=93\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--x--\r\n".to_vec()),
        ("mbox".into(), b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nfirst\n>From here\n\nFrom c@d Tue Jan  2 00:00:00 2024\nSubject: two\n\nsecond\n".to_vec()),
        ("docx".into(), zip(&[("word/document.xml", docx.as_bytes())])),
        ("pptx".into(), zip(&[("ppt/slides/slide2.xml", slide("second").as_bytes()), ("ppt/slides/slide1.xml", slide("first").as_bytes())])),
        ("odt".into(), zip(&[("content.xml", odf.as_bytes())])),
        ("epub".into(), zip(&[
            ("META-INF/container.xml", br#"<container><rootfiles><rootfile full-path="OEBPS/book.opf"/></rootfiles></container>"#),
            ("OEBPS/book.opf", opf.as_bytes()),
            ("OEBPS/one.xhtml", b"<html><body><p>Chapter one.</p></body></html>"),
            ("OEBPS/two.xhtml", b"<html><body><p>Chapter two.</p></body></html>"),
        ])),
        ("xlsx".into(), workbook),
        ("ods".into(), ods),
        ("pdf".into(), minimal_pdf("Rain fell on the hills.")),
    ]
}

/// A valid document of type `extension` holding `text` (paragraphs split at
/// blank lines), for benchmarks that need realistic folders: txt, md, html,
/// csv, eml, docx, pdf, rs, py. `None` for other types.
pub fn sample_document(extension: &str, text: &str) -> Option<Vec<u8>> {
    let paragraphs: Vec<&str> = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect();
    let escape = |p: &str| p.replace('&', "&amp;").replace('<', "&lt;");
    Some(match extension {
        "txt" | "md" => text.as_bytes().to_vec(),
        "html" => format!(
            "<html><body>{}</body></html>",
            paragraphs.iter().map(|p| format!("<p>{}</p>", escape(p))).collect::<String>()
        )
        .into_bytes(),
        "csv" => {
            let rows: String =
                paragraphs.iter().enumerate().map(|(i, p)| format!("{i},\"{}\"\n", p.replace('"', "\"\""))).collect();
            format!("n,note\n{rows}").into_bytes()
        }
        "eml" => format!(
            "From: Archive <archive@example.org>\r\nSubject: {}\r\n\r\n{text}",
            paragraphs.first()?.chars().take(60).collect::<String>()
        )
        .into_bytes(),
        "docx" => {
            let body: String =
                paragraphs.iter().map(|p| format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", escape(p))).collect();
            zip(&[("word/document.xml", format!("<w:document><w:body>{body}</w:body></w:document>").as_bytes())])
        }
        "pdf" => minimal_pdf(&text.replace(['\\', '(', ')', '\n'], " ")),
        "rs" => paragraphs
            .iter()
            .enumerate()
            .map(|(i, p)| format!("/// {p}\nfn step_{i}(input: u32) -> u32 {{\n    input + {i}\n}}\n\n"))
            .collect::<String>()
            .into_bytes(),
        "py" => paragraphs
            .iter()
            .enumerate()
            .map(|(i, p)| format!("def step_{i}(value):\n    \"\"\"{p}\"\"\"\n    return value + {i}\n\n\n"))
            .collect::<String>()
            .into_bytes(),
        _ => return None,
    })
}

/// A one-page PDF showing `text`, its cross-reference table computed.
pub(crate) fn minimal_pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>".to_string(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_document_reads_back_its_text() {
        let text = "Rain fell on the hills (twice) & the rivers rose.\n\nThe ferry waited.";
        for extension in ["txt", "md", "html", "csv", "eml", "docx", "pdf", "rs", "py"] {
            let bytes = sample_document(extension, text).unwrap();
            let extracted = crate::extract_bytes(extension, bytes).unwrap();
            assert!(extracted.text.contains("ferry waited"), "{extension}: {:?}", extracted.text);
        }
        assert!(sample_document("png", text).is_none());
    }

    #[test]
    fn every_valid_seed_reads_as_text() {
        for (extension, bytes) in valid_documents() {
            let extracted = crate::extract_bytes(&extension, bytes);
            assert!(extracted.as_ref().is_ok_and(|e| !e.text.trim().is_empty()), "{extension}: {extracted:?}");
        }
    }
}
