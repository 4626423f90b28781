//! Judging a replicated or scored task's answers: the quorum of its copies
//! (`rules::quorum`), a tie-breaker when they disagree, the scorer's verdict,
//! a trusted limb's spot check under the admin's secret key, and each limb's
//! agreement record (the adaptive-trust streak).

use crate::placement::{is_scored, make_copies, new_copy, place, trust_of};
use crate::*;

/// The submitted copy of a replicated task finished before any other copy
/// was made: its limb was trusted when it took it (or the task is scored).
/// A trusted limb's answer is checked when the roll under the admin's secret
/// key says so (`rules::needs_copies`; without a key, always) and accepted
/// as it is otherwise. `Some(set)`: go on judging it (its copies, or its
/// scorer, are on their way); `None`: decided.
fn spot_check(ctx: &ReducerContext, set: ReplicaSet) -> Option<ReplicaSet> {
    let Some(first) = ctx.db.task().id().find(set.task_id) else { return Some(set) };
    let answer = ctx.db.task_result().task_id().find(first.id);
    let limb = answer.as_ref().and_then(|result| ctx.db.limb().id().find(result.limb_id));
    let trusted = limb.map(|limb| (trust_of(ctx, &limb), limb.id)).filter(|(trust, _)| rules::is_trusted(trust.streak));
    let Some((trust, limb_id)) = trusted else {
        if is_scored(ctx, set.task_id) {
            return Some(set);
        }
        if answer.is_none() {
            // Failed or cancelled: there is nothing to copy or check.
            let note = format!("it ended {} without an answer: not copied", first.state.name());
            ctx.db.replica_set().task_id().update(ReplicaSet {
                verdict: QuorumState::Disputed,
                note,
                updated_at: ctx.timestamp,
                ..set
            });
            return None;
        }
        // No longer trusted when it answered: the copies decide, as for anyone.
        make_copies(ctx, set, &first, String::new());
        return None;
    };
    let roll = crate::access::spot_check_key(ctx).map(|key| rules::secrets::spot_check_roll(&key, set.task_id));
    let streak = trust.streak;
    if !rules::needs_copies(streak, roll) {
        ctx.db.limb_trust().limb_id().update(LimbTrust { trusted_skips: trust.trusted_skips + 1, ..trust });
        ctx.db.replica_set().task_id().update(ReplicaSet {
            verdict: QuorumState::Trusted,
            note: format!("limb {limb_id} is trusted ({streak} agreed in a row): not copied"),
            updated_at: ctx.timestamp,
            ..set
        });
        return None;
    }
    ctx.db.limb_trust().limb_id().update(LimbTrust { spot_checks: trust.spot_checks + 1, ..trust });
    let note = format!("spot check of trusted limb {limb_id}");
    if is_scored(ctx, set.task_id) {
        let set = ReplicaSet { note, updated_at: ctx.timestamp, ..set };
        return Some(ctx.db.replica_set().task_id().update(set));
    }
    make_copies(ctx, set, &first, note);
    None
}

/// A copy of a replicated task finished: decide the set if every copy has
/// (`rules::quorum`), send a tie-breaker if they disagree, keep the records.
pub(crate) fn judge(ctx: &ReducerContext, copy: &TaskCopy) {
    let task_id = copy.task_id;
    let Some(set) = ctx.db.replica_set().task_id().find(copy.set_id) else {
        return;
    };
    if set.verdict != QuorumState::Open {
        return;
    }
    let set = if task_id == set.task_id && set.copies.len() == 1 {
        match spot_check(ctx, set) {
            Some(set) => set,
            None => return,
        }
    } else {
        set
    };
    if is_scored(ctx, set.task_id) {
        return judge_scored(ctx, set);
    }
    let results: Vec<Option<TaskResult>> =
        set.copies.iter().map(|id| ctx.db.task_result().task_id().find(*id)).collect();
    let answers: Vec<Option<Option<String>>> = set
        .copies
        .iter()
        .zip(&results)
        .map(|(id, result)| match ctx.db.task().id().find(*id).map(|t| t.state) {
            Some(state) if rules::is_finished(state) => {
                Some(result.as_ref().map(|r| rules::normalise_answer(&r.summary)))
            }
            Some(_) => None,
            None => Some(None),
        })
        .collect();
    let answered: Vec<u64> = results.iter().flatten().map(|r| r.limb_id).collect();
    match rules::quorum(set.replicas, &answers) {
        rules::Verdict::Waiting => {}
        rules::Verdict::TieBreak => {
            let Some(first) = ctx.db.task().id().find(set.task_id) else { return };
            let copy = new_copy(ctx, &first, first.payload.clone(), set.task_id);
            let mut copies = set.copies.clone();
            copies.push(copy.id);
            let note = "the copies disagreed: one more copy breaks the tie".to_string();
            ctx.db.replica_set().task_id().update(ReplicaSet { copies, note, updated_at: ctx.timestamp, ..set });
            place(ctx, copy);
        }
        rules::Verdict::Agreed(agreeing) => {
            let agreeing: Vec<u64> = agreeing.iter().filter_map(|i| results[*i].as_ref().map(|r| r.limb_id)).collect();
            let answer =
                results[agreeing_index(&results, &agreeing)].as_ref().map(|r| r.summary.clone()).unwrap_or_default();
            for limb_id in &answered {
                record(ctx, *limb_id, agreeing.contains(limb_id));
            }
            let note = format!("{} of {} copies agreed", agreeing.len(), set.copies.len());
            ctx.db.replica_set().task_id().update(ReplicaSet {
                verdict: QuorumState::Agreed,
                answer,
                agreeing,
                note,
                updated_at: ctx.timestamp,
                ..set
            });
        }
        rules::Verdict::Disputed => {
            for limb_id in &answered {
                record(ctx, *limb_id, false);
            }
            let note = format!("no majority among {} copies: failed as disputed", set.copies.len());
            ctx.db.replica_set().task_id().update(ReplicaSet {
                verdict: QuorumState::Disputed,
                note,
                updated_at: ctx.timestamp,
                ..set
            });
        }
    }
}

/// A copy of a generation checked by scoring finished. The generation done:
/// its first scoring copy goes out; failed: nothing to check. Scorers
/// finished: `rules::score_quorum` decides, and may ask for one more.
fn judge_scored(ctx: &ReducerContext, set: ReplicaSet) {
    let Some(first) = ctx.db.task().id().find(set.task_id) else { return };
    if !rules::is_finished(first.state) {
        return;
    }
    let Some(generated) = ctx.db.task_result().task_id().find(first.id) else {
        let note = "the generation failed: there is no answer to check".to_string();
        ctx.db.replica_set().task_id().update(ReplicaSet {
            verdict: QuorumState::Disputed,
            note,
            updated_at: ctx.timestamp,
            ..set
        });
        return;
    };
    let scorers: Vec<u64> = set.copies[1..].to_vec();
    let votes: Vec<Option<Option<bool>>> = scorers
        .iter()
        .map(|id| match ctx.db.task().id().find(*id).map(|t| t.state) {
            Some(state) if rules::is_finished(state) => {
                Some(ctx.db.task_result().task_id().find(*id).and_then(|r| rules::score_vote(&r.summary)))
            }
            Some(_) => None,
            None => Some(None),
        })
        .collect();
    let scorer_limb = |i: usize| ctx.db.task_result().task_id().find(scorers[i]).map(|r| r.limb_id);
    let verdict = if scorers.is_empty() { rules::Verdict::TieBreak } else { rules::score_quorum(&votes) };
    match verdict {
        rules::Verdict::Waiting => {}
        rules::Verdict::TieBreak => {
            let Ok(rules::Work::Generate { prompt }) = rules::Work::parse(&first.payload) else { return };
            let copy = new_copy(ctx, &first, rules::score_payload(prompt, &generated.summary), set.task_id);
            let mut copies = set.copies.clone();
            copies.push(copy.id);
            let note = if scorers.is_empty() {
                "answered: a limb of another donor with the same model scores it".to_string()
            } else {
                "the scorer did not agree: a second scorer breaks the tie".to_string()
            };
            ctx.db.replica_set().task_id().update(ReplicaSet { copies, note, updated_at: ctx.timestamp, ..set });
            place(ctx, copy);
        }
        rules::Verdict::Agreed(agreeing) => {
            record(ctx, generated.limb_id, true);
            let mut agreed = vec![generated.limb_id];
            for (i, vote) in votes.iter().enumerate() {
                if let (Some(Some(agrees)), Some(limb_id)) = (vote, scorer_limb(i)) {
                    record(ctx, limb_id, *agrees);
                }
            }
            agreed.extend(agreeing.iter().filter_map(|i| scorer_limb(*i)));
            let note = format!("{} of {} scorers agree it is the model's greedy answer", agreeing.len(), scorers.len());
            ctx.db.replica_set().task_id().update(ReplicaSet {
                verdict: QuorumState::Agreed,
                answer: generated.summary,
                agreeing: agreed,
                note,
                updated_at: ctx.timestamp,
                ..set
            });
        }
        rules::Verdict::Disputed => {
            record(ctx, generated.limb_id, false);
            let mut differing = Vec::new();
            for (i, vote) in votes.iter().enumerate() {
                if let (Some(Some(false)), Some(limb_id)) = (vote, scorer_limb(i)) {
                    record(ctx, limb_id, true);
                    differing.push(limb_id);
                }
            }
            let note =
                format!("{} scorers found it is not the model's greedy answer: failed as disputed", differing.len());
            ctx.db.replica_set().task_id().update(ReplicaSet {
                verdict: QuorumState::Disputed,
                agreeing: differing,
                note,
                updated_at: ctx.timestamp,
                ..set
            });
        }
    }
}

/// The index of the first result from an agreeing limb.
fn agreeing_index(results: &[Option<TaskResult>], agreeing: &[u64]) -> usize {
    results.iter().position(|r| r.as_ref().is_some_and(|r| agreeing.contains(&r.limb_id))).unwrap_or(0)
}

/// One more agreed (or disputed) result on a limb's record.
fn record(ctx: &ReducerContext, limb_id: u64, agreed: bool) {
    let Some(limb) = ctx.db.limb().id().find(limb_id) else { return };
    let trust = trust_of(ctx, &limb);
    ctx.db.limb_trust().limb_id().update(if agreed {
        LimbTrust { agreed: trust.agreed + 1, streak: trust.streak + 1, ..trust }
    } else {
        LimbTrust { disputed: trust.disputed + 1, streak: 0, ..trust }
    });
}
