//! Near-duplicate passages collapse into one hit that cites every place
//! they appear: a book's single-page edition repeats each chapter file, a
//! mail archive quotes the same message, a site copies its footer; without
//! this the top hits fill with copies and crowd out the second answer.

use crate::citation::{Citation, Place};
use std::collections::HashSet;

/// Passages are one when this share of the shorter one's word trigrams is in
/// the other (the overlap coefficient). Identical text after case and
/// whitespace is 1.0; one changed word in a 150-word chunk about 0.98; two
/// chunks of one text cut at different places — a chapter's page and the
/// single-page edition that repeats it, chunked from another start — share
/// what lies in both: 0.75 a quarter apart, 0.5 half. Neighbouring chunks of
/// one document overlap by 15 % and different passages on one subject near 0.
/// (Jaccard, used before, scored a quarter-apart cut 0.6 and let the
/// edition's copies crowd out the chapter's page.)
pub const NEAR_DUPLICATE: f64 = 0.5;

/// Keep the first (best-ranked) of each group of near-duplicate hits, at most
/// `k` of them, each listing where its copies are (best first); copies of
/// kept hits found further down the ranking still join them.
pub fn collapse(hits: Vec<Citation>, k: usize) -> Vec<Citation> {
    let mut kept: Vec<(HashSet<u64>, Citation)> = Vec::new();
    for hit in hits {
        let shingles = shingles(&hit.content);
        match kept.iter().position(|(seen, _)| overlap(seen, &shingles) >= NEAR_DUPLICATE) {
            Some(first) => kept[first].1.also.push(Place { path: hit.path, position: hit.position, page: hit.page }),
            None if kept.len() < k => kept.push((shingles, hit)),
            None => {}
        }
    }
    kept.into_iter().map(|(_, hit)| hit).collect()
}

/// Hashes of the text's word trigrams, case-folded (all its words when it
/// has fewer than three).
fn shingles(text: &str) -> HashSet<u64> {
    use std::hash::{Hash, Hasher};
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let hash = |words: &[String]| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        words.hash(&mut hasher);
        hasher.finish()
    };
    if words.len() < 3 {
        return words.chunks(1).map(hash).collect();
    }
    words.windows(3).map(hash).collect()
}

fn overlap(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::from(u8::from(a.is_empty() && b.is_empty()));
    }
    a.intersection(b).count() as f64 / a.len().min(b.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(path: &str, content: &str) -> Citation {
        Citation {
            path: path.into(),
            position: 0,
            span: (0, content.len() as i32),
            content: content.into(),
            score: 0.0,
            similarity: 0.0,
            page: None,
            lines: None,
            also: Vec::new(),
        }
    }

    fn words(n: usize, seed: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{seed}w{i}")).collect()
    }

    #[test]
    fn copies_and_light_edits_collapse_and_cite_every_place() {
        let text = words(150, 1).join(" ");
        let mut edited = words(150, 1);
        edited[75] = "changed".into();
        let other = words(150, 2).join(" ");
        let hits = vec![
            hit("book/ch1.html", &text),
            hit("book/single-page.html", &text.to_uppercase().replace(' ', "\n  ")),
            hit("notes.md", &other),
            hit("book/ch1-draft.html", &edited.join(" ")),
        ];
        let collapsed = collapse(hits, 5);
        assert_eq!(collapsed.len(), 2, "{collapsed:#?}");
        assert_eq!(collapsed[0].path, "book/ch1.html");
        let also: Vec<&str> = collapsed[0].also.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(also, ["book/single-page.html", "book/ch1-draft.html"]);
        assert!(collapsed[1].also.is_empty());
    }

    #[test]
    fn a_copy_cut_elsewhere_is_a_copy_a_neighbour_or_the_same_subject_is_not() {
        let all = words(300, 3);
        let first = all[..150].join(" ");
        let shifted = all[40..190].join(" ");
        let collapsed = collapse(vec![hit("chapter", &first), hit("edition", &shifted)], 5);
        assert_eq!(collapsed.len(), 1, "a quarter apart is the same text, chunked from another start");
        let neighbour = all[128..278].join(" ");
        assert_eq!(collapse(vec![hit("a", &first), hit("a", &neighbour)], 5).len(), 2, "chunks overlapping 15 %");
        let far = all[100..250].join(" ");
        assert_eq!(collapse(vec![hit("a", &first), hit("b", &far)], 5).len(), 2, "a third shared is two passages");
        let a = "The lease expires after thirty seconds without a heartbeat from the limb.";
        let b = "A limb that sends no heartbeat for thirty seconds loses its lease.";
        assert_eq!(collapse(vec![hit("a", a), hit("b", b)], 5).len(), 2);
    }

    #[test]
    fn k_distinct_hits_and_later_copies_still_join() {
        let passages: Vec<String> = (0..4).map(|i| words(60, 10 + i).join(" ")).collect();
        let hits = vec![
            hit("p0", &passages[0]),
            hit("p0-copy", &passages[0]),
            hit("p1", &passages[1]),
            hit("p2", &passages[2]),
            hit("p1-copy", &passages[1]),
        ];
        let collapsed = collapse(hits, 2);
        let paths: Vec<&str> = collapsed.iter().map(|h| h.path.as_str()).collect();
        assert_eq!(paths, ["p0", "p1"]);
        assert_eq!(collapsed[1].also[0].path, "p1-copy");
        assert!(collapse(Vec::new(), 3).is_empty());
    }
}
