//! What the bot says, as plain Markdown text made from hub rows. Pure.

use crate::tenant::{LimbLine, TaskRow};
use heiwa_hub::{Summary, SummaryCitation, TaskState};
use std::fmt::Write;

/// The first characters of a payload, on one line.
fn gist(text: &str, chars: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

pub fn status(tasks: &[TaskRow], limbs: &[LimbLine]) -> String {
    let count = |state: TaskState| tasks.iter().filter(|t| t.state == state).count();
    let online = limbs.iter().filter(|(limb, _)| limb.online).count();
    let paused = limbs.iter().filter(|(_, paused)| paused.is_some()).count();
    let mut text = format!(
        "**Tasks** — pending {}, running {}, done {}, failed {}, cancelled {}\n**Limbs** — {online} of {} online",
        count(TaskState::Pending),
        count(TaskState::Claimed),
        count(TaskState::Done),
        count(TaskState::Failed),
        count(TaskState::Cancelled),
        limbs.len(),
    );
    if paused > 0 {
        let _ = write!(text, ", {paused} paused");
    }
    text
}

fn citation(c: &SummaryCitation) -> String {
    let mut text = format!("[{}] {}", c.n, c.file);
    match (c.page, c.lines) {
        (_, Some((first, last))) => {
            let _ = write!(text, ", lines {first}-{last}");
        }
        (Some(page), None) => {
            let _ = write!(text, ", page {page}");
        }
        (None, None) => {
            let _ = write!(text, ", chunk {}", c.chunk);
        }
    }
    text
}

/// The answer of a result, with its sources: an agent's summary read as
/// one, any other result as the text it is.
fn answer(summary: &str) -> String {
    match Summary::parse(summary) {
        Some(summary) => {
            let mut text = summary.answer.trim().to_string();
            if !summary.citations.is_empty() {
                let sources: Vec<String> = summary.citations.iter().map(citation).collect();
                let _ = write!(text, "\n\n**Sources** — {}", sources.join(" · "));
            }
            if summary.tool_calls > 0 {
                let _ = write!(text, "\n*Python runs: {}*", summary.tool_calls);
            }
            text
        }
        None => summary.trim().to_string(),
    }
}

fn limb_label(id: u64, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("limb #{id} ({name})"),
        None => format!("limb #{id}"),
    }
}

/// `/task`: its state, where it is, why a pending one waits and for how
/// long (`waiting`), and its answer once there is one.
pub fn task(task: &TaskRow, limb_name: Option<&str>, waiting: &[String]) -> String {
    let mut text = format!("**Task #{}** — {}", task.id, task.state.name());
    if task.limb_id != 0 {
        let _ = write!(text, " · {}", limb_label(task.limb_id, limb_name));
    }
    if !task.model.is_empty() {
        let _ = write!(text, " · model {}", task.model);
    }
    let _ = write!(text, " · attempts {}\n> {}", task.attempts, gist(&task.payload, 200));
    if !task.reason.is_empty() && task.state != TaskState::Done {
        let _ = write!(text, "\n{}", task.reason);
    }
    for line in waiting {
        let _ = write!(text, "\n⏳ {line}");
    }
    if !task.summary.is_empty() {
        let _ = write!(text, "\n\n{}", answer(&task.summary));
    }
    text
}

/// The notification of a finished task, for the channel; `asked_by` is the
/// Discord user who submitted it (mentioned, and only that user).
pub fn finished(task: &TaskRow, limb_name: Option<&str>, asked_by: Option<&str>) -> String {
    let mark = match task.state {
        TaskState::Done => "✅",
        TaskState::Failed => "❌",
        _ => "•",
    };
    let what = task.state.name();
    let mut text = format!("{mark} **Task #{}** {what}", task.id);
    if task.limb_id != 0 {
        let _ = write!(text, " by {}", limb_label(task.limb_id, limb_name));
    }
    if let Some(user) = asked_by {
        let _ = write!(text, " — asked by <@{user}>");
    }
    let _ = write!(text, "\n> {}\n\n", gist(&task.payload, 200));
    if task.state == TaskState::Done {
        text.push_str(&answer(&task.summary));
    } else {
        let _ = write!(text, "after {} attempt(s): {}", task.attempts, task.reason);
    }
    text
}

/// `/limbs`: each limb, whether it gives now, and the credit its verified
/// work earned (`credit`: milli-credits paid, by limb id).
pub fn limbs(limbs: &[LimbLine], credit: &std::collections::HashMap<u64, u64>) -> String {
    if limbs.is_empty() {
        return "No limbs have joined this tenant yet (`/invite` makes a code for one).".into();
    }
    let lines: Vec<String> = limbs
        .iter()
        .map(|(limb, paused)| {
            let mut line = format!(
                "#{} **{}** — {}, {} slot(s){}",
                limb.id,
                limb.name,
                if limb.online { "online" } else { "offline" },
                limb.capacity,
                if limb.gpu { ", GPU" } else { "" }
            );
            let paid = credit.get(&limb.id).copied().unwrap_or(0);
            let _ = write!(line, " · {} credits", heiwa_hub::credits_text(paid));
            if let Some(reason) = paused {
                let _ = write!(line, " · **paused**: {reason}");
            }
            line
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::LimbRow;

    fn row(state: TaskState, summary: &str) -> TaskRow {
        TaskRow {
            id: 12,
            state,
            payload: "What happens to a work unit\nwhen a volunteer's computer disappears?".into(),
            model: String::new(),
            limb_id: 3,
            attempts: 1,
            reason: String::new(),
            summary: summary.into(),
        }
    }

    #[test]
    fn a_finished_task_says_who_answered_what_from_which_sources() {
        let summary = r#"{"answer":"It is reissued after its deadline [1].","citations":[{"n":1,"file":"volunteer-computing.md","chunk":2,"span":[10,90]},{"n":2,"file":"lib.rs","chunk":0,"span":[0,5],"lines":[12,19]}],"tool_calls":0,"steps":1}"#;
        let text = finished(&row(TaskState::Done, summary), Some("workstation"), Some("1300000000000000003"));
        assert!(
            text.starts_with("✅ **Task #12** done by limb #3 (workstation) — asked by <@1300000000000000003>"),
            "{text}"
        );
        assert!(text.contains("> What happens to a work unit when a volunteer's computer disappears?"), "{text}");
        assert!(text.contains("It is reissued after its deadline [1]."), "{text}");
        assert!(text.contains("[1] volunteer-computing.md, chunk 2 · [2] lib.rs, lines 12-19"), "{text}");
        let failed = finished(
            &TaskRow { reason: "the model crashed".into(), attempts: 3, ..row(TaskState::Failed, "") },
            None,
            None,
        );
        assert!(failed.starts_with("❌ **Task #12** failed by limb #3"), "{failed}");
        assert!(failed.ends_with("after 3 attempt(s): the model crashed"), "{failed}");
        assert!(task(&row(TaskState::Done, "plain text result"), None, &[]).ends_with("plain text result"));
        let waits = ["waiting: no limb holds coder".to_string(), "next in line; no estimate".to_string()];
        let pending = task(&row(TaskState::Pending, ""), None, &waits);
        assert!(pending.ends_with("\n⏳ waiting: no limb holds coder\n⏳ next in line; no estimate"), "{pending}");
    }

    #[test]
    fn status_and_limbs_count_what_the_rows_say() {
        let limb = |id, online| LimbRow { id, name: format!("l{id}"), capacity: 2, online, gpu: id == 1 };
        let limbs = vec![(limb(1, true), None), (limb(2, false), Some("maintenance".to_string()))];
        let tasks = vec![row(TaskState::Done, ""), row(TaskState::Pending, ""), row(TaskState::Pending, "")];
        assert_eq!(
            status(&tasks, &limbs),
            "**Tasks** — pending 2, running 0, done 1, failed 0, cancelled 0\n**Limbs** — 1 of 2 online, 1 paused"
        );
        let shown = super::limbs(&limbs, &[(1, 12_500)].into_iter().collect());
        assert!(shown.contains("#1 **l1** — online, 2 slot(s), GPU · 12.500 credits"), "{shown}");
        assert!(shown.contains("#2 **l2** — offline, 2 slot(s) · 0.000 credits · **paused**: maintenance"), "{shown}");
    }
}
