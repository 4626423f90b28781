//! The rules about tasks, as plain functions over plain values so that unit
//! tests run natively without a server. Reducers in `lib.rs` only load rows,
//! call these, and write the result.

/// Largest task payload a tenant may submit.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Largest summary a limb may send back: the hub stores summaries, not documents.
pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;
/// Longest limb name.
pub const MAX_LIMB_NAME_CHARS: usize = 64;

/// Where a task is in its life. Only `Pending` tasks can be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Pending,
    Claimed,
    Done,
    Failed,
    Cancelled,
}

pub fn check_payload(payload: &str) -> Result<(), String> {
    if payload.trim().is_empty() {
        return Err("task payload is empty".into());
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "task payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
            payload.len()
        ));
    }
    Ok(())
}

pub fn check_summary(summary: &str) -> Result<(), String> {
    if summary.len() > MAX_SUMMARY_BYTES {
        return Err(format!(
            "result summary is {} bytes; the limit is {MAX_SUMMARY_BYTES}",
            summary.len()
        ));
    }
    Ok(())
}

pub fn check_limb_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_LIMB_NAME_CHARS {
        return Err(format!("limb name must be 1 to {MAX_LIMB_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("limb name must not contain control characters".into());
    }
    Ok(())
}

/// May a caller of the task's own tenant claim a task in `stage`?
pub fn check_claim(task_id: u64, stage: Stage) -> Result<(), String> {
    match stage {
        Stage::Pending => Ok(()),
        Stage::Claimed => Err(format!("task {task_id} is already claimed by another limb")),
        other => Err(format!("task {task_id} is {other:?} and cannot be claimed")),
    }
}

/// May `limb` complete a task claimed by `holder` (if any) in `stage`?
pub fn check_complete(task_id: u64, stage: Stage, holder: Option<u64>, limb: u64) -> Result<(), String> {
    if stage != Stage::Claimed {
        return Err(format!("task {task_id} is {stage:?}; only a claimed task can be completed"));
    }
    if holder != Some(limb) {
        return Err(format!("task {task_id} is not held by limb {limb}"));
    }
    Ok(())
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
    fn summary_limit() {
        assert!(check_summary("").is_ok());
        assert!(check_summary(&"y".repeat(MAX_SUMMARY_BYTES + 1)).is_err());
    }

    #[test]
    fn limb_names() {
        assert!(check_limb_name("workstation-1").is_ok());
        assert!(check_limb_name("").is_err());
        assert!(check_limb_name("a\u{7}b").is_err());
        assert!(check_limb_name(&"n".repeat(65)).is_err());
    }

    #[test]
    fn only_pending_tasks_are_claimed() {
        assert!(check_claim(1, Stage::Pending).is_ok());
        assert!(check_claim(1, Stage::Claimed).unwrap_err().contains("already claimed"));
        assert!(check_claim(1, Stage::Done).is_err());
        assert!(check_claim(1, Stage::Cancelled).is_err());
    }

    #[test]
    fn only_the_holder_completes() {
        assert!(check_complete(1, Stage::Claimed, Some(7), 7).is_ok());
        assert!(check_complete(1, Stage::Claimed, Some(7), 8).unwrap_err().contains("not held"));
        assert!(check_complete(1, Stage::Pending, None, 7).is_err());
        assert!(check_complete(1, Stage::Done, Some(7), 7).is_err());
    }
}
