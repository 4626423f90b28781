//! The hub's scheduled sweeps: leases that ran out (their tasks go back to
//! `Pending` or fail, silent limbs go offline) and finished tasks past the
//! retention, a batch per pass.

use crate::limbs::set_online;
use crate::placement::refresh_ready;
use crate::tasks::finish;
use crate::*;

pub(crate) const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// Finished tasks one prune pass deletes at most, so a pass stays short.
const PRUNE_BATCH: usize = 5_000;

/// Scheduled: limbs not heard from within their lease are offline (no new
/// work); tasks whose lease ran out go back to `Pending` and to another limb
/// (or fail after too many attempts). Only the scheduler may call it.
#[reducer]
pub fn expire_leases(ctx: &ReducerContext, _sweep: LeaseSweep) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err("expire_leases is run by the hub's scheduler only".into());
    }
    let now = micros(ctx.timestamp);
    let expired: Vec<Lease> = ctx.db.lease().iter().filter(|lease| micros(lease.until) < now).collect();
    let mut suspects: Vec<u64> = ctx.db.ready().iter().map(|ready| ready.limb_id).collect();
    suspects.extend(expired.iter().map(|lease| lease.limb_id));
    for limb_id in suspects {
        let (Some(limb), Some(presence)) =
            (ctx.db.limb().id().find(limb_id), ctx.db.presence().limb_id().find(limb_id))
        else {
            continue;
        };
        let silent_micros = now - micros(presence.last_seen);
        if limb.online && silent_micros > i64::from(limb.lease_secs) * 1_000_000 {
            let limb = set_online(ctx, limb, false);
            refresh_ready(ctx, &limb);
        }
    }
    for lease in expired {
        let Some(task) = ctx.db.task().id().find(lease.task_id) else {
            ctx.db.lease().task_id().delete(lease.task_id);
            continue;
        };
        let next = rules::after_lease_expiry(task.attempts);
        let reason =
            if next == TaskState::Failed { format!("lease expired {} times", task.attempts) } else { String::new() };
        finish(ctx, task, next, reason);
    }
    Ok(())
}

/// Scheduled: delete finished tasks (and their results) older than the
/// retention, a batch per pass. Owners export first with `heiwa task export`.
#[reducer]
pub fn prune_finished(ctx: &ReducerContext, _sweep: PruneSweep) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err("prune_finished is run by the hub's scheduler only".into());
    }
    let config = config(ctx)?;
    let now = micros(ctx.timestamp);
    let old: Vec<u64> = ctx
        .db
        .task()
        .iter()
        .filter(|task| rules::is_prunable(task.state, micros(task.updated_at), now, config.retain_secs))
        .take(PRUNE_BATCH)
        .map(|task| task.id)
        .collect();
    for task_id in old {
        crate::credit::forfeit(ctx, task_id);
        ctx.db.task_result().task_id().delete(task_id);
        ctx.db.result_proof().task_id().delete(task_id);
        ctx.db.task_copy().task_id().delete(task_id);
        ctx.db.replica_set().task_id().delete(task_id);
        ctx.db.score_check().set_id().delete(task_id);
        ctx.db.task().id().delete(task_id);
        ctx.db.tenant_task().id().delete(task_id);
    }
    let old_keys: Vec<String> = ctx
        .db
        .submit_key()
        .iter()
        .filter(|key| rules::is_past_retention(micros(key.at), now, config.retain_secs))
        .take(PRUNE_BATCH)
        .map(|key| key.key)
        .collect();
    for key in old_keys {
        ctx.db.submit_key().key().delete(&key);
    }
    crate::credit::roll_up(ctx, now, config.retain_secs, PRUNE_BATCH);
    Ok(())
}
