//! One e-mail message as text, shared by the EML reader (`extract.rs`) and
//! the mailbox stream (`stream.rs`).

use crate::document::ExtractError;

/// One e-mail as a person searches it: who, when, the subject, then each
/// text part of the body (an HTML-only body as text). Charsets and MIME
/// encodings are mail-parser's.
pub(crate) fn mail_message(raw: &[u8]) -> Result<String, ExtractError> {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or_else(|| ExtractError::Malformed("not an e-mail message (no headers)".into()))?;
    let people = |address: Option<&mail_parser::Address<'_>>| {
        address.map(|address| {
            let each = address.iter().map(|a| match (a.name(), a.address()) {
                (Some(name), Some(email)) => format!("{name} <{email}>"),
                (name, email) => name.or(email).unwrap_or_default().to_string(),
            });
            each.collect::<Vec<_>>().join(", ")
        })
    };
    let mut out = String::new();
    let headers = [
        ("From", people(message.from())),
        ("To", people(message.to())),
        ("Date", message.date().map(|d| d.to_rfc3339())),
        ("Subject", message.subject().map(str::to_string)),
    ];
    for (label, value) in headers {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.push_str(&format!("{label}: {value}\n"));
        }
    }
    out.push('\n');
    for part in (0..).map_while(|i| message.body_text(i)) {
        out.push_str(&part);
        out.push_str("\n\n");
    }
    Ok(out)
}
