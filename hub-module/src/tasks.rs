//! A task's life: submitted (once per key, replicated or scored, within the
//! tenant's quotas), completed (signed or not), failed, released, reported
//! late or cancelled. Every change of state goes through [`finish`], which
//! frees the holder's slot, judges a finished copy and places a task that is
//! pending again.

use crate::credit::Payee;
use crate::guard::{held_task, is_operator, own_limb, require_member, require_submitter, tenant_task};
use crate::placement::{fill, place, place_ranked};
use crate::quorum::judge;
use crate::*;

pub(crate) fn usage(ctx: &ReducerContext, tenant_id: u64, config: &HubConfig) -> TenantUsage {
    ctx.db.tenant_usage().tenant_id().find(tenant_id).unwrap_or_else(|| {
        let bucket = rules::Bucket::full(config.submit_burst, micros(ctx.timestamp));
        ctx.db.tenant_usage().insert(TenantUsage {
            tenant_id,
            open_tasks: 0,
            milli_tokens: bucket.milli_tokens,
            refilled_at: ctx.timestamp,
        })
    })
}

/// Move a task to `state`. Its holder (if any) loses it and takes queued work
/// in its place; a task back to `Pending` is placed again at once.
pub(crate) fn finish(ctx: &ReducerContext, task: Task, state: TaskState, reason: String) {
    let copy = rules::is_finished(state).then(|| ctx.db.task_copy().task_id().find(task.id)).flatten();
    finish_copy(ctx, task, state, reason, copy);
}

/// [`finish`], the task's `task_copy` row (if it is a copy) already looked up:
/// a finished copy is judged and its credit settled.
fn finish_copy(ctx: &ReducerContext, task: Task, state: TaskState, reason: String, copy: Option<TaskCopy>) {
    let holder = task.assigned_to;
    let was_open = !rules::is_finished(task.state);
    ctx.db.lease().task_id().delete(task.id);
    ctx.db.pending().task_id().delete(task.id);
    let task = ctx.db.task().id().update(Task {
        state,
        reason,
        assigned_to: 0,
        assignee: Identity::ZERO,
        updated_at: ctx.timestamp,
        ..task
    });
    // A task back to `Pending` is copied once, where `place` puts it.
    if state != TaskState::Pending {
        mirror(ctx, &task);
    }
    if was_open && rules::is_finished(state) {
        if let Some(usage) = ctx.db.tenant_usage().tenant_id().find(task.tenant_id) {
            ctx.db
                .tenant_usage()
                .tenant_id()
                .update(TenantUsage { open_tasks: usage.open_tasks.saturating_sub(1), ..usage });
        }
    }
    if let Some(copy) = copy.filter(|_| rules::is_finished(state)) {
        judge(ctx, &copy);
        crate::credit::settle(ctx, &copy);
    }
    if let Some(limb) = ctx.db.limb().id().find(holder) {
        fill(ctx, &limb);
    }
    if state == TaskState::Pending {
        place(ctx, task);
    }
}

/// Submit a task; `model` pins it to limbs offering that model (empty: any).
#[reducer]
pub fn submit_task(ctx: &ReducerContext, payload: String, model: String) -> Result<(), String> {
    rules::check_payload(&payload)?;
    rules::check_model(&model)?;
    let member = require_submitter(ctx)?;
    accept_task(ctx, &member, payload, model, Check::Copies(1))
}

/// Submit a task at most once per `key` in the tenant: the same key again is
/// accepted and changes nothing. A producer that got no answer (a dropped
/// connection, a hub restart) sends again with the same key instead of guessing.
#[reducer]
pub fn submit_task_once(ctx: &ReducerContext, key: String, payload: String, model: String) -> Result<(), String> {
    rules::check_submit_key(&key)?;
    submit_task_replicated(ctx, key, payload, model, 1)
}

/// Submit a task to be answered by `replicas` limbs of different donors and
/// decided by their agreement (1: one limb, as `submit_task`). `key`, when not
/// empty, makes it idempotent as in `submit_task_once`.
#[reducer]
pub fn submit_task_replicated(
    ctx: &ReducerContext,
    key: String,
    payload: String,
    model: String,
    replicas: u32,
) -> Result<(), String> {
    rules::check_replicas(replicas)?;
    rules::check_payload(&payload)?;
    rules::check_model(&model)?;
    submit_keyed(ctx, key, payload, model, Check::Copies(replicas))
}

/// Submit a greedy generation (`rules::generate_payload`) pinned to `model`,
/// checked by scoring: a limb of another donor with the same model scores the
/// answer teacher-forced, a fraction of generating it again. `key` as in
/// `submit_task_replicated`.
#[reducer]
pub fn submit_task_scored(ctx: &ReducerContext, key: String, payload: String, model: String) -> Result<(), String> {
    rules::check_payload(&payload)?;
    rules::check_model(&model)?;
    rules::check_scored(&payload, &model)?;
    submit_keyed(ctx, key, payload, model, Check::Score)
}

/// How a task's answer is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// By this many copies on different donors' limbs (1: not checked).
    Copies(u32),
    /// By scoring on another donor's limb.
    Score,
}

/// Accept a task once per non-empty `key` in the tenant.
fn submit_keyed(ctx: &ReducerContext, key: String, payload: String, model: String, check: Check) -> Result<(), String> {
    let member = require_submitter(ctx)?;
    if key.is_empty() {
        return accept_task(ctx, &member, payload, model, check);
    }
    rules::check_submit_key(&key)?;
    let tenant_key = format!("{}:{key}", member.tenant_id);
    if ctx.db.submit_key().key().find(&tenant_key).is_some() {
        return Ok(());
    }
    accept_task(ctx, &member, payload, model, check)?;
    ctx.db.submit_key().insert(SubmitKey { key: tenant_key, at: ctx.timestamp });
    Ok(())
}

/// The quotas, then a new task, placed at once.
fn accept_task(
    ctx: &ReducerContext,
    member: &Member,
    payload: String,
    model: String,
    check: Check,
) -> Result<(), String> {
    let config = config(ctx)?;
    let usage = usage(ctx, member.tenant_id, &config);
    rules::check_open_tasks(usage.open_tasks, config.max_open_tasks)?;
    let bucket = rules::take_submit(
        rules::Bucket { milli_tokens: usage.milli_tokens, at: micros(usage.refilled_at) },
        micros(ctx.timestamp),
        config.submits_per_sec,
        config.submit_burst,
    )?;
    ctx.db.tenant_usage().tenant_id().update(TenantUsage {
        open_tasks: usage.open_tasks + 1,
        milli_tokens: bucket.milli_tokens,
        refilled_at: ctx.timestamp,
        ..usage
    });
    let task = ctx.db.task().insert(Task {
        id: 0,
        tenant_id: member.tenant_id,
        submitted_by: ctx.sender,
        payload,
        model,
        state: TaskState::Pending,
        assigned_to: 0,
        assignee: Identity::ZERO,
        attempts: 0,
        reason: String::new(),
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    });
    let replicas = match check {
        Check::Copies(replicas) => replicas,
        // The generation and its first scorer.
        Check::Score => 2,
    };
    if check == Check::Score {
        ctx.db.score_check().insert(ScoreCheck { set_id: task.id });
    }
    if replicas > 1 {
        ctx.db.replica_set().insert(ReplicaSet {
            task_id: task.id,
            tenant_id: task.tenant_id,
            replicas,
            copies: vec![task.id],
            verdict: QuorumState::Open,
            answer: String::new(),
            agreeing: Vec::new(),
            note: String::new(),
            updated_at: ctx.timestamp,
        });
        ctx.db.task_copy().insert(TaskCopy { task_id: task.id, set_id: task.id });
    }
    let rank = crate::credit::queue_rank(ctx, member);
    place_ranked(ctx, task, rank);
    Ok(())
}

#[reducer]
pub fn complete_task(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String) -> Result<(), String> {
    complete(ctx, task_id, limb_id, summary, Signed::No).map(|_| ())
}

/// Whether a result comes with its limb's signed statement: only a signed one
/// earns credit, paid to the call's `Payee`.
enum Signed<'a> {
    Yes(&'a mut Payee),
    No,
}

/// A result with the statement its limb signed about it (heiwa-provenance),
/// kept beside it for anyone to check.
#[reducer]
pub fn complete_task_signed(
    ctx: &ReducerContext,
    task_id: u64,
    limb_id: u64,
    summary: String,
    statement: String,
    signature: Vec<u8>,
) -> Result<(), String> {
    let mut payee = Payee::new(own_limb(ctx, limb_id)?);
    complete_signed(ctx, &mut payee, SignedResult { task_id, summary, statement, signature })?;
    payee.add_earned_to_sums(ctx);
    Ok(())
}

/// One signed result of a batch ([`complete_tasks_signed`]).
#[derive(SpacetimeType)]
pub struct SignedResult {
    pub task_id: u64,
    pub summary: String,
    pub statement: String,
    pub signature: Vec<u8>,
}

/// The signed results a limb finished together, in one transaction: the hub
/// commits, and tells each subscriber, once for them all instead of once per
/// result. Each is checked as [`complete_task_signed`] checks one (before
/// anything is written); one that is refused (its lease ran out, it is not the
/// limb's) is left out and the others are kept: the limb reads which it has a
/// result row for, as it reads a single call's refusal.
#[reducer]
pub fn complete_tasks_signed(ctx: &ReducerContext, limb_id: u64, results: Vec<SignedResult>) -> Result<(), String> {
    let mut payee = Payee::new(own_limb(ctx, limb_id)?);
    if results.len() > rules::MAX_RESULT_BATCH {
        return Err(format!("at most {} results in one call, not {}", rules::MAX_RESULT_BATCH, results.len()));
    }
    for result in results {
        // A refused result changed nothing (every check comes before a write).
        let _ = complete_signed(ctx, &mut payee, result);
    }
    payee.add_earned_to_sums(ctx);
    Ok(())
}

fn complete_signed(ctx: &ReducerContext, payee: &mut Payee, result: SignedResult) -> Result<(), String> {
    let SignedResult { task_id, summary, statement, signature } = result;
    rules::check_proof(&statement, &signature)?;
    let limb_id = payee.limb_id();
    let tenant_id = complete(ctx, task_id, limb_id, summary, Signed::Yes(payee))?;
    ctx.db.result_proof().insert(ResultProof { task_id, tenant_id, limb_id, statement, signature });
    Ok(())
}

/// Record `summary` as the result of a task `limb_id` holds; the tenant's id.
fn complete(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String, signed: Signed) -> Result<u64, String> {
    rules::check_summary(&summary)?;
    let (limb, task) = held_task(ctx, task_id, limb_id)?;
    let copy = ctx.db.task_copy().task_id().find(task_id);
    if let Signed::Yes(payee) = signed {
        crate::credit::on_result(ctx, payee, &task, &summary, copy.is_some());
    }
    ctx.db.task_result().insert(TaskResult {
        task_id,
        tenant_id: limb.tenant_id,
        limb_id,
        limb_identity: limb.identity,
        summary,
        finished_at: ctx.timestamp,
    });
    if let Some(stats) = ctx.db.limb_stats().limb_id().find(limb_id) {
        ctx.db.limb_stats().limb_id().update(LimbStats { tasks_done: stats.tasks_done + 1, ..stats });
    }
    finish_copy(ctx, task, TaskState::Done, String::new(), copy);
    Ok(limb.tenant_id)
}

/// A limb delivers a result for a task that is no longer its own (it was
/// away past its lease and the task went on without it): recorded as a late
/// attempt, so it is not lost silently; the task keeps its first result.
#[reducer]
pub fn report_late_result(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String) -> Result<(), String> {
    rules::check_summary(&summary)?;
    let limb = own_limb(ctx, limb_id)?;
    let task = tenant_task(ctx, limb.tenant_id, task_id)?;
    if task.state == TaskState::Claimed && task.assigned_to == limb_id {
        return Err(format!("task {task_id} is still yours: complete it"));
    }
    ctx.db.late_result().insert(LateResult {
        id: 0,
        tenant_id: limb.tenant_id,
        task_id,
        limb_id,
        summary,
        at: ctx.timestamp,
    });
    Ok(())
}

#[reducer]
pub fn fail_task(ctx: &ReducerContext, task_id: u64, limb_id: u64, reason: String) -> Result<(), String> {
    rules::check_reason(&reason)?;
    let (_, task) = held_task(ctx, task_id, limb_id)?;
    finish(ctx, task, TaskState::Failed, reason);
    Ok(())
}

/// Give a held task back (a limb shutting down or pausing offers 0 slots
/// first): it goes to another limb, or waits for one.
#[reducer]
pub fn release_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(), String> {
    let (_, task) = held_task(ctx, task_id, limb_id)?;
    finish(ctx, task, TaskState::Pending, String::new());
    Ok(())
}

/// The submitter, the tenant's owner or an operator may cancel a pending or claimed task.
#[reducer]
pub fn cancel_task(ctx: &ReducerContext, task_id: u64) -> Result<(), String> {
    let member = require_member(ctx)?;
    let task = tenant_task(ctx, member.tenant_id, task_id)?;
    if task.submitted_by != ctx.sender && member.role != Role::Owner && !is_operator(ctx, &member) {
        return Err(format!("only the submitter, the tenant's owner or an operator can cancel task {task_id}"));
    }
    rules::check_cancel(task_id, task.state)?;
    finish(ctx, task, TaskState::Cancelled, "cancelled".into());
    Ok(())
}
