//! The small object a limb sends to the hub as a task's result: the answer,
//! where it came from, and what the tool did. One type for the agent that
//! writes it, the CLI and the window that read it. Raw passages never leave
//! the machine: a citation names the document's file (not its full path),
//! the chunk and the byte span.

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct SummaryCitation {
    /// The number the answer cites it by: `[n]`.
    pub n: u32,
    pub file: String,
    pub chunk: i32,
    pub span: (i32, i32),
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[ts(optional)]
    pub page: Option<i32>,
    /// The lines cited (first, last), for source code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[ts(optional)]
    pub lines: Option<(i32, i32)>,
    /// Other places the same passage appears (copies collapsed into this one).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    #[ts(optional, as = "Option<Vec<SummaryPlace>>")]
    pub also: Vec<SummaryPlace>,
}

/// Another place a cited passage appears: its file, chunk and page.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct SummaryPlace {
    pub file: String,
    pub chunk: i32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[ts(optional)]
    pub page: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Summary {
    pub answer: String,
    pub citations: Vec<SummaryCitation>,
    pub tool_calls: u32,
    pub steps: u32,
    /// Set when the answer was cut to fit the hub's size limit.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub truncated: bool,
}

impl Summary {
    /// A result's summary, if a limb's agent wrote it (an echo limb writes plain text).
    pub fn parse(summary: &str) -> Option<Summary> {
        serde_json::from_str(summary).ok()
    }

    /// JSON of at most `max_bytes` (the hub's cap): the answer is shortened, at
    /// a character boundary, until it fits.
    pub fn to_payload(&self, max_bytes: usize) -> String {
        let render = |summary: &Summary| serde_json::to_string(summary).expect("a summary serialises");
        let full = render(self);
        if full.len() <= max_bytes {
            return full;
        }
        // Escaping can grow text up to 6×; shrink until it fits, keeping char boundaries.
        let text = &self.answer;
        let mut keep = text.len().min(max_bytes);
        loop {
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            let shorter = render(&Summary { answer: text[..keep].to_string(), truncated: true, ..self.clone() });
            if shorter.len() <= max_bytes || keep == 0 {
                return shorter;
            }
            keep = keep.saturating_sub((shorter.len() - max_bytes).max(1));
        }
    }
}
