//! What a tenant's owner and operators, and the hub's admin, steer: a limb's
//! grants and pause, revoking a browser or an operator, the hub's quotas and
//! retention.

use crate::guard::{require_admin, require_owner, require_steward};
use crate::placement::fill;
use crate::*;

/// The owner lets one of its limbs read the whole tenant and/or submit tasks (or takes that back).
#[reducer]
pub fn grant_limb(ctx: &ReducerContext, limb_id: u64, reads_tenant: bool, submits: bool) -> Result<(), String> {
    let member = require_owner(ctx)?;
    let limb = ctx
        .db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.tenant_id == member.tenant_id)
        .ok_or_else(|| format!("no limb {limb_id} in your tenant"))?;
    let granted = ctx.db.member().identity().find(limb.identity).ok_or("that limb is no longer a member")?;
    ctx.db.member().identity().update(Member { submits, ..granted });
    ctx.db.reader().identity().delete(limb.identity);
    if reads_tenant {
        ctx.db.reader().insert(Reader { identity: limb.identity, tenant_id: limb.tenant_id });
    }
    Ok(())
}

/// The owner takes a browser's access back: it reads nothing from now on and
/// is refused at its next connect.
#[reducer]
pub fn revoke_browser(ctx: &ReducerContext, browser: Identity) -> Result<(), String> {
    let member = require_owner(ctx)?;
    ctx.db
        .browser()
        .identity()
        .find(browser)
        .filter(|row| row.tenant_id == member.tenant_id)
        .ok_or("no such browser in your tenant")?;
    ctx.db.browser().identity().delete(browser);
    revoke(ctx, browser);
    Ok(())
}

/// The owner takes an operator's access back (the bot is retired, or its
/// hub token leaked): its rows go now, and it is refused at every connect.
#[reducer]
pub fn revoke_operator(ctx: &ReducerContext, operator: Identity) -> Result<(), String> {
    let member = require_owner(ctx)?;
    ctx.db
        .operator()
        .identity()
        .find(operator)
        .filter(|row| row.tenant_id == member.tenant_id)
        .ok_or("no such operator in your tenant")?;
    ctx.db.operator().identity().delete(operator);
    revoke(ctx, operator);
    Ok(())
}

/// A reading member (a browser, an operator) is no longer one, and never again.
fn revoke(ctx: &ReducerContext, identity: Identity) {
    ctx.db.reader().identity().delete(identity);
    ctx.db.member().identity().delete(identity);
    ctx.db.revoked().insert(Revoked { identity, at: ctx.timestamp });
}

/// The owner or an operator pauses (or resumes) one of the tenant's limbs:
/// paused, it is assigned nothing and offers nothing; what it runs finishes.
/// Resumed, its free slots fill at once.
#[reducer]
pub fn pause_limb(ctx: &ReducerContext, limb_id: u64, paused: bool, reason: String) -> Result<(), String> {
    let member = require_steward(ctx)?;
    rules::check_reason(&reason)?;
    let limb = ctx
        .db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.tenant_id == member.tenant_id)
        .ok_or_else(|| format!("no limb {limb_id} in your tenant"))?;
    let control = LimbControl {
        limb_id,
        tenant_id: limb.tenant_id,
        limb_identity: limb.identity,
        paused,
        by: ctx.sender,
        reason,
        at: ctx.timestamp,
    };
    if ctx.db.limb_control().limb_id().find(limb_id).is_some() {
        ctx.db.limb_control().limb_id().update(control);
    } else {
        ctx.db.limb_control().insert(control);
    }
    fill(ctx, &limb);
    Ok(())
}

/// The hub's admin sets the quotas and the retention for every tenant.
#[reducer]
pub fn configure_hub(
    ctx: &ReducerContext,
    max_open_tasks: u32,
    submits_per_sec: u32,
    submit_burst: u32,
    retain_secs: u64,
    prune_every_secs: u64,
) -> Result<(), String> {
    let config = require_admin(ctx, "configure it")?;
    if max_open_tasks == 0 || submit_burst == 0 || !(1..=86_400).contains(&prune_every_secs) {
        return Err("the open-task limit and the burst must be at least 1; prune every 1 s to 1 day".into());
    }
    ctx.db.hub_config().id().update(HubConfig {
        max_open_tasks,
        submits_per_sec,
        submit_burst,
        retain_secs,
        prune_every_secs,
        ..config
    });
    for sweep in ctx.db.prune_sweep().iter().collect::<Vec<_>>() {
        ctx.db.prune_sweep().scheduled_id().update(PruneSweep {
            scheduled_at: ScheduleAt::Interval(Duration::from_secs(prune_every_secs).into()),
            ..sweep
        });
    }
    Ok(())
}
