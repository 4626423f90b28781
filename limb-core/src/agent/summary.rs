//! The small object a limb sends to the hub for a task: the answer, where it
//! came from, and what the tool did. Raw passages never leave the machine:
//! a citation names the document's file (not its full path, which says more
//! about the person than the answer needs), the chunk and the byte span.

use super::Answer;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SummaryCitation {
    /// The number the answer cites it by: `[n]`.
    pub n: usize,
    pub file: String,
    pub chunk: i32,
    pub span: (i32, i32),
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub page: Option<i32>,
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    answer: &'a str,
    citations: &'a [SummaryCitation],
    tool_calls: usize,
    steps: usize,
    /// Set when the answer was cut to fit the hub's size limit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// JSON of at most `max_bytes` (the hub's cap): the answer is shortened, at a
/// character boundary, until it fits.
pub fn summary_payload(answer: &Answer, max_bytes: usize) -> String {
    let citations: Vec<SummaryCitation> = answer
        .citations
        .iter()
        .enumerate()
        .map(|(i, c)| SummaryCitation { n: i + 1, file: file_name(&c.path).to_string(), chunk: c.position, span: c.span, page: c.page })
        .collect();
    let render = |text: &str, truncated: bool| {
        serde_json::to_string(&Summary { answer: text, citations: &citations, tool_calls: answer.tool_uses.len(), steps: answer.steps, truncated })
            .expect("a summary serialises")
    };
    let full = render(&answer.text, false);
    if full.len() <= max_bytes {
        return full;
    }
    // Escaping can grow text up to 6×; shrink until it fits, keeping char boundaries.
    let mut keep = answer.text.len().min(max_bytes);
    loop {
        while !answer.text.is_char_boundary(keep) {
            keep -= 1;
        }
        let shorter = render(&answer.text[..keep], true);
        if shorter.len() <= max_bytes || keep == 0 {
            return shorter;
        }
        keep = keep.saturating_sub((shorter.len() - max_bytes).max(1));
    }
}
