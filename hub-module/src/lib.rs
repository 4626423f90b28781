//! Heiwa hub module. Tables are the API; reducers are thin: load rows, ask
//! [`rules`], write. A task belongs to the tenant (the Identity) that submitted
//! it, and a client only ever receives its own tenant's rows.

pub mod rules;

use rules::Stage;
use spacetimedb::{client_visibility_filter, reducer, table, Filter, Identity, ReducerContext, SpacetimeType, Table, Timestamp};

#[derive(SpacetimeType, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Claimed,
    Done,
    Failed,
    Cancelled,
}

impl From<TaskState> for Stage {
    fn from(state: TaskState) -> Self {
        match state {
            TaskState::Pending => Stage::Pending,
            TaskState::Claimed => Stage::Claimed,
            TaskState::Done => Stage::Done,
            TaskState::Failed => Stage::Failed,
            TaskState::Cancelled => Stage::Cancelled,
        }
    }
}

#[table(name = limb, public)]
pub struct Limb {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant: Identity,
    pub name: String,
    pub last_seen: Timestamp,
}

#[table(name = task, public)]
pub struct Task {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant: Identity,
    pub payload: String,
    pub state: TaskState,
    pub claimed_by: Option<u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[table(name = task_result, public)]
pub struct TaskResult {
    #[primary_key]
    pub task_id: u64,
    #[index(btree)]
    pub tenant: Identity,
    pub limb_id: u64,
    pub summary: String,
    pub finished_at: Timestamp,
}

// Row-level security: evaluated by the server for every subscription and query.
#[client_visibility_filter]
const LIMB_VISIBILITY: Filter = Filter::Sql("SELECT * FROM limb WHERE tenant = :sender");
#[client_visibility_filter]
const TASK_VISIBILITY: Filter = Filter::Sql("SELECT * FROM task WHERE tenant = :sender");
#[client_visibility_filter]
const RESULT_VISIBILITY: Filter = Filter::Sql("SELECT * FROM task_result WHERE tenant = :sender");

/// The caller's own limb, or an error that does not reveal whether another
/// tenant's limb of that id exists.
fn own_limb(ctx: &ReducerContext, limb_id: u64) -> Result<Limb, String> {
    ctx.db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.tenant == ctx.sender)
        .ok_or_else(|| format!("no limb {limb_id} in your tenant"))
}

fn own_task(ctx: &ReducerContext, task_id: u64) -> Result<Task, String> {
    ctx.db
        .task()
        .id()
        .find(task_id)
        .filter(|task| task.tenant == ctx.sender)
        .ok_or_else(|| format!("no task {task_id} in your tenant"))
}

#[reducer]
pub fn register_limb(ctx: &ReducerContext, name: String) -> Result<(), String> {
    rules::check_limb_name(&name)?;
    ctx.db.limb().insert(Limb { id: 0, tenant: ctx.sender, name, last_seen: ctx.timestamp });
    Ok(())
}

#[reducer]
pub fn submit_task(ctx: &ReducerContext, payload: String) -> Result<(), String> {
    rules::check_payload(&payload)?;
    ctx.db.task().insert(Task {
        id: 0,
        tenant: ctx.sender,
        payload,
        state: TaskState::Pending,
        claimed_by: None,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    });
    Ok(())
}

/// Atomic: a reducer runs in one transaction, so of racing callers exactly one
/// sees the task `Pending`.
#[reducer]
pub fn claim_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(), String> {
    let limb = own_limb(ctx, limb_id)?;
    let task = own_task(ctx, task_id)?;
    rules::check_claim(task_id, task.state.into())?;
    ctx.db.task().id().update(Task {
        state: TaskState::Claimed,
        claimed_by: Some(limb.id),
        updated_at: ctx.timestamp,
        ..task
    });
    Ok(())
}

#[reducer]
pub fn complete_task(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String) -> Result<(), String> {
    rules::check_summary(&summary)?;
    let limb = own_limb(ctx, limb_id)?;
    let task = own_task(ctx, task_id)?;
    rules::check_complete(task_id, task.state.into(), task.claimed_by, limb.id)?;
    ctx.db.task().id().update(Task { state: TaskState::Done, updated_at: ctx.timestamp, ..task });
    ctx.db.task_result().insert(TaskResult {
        task_id,
        tenant: ctx.sender,
        limb_id: limb.id,
        summary,
        finished_at: ctx.timestamp,
    });
    Ok(())
}
