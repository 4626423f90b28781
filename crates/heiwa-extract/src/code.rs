//! Source code, chunked along its structure: a chunk is a whole definition
//! (with the comments and attributes just above it), or several small ones
//! together; a definition too large for one chunk is cut between its
//! members (the next indentation level in), and only a block with no such
//! structure is cut by lines. Citations name the lines.
//!
//! Structure is read from indentation, not from a grammar: every language
//! people keep here is indented by its formatter, so one rule serves them
//! all, and no parser per language has to be built and kept (tree-sitter
//! grammars are C to compile, one crate per language). What it cannot see —
//! a minified file on one line — is cut by lines like any text.

use std::ops::Range;

/// File types read as source code (the extension, lower case).
pub(crate) const SOURCE: [&str; 28] = [
    "rs", "py", "js", "mjs", "cjs", "jsx", "ts", "tsx", "go", "c", "h", "cc", "cpp", "cxx", "hpp", "java", "kt",
    "swift", "rb", "php", "cs", "scala", "sh", "bash", "lua", "pl", "r", "sql",
];

/// A code chunk is at most this many bytes: a definition of ~30 lines stays whole.
pub const CODE_CHUNK_BYTES: usize = 1000;

pub(crate) fn is_source(extension: &str) -> bool {
    SOURCE.contains(&extension)
}

/// (byte offset, text) of chunks along the code's structure, in order, each
/// at most `max` bytes unless one line alone is longer (then cut within it).
pub fn code_chunks(text: &str, max: usize) -> Vec<(usize, &str)> {
    let lines = line_ranges(text);
    let mut pieces = Vec::new();
    split(text, &lines, 0..lines.len(), max, &mut pieces);
    // Neighbours that fit together go together (a run of imports, small functions).
    let mut merged: Vec<Range<usize>> = Vec::new();
    for piece in pieces {
        match merged.last_mut() {
            Some(last) if last.end == piece.start && piece.end - last.start <= max => last.end = piece.end,
            _ => merged.push(piece),
        }
    }
    merged
        .into_iter()
        .filter_map(|range| {
            let slice = &text[range.clone()];
            let start = range.start + (slice.len() - slice.trim_start().len());
            let trimmed = slice.trim();
            (!trimmed.is_empty()).then_some((start, trimmed))
        })
        .collect()
}

/// Byte ranges of the lines (newline included).
fn line_ranges(text: &str) -> Vec<Range<usize>> {
    let mut start = 0;
    text.split_inclusive('\n')
        .map(|line| {
            let range = start..start + line.len();
            start = range.end;
            range
        })
        .collect()
}

/// Cut lines `range` into byte ranges of at most `max`, along units at the
/// block's own indentation, then inside the units that are still too large.
fn split(text: &str, lines: &[Range<usize>], range: Range<usize>, max: usize, out: &mut Vec<Range<usize>>) {
    if range.is_empty() {
        return;
    }
    let bytes = lines[range.start].start..lines[range.end - 1].end;
    if bytes.len() <= max {
        out.push(bytes);
        return;
    }
    let units = units(text, lines, range.clone());
    if units.len() > 1 {
        for unit in units {
            split(text, lines, unit, max, out);
        }
    } else if let Some(header) = range.clone().find(|&i| opens(&text[lines[i].clone()])).filter(|&h| h + 1 < range.end)
    {
        // One unit: its header (`impl X {`, with its comments), then what it holds.
        let head = lines[range.start].start..lines[header].end;
        if head.len() <= max {
            out.push(head);
        } else {
            (range.start..=header).for_each(|i| cut_line(text, lines[i].clone(), max, out));
        }
        split(text, lines, header + 1..range.end, max, out);
    } else {
        (range.start..range.end).for_each(|i| cut_line(text, lines[i].clone(), max, out));
    }
}

/// A line as pieces of at most `max` bytes, cut at character boundaries.
fn cut_line(text: &str, line: Range<usize>, max: usize, out: &mut Vec<Range<usize>>) {
    let mut at = line.start;
    while at < line.end {
        let mut end = (at + max).min(line.end);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end == at {
            // `max` is smaller than this character: take the character whole.
            end = (at + 1..=line.end).find(|&i| text.is_char_boundary(i)).unwrap_or(line.end);
        }
        out.push(at..end);
        at = end;
    }
}

/// Lines `range` as units: a unit starts at a line of the block's smallest
/// indentation that opens something (not a closing bracket or an `else`),
/// taking the comments and attributes directly above it along.
fn units(text: &str, lines: &[Range<usize>], range: Range<usize>) -> Vec<Range<usize>> {
    let line = |i: usize| &text[lines[i].clone()];
    let base = range.clone().filter(|&i| opens(line(i))).map(|i| indent(line(i))).min();
    let Some(base) = base else { return vec![range] };
    let mut starts = Vec::new();
    for i in range.clone() {
        if i > range.start && indent(line(i)) == base && opens(line(i)) {
            let floor = starts.last().copied().unwrap_or(range.start);
            let mut start = i;
            while start > floor && indent(line(start - 1)) == base && attached(line(start - 1)) {
                start -= 1;
            }
            // Only comments before it since the last start: they are this unit's.
            if start > floor {
                starts.push(start);
            }
        }
    }
    let mut units = Vec::new();
    let mut from = range.start;
    for start in starts {
        units.push(from..start);
        from = start;
    }
    units.push(from..range.end);
    units
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

/// Whether a line can begin a unit: not blank, not closing a block, not a
/// continuation of the statement above (`else`, `except`, …).
fn opens(line: &str) -> bool {
    let code = line.trim();
    const CONTINUATIONS: [&str; 8] = ["else", "elif", "except", "finally", "catch", "end", "fi", "done"];
    !code.is_empty()
        && !code.starts_with(['}', ')', ']'])
        && !CONTINUATIONS.iter().any(|word| {
            code.strip_prefix(word).is_some_and(|rest| rest.is_empty() || !rest.starts_with(char::is_alphanumeric))
        })
        && !attached(line)
}

/// Comments, attributes and decorators: they belong to what follows them.
fn attached(line: &str) -> bool {
    let code = line.trim_start();
    ["//", "#", "/*", "*", "--", "@"].iter().any(|p| code.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUST: &str = "use std::fmt;\nuse std::io;\n\n/// Adds.\n#[inline]\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\nimpl Thing {\n    fn one(&self) {\n        println!(\"one\");\n    }\n\n    fn two(&self) {\n        if x {\n            y();\n        } else {\n            z();\n        }\n    }\n}\n";

    #[test]
    fn a_definition_is_one_chunk_with_its_comments_and_attributes() {
        let chunks = code_chunks(RUST, 70);
        let add = chunks.iter().find(|(_, c)| c.contains("fn add")).expect("add is a chunk");
        assert!(add.1.starts_with("/// Adds.\n#[inline]\nfn add"), "{:?}", add.1);
        assert!(add.1.ends_with("a + b\n}"), "{:?}", add.1);
        for (at, chunk) in &chunks {
            assert_eq!(&RUST[*at..at + chunk.len()], *chunk, "offsets point at the chunk");
        }
    }

    #[test]
    fn a_large_definition_is_cut_between_its_members_never_inside_one() {
        let chunks = code_chunks(RUST, 120);
        let two = chunks.iter().find(|(_, c)| c.contains("fn two")).expect("two is a chunk");
        assert!(two.1.contains("} else {") && two.1.contains("z();"), "the else stays with its if: {:?}", two.1);
        assert!(!two.1.contains("fn one"), "members are separate chunks when the impl is too large: {:?}", two.1);
        assert!(chunks.iter().all(|(_, c)| c.len() <= 120));
    }

    #[test]
    fn small_neighbours_go_together_and_everything_is_covered() {
        let chunks = code_chunks(RUST, 10_000);
        assert_eq!(chunks.len(), 1, "the whole file fits one chunk");
        let python = "import os\n\n\nclass A:\n    def f(self):\n        return 1\n\n    def g(self):\n        try:\n            pass\n        except E:\n            pass\n\n\n@decorated\ndef h():\n    return 2\n";
        let chunks = code_chunks(python, 90);
        let h = chunks.iter().find(|(_, c)| c.contains("def h")).expect("h");
        assert!(h.1.starts_with("@decorated"), "{:?}", h.1);
        let g = chunks.iter().find(|(_, c)| c.contains("def g")).expect("g");
        assert!(g.1.contains("except E:"), "{:?}", g.1);
        let words: usize = python.split_whitespace().count();
        let covered: usize = chunks.iter().map(|(_, c)| c.split_whitespace().count()).sum();
        assert_eq!(covered, words, "no text lost, none repeated");
    }

    #[test]
    fn a_minified_line_is_cut_by_size_at_character_boundaries() {
        let line = "é".repeat(5000);
        let chunks = code_chunks(&line, 1000);
        assert!(chunks.len() >= 10 && chunks.iter().all(|(_, c)| c.len() <= 1000));
        assert_eq!(chunks.iter().map(|(_, c)| c.len()).sum::<usize>(), line.len());
    }
}
