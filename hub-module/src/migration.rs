//! The cutover from the legacy SurrealDB deployment (`heiwa migrate surrealdb`).
//! Each call is one batch and one transaction: a batch is written whole or,
//! at its first bad record (named by its legacy id), not at all. A record whose
//! legacy id is already mapped is skipped, so a rerun after a crash writes
//! only what is missing and a second full run writes nothing.

use crate::guard::require_admin;
use crate::placement::place;
use crate::tasks::usage;
use crate::*;

fn migrated(ctx: &ReducerContext, legacy_id: &str) -> bool {
    ctx.db.legacy_record().legacy_id().find(legacy_id.to_string()).is_some()
}

fn map_legacy(ctx: &ReducerContext, legacy_id: String, kind: &str, hub_id: u64, submitter: String) {
    ctx.db.legacy_record().insert(LegacyRecord {
        legacy_id,
        kind: kind.into(),
        hub_id,
        submitter,
        migrated_at: ctx.timestamp,
    });
}

/// The hub tenant a legacy organization became.
fn migrated_tenant(ctx: &ReducerContext, tenant_legacy_id: &str) -> Result<u64, String> {
    ctx.db
        .legacy_record()
        .legacy_id()
        .find(tenant_legacy_id.to_string())
        .filter(|record| record.kind == "tenant")
        .map(|record| record.hub_id)
        .ok_or_else(|| format!("its organization {tenant_legacy_id} was not migrated"))
}

/// What every `migrate_*` shares: the admin only, one batch, and each record
/// skipped when its legacy id is mapped already, or else written by `write`,
/// whose refusal names the record (`task:7: …`) and undoes the batch.
fn migrate_batch<R>(
    ctx: &ReducerContext,
    batch: Vec<R>,
    legacy_id: fn(&R) -> &str,
    mut write: impl FnMut(R) -> Result<(), String>,
) -> Result<(), String> {
    require_admin(ctx, "migrate")?;
    rules::migration::check_batch(batch.len())?;
    for record in batch {
        let id = legacy_id(&record).to_string();
        rules::migration::check_legacy_id(&id).map_err(|e| format!("{id}: {e}"))?;
        if !migrated(ctx, &id) {
            write(record).map_err(|e| format!("{id}: {e}"))?;
        }
    }
    Ok(())
}

#[reducer]
pub fn migrate_tenants(ctx: &ReducerContext, batch: Vec<MigratedTenant>) -> Result<(), String> {
    migrate_batch(
        ctx,
        batch,
        |t| &t.legacy_id,
        |record| {
            rules::migration::check_tenant_name(&record.name)?;
            // No identity owns it until its owner's claim code is used.
            let tenant = ctx.db.tenant().insert(Tenant {
                id: 0,
                name: record.name,
                owner: Identity::ZERO,
                created_at: Timestamp::from_micros_since_unix_epoch(record.created_at_micros),
            });
            map_legacy(ctx, record.legacy_id, "tenant", tenant.id, String::new());
            Ok(())
        },
    )
}

#[reducer]
pub fn migrate_members(ctx: &ReducerContext, batch: Vec<MigratedMember>) -> Result<(), String> {
    migrate_batch(
        ctx,
        batch,
        |m| &m.legacy_id,
        |record| {
            let role = rules::migration::MigratedRole::parse(&record.role)?;
            rules::migration::check_label(&record.label)?;
            let tenant_id = migrated_tenant(ctx, &record.tenant_legacy_id)?;
            if role == rules::migration::MigratedRole::Owner {
                let owner_name = rules::migration::MigratedRole::Owner.name();
                if let Some(other) = ctx.db.legacy_claim().tenant_id().filter(tenant_id).find(|c| c.role == owner_name)
                {
                    return Err(format!("its organization already has an owner, {}", other.legacy_id));
                }
            }
            rules::secrets::check_code_hash(&record.code_hash)?;
            if ctx.db.legacy_claim().code().find(&record.code_hash).is_some() {
                return Err("its claim code is another user's: make a fresh one".into());
            }
            ctx.db.legacy_claim().insert(LegacyClaim {
                code: record.code_hash,
                legacy_id: record.legacy_id.clone(),
                tenant_id,
                role: role.name().into(),
                label: record.label,
                claimed_by: Identity::ZERO,
                claimed_at: None,
            });
            map_legacy(ctx, record.legacy_id, "member", tenant_id, String::new());
            Ok(())
        },
    )
}

/// The admin gives unclaimed migrated users new claim codes (`heiwa
/// migrate` does, for users whose code it does not know: made by an older
/// hub, whose codes could be guessed, or a journal lost). Their old codes
/// stop working. One transaction: a bad record refuses the batch, naming it.
#[reducer]
pub fn reissue_claims(ctx: &ReducerContext, batch: Vec<ReissuedClaim>) -> Result<(), String> {
    require_admin(ctx, "re-issue claim codes")?;
    rules::migration::check_batch(batch.len())?;
    for record in batch {
        let id = record.legacy_id;
        rules::secrets::check_code_hash(&record.code_hash).map_err(|e| format!("{id}: {e}"))?;
        let claim =
            ctx.db.legacy_claim().legacy_id().find(&id).ok_or_else(|| format!("{id}: no such migrated user"))?;
        if claim.claimed_by != Identity::ZERO {
            return Err(format!("{id}: already claimed"));
        }
        if ctx.db.legacy_claim().code().find(&record.code_hash).is_some() {
            return Err(format!("{id}: that code is taken: make a fresh one"));
        }
        ctx.db.legacy_claim().code().delete(&claim.code);
        ctx.db.legacy_claim().insert(LegacyClaim { code: record.code_hash, ..claim });
    }
    Ok(())
}

#[reducer]
pub fn migrate_tasks(ctx: &ReducerContext, batch: Vec<MigratedTask>) -> Result<(), String> {
    let config = config(ctx)?;
    migrate_batch(
        ctx,
        batch,
        |t| &t.legacy_id,
        |record| {
            let state = rules::migration::migrated_state(&record.state)?;
            rules::migration::check_migrated_task(state, &record.payload, &record.summary, &record.reason)?;
            rules::check_model(&record.model)?;
            let tenant_id = migrated_tenant(ctx, &record.tenant_legacy_id)?;
            let submitter = ctx.db.legacy_claim().legacy_id().find(&record.submitter_legacy_id);
            if !record.submitter_legacy_id.is_empty() && submitter.as_ref().is_none_or(|c| c.tenant_id != tenant_id) {
                let submitter = &record.submitter_legacy_id;
                return Err(format!("its submitter {submitter} is not a migrated member of its organization"));
            }
            // Already claimed: the task is that identity's at once.
            let submitted_by = submitter.map_or(Identity::ZERO, |c| c.claimed_by);
            // `updated_at` is the cutover's time, so the retention counts from it
            // and a finished legacy task is not pruned at the next sweep.
            let task = ctx.db.task().insert(Task {
                id: 0,
                tenant_id,
                submitted_by,
                payload: record.payload,
                model: record.model,
                state,
                assigned_to: 0,
                assignee: Identity::ZERO,
                attempts: 0,
                reason: record.reason,
                created_at: Timestamp::from_micros_since_unix_epoch(record.created_at_micros),
                updated_at: ctx.timestamp,
            });
            map_legacy(ctx, record.legacy_id, "task", task.id, record.submitter_legacy_id);
            if state == TaskState::Done {
                ctx.db.task_result().insert(TaskResult {
                    task_id: task.id,
                    tenant_id,
                    limb_id: 0,
                    limb_identity: Identity::ZERO,
                    summary: record.summary,
                    finished_at: Timestamp::from_micros_since_unix_epoch(record.finished_at_micros),
                });
            }
            if rules::is_finished(state) {
                mirror(ctx, &task);
            } else {
                // Open work counts against the tenant's quota like any other (the
                // admin's import is never refused by it), and goes to a limb.
                let usage = usage(ctx, tenant_id, &config);
                ctx.db.tenant_usage().tenant_id().update(TenantUsage { open_tasks: usage.open_tasks + 1, ..usage });
                place(ctx, task);
            }
            Ok(())
        },
    )
}
