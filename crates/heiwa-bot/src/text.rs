//! Fitting text into Discord's messages: cut at a paragraph, a line or a
//! word, never inside a character. Lengths are counted in UTF-16 units,
//! which is never fewer than Discord's count of characters, so a piece that
//! fits here fits there.

/// Said where a text was cut short.
const CUT_MARK: &str = "\n… (cut: `heiwa task show` has it all)";

fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The longest prefix of `text` within `limit` units that ends at a clean
/// place: after a blank line, else a line, else a space; a text with no such
/// place in its first half is cut at a character boundary.
fn clean_prefix(text: &str, limit: usize) -> &str {
    if units(text) <= limit {
        return text;
    }
    let mut end = 0;
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += c.len_utf16();
        if used > limit {
            break;
        }
        end = at + c.len_utf8();
    }
    let hard = &text[..end];
    let half = hard.len() / 2;
    ["\n\n", "\n", " "]
        .iter()
        .find_map(|sep| hard.rfind(sep).filter(|at| *at >= half).map(|at| &hard[..at + sep.len()]))
        .unwrap_or(hard)
}

/// `text` within `limit` units, saying so when it was cut.
pub fn cut(text: &str, limit: usize) -> String {
    if units(text) <= limit {
        return text.to_string();
    }
    let room = limit.saturating_sub(units(CUT_MARK));
    format!("{}{CUT_MARK}", clean_prefix(text, room).trim_end())
}

/// `text` as consecutive messages of at most `limit` units each, at most
/// `max_parts` of them (the last then says it was cut). Nothing is dropped
/// unless it would take more parts than that.
pub fn split(text: &str, limit: usize, max_parts: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if parts.len() + 1 == max_parts.max(1) && units(rest) > limit {
            parts.push(cut(rest, limit));
            break;
        }
        let piece = clean_prefix(rest, limit);
        parts.push(piece.trim_end().to_string());
        rest = rest[piece.len()..].trim_start();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_splits_at_clean_places_within_the_limit_and_loses_nothing() {
        let paragraph = "A lease ends when its limb goes silent. ".repeat(30);
        let text = format!("{paragraph}\n\n{paragraph}\n\n{}", "ü".repeat(2500));
        let parts = split(&text, 2000, 10);
        assert!(parts.len() >= 3, "{}", parts.len());
        for part in &parts {
            assert!(units(part) <= 2000, "{}", units(part));
            assert!(!part.is_empty());
        }
        assert!(
            parts[0].ends_with("silent."),
            "cut after a sentence, not inside a word: {:?}",
            &parts[0][parts[0].len() - 20..]
        );
        let joined: String = parts.concat();
        let squeezed = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(squeezed(&joined), squeezed(&text), "every word is in some part");
    }

    #[test]
    fn too_many_parts_end_with_a_clean_cut_and_astral_characters_count_double() {
        let parts = split(&"word ".repeat(5000), 2000, 3);
        assert_eq!(parts.len(), 3);
        assert!(parts[2].ends_with("has it all)"));
        assert!(parts.iter().all(|p| units(p) <= 2000));
        let emoji = "🙂".repeat(1500); // 3,000 UTF-16 units
        let cut_emoji = cut(&emoji, 2000);
        assert!(units(&cut_emoji) <= 2000);
        assert!(cut_emoji.starts_with('🙂'));
        assert_eq!(cut("short", 2000), "short");
        assert!(split("", 2000, 3).is_empty());
    }
}
