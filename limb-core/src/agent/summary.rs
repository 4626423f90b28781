//! The small object a limb sends to the hub for a task: the answer, where it
//! came from, and what the tool did. Raw passages never leave the machine:
//! a citation names the document's file (not its full path, which says more
//! about the person than the answer needs), the chunk and the byte span.

use super::Answer;
pub use heiwa_hub::{Summary, SummaryCitation, SummaryPlace};

pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The summary of `answer`, as JSON of at most `max_bytes` (the hub's cap).
pub fn summary_payload(answer: &Answer, max_bytes: usize) -> String {
    let citations = answer
        .citations
        .iter()
        .zip(1..)
        .map(|(c, n)| SummaryCitation {
            n,
            file: file_name(&c.path).to_string(),
            chunk: c.position,
            span: c.span,
            page: c.page,
            lines: c.lines,
            also: c
                .also
                .iter()
                .map(|p| SummaryPlace { file: file_name(&p.path).to_string(), chunk: p.position, page: p.page })
                .collect(),
        })
        .collect();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let summary = Summary {
        answer: answer.text.clone(),
        citations,
        tool_calls: count(answer.tool_uses.len()),
        steps: count(answer.steps),
        truncated: false,
    };
    summary.to_payload(max_bytes)
}
