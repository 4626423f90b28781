//! What a task asks of a limb, read from its payload, and how a scoring
//! check's votes decide (issue 17's cheap verification of a model answer).
//!
//! Most payloads are a question for the limb's agent. Two kinds are plain
//! model work, marked by a first line the hub and the limb both read here:
//! greedy generation of a prompt (deterministic for one model file and
//! backend, so another limb can check it) and scoring an answer to a prompt
//! teacher-forced (one prefill, no generation). The marker is a line, not
//! JSON, so that this crate stays free of dependencies in the hub's WASM;
//! a score payload is length-prefixed, so neither text needs escaping.

use crate::Verdict;

const GENERATE: &str = "heiwa/generate\n";
const SCORE: &str = "heiwa/score ";
/// How a scorer's summary begins; the hub reads its vote from it.
const AGREES: &str = "score: agrees";
const DIFFERS: &str = "score: differs";

/// A task's work, as its payload says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work<'a> {
    /// A question for the agent (retrieval, tools, citations).
    Ask(&'a str),
    /// Greedy generation: the model's own answer to `prompt`, as plain text.
    Generate { prompt: &'a str },
    /// Is `answer` what this model generates greedily for `prompt`?
    Score { prompt: &'a str, answer: &'a str },
}

impl<'a> Work<'a> {
    /// Read a payload. A score payload whose header does not fit its text is
    /// an error (only the hub writes them); anything unmarked is a question.
    pub fn parse(payload: &'a str) -> Result<Work<'a>, String> {
        if let Some(prompt) = payload.strip_prefix(GENERATE) {
            return Ok(Work::Generate { prompt });
        }
        let Some(rest) = payload.strip_prefix(SCORE) else { return Ok(Work::Ask(payload)) };
        let malformed = || "a score payload must be `heiwa/score <prompt bytes>\\n<prompt><answer>`".to_string();
        let (length, text) = rest.split_once('\n').ok_or_else(malformed)?;
        let length: usize = length.parse().map_err(|_| malformed())?;
        if length > text.len() || !text.is_char_boundary(length) {
            return Err(malformed());
        }
        let (prompt, answer) = text.split_at(length);
        Ok(Work::Score { prompt, answer })
    }
}

/// The payload of a greedy generation task.
pub fn generate_payload(prompt: &str) -> String {
    format!("{GENERATE}{prompt}")
}

/// The payload of a scoring copy: `answer` (another limb's summary) to `prompt`.
pub fn score_payload(prompt: &str, answer: &str) -> String {
    format!("{SCORE}{}\n{prompt}{answer}", prompt.len())
}

/// May `payload` be submitted to be checked by scoring? It must be a greedy
/// generation pinned to one model (`model`, by id or sha256): a scorer with
/// another model would disagree with an honest answer.
pub fn check_scored(payload: &str, model: &str) -> Result<(), String> {
    if !matches!(Work::parse(payload), Ok(Work::Generate { .. })) {
        return Err("only a greedy generation can be checked by scoring (submit it as one)".into());
    }
    if model.is_empty() {
        return Err("a task checked by scoring must name its model: the scorer must run the same one".into());
    }
    Ok(())
}

/// A scorer's summary: `first_miss` is the first answer token more than
/// `tolerance` logits below the model's top choice there (0-based), with
/// that gap; `None` when every token is within it.
pub fn score_summary(tokens: usize, first_miss: Option<(usize, f32)>, tolerance: f32) -> String {
    match first_miss {
        None => format!("{AGREES}: all {tokens} answer tokens are this model's top choice (within {tolerance} logits)"),
        Some((at, gap)) => format!(
            "{DIFFERS}: answer token {} of {tokens} is {gap:.1} logits below this model's top choice \
             (tolerance {tolerance}): not this model's greedy answer",
            at + 1
        ),
    }
}

/// A scorer's vote, read from its summary: `None` if it says neither.
pub fn score_vote(summary: &str) -> Option<bool> {
    if summary.starts_with(AGREES) {
        Some(true)
    } else if summary.starts_with(DIFFERS) {
        Some(false)
    } else {
        None
    }
}

/// Decide a generation checked by scoring. The generator's answer is one
/// vote for itself; `votes` has one entry per scoring copy made so far: `None`
/// while it runs, `Some(None)` when it failed or said nothing readable,
/// `Some(Some(agrees))`. One agreeing scorer makes a majority with the
/// generator (`Agreed`, with the agreeing scorers' indexes); a first scorer
/// that does not agree gets a second one (`TieBreak`); two that do not agree
/// outvote the generator (`Disputed`).
pub fn score_quorum(votes: &[Option<Option<bool>>]) -> Verdict {
    if votes.is_empty() || votes.iter().any(Option::is_none) {
        return Verdict::Waiting;
    }
    let agreeing: Vec<usize> = (0..votes.len()).filter(|i| votes[*i] == Some(Some(true))).collect();
    if !agreeing.is_empty() {
        Verdict::Agreed(agreeing)
    } else if votes.len() < 2 {
        Verdict::TieBreak
    } else {
        Verdict::Disputed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_as_written() {
        assert_eq!(Work::parse("what is 6*7?"), Ok(Work::Ask("what is 6*7?")));
        let generate = generate_payload("Name a colour.\nOne word.");
        assert_eq!(Work::parse(&generate), Ok(Work::Generate { prompt: "Name a colour.\nOne word." }));
        // Text that looks like a header inside either part changes nothing.
        let prompt = "línea 1\nheiwa/score 3\nx";
        let answer = "heiwa/generate\nrojo ✓";
        let score = score_payload(prompt, answer);
        assert_eq!(Work::parse(&score), Ok(Work::Score { prompt, answer }));
        assert_eq!(Work::parse(&score_payload("", "")), Ok(Work::Score { prompt: "", answer: "" }));
    }

    #[test]
    fn a_malformed_score_header_is_an_error() {
        for bad in ["heiwa/score 3", "heiwa/score x\nab", "heiwa/score 9\nab", "heiwa/score 1\n✓", "heiwa/score -1\na"]
        {
            assert!(Work::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_a_pinned_generation_is_checked_by_scoring() {
        assert!(check_scored(&generate_payload("hi"), "qwen").is_ok());
        assert!(check_scored(&generate_payload("hi"), "").unwrap_err().contains("name its model"));
        assert!(check_scored("hi", "qwen").unwrap_err().contains("greedy generation"));
    }

    #[test]
    fn a_scorers_summary_carries_its_vote() {
        let agrees = score_summary(42, None, 1.0);
        let differs = score_summary(42, Some((6, 16.25)), 1.0);
        assert_eq!(score_vote(&agrees), Some(true));
        assert_eq!(score_vote(&differs), Some(false));
        assert!(differs.contains("token 7 of 42") && differs.contains("16.2"), "{differs}");
        assert_eq!(score_vote("received 12 bytes"), None);
    }

    #[test]
    fn scoring_votes_decide_with_the_generator() {
        let agree = Some(Some(true));
        let differ = Some(Some(false));
        let failed = Some(None);
        assert_eq!(score_quorum(&[]), Verdict::Waiting);
        assert_eq!(score_quorum(&[None]), Verdict::Waiting);
        assert_eq!(score_quorum(&[agree]), Verdict::Agreed(vec![0]));
        assert_eq!(score_quorum(&[differ]), Verdict::TieBreak);
        assert_eq!(score_quorum(&[failed]), Verdict::TieBreak);
        assert_eq!(score_quorum(&[differ, None]), Verdict::Waiting);
        // The tie-breaker sides with the generator: two of three.
        assert_eq!(score_quorum(&[differ, agree]), Verdict::Agreed(vec![1]));
        assert_eq!(score_quorum(&[differ, differ]), Verdict::Disputed);
        assert_eq!(score_quorum(&[failed, differ]), Verdict::Disputed);
    }
}
