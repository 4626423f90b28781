//! The rules about tasks, as plain functions over plain values so that unit
//! tests run natively without a server. The hub's reducers (`hub-module`) only
//! load rows, call these, and write the result; the limb uses the same limits
//! and state names, so there is one copy of each.
//!
//! No dependencies by default. With the `spacetimedb` feature (only `hub-module`
//! turns it on) [`TaskState`] is also the hub's column type; with `serde` and
//! `ts` the limb sends it to the window by the same names as [`TaskState::name`].

/// Largest task payload a tenant may submit.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Largest summary a limb may send back: the hub stores summaries, not documents.
pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;
/// Longest failure reason kept on a task.
pub const MAX_REASON_BYTES: usize = 1024;
/// Longest limb or tenant name.
pub const MAX_NAME_CHARS: usize = 64;
/// A limb's lease: how long a claim lives without a heartbeat.
pub const MIN_LEASE_SECS: u32 = 2;
pub const MAX_LEASE_SECS: u32 = 3600;
/// Claims a task may have before an expired lease fails it instead of retrying.
pub const MAX_ATTEMPTS: u32 = 3;

/// Where a task is in its life. Only `Pending` tasks can be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "spacetimedb", derive(spacetimedb::SpacetimeType))]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TaskState {
    Pending,
    Claimed,
    Done,
    Failed,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 5] =
        [TaskState::Pending, TaskState::Claimed, TaskState::Done, TaskState::Failed, TaskState::Cancelled];

    /// The state's name as people read it (the CLI, the window, the summary).
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Claimed => "claimed",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

/// `text` cut to at most `max_bytes` at a character boundary, so that what a
/// limb sends fits the hub's limits above.
pub fn truncate_to(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn check_size(what: &str, text: &str, limit: usize) -> Result<(), String> {
    if text.len() > limit {
        return Err(format!("{what} is {} bytes; the limit is {limit}", text.len()));
    }
    Ok(())
}

pub fn check_payload(payload: &str) -> Result<(), String> {
    if payload.trim().is_empty() {
        return Err("task payload is empty".into());
    }
    check_size("task payload", payload, MAX_PAYLOAD_BYTES)
}

pub fn check_summary(summary: &str) -> Result<(), String> {
    check_size("result summary", summary, MAX_SUMMARY_BYTES)
}

pub fn check_reason(reason: &str) -> Result<(), String> {
    check_size("failure reason", reason, MAX_REASON_BYTES)
}

pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let chars = name.trim().chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(format!("{what} name must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} name must not contain control characters"));
    }
    Ok(())
}

pub fn check_lease_secs(secs: u32) -> Result<(), String> {
    if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&secs) {
        return Err(format!("lease must be {MIN_LEASE_SECS} to {MAX_LEASE_SECS} seconds, not {secs}"));
    }
    Ok(())
}

/// May a limb of the task's own tenant claim a task in `state`?
pub fn check_claim(task_id: u64, state: TaskState) -> Result<(), String> {
    match state {
        TaskState::Pending => Ok(()),
        TaskState::Claimed => Err(format!("task {task_id} is already claimed by another limb")),
        other => Err(format!("task {task_id} is {other:?} and cannot be claimed")),
    }
}

/// Is `limb` the current, unexpired holder of a task? Completing, failing,
/// releasing and renewing all require it. Times are microseconds since the epoch.
pub fn check_holder(
    task_id: u64,
    state: TaskState,
    holder: Option<u64>,
    lease_until: Option<i64>,
    limb: u64,
    now: i64,
) -> Result<(), String> {
    if state != TaskState::Claimed {
        return Err(format!("task {task_id} is {state:?}; only a claimed task can be completed, failed or released"));
    }
    if holder != Some(limb) {
        return Err(format!("task {task_id} is not held by limb {limb}"));
    }
    match lease_until {
        Some(until) if until >= now => Ok(()),
        _ => Err(format!("limb {limb}'s lease on task {task_id} has expired; the task will be retried")),
    }
}

/// What an expired lease turns a task into: retried while attempts remain.
pub fn after_lease_expiry(attempts: u32) -> TaskState {
    if attempts >= MAX_ATTEMPTS {
        TaskState::Failed
    } else {
        TaskState::Pending
    }
}

pub fn check_cancel(task_id: u64, state: TaskState) -> Result<(), String> {
    match state {
        TaskState::Pending | TaskState::Claimed => Ok(()),
        other => Err(format!("task {task_id} is already {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_limits() {
        assert!(check_payload("what is 6*7?").is_ok());
        assert_eq!(check_payload("  ").unwrap_err(), "task payload is empty");
        let big = "x".repeat(MAX_PAYLOAD_BYTES + 1);
        assert!(check_payload(&big).unwrap_err().contains("the limit is 16384"));
    }

    #[test]
    fn summary_and_reason_limits() {
        assert!(check_summary("").is_ok());
        assert!(check_summary(&"y".repeat(MAX_SUMMARY_BYTES + 1)).is_err());
        assert!(check_reason(&"r".repeat(MAX_REASON_BYTES + 1)).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("limb", "workstation-1").is_ok());
        assert!(check_name("limb", " ").is_err());
        assert!(check_name("limb", "a\u{7}b").unwrap_err().contains("control"));
        assert!(check_name("tenant", &"n".repeat(65)).unwrap_err().starts_with("tenant name"));
    }

    #[test]
    fn lease_bounds() {
        assert!(check_lease_secs(30).is_ok());
        assert!(check_lease_secs(1).is_err());
        assert!(check_lease_secs(MAX_LEASE_SECS + 1).is_err());
    }

    #[test]
    fn only_pending_tasks_are_claimed() {
        assert!(check_claim(1, TaskState::Pending).is_ok());
        assert!(check_claim(1, TaskState::Claimed).unwrap_err().contains("already claimed"));
        assert!(check_claim(1, TaskState::Done).is_err());
        assert!(check_claim(1, TaskState::Cancelled).is_err());
    }

    #[test]
    fn only_the_unexpired_holder_completes() {
        assert!(check_holder(1, TaskState::Claimed, Some(7), Some(100), 7, 50).is_ok());
        assert!(check_holder(1, TaskState::Claimed, Some(7), Some(100), 8, 50).unwrap_err().contains("not held"));
        assert!(check_holder(1, TaskState::Claimed, Some(7), Some(100), 7, 101).unwrap_err().contains("expired"));
        assert!(check_holder(1, TaskState::Claimed, Some(7), None, 7, 0).is_err());
        assert!(check_holder(1, TaskState::Pending, None, None, 7, 0).is_err());
        assert!(check_holder(1, TaskState::Done, Some(7), Some(100), 7, 50).is_err());
    }

    #[test]
    fn expired_leases_retry_then_fail() {
        assert_eq!(after_lease_expiry(1), TaskState::Pending);
        assert_eq!(after_lease_expiry(MAX_ATTEMPTS - 1), TaskState::Pending);
        assert_eq!(after_lease_expiry(MAX_ATTEMPTS), TaskState::Failed);
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_to("héllo", 2), "h");
        assert_eq!(truncate_to("héllo", 3), "hé");
        assert_eq!(truncate_to("hi", 10), "hi");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serialised_names_are_the_names() {
        for state in TaskState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.name());
        }
    }

    #[test]
    fn state_names_are_distinct() {
        let names: std::collections::BTreeSet<_> = TaskState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), TaskState::ALL.len());
        assert_eq!(TaskState::Pending.name(), "pending");
    }

    #[test]
    fn cancel_only_live_tasks() {
        assert!(check_cancel(1, TaskState::Pending).is_ok());
        assert!(check_cancel(1, TaskState::Claimed).is_ok());
        assert!(check_cancel(1, TaskState::Done).unwrap_err().contains("already Done"));
    }
}
