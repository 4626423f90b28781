//! Credit for donors (issue 37): the tenant's ledger, one row per credit
//! event, appended by the hub alone — no reducer writes it, so no limb,
//! submitter or browser can — and each limb's sums beside it. A signed result
//! the hub accepts earns `rules::credit::result_credit`; a replicated or
//! scored task's result waits in escrow until its set's verdict, then is
//! released to the limbs whose answers were agreed (or whose trust spared the
//! check) and revoked from the others. Nothing for a failed, unsigned,
//! late or superseded result (none reaches `on_result`). Readers see the
//! ledger (and, past the hub's retention, its rows added up per limb:
//! `credit_rollup`); a limb sees its own sums (`limb_credit`). A tenant's
//! owner may put credit first (`credit_priority`, off by default): a donor's
//! own submissions then go ahead in the queue by the donor's credit.

use crate::guard::{require_admin, require_owner};
use crate::placement::donor_of;
use crate::*;
use rules::credit::{result_credit, CreditKind, Totals};

/// The tenant's credit ledger. Nobody updates a row; retention alone deletes
/// one, into its limb's `credit_rollup`. Each limb's sums (`limb_credit`) are
/// these rows and its rollup added up.
#[table(name = credit_event, public)]
pub struct CreditEvent {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    /// The donor: the invite that admitted the limb (its hash), or the limb's identity.
    pub donor: String,
    pub limb_id: u64,
    /// The task whose signed result (`result_proof`) it pays for.
    pub task_id: u64,
    pub kind: CreditKind,
    pub milli: u64,
    pub at: Timestamp,
}

/// Each limb's credit summed from the ledger, for the limb (its donor) to
/// read without being a reader of the tenant; readers sum the ledger. Keyed
/// by the limb's identity, which its row-level rule looks up: one index to
/// keep per result.
#[table(name = limb_credit, public)]
pub struct LimbCredit {
    #[primary_key]
    pub limb_identity: Identity,
    pub limb_id: u64,
    pub tenant_id: u64,
    /// Paid: earned and released.
    pub milli: u64,
    /// Held in escrow now.
    pub escrow_milli: u64,
    /// Taken back from escrow.
    pub revoked_milli: u64,
    /// Results paid for.
    pub tasks: u64,
    pub updated_at: Timestamp,
}

/// Ledger rows older than the hub's retention, added up per limb: retention
/// prunes the rows, not their sums. Readers add these to the ledger's rows.
#[table(name = credit_rollup, public)]
pub struct CreditRollup {
    #[primary_key]
    pub limb_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub donor: String,
    pub milli: u64,
    pub escrow_milli: u64,
    pub revoked_milli: u64,
    pub tasks: u64,
    /// When the newest row rolled in was written.
    pub until: Timestamp,
}

/// A result's credit held until its replica set is decided. Private.
#[table(name = escrow)]
pub struct Escrow {
    #[primary_key]
    pub task_id: u64,
    pub limb_id: u64,
    pub milli: u64,
}

/// Whether the hub's admin turned credit off (no row: on). Private.
#[table(name = credit_switch)]
pub struct CreditSwitch {
    #[primary_key]
    pub id: u8,
    pub off: bool,
}

/// The tenant's owner put its donors' own submissions ahead in its queue by
/// their credit (AI Horde's kudos priority). No row, or `on` false: oldest
/// first, as always. Its readers see it.
#[table(name = credit_priority, public)]
pub struct CreditPriority {
    #[primary_key]
    pub tenant_id: u64,
    pub on: bool,
    pub updated_at: Timestamp,
}

/// The tenant's owner puts credit first in its queue (or takes it back:
/// tasks already ranked rejoin the ordinary queue, oldest first).
#[reducer]
pub fn set_credit_priority(ctx: &ReducerContext, on: bool) -> Result<(), String> {
    let member = require_owner(ctx)?;
    let row = CreditPriority { tenant_id: member.tenant_id, on, updated_at: ctx.timestamp };
    if ctx.db.credit_priority().tenant_id().find(member.tenant_id).is_some() {
        ctx.db.credit_priority().tenant_id().update(row);
    } else {
        ctx.db.credit_priority().insert(row);
    }
    if !on {
        crate::placement::unrank_all(ctx, member.tenant_id);
    }
    Ok(())
}

/// Where the caller's new task goes in `member`'s tenant's queue: ranked by
/// its donor's paid credit when the caller is one of the tenant's limbs (a
/// donor submitting, as the desktop app joined to a hub does) and the owner
/// put credit first; `None` otherwise (oldest first).
pub(crate) fn queue_rank(ctx: &ReducerContext, member: &Member) -> Option<u64> {
    if !ctx.db.credit_priority().tenant_id().find(member.tenant_id).is_some_and(|priority| priority.on) {
        return None;
    }
    let submitter = ctx.db.limb().identity().find(ctx.sender)?;
    let donor = donor_of(ctx, &submitter);
    let paid: u64 = ctx
        .db
        .limb()
        .tenant_id()
        .filter(member.tenant_id)
        .filter(|limb| limb.identity == submitter.identity || donor_of(ctx, limb) == donor)
        .filter_map(|limb| ctx.db.limb_credit().limb_identity().find(limb.identity))
        .map(|credit| credit.milli)
        .sum();
    rules::credit::queue_rank(paid)
}

/// The hub's admin turns credit off (or on again): off, results earn
/// nothing and the ledger stays as it is (what the credit benchmark's
/// baseline runs with).
#[reducer]
pub fn set_credit(ctx: &ReducerContext, on: bool) -> Result<(), String> {
    require_admin(ctx, "turn credit on or off")?;
    let switch = CreditSwitch { id: 0, off: !on };
    if ctx.db.credit_switch().id().find(0).is_some() {
        ctx.db.credit_switch().id().update(switch);
    } else {
        ctx.db.credit_switch().insert(switch);
    }
    Ok(())
}

/// Append a ledger row and add it to the limb's sums.
fn append(ctx: &ReducerContext, limb: &Limb, task_id: u64, kind: CreditKind, milli: u64) {
    record(ctx, limb, donor_of(ctx, limb), task_id, kind, milli);
    add_to_sums(ctx, limb, |totals| totals.add(kind, milli));
}

/// Append a ledger row; its limb's sums are the caller's to change.
fn record(ctx: &ReducerContext, limb: &Limb, donor: String, task_id: u64, kind: CreditKind, milli: u64) {
    ctx.db.credit_event().insert(CreditEvent {
        id: 0,
        tenant_id: limb.tenant_id,
        donor,
        limb_id: limb.id,
        task_id,
        kind,
        milli,
        at: ctx.timestamp,
    });
}

/// Change `limb`'s sums by `change`.
fn add_to_sums(ctx: &ReducerContext, limb: &Limb, change: impl FnOnce(&mut Totals)) {
    let known = ctx.db.limb_credit().limb_identity().find(limb.identity);
    let mut totals = known.as_ref().map_or_else(Totals::default, |row| Totals {
        milli: row.milli,
        escrow_milli: row.escrow_milli,
        revoked_milli: row.revoked_milli,
        tasks: row.tasks,
    });
    change(&mut totals);
    let row = LimbCredit {
        limb_identity: limb.identity,
        limb_id: limb.id,
        tenant_id: limb.tenant_id,
        milli: totals.milli,
        escrow_milli: totals.escrow_milli,
        revoked_milli: totals.revoked_milli,
        tasks: totals.tasks,
        updated_at: ctx.timestamp,
    };
    if known.is_some() {
        ctx.db.limb_credit().limb_identity().update(row);
    } else {
        ctx.db.limb_credit().insert(row);
    }
}

/// The limb one call's signed results pay. Its results sent together are paid
/// together: its donor is looked up once, and what it earned is added to its
/// sums (`limb_credit`) once, at the call's end (on the claims drain those two,
/// per result, were most of what the ledger cost: docs/benchmarks.md). Only
/// `Earned` credit waits here: it only adds, so adding it later gives the same
/// sums whatever an escrow's release or revocation did in between.
pub(crate) struct Payee {
    limb: Limb,
    donor: Option<String>,
    earned: Totals,
}

impl Payee {
    pub(crate) fn new(limb: Limb) -> Self {
        Self { limb, donor: None, earned: Totals::default() }
    }

    pub(crate) fn limb_id(&self) -> u64 {
        self.limb.id
    }

    fn record(&mut self, ctx: &ReducerContext, task_id: u64, kind: CreditKind, milli: u64) {
        let donor = self.donor.get_or_insert_with(|| donor_of(ctx, &self.limb)).clone();
        record(ctx, &self.limb, donor, task_id, kind, milli);
    }

    /// Add the call's earned credit to the limb's sums.
    pub(crate) fn add_earned_to_sums(self, ctx: &ReducerContext) {
        let earned = self.earned;
        if earned.tasks > 0 {
            add_to_sums(ctx, &self.limb, |totals| {
                totals.milli += earned.milli;
                totals.tasks += earned.tasks;
            });
        }
    }
}

/// `task_id` is pruned with its escrow still held (its set was never decided
/// within the retention): the escrow is revoked, not left behind.
pub(crate) fn forfeit(ctx: &ReducerContext, task_id: u64) {
    let Some(escrow) = ctx.db.escrow().task_id().find(task_id) else { return };
    ctx.db.escrow().task_id().delete(task_id);
    if let Some(limb) = ctx.db.limb().id().find(escrow.limb_id) {
        append(ctx, &limb, task_id, CreditKind::Revoked, escrow.milli);
    }
}

/// Roll up to `batch` ledger rows older than `retain_secs` into their limbs'
/// `credit_rollup`, oldest first (an escrow's release or revocation is never
/// rolled before the escrow itself, which is older).
pub(crate) fn roll_up(ctx: &ReducerContext, now_micros: i64, retain_secs: u64, batch: usize) {
    let mut old: Vec<CreditEvent> = ctx
        .db
        .credit_event()
        .iter()
        .filter(|event| rules::is_past_retention(micros(event.at), now_micros, retain_secs))
        .collect();
    old.sort_by_key(|event| event.id);
    for event in old.into_iter().take(batch) {
        let known = ctx.db.credit_rollup().limb_id().find(event.limb_id);
        let mut totals = known.as_ref().map_or_else(Totals::default, |row| Totals {
            milli: row.milli,
            escrow_milli: row.escrow_milli,
            revoked_milli: row.revoked_milli,
            tasks: row.tasks,
        });
        totals.add(event.kind, event.milli);
        let row = CreditRollup {
            limb_id: event.limb_id,
            tenant_id: event.tenant_id,
            donor: event.donor,
            milli: totals.milli,
            escrow_milli: totals.escrow_milli,
            revoked_milli: totals.revoked_milli,
            tasks: totals.tasks,
            until: event.at,
        };
        if known.is_some() {
            ctx.db.credit_rollup().limb_id().update(row);
        } else {
            ctx.db.credit_rollup().insert(row);
        }
        ctx.db.credit_event().id().delete(event.id);
    }
}

/// `payee`'s signed result for `task` was accepted: paid at once, or held in
/// escrow when the task is a copy its set has yet to decide on. Called
/// before the task finishes, so that the verdict its finishing may bring
/// finds the escrow.
pub(crate) fn on_result(ctx: &ReducerContext, payee: &mut Payee, task: &Task, summary: &str, is_copy: bool) {
    if ctx.db.credit_switch().id().find(0).is_some_and(|switch| switch.off) {
        return;
    }
    let model_bytes = if task.model.is_empty() {
        0
    } else {
        ctx.db
            .catalogue_model()
            .tenant_id()
            .filter(task.tenant_id)
            .find(|entry| entry.model_id == task.model || entry.sha256 == task.model)
            .map_or(0, |entry| entry.size_bytes)
    };
    let milli = result_credit(&task.payload, summary, model_bytes);
    if is_copy {
        ctx.db.escrow().insert(Escrow { task_id: task.id, limb_id: payee.limb.id, milli });
        payee.record(ctx, task.id, CreditKind::Escrowed, milli);
        add_to_sums(ctx, &payee.limb, |totals| totals.add(CreditKind::Escrowed, milli));
    } else {
        payee.record(ctx, task.id, CreditKind::Earned, milli);
        payee.earned.add(CreditKind::Earned, milli);
    }
}

/// The task of `copy` finished: once its replica set has a verdict, each escrow of
/// the set is released to a limb the verdict agrees with (every copy's limb
/// of a set its trust spared) and revoked from the others.
pub(crate) fn settle(ctx: &ReducerContext, copy: &TaskCopy) {
    let Some(set) = ctx.db.replica_set().task_id().find(copy.set_id) else {
        return;
    };
    if set.verdict == QuorumState::Open {
        return;
    }
    for copy in &set.copies {
        let Some(escrow) = ctx.db.escrow().task_id().find(copy) else { continue };
        ctx.db.escrow().task_id().delete(copy);
        let Some(limb) = ctx.db.limb().id().find(escrow.limb_id) else { continue };
        let paid = set.verdict == QuorumState::Trusted || set.agreeing.contains(&escrow.limb_id);
        let kind = if paid { CreditKind::Released } else { CreditKind::Revoked };
        append(ctx, &limb, *copy, kind, escrow.milli);
    }
}
