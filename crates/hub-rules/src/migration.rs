//! The cutover's rules: what a legacy record must be to become a hub row.
//! The hub's `migrate_*` reducers refuse a batch on the first record that
//! breaks one; `heiwa migrate` checks the same rules first, so that a bad
//! record is reported by its legacy id and skipped instead of failing its batch.

use crate::{check_name, check_payload, check_reason, check_summary, TaskState};

/// Most records one `migrate_*` call takes: one call is one transaction.
pub const MAX_MIGRATION_BATCH: usize = 1000;
/// Longest legacy record id (`table:id`).
pub const MAX_LEGACY_ID_CHARS: usize = 256;
/// Longest label a legacy user is known by in the claim codes' CSV (a name or an email).
pub const MAX_LABEL_CHARS: usize = 256;

/// A legacy user's place in its migrated tenant, bound to whoever claims it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigratedRole {
    /// The tenant's owner (one per tenant).
    Owner,
    /// Reads the tenant and submits tasks.
    Submitter,
    /// Reads the tenant only.
    Reader,
}

impl MigratedRole {
    pub const ALL: [MigratedRole; 3] = [MigratedRole::Owner, MigratedRole::Submitter, MigratedRole::Reader];

    pub fn name(self) -> &'static str {
        match self {
            MigratedRole::Owner => "owner",
            MigratedRole::Submitter => "submitter",
            MigratedRole::Reader => "reader",
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|role| role.name() == name)
            .ok_or_else(|| format!("unknown role {name:?}: a migrated member is an owner, a submitter or a reader"))
    }

    pub fn submits(self) -> bool {
        self != MigratedRole::Reader
    }
}

pub fn check_batch(len: usize) -> Result<(), String> {
    if len == 0 || len > MAX_MIGRATION_BATCH {
        return Err(format!("a migration batch holds 1 to {MAX_MIGRATION_BATCH} records, not {len}"));
    }
    Ok(())
}

pub fn check_legacy_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_LEGACY_ID_CHARS {
        return Err(format!("a legacy id is 1 to {MAX_LEGACY_ID_CHARS} characters"));
    }
    if id.chars().any(char::is_control) {
        return Err("a legacy id must not contain control characters".into());
    }
    Ok(())
}

pub fn check_label(label: &str) -> Result<(), String> {
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(format!(
            "a member's label is at most {MAX_LABEL_CHARS} characters, none of them control characters"
        ));
    }
    Ok(())
}

pub fn check_tenant_name(name: &str) -> Result<(), String> {
    check_name("tenant", name)
}

/// The state a legacy task is migrated in. A task the legacy system was
/// running is migrated as `pending` (the mapping says so): nothing holds it
/// on the hub, so it is `claimed` by no one.
pub fn migrated_state(name: &str) -> Result<TaskState, String> {
    match name {
        "pending" => Ok(TaskState::Pending),
        "done" => Ok(TaskState::Done),
        "failed" => Ok(TaskState::Failed),
        "cancelled" => Ok(TaskState::Cancelled),
        other => Err(format!("a migrated task is pending, done, failed or cancelled, not {other:?}")),
    }
}

/// A migrated task's texts: its payload, and the result's summary or the failure's reason.
pub fn check_migrated_task(state: TaskState, payload: &str, summary: &str, reason: &str) -> Result<(), String> {
    check_payload(payload)?;
    check_summary(summary)?;
    check_reason(reason)?;
    if state != TaskState::Done && !summary.is_empty() {
        return Err(format!("only a done task has a result; this one is {}", state.name()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_name() {
        for role in MigratedRole::ALL {
            assert_eq!(MigratedRole::parse(role.name()), Ok(role));
        }
        assert!(MigratedRole::parse("limb").is_err(), "a legacy user never becomes a limb");
        assert!(!MigratedRole::Reader.submits());
        assert!(MigratedRole::Owner.submits() && MigratedRole::Submitter.submits());
    }

    #[test]
    fn batches_and_ids() {
        assert!(check_batch(0).is_err());
        assert!(check_batch(MAX_MIGRATION_BATCH).is_ok());
        assert!(check_batch(MAX_MIGRATION_BATCH + 1).is_err());
        assert!(check_legacy_id("task:⟨a b⟩").is_ok());
        assert!(check_legacy_id("").is_err());
        assert!(check_legacy_id("task:\n1").is_err());
        assert!(check_legacy_id(&"x".repeat(MAX_LEGACY_ID_CHARS + 1)).is_err());
        assert!(check_label("ada@example.org").is_ok());
        assert!(check_label("a\u{7}").is_err());
    }

    #[test]
    fn states_and_texts() {
        assert_eq!(migrated_state("done"), Ok(TaskState::Done));
        assert_eq!(migrated_state("pending"), Ok(TaskState::Pending));
        assert!(migrated_state("claimed").is_err(), "no hub limb holds a legacy task");
        assert!(check_migrated_task(TaskState::Done, "q", "answer", "").is_ok());
        assert!(check_migrated_task(TaskState::Failed, "q", "", "timed out").is_ok());
        assert!(check_migrated_task(TaskState::Failed, "q", "an answer", "").is_err());
        assert!(check_migrated_task(TaskState::Pending, " ", "", "").is_err(), "an empty payload");
        let huge = "x".repeat(crate::MAX_PAYLOAD_BYTES + 1);
        assert!(check_migrated_task(TaskState::Pending, &huge, "", "").is_err());
    }
}
