//! Heiwa hub module. Tables are the API; reducers are thin: load rows, ask
//! [`rules`] (the `hub-rules` crate), write. A reducer runs in one transaction: it commits whole or
//! returns `Err` and changes nothing.
//!
//! Tenancy: an Identity belongs to at most one tenant, as its owner (who
//! created it) or as a limb (which joined with an invite). Every table a
//! client can read is filtered by row-level security to the caller's tenant,
//! and every reducer checks the caller against the row it touches.

pub use hub_rules as rules;

pub use rules::TaskState;
use spacetimedb::{
    client_visibility_filter, reducer, table, Filter, Identity, ReducerContext, ScheduleAt, SpacetimeType, Table,
    TimeDuration, Timestamp,
};
use std::time::Duration;

#[derive(SpacetimeType, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Limb,
}

#[table(name = tenant, public)]
pub struct Tenant {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    pub name: String,
    pub owner: Identity,
    pub created_at: Timestamp,
}

#[table(name = member, public)]
pub struct Member {
    #[primary_key]
    pub identity: Identity,
    #[index(btree)]
    pub tenant_id: u64,
    pub role: Role,
}

/// A code the owner hands to a new limb; visible only to the owner who made it.
#[table(name = invite, public)]
pub struct Invite {
    #[primary_key]
    pub code: String,
    pub tenant_id: u64,
    #[index(btree)]
    pub created_by: Identity,
    pub uses_left: u32,
    pub expires_at: Timestamp,
}

#[table(name = limb, public)]
pub struct Limb {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    #[unique]
    pub identity: Identity,
    pub name: String,
    /// How long this limb's claims live without a heartbeat.
    pub lease_secs: u32,
    pub last_seen: Timestamp,
}

#[table(name = task, public)]
pub struct Task {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub submitted_by: Identity,
    pub payload: String,
    pub state: TaskState,
    pub claimed_by: Option<u64>,
    pub lease_until: Option<Timestamp>,
    pub attempts: u32,
    /// Why the task failed or was cancelled; empty otherwise.
    pub reason: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[table(name = task_result, public)]
pub struct TaskResult {
    #[primary_key]
    pub task_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub limb_id: u64,
    pub summary: String,
    pub finished_at: Timestamp,
}

/// Claims with a live lease: the sweep walks these, not every task.
#[table(name = lease)]
pub struct Lease {
    #[primary_key]
    pub task_id: u64,
    #[index(btree)]
    pub limb_id: u64,
    pub until: Timestamp,
}

#[table(name = lease_sweep, scheduled(expire_leases))]
pub struct LeaseSweep {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
}

// Row-level security: evaluated by the server for every subscription and query.
// Joins start from the caller's own `member` row (a primary-key lookup) so the
// server can maintain them with index joins; written the other way round,
// SpacetimeDB 1.2 refuses them for subscriptions.
#[client_visibility_filter]
const MEMBER_VISIBILITY: Filter = Filter::Sql("SELECT * FROM member WHERE identity = :sender");
#[client_visibility_filter]
const TENANT_VISIBILITY: Filter = Filter::Sql(
    "SELECT tenant.* FROM member JOIN tenant ON member.tenant_id = tenant.id WHERE member.identity = :sender",
);
#[client_visibility_filter]
const INVITE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM invite WHERE created_by = :sender");
#[client_visibility_filter]
const LIMB_VISIBILITY: Filter = Filter::Sql(
    "SELECT limb.* FROM member JOIN limb ON member.tenant_id = limb.tenant_id WHERE member.identity = :sender",
);
#[client_visibility_filter]
const TASK_VISIBILITY: Filter = Filter::Sql(
    "SELECT task.* FROM member JOIN task ON member.tenant_id = task.tenant_id WHERE member.identity = :sender",
);
#[client_visibility_filter]
const RESULT_VISIBILITY: Filter = Filter::Sql(
    "SELECT task_result.* FROM member JOIN task_result ON member.tenant_id = task_result.tenant_id WHERE member.identity = :sender",
);

const SWEEP_EVERY: Duration = Duration::from_millis(500);

#[reducer(init)]
pub fn init(ctx: &ReducerContext) {
    ctx.db.lease_sweep().insert(LeaseSweep { scheduled_id: 0, scheduled_at: ScheduleAt::Interval(SWEEP_EVERY.into()) });
}

fn micros(t: Timestamp) -> i64 {
    t.to_micros_since_unix_epoch()
}

fn membership(ctx: &ReducerContext) -> Result<Member, String> {
    ctx.db.member().identity().find(ctx.sender).ok_or_else(|| "you are not a member of any tenant".to_string())
}

/// The caller's own limb. Errors never reveal whether another tenant's row exists.
fn own_limb(ctx: &ReducerContext, limb_id: u64) -> Result<Limb, String> {
    ctx.db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.identity == ctx.sender)
        .ok_or_else(|| format!("no limb {limb_id} of yours"))
}

fn tenant_task(ctx: &ReducerContext, tenant_id: u64, task_id: u64) -> Result<Task, String> {
    ctx.db
        .task()
        .id()
        .find(task_id)
        .filter(|task| task.tenant_id == tenant_id)
        .ok_or_else(|| format!("no task {task_id} in your tenant"))
}

/// The task `limb_id` (the caller's) holds with a live lease.
fn held_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(Limb, Task), String> {
    let limb = own_limb(ctx, limb_id)?;
    let task = tenant_task(ctx, limb.tenant_id, task_id)?;
    rules::check_holder(
        task_id,
        task.state,
        task.claimed_by,
        task.lease_until.map(micros),
        limb.id,
        micros(ctx.timestamp),
    )?;
    Ok((limb, task))
}

fn finish(ctx: &ReducerContext, task: Task, state: TaskState, reason: String) {
    ctx.db.lease().task_id().delete(task.id);
    ctx.db.task().id().update(Task {
        state,
        reason,
        claimed_by: None,
        lease_until: None,
        updated_at: ctx.timestamp,
        ..task
    });
}

#[reducer]
pub fn create_tenant(ctx: &ReducerContext, name: String) -> Result<(), String> {
    rules::check_name("tenant", &name)?;
    if ctx.db.member().identity().find(ctx.sender).is_some() {
        return Err("you already belong to a tenant".into());
    }
    let tenant = ctx.db.tenant().insert(Tenant { id: 0, name, owner: ctx.sender, created_at: ctx.timestamp });
    ctx.db.member().insert(Member { identity: ctx.sender, tenant_id: tenant.id, role: Role::Owner });
    Ok(())
}

#[reducer]
pub fn create_invite(ctx: &ReducerContext, uses: u32, ttl_secs: u32) -> Result<(), String> {
    let member = membership(ctx)?;
    if member.role != Role::Owner {
        return Err("only the tenant's owner can invite limbs".into());
    }
    if uses == 0 || uses > 10_000 || ttl_secs == 0 || ttl_secs > 30 * 86_400 {
        return Err("an invite needs 1 to 10000 uses and a lifetime of 1 s to 30 days".into());
    }
    let code = format!("{:016x}{:016x}", ctx.random::<u64>(), ctx.random::<u64>());
    let expires_at = ctx.timestamp + TimeDuration::from(Duration::from_secs(ttl_secs.into()));
    ctx.db.invite().insert(Invite {
        code,
        tenant_id: member.tenant_id,
        created_by: ctx.sender,
        uses_left: uses,
        expires_at,
    });
    Ok(())
}

#[reducer]
pub fn join_tenant(ctx: &ReducerContext, code: String) -> Result<(), String> {
    if ctx.db.member().identity().find(ctx.sender).is_some() {
        return Err("you already belong to a tenant".into());
    }
    let invite = ctx.db.invite().code().find(&code).ok_or("unknown or used-up invite code")?;
    if micros(invite.expires_at) < micros(ctx.timestamp) {
        ctx.db.invite().code().delete(&code);
        return Err("this invite has expired".into());
    }
    ctx.db.member().insert(Member { identity: ctx.sender, tenant_id: invite.tenant_id, role: Role::Limb });
    if invite.uses_left <= 1 {
        ctx.db.invite().code().delete(&code);
    } else {
        ctx.db.invite().code().update(Invite { uses_left: invite.uses_left - 1, ..invite });
    }
    Ok(())
}

/// Register the caller as a limb, or rename it and change its lease if it is one.
#[reducer]
pub fn register_limb(ctx: &ReducerContext, name: String, lease_secs: u32) -> Result<(), String> {
    rules::check_name("limb", &name)?;
    rules::check_lease_secs(lease_secs)?;
    let member = membership(ctx)?;
    match ctx.db.limb().identity().find(ctx.sender) {
        Some(limb) => {
            ctx.db.limb().id().update(Limb { name, lease_secs, last_seen: ctx.timestamp, ..limb });
        }
        None => {
            ctx.db.limb().insert(Limb {
                id: 0,
                tenant_id: member.tenant_id,
                identity: ctx.sender,
                name,
                lease_secs,
                last_seen: ctx.timestamp,
            });
        }
    }
    Ok(())
}

/// The limb is alive: renew the lease of every task it holds.
#[reducer]
pub fn heartbeat(ctx: &ReducerContext, limb_id: u64) -> Result<(), String> {
    let limb = own_limb(ctx, limb_id)?;
    let until = ctx.timestamp + TimeDuration::from(Duration::from_secs(limb.lease_secs.into()));
    for lease in ctx.db.lease().limb_id().filter(limb_id).collect::<Vec<_>>() {
        if let Some(task) = ctx.db.task().id().find(lease.task_id) {
            ctx.db.task().id().update(Task { lease_until: Some(until), ..task });
        }
        ctx.db.lease().task_id().update(Lease { until, ..lease });
    }
    ctx.db.limb().id().update(Limb { last_seen: ctx.timestamp, ..limb });
    Ok(())
}

#[reducer]
pub fn submit_task(ctx: &ReducerContext, payload: String) -> Result<(), String> {
    rules::check_payload(&payload)?;
    let member = membership(ctx)?;
    ctx.db.task().insert(Task {
        id: 0,
        tenant_id: member.tenant_id,
        submitted_by: ctx.sender,
        payload,
        state: TaskState::Pending,
        claimed_by: None,
        lease_until: None,
        attempts: 0,
        reason: String::new(),
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    });
    Ok(())
}

/// Atomic: of racing callers exactly one sees the task `Pending`.
#[reducer]
pub fn claim_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(), String> {
    let limb = own_limb(ctx, limb_id)?;
    let task = tenant_task(ctx, limb.tenant_id, task_id)?;
    rules::check_claim(task_id, task.state)?;
    let until = ctx.timestamp + TimeDuration::from(Duration::from_secs(limb.lease_secs.into()));
    ctx.db.lease().insert(Lease { task_id, limb_id, until });
    ctx.db.task().id().update(Task {
        state: TaskState::Claimed,
        claimed_by: Some(limb_id),
        lease_until: Some(until),
        attempts: task.attempts + 1,
        updated_at: ctx.timestamp,
        ..task
    });
    Ok(())
}

#[reducer]
pub fn complete_task(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String) -> Result<(), String> {
    rules::check_summary(&summary)?;
    let (limb, task) = held_task(ctx, task_id, limb_id)?;
    ctx.db.task_result().insert(TaskResult {
        task_id,
        tenant_id: limb.tenant_id,
        limb_id,
        summary,
        finished_at: ctx.timestamp,
    });
    finish(ctx, task, TaskState::Done, String::new());
    Ok(())
}

#[reducer]
pub fn fail_task(ctx: &ReducerContext, task_id: u64, limb_id: u64, reason: String) -> Result<(), String> {
    rules::check_reason(&reason)?;
    let (_, task) = held_task(ctx, task_id, limb_id)?;
    finish(ctx, task, TaskState::Failed, reason);
    Ok(())
}

/// Give a held task back (a limb shutting down or pausing): it is claimable again.
#[reducer]
pub fn release_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(), String> {
    let (_, task) = held_task(ctx, task_id, limb_id)?;
    finish(ctx, task, TaskState::Pending, String::new());
    Ok(())
}

/// The submitter or the tenant's owner may cancel a pending or claimed task.
#[reducer]
pub fn cancel_task(ctx: &ReducerContext, task_id: u64) -> Result<(), String> {
    let member = membership(ctx)?;
    let task = tenant_task(ctx, member.tenant_id, task_id)?;
    if task.submitted_by != ctx.sender && member.role != Role::Owner {
        return Err(format!("only the submitter or the tenant's owner can cancel task {task_id}"));
    }
    rules::check_cancel(task_id, task.state)?;
    finish(ctx, task, TaskState::Cancelled, "cancelled".into());
    Ok(())
}

/// Scheduled: return tasks whose lease ran out to `Pending` (or fail them after
/// too many attempts). Only the scheduler may call it.
#[reducer]
pub fn expire_leases(ctx: &ReducerContext, _sweep: LeaseSweep) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err("expire_leases is run by the hub's scheduler only".into());
    }
    let now = micros(ctx.timestamp);
    let expired: Vec<Lease> = ctx.db.lease().iter().filter(|lease| micros(lease.until) < now).collect();
    for lease in expired {
        let Some(task) = ctx.db.task().id().find(lease.task_id) else {
            ctx.db.lease().task_id().delete(lease.task_id);
            continue;
        };
        let next = rules::after_lease_expiry(task.attempts);
        let reason =
            if next == TaskState::Failed { format!("lease expired {} times", task.attempts) } else { String::new() };
        finish(ctx, task, next.into(), reason);
    }
    Ok(())
}
