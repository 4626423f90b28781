//! `heiwa task show` as a person reads it: what was asked, its state, the
//! answer with its sources, who answered and when, in local time. The hub's
//! rows stay available as JSON (`--json`) for scripts.

use heiwa_hub::Summary;
use serde_json::Value;
use std::fmt::Write as _;

/// A hub timestamp (microseconds since the Unix epoch) in local time.
fn local_time(micros: &Value) -> Option<String> {
    let micros = micros.as_i64()?;
    let when = chrono::DateTime::from_timestamp_micros(micros)?;
    Some(when.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
}

fn seconds_between(from: &Value, to: &Value) -> Option<f64> {
    Some((to.as_i64()? - from.as_i64()?) as f64 / 1e6)
}

/// The task, its result, late results and replicas (as `--json` prints them) as text.
pub fn task(shown: &Value) -> String {
    let (task, result) = (&shown["task"], &shown["result"]);
    let mut out = String::new();
    let state = task["state"].as_str().unwrap_or("?");
    let _ = writeln!(out, "task {}: {state}", task["id"]);
    let _ = writeln!(out, "  asked     {}", task["payload"].as_str().unwrap_or_default());
    if let Some(when) = local_time(&task["created_at"]) {
        let _ = writeln!(out, "  at        {when}");
    }
    if let Some(model) = task["model"].as_str().filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "  model     {model}");
    }
    if state == "claimed" {
        let _ = writeln!(out, "  held by   limb {}", task["assigned_to"]);
    }
    if let Some(reason) = task["reason"].as_str().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "  why       {reason}");
    }
    if let Some(waiting) = shown["waiting"].as_str() {
        let _ = writeln!(out, "  {waiting}");
    }
    if let Some(estimate) = shown["estimate"].as_str() {
        let _ = writeln!(out, "  queue     {estimate}");
    }
    if result.is_object() {
        let raw = result["summary"].clone();
        let summary = serde_json::from_value::<Summary>(raw.clone()).ok();
        let answered =
            match (local_time(&result["finished_at"]), seconds_between(&task["created_at"], &result["finished_at"])) {
                (Some(when), Some(took)) => format!(" at {when} ({took:.1} s after it was asked)"),
                (Some(when), None) => format!(" at {when}"),
                _ => String::new(),
            };
        let _ = writeln!(out, "  answered  by limb {}{answered}", result["limb_id"]);
        match summary {
            Some(summary) => {
                let _ =
                    writeln!(out, "  answer    {}{}", summary.answer.trim(), if summary.truncated { " …" } else { "" });
                for citation in &summary.citations {
                    let place = match (citation.page, citation.lines) {
                        (_, Some((first, last))) => format!("lines {first}-{last}"),
                        (Some(page), None) => format!("page {page}"),
                        (None, None) => format!("§{}", citation.chunk),
                    };
                    let _ = writeln!(out, "  source    [{}] {} {place}", citation.n, citation.file);
                }
                if summary.tool_calls > 0 {
                    let _ = writeln!(out, "  tools     {} run_python call(s)", summary.tool_calls);
                }
            }
            None => {
                let _ = writeln!(out, "  answer    {}", raw.as_str().unwrap_or_default().trim());
            }
        }
    }
    if let Some(late) = shown["late_results"].as_array().filter(|late| !late.is_empty()) {
        let limbs: Vec<String> = late.iter().map(|l| format!("limb {}", l["limb_id"])).collect();
        let _ =
            writeln!(out, "  late      {} (answered after the task had moved on; kept, not used)", limbs.join(", "));
    }
    if let Some(copies) = shown["replicas"]["copies"].as_array() {
        let ids: Vec<String> = copies.iter().map(Value::to_string).collect();
        let verdict = shown["replicas"]["verdict"].as_str().unwrap_or("?");
        let _ = writeln!(out, "  replicas  tasks {} ({verdict})", ids.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_done_task_reads_as_text_with_its_sources_and_local_times() {
        let summary = json!({"answer": "42", "citations": [{"n": 1, "file": "notes.md", "chunk": 2, "span": [0, 9]}],
            "tool_calls": 1, "steps": 2});
        let shown = json!({
            "task": {"id": 7, "state": "done", "payload": "What is 6*7?", "model": "", "assigned_to": 0,
                     "reason": "", "created_at": 1_700_000_000_000_000i64},
            "result": {"limb_id": 3, "summary": summary, "finished_at": 1_700_000_002_500_000i64},
            "late_results": [], "replicas": null
        });
        let text = task(&shown);
        assert!(text.starts_with("task 7: done\n  asked     What is 6*7?\n"), "{text}");
        assert!(text.contains("  answered  by limb 3 at "), "{text}");
        assert!(text.contains("(2.5 s after it was asked)"), "{text}");
        assert!(
            text.contains("  answer    42\n  source    [1] notes.md §2\n  tools     1 run_python call(s)\n"),
            "{text}"
        );
        assert!(!text.contains('{') && !text.contains("0x0"), "no raw rows: {text}");
        let asked = local_time(&json!(1_700_000_000_000_000i64)).unwrap();
        assert!(text.contains(&format!("  at        {asked}\n")), "{text}");
    }

    #[test]
    fn a_plain_result_and_a_failed_task_read_plainly() {
        let shown = json!({
            "task": {"id": 2, "state": "failed", "payload": "x", "model": "m1", "assigned_to": 0,
                     "reason": "no limb could run it", "created_at": 1_700_000_000_000_000i64},
            "result": null, "late_results": [{"limb_id": 4}], "replicas": null
        });
        let text = task(&shown);
        assert!(text.contains("  model     m1\n  why       no limb could run it\n"), "{text}");
        assert!(text.contains("  late      limb 4 "), "{text}");
        assert!(!text.contains("  answered  by"), "no result, no one answered: {text}");
    }
}
