//! What every fuzz target checks: extraction of any bytes ends in text or a
//! sentence (a panic is a finding), and text it returns keeps its promises.

use heiwa_extract::{extract_bytes, ExtractError, Extracted};

/// Formats read by another project's reader (pdf-extract, calamine,
/// mail-parser, html2text): a panic in one is caught and made the document's
/// error, as the app does, and reported upstream rather than failing the pass.
const THIRD_PARTY_READERS: [&str; 6] = ["pdf", "xls", "xlsx", "ods", "eml", "html"];

/// Extract `data` as a document of type `extension` and check the result.
/// A panic in this project's own readers (the zip packages, MBOX, CSV, text,
/// code) is a finding even though the extractor catches it: its message is
/// printed and the target aborts, which libFuzzer records with the input.
/// libFuzzer's panic hook aborts even on caught panics, so the hook is made
/// silent here and the message printed by this check instead.
pub fn check(extension: &str, data: &[u8]) {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    match extract_bytes(extension, data.to_vec()) {
        Ok(extracted) => check_text(&extracted),
        Err(ExtractError::Crashed { format, detail }) if !THIRD_PARTY_READERS.contains(&extension) => {
            eprintln!("finding: the {format} reader (ours) panicked: {detail}");
            std::process::abort();
        }
        Err(error) => assert!(!error.to_string().is_empty(), "an error says why"),
    }
}

/// Pages start in order, inside the text, at character boundaries; the text is not blank.
pub fn check_text(extracted: &Extracted) {
    assert!(!extracted.text.trim().is_empty(), "text returned is never blank");
    assert!(extracted.page_starts.windows(2).all(|w| w[0] <= w[1]), "pages in order");
    for start in &extracted.page_starts {
        assert!(extracted.text.is_char_boundary(*start), "a page starts at a character");
    }
}
