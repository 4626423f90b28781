//! Where work goes: a limb's free slots (`ready`), a pending task handed to
//! the oldest-waiting limb that may take it (`place`) or a freed limb given
//! the oldest task it can run (`fill`), each under a lease. A replicated
//! task's other copies are made and placed here when its first copy is
//! assigned, which is why replication's copying lives beside placement (each
//! calls the other); judging the answers is `quorum.rs`.

use crate::catalogue::task_queued;
use crate::*;

/// The tenant (owner or an operator) paused this limb.
fn paused(ctx: &ReducerContext, limb_id: u64) -> bool {
    ctx.db.limb_control().limb_id().find(limb_id).is_some_and(|control| control.paused)
}

fn held_count(ctx: &ReducerContext, limb_id: u64) -> u32 {
    ctx.db.lease().limb_id().filter(limb_id).count() as u32
}

/// Keep `ready` true to the limb: online with a free slot, or absent.
pub(crate) fn refresh_ready(ctx: &ReducerContext, limb: &Limb) {
    let free = rules::free_slots(limb.capacity, held_count(ctx, limb.id));
    let listed = ctx.db.ready().limb_id().find(limb.id).is_some();
    match (limb.online && free > 0 && !paused(ctx, limb.id), listed) {
        (true, false) => {
            ctx.db.ready().insert(Ready { limb_id: limb.id, tenant_id: limb.tenant_id });
        }
        (false, true) => {
            ctx.db.ready().limb_id().delete(limb.id);
        }
        _ => {}
    }
}

/// Hand a pending task to `limb` under a fresh lease.
fn assign(ctx: &ReducerContext, task: Task, limb: &Limb) {
    ctx.db.pending().task_id().delete(task.id);
    ctx.db.lease().insert(Lease { task_id: task.id, limb_id: limb.id, until: after(ctx, limb.lease_secs) });
    let task = ctx.db.task().id().update(Task {
        state: TaskState::Claimed,
        assigned_to: limb.id,
        assignee: limb.identity,
        attempts: task.attempts + 1,
        updated_at: ctx.timestamp,
        ..task
    });
    mirror(ctx, &task);
    if let Some(set) = ctx.db.replica_set().task_id().find(task.id) {
        if set.verdict == QuorumState::Open && set.copies.len() == 1 {
            replicate(ctx, set, &task, limb);
        }
    }
}

/// The submitted copy of a replicated task went to `limb`: make the other
/// copies now, unless `limb` is trusted: then whether it is spot-checked is
/// decided when its answer arrives ([`spot_check`]), so that nothing the limb
/// can read before it answers depends on that decision.
fn replicate(ctx: &ReducerContext, set: ReplicaSet, task: &Task, limb: &Limb) {
    if rules::is_trusted(trust_of(ctx, limb).streak) || is_scored(ctx, set.task_id) {
        // A scoring copy needs the answer: `judge_scored` makes it.
        return;
    }
    make_copies(ctx, set, task, String::new());
}

/// The other copies of a replicated task, placed at once.
pub(crate) fn make_copies(ctx: &ReducerContext, set: ReplicaSet, task: &Task, note: String) {
    let copies: Vec<Task> = (1..set.replicas).map(|_| new_copy(ctx, task, task.payload.clone(), set.task_id)).collect();
    let mut ids = set.copies.clone();
    ids.extend(copies.iter().map(|copy| copy.id));
    ctx.db.replica_set().task_id().update(ReplicaSet { copies: ids, note, updated_at: ctx.timestamp, ..set });
    for copy in copies {
        place(ctx, copy);
    }
}

/// One more copy of `task` in replica set `set_id`, asking `payload` (the
/// task's own, or a scoring of its answer), pending (the caller places it).
pub(crate) fn new_copy(ctx: &ReducerContext, task: &Task, payload: String, set_id: u64) -> Task {
    let copy = ctx.db.task().insert(Task {
        id: 0,
        state: TaskState::Pending,
        assigned_to: 0,
        assignee: Identity::ZERO,
        attempts: 0,
        reason: String::new(),
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
        tenant_id: task.tenant_id,
        submitted_by: task.submitted_by,
        payload,
        model: task.model.clone(),
    });
    ctx.db.task_copy().insert(TaskCopy { task_id: copy.id, set_id });
    if let Some(usage) = ctx.db.tenant_usage().tenant_id().find(task.tenant_id) {
        ctx.db.tenant_usage().tenant_id().update(TenantUsage { open_tasks: usage.open_tasks + 1, ..usage });
    }
    copy
}

pub(crate) fn trust_of(ctx: &ReducerContext, limb: &Limb) -> LimbTrust {
    ctx.db.limb_trust().limb_id().find(limb.id).unwrap_or_else(|| {
        ctx.db.limb_trust().insert(LimbTrust {
            limb_id: limb.id,
            tenant_id: limb.tenant_id,
            agreed: 0,
            disputed: 0,
            streak: 0,
            trusted_skips: 0,
            spot_checks: 0,
        })
    })
}

/// The donor a limb belongs to: the invite that admitted it, or itself.
pub(crate) fn donor_of(ctx: &ReducerContext, limb: &Limb) -> String {
    ctx.db.limb_origin().identity().find(limb.identity).map_or_else(|| limb.identity.to_hex().to_string(), |o| o.invite)
}

/// May `limb` take task `task_id`? Always, unless the task is a copy and a
/// limb of the same donor holds or answered another copy of it.
fn may_take(ctx: &ReducerContext, task_id: u64, limb: &Limb) -> bool {
    let Some(set) =
        ctx.db.task_copy().task_id().find(task_id).and_then(|c| ctx.db.replica_set().task_id().find(c.set_id))
    else {
        return true;
    };
    let donor = donor_of(ctx, limb);
    set.copies.iter().filter(|id| **id != task_id).all(|sibling| {
        let answered = ctx.db.task_result().task_id().find(*sibling).map(|r| r.limb_id);
        let held = ctx.db.task().id().find(*sibling).map(|t| t.assigned_to).filter(|id| *id != 0);
        answered.or(held).and_then(|id| ctx.db.limb().id().find(id)).is_none_or(|other| donor_of(ctx, &other) != donor)
    })
}

pub(crate) fn is_scored(ctx: &ReducerContext, set_id: u64) -> bool {
    ctx.db.score_check().set_id().find(set_id).is_some()
}

/// A queued task ranked ahead of the tenant's ordinary queue by its donor's
/// credit (`credit::queue_rank`). It stays in `pending` too, so that all
/// else about a queued task holds; a row whose task left the queue is
/// dropped when next read. Private.
#[table(name = priority_lane, index(name = by_tenant_rank, btree(columns = [tenant_id, rank, task_id])))]
pub struct PriorityLane {
    #[primary_key]
    pub task_id: u64,
    pub tenant_id: u64,
    pub rank: u64,
}

/// The owner no longer puts credit first: the tenant's ranked tasks rejoin the ordinary queue.
pub(crate) fn unrank_all(ctx: &ReducerContext, tenant_id: u64) {
    let ranked: Vec<u64> = ctx.db.priority_lane().by_tenant_rank().filter(tenant_id).map(|row| row.task_id).collect();
    for task_id in ranked {
        ctx.db.priority_lane().task_id().delete(task_id);
    }
}

/// A pending task goes to the first ready limb of its tenant that offers its
/// model; with none, it waits in the queue for a slot to free.
pub(crate) fn place(ctx: &ReducerContext, task: Task) {
    place_ranked(ctx, task, None);
}

/// [`place`], a task that waits going ahead of the ordinary queue by `rank` (smaller first).
pub(crate) fn place_ranked(ctx: &ReducerContext, task: Task, rank: Option<u64>) {
    let taker = ctx
        .db
        .ready()
        .tenant_id()
        .filter(task.tenant_id)
        .filter_map(|ready| ctx.db.limb().id().find(ready.limb_id))
        .find(|limb| rules::offers(&limb.models, &task.model) && may_take(ctx, task.id, limb));
    match taker {
        Some(limb) => {
            assign(ctx, task, &limb);
            refresh_ready(ctx, &limb);
        }
        // Its callers (a new task, `finish`) leave no queue row behind.
        None => {
            mirror(ctx, &task);
            widen_bounds(ctx, task.tenant_id, task.id);
            task_queued(ctx, task.tenant_id, &task.model);
            if let Some(rank) = rank {
                ctx.db.priority_lane().insert(PriorityLane { task_id: task.id, tenant_id: task.tenant_id, rank });
            }
            ctx.db.pending().insert(Pending { task_id: task.id, tenant_id: task.tenant_id, model: task.model });
        }
    }
}

/// Task ids read in the first window of a tenant's queue (an empty window doubles the next).
const QUEUE_WINDOW: u64 = 32;

/// A task of `tenant_id` is queued as `task_id`: keep the bounds around it.
fn widen_bounds(ctx: &ReducerContext, tenant_id: u64, task_id: u64) {
    match ctx.db.queue_bounds().tenant_id().find(tenant_id) {
        Some(bounds) if (bounds.oldest..=bounds.newest).contains(&task_id) => {}
        Some(bounds) => {
            let (oldest, newest) = (bounds.oldest.min(task_id), bounds.newest.max(task_id));
            ctx.db.queue_bounds().tenant_id().update(QueueBounds { oldest, newest, ..bounds });
        }
        None => {
            ctx.db.queue_bounds().insert(QueueBounds { tenant_id, oldest: task_id, newest: task_id });
        }
    }
}

/// Up to `wanted` of the tenant's queued tasks `limb` may take, oldest first,
/// read window by window from the queue's lower bound (which moves up past
/// the empty windows it finds).
fn oldest_queued(ctx: &ReducerContext, limb: &Limb, wanted: usize) -> Vec<u64> {
    let bounds = match ctx.db.queue_bounds().tenant_id().find(limb.tenant_id) {
        Some(bounds) => bounds,
        // A queue older than the bounds (a hub published before them): found once, the slow way.
        None => {
            let ids: Vec<u64> =
                ctx.db.pending().by_tenant_age().filter(limb.tenant_id).map(|pending| pending.task_id).collect();
            let (Some(&oldest), Some(&newest)) = (ids.iter().min(), ids.iter().max()) else { return Vec::new() };
            ctx.db.queue_bounds().insert(QueueBounds { tenant_id: limb.tenant_id, oldest, newest })
        }
    };
    let mut taken = Vec::new();
    let (mut from, mut oldest, mut width) = (bounds.oldest, bounds.oldest, QUEUE_WINDOW);
    while taken.len() < wanted && from <= bounds.newest {
        let to = from.saturating_add(width);
        let mut seen = false;
        for pending in ctx.db.pending().by_tenant_age().filter((limb.tenant_id, from..to)) {
            seen = true;
            let fits = rules::offers(&limb.models, &pending.model) && may_take(ctx, pending.task_id, limb);
            if fits && taken.len() < wanted {
                taken.push(pending.task_id);
            }
        }
        if !seen {
            if from == oldest {
                oldest = to;
            }
            // Other tenants' ids in between: a gap is crossed in a few widening steps.
            width = width.saturating_mul(2);
        }
        from = to;
    }
    if oldest != bounds.oldest {
        ctx.db.queue_bounds().tenant_id().update(QueueBounds { oldest, ..bounds });
    }
    taken
}

/// Up to `wanted` of the tenant's ranked tasks `limb` may take, best rank
/// first (dropping the rows of tasks no longer queued).
fn ranked_queued(ctx: &ReducerContext, limb: &Limb, wanted: usize) -> Vec<u64> {
    let ranked: Vec<u64> =
        ctx.db.priority_lane().by_tenant_rank().filter(limb.tenant_id).map(|row| row.task_id).collect();
    let mut taken = Vec::new();
    for task_id in ranked {
        match ctx.db.pending().task_id().find(task_id) {
            None => {
                ctx.db.priority_lane().task_id().delete(task_id);
            }
            Some(pending) if taken.len() < wanted => {
                if rules::offers(&limb.models, &pending.model) && may_take(ctx, task_id, limb) {
                    taken.push(task_id);
                }
            }
            Some(_) => {}
        }
    }
    taken
}

/// Fill `limb`'s free slots from its tenant's queue: its ranked tasks first
/// (credit first, when the owner chose it), then the oldest, skipping tasks
/// pinned to a model it does not offer.
pub(crate) fn fill(ctx: &ReducerContext, limb: &Limb) {
    let takes_work = limb.online && !paused(ctx, limb.id);
    let free = if takes_work { rules::free_slots(limb.capacity, held_count(ctx, limb.id)) as usize } else { 0 };
    if free > 0 {
        let mut next = ranked_queued(ctx, limb, free);
        if next.len() < free {
            // The ranked tasks are queued too: the oldest may name them again.
            let oldest: Vec<u64> = oldest_queued(ctx, limb, free).into_iter().filter(|id| !next.contains(id)).collect();
            next.extend(oldest.into_iter().take(free - next.len()));
        }
        for task_id in next {
            if let Some(task) = ctx.db.task().id().find(task_id) {
                assign(ctx, task, limb);
            }
        }
    }
    refresh_ready(ctx, limb);
}
