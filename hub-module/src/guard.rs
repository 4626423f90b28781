//! Checks a reducer makes before it touches a row: who the caller is (the
//! hub's admin, a tenant's member, owner, steward or submitter) and whether
//! the limb or task it names is its own. Each returns the row it checked or
//! the refusal; none writes. An error never reveals whether another tenant's
//! row exists.

use crate::*;

/// The hub's configuration, when the caller is its admin (who published it).
pub(crate) fn require_admin(ctx: &ReducerContext, to: &str) -> Result<HubConfig, String> {
    let config = config(ctx)?;
    if ctx.sender != config.admin {
        return Err(format!("only the hub's admin (who published it) can {to}"));
    }
    Ok(config)
}

pub(crate) fn require_member(ctx: &ReducerContext) -> Result<Member, String> {
    ctx.db.member().identity().find(ctx.sender).ok_or_else(|| "you are not a member of any tenant".to_string())
}

pub(crate) fn require_owner(ctx: &ReducerContext) -> Result<Member, String> {
    let member = require_member(ctx)?;
    if member.role != Role::Owner {
        return Err("only the tenant's owner can do that".into());
    }
    Ok(member)
}

/// The caller, when it is the tenant's owner or one of its operators (the admin bot).
pub(crate) fn require_steward(ctx: &ReducerContext) -> Result<Member, String> {
    let member = require_member(ctx)?;
    if member.role != Role::Owner && !is_operator(ctx, &member) {
        return Err("only the tenant's owner or an operator can do that".into());
    }
    Ok(member)
}

pub(crate) fn is_operator(ctx: &ReducerContext, member: &Member) -> bool {
    ctx.db.operator().identity().find(member.identity).is_some_and(|op| op.tenant_id == member.tenant_id)
}

/// The caller's own limb. Errors never reveal whether another tenant's row exists.
pub(crate) fn own_limb(ctx: &ReducerContext, limb_id: u64) -> Result<Limb, String> {
    ctx.db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.identity == ctx.sender)
        .ok_or_else(|| format!("no limb {limb_id} of yours"))
}

pub(crate) fn tenant_task(ctx: &ReducerContext, tenant_id: u64, task_id: u64) -> Result<Task, String> {
    ctx.db
        .task()
        .id()
        .find(task_id)
        .filter(|task| task.tenant_id == tenant_id)
        .ok_or_else(|| format!("no task {task_id} in your tenant"))
}

/// The task `limb_id` (the caller's) holds with a live lease. A limb that is
/// not the holder learns nothing about the task but that it is not its own.
pub(crate) fn held_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(Limb, Task), String> {
    let limb = own_limb(ctx, limb_id)?;
    let task = tenant_task(ctx, limb.tenant_id, task_id)?;
    let lease = ctx.db.lease().task_id().find(task_id).map(|lease| micros(lease.until));
    rules::check_holder(task_id, task.state, task.assigned_to, lease, limb.id, micros(ctx.timestamp))?;
    Ok((limb, task))
}

/// The caller, if it may submit.
pub(crate) fn require_submitter(ctx: &ReducerContext) -> Result<Member, String> {
    let member = require_member(ctx)?;
    if !member.submits {
        return Err("you may not submit tasks to this tenant; its owner can grant it".into());
    }
    Ok(member)
}
