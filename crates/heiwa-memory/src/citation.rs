//! What a search returns: a hit with where it came from, and the other places
//! the same passage appears (a leaf: the store makes them, `dedup` merges them).

/// A search hit with where it came from: the document, the chunk's position
/// in it, and the byte span of the text.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS)]
pub struct Citation {
    pub path: String,
    pub position: i32,
    pub span: (i32, i32),
    pub content: String,
    /// Reciprocal-rank-fusion score of the vector and full-text rankings.
    pub score: f64,
    /// Cosine similarity of the chunk to the query (how relevant it is at all).
    pub similarity: f64,
    /// The page the chunk starts on, for paged documents (PDF).
    pub page: Option<i32>,
    /// The lines the chunk covers (first, last; from 1), for source code.
    pub lines: Option<(i32, i32)>,
    /// Other places the same passage (or a near copy) appears, best first:
    /// one hit stands for them all (`dedup::collapse`).
    pub also: Vec<Place>,
}

/// Where a passage also appears: its document, the chunk's position, its page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct Place {
    pub path: String,
    pub position: i32,
    pub page: Option<i32>,
}
