//! The claim loop's decisions, as pure functions of what the loop knows: the
//! work in flight, a snapshot of the hub's rows in its cache, and the
//! governor's decision. The loop (`super`) does the I/O these ask for; the
//! rules are unit-tested here without a server, as `governor::decide` is.

use crate::governor::Decision;
use std::collections::{HashMap, HashSet};

/// A task's outcome as the hub receives it: a summary, or a failure reason.
pub type Outcome = Result<String, String>;

/// Work in progress, by task id.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Claims sent, not yet answered.
    pub claiming: HashSet<u64>,
    /// Claims the hub committed, being executed.
    pub running: HashSet<u64>,
    /// Results sent and not yet acknowledged by the hub.
    pub unacked: HashMap<u64, Outcome>,
    /// Results already re-sent once after a reconnect.
    pub resent: HashSet<u64>,
}

impl InFlight {
    pub fn busy(&self) -> usize {
        self.claiming.len() + self.running.len()
    }
}

/// How many tasks may be in flight: the governor's bound, else the limb's own.
/// Nothing while the governor withholds.
pub fn capacity(decision: Option<&Decision>, own_max: usize) -> usize {
    match decision {
        Some(decision) if !decision.give => 0,
        Some(decision) => decision.max_in_flight.max(1),
        None => own_max.max(1),
    }
}

/// The pending tasks to claim now, at most the room left. `pick(n)` chooses
/// an index below `n`: the loop picks at random, so racing limbs do not all
/// reach for the same task.
pub fn to_claim(work: &InFlight, pending: &[u64], capacity: usize, mut pick: impl FnMut(usize) -> usize) -> Vec<u64> {
    let mut candidates: Vec<u64> = pending.iter().copied().filter(|id| !work.claiming.contains(id)).collect();
    let room = capacity.saturating_sub(work.busy());
    let mut chosen = Vec::new();
    while chosen.len() < room && !candidates.is_empty() {
        chosen.push(candidates.swap_remove(pick(candidates.len())));
    }
    chosen
}

/// What to do with the hub's answer to one of our claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimAnswer {
    /// Committed: execute it.
    Run,
    /// Committed after the governor said stop and hand work back: release it.
    Release,
    /// Refused (another limb was first): nothing to do.
    Drop,
}

pub fn on_claim(committed: bool, decision: Option<&Decision>) -> ClaimAnswer {
    let must_release = decision.is_some_and(|d| !d.give && d.release_running);
    match (committed, must_release) {
        (false, _) => ClaimAnswer::Drop,
        (true, true) => ClaimAnswer::Release,
        (true, false) => ClaimAnswer::Run,
    }
}

/// A new governor decision: the running tasks to hand back (the owner chose
/// "release"), taken out of `running` so their results are dropped.
pub fn on_decision(work: &mut InFlight, decision: &Decision) -> Vec<u64> {
    if decision.release_running {
        work.running.drain().collect()
    } else {
        Vec::new()
    }
}

/// What the hub's rows say about this limb after a reconnect.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Tasks the hub shows as claimed by this limb.
    pub claimed_by_me: HashSet<u64>,
    /// Tasks whose result this limb's identity sent.
    pub results_by_me: HashSet<u64>,
}

/// What to do after a reconnect, where the fresh cache is the truth.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// No longer ours (the lease expired while away): dropped.
    pub lost: Vec<u64>,
    /// Our result did arrive: acknowledged.
    pub acked: Vec<u64>,
    /// Still ours, result unacknowledged: send it again (once).
    pub resend: Vec<u64>,
    /// Claims that committed while we were away: run them.
    pub orphans: Vec<u64>,
}

pub fn reconcile(work: &mut InFlight, snapshot: &Snapshot) -> Reconciled {
    let mut plan = Reconciled::default();
    work.claiming.clear();
    work.running.retain(|id| {
        let ours = snapshot.claimed_by_me.contains(id);
        if !ours {
            plan.lost.push(*id);
        }
        ours
    });
    let unacked: Vec<u64> = work.unacked.keys().copied().collect();
    for task_id in unacked {
        if snapshot.results_by_me.contains(&task_id) {
            plan.acked.push(task_id);
        } else if snapshot.claimed_by_me.contains(&task_id) && work.resent.insert(task_id) {
            plan.resend.push(task_id);
        } else {
            work.unacked.remove(&task_id);
            plan.lost.push(task_id);
        }
    }
    plan.orphans = snapshot
        .claimed_by_me
        .iter()
        .copied()
        .filter(|id| !work.running.contains(id) && !work.unacked.contains_key(id))
        .collect();
    work.claiming.extend(&plan.orphans);
    for list in [&mut plan.lost, &mut plan.acked, &mut plan.resend, &mut plan.orphans] {
        list.sort_unstable();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(give: bool, max_in_flight: usize, release_running: bool) -> Decision {
        Decision { give, reason: String::new(), max_in_flight, threads: 1, gpu_layers: 0, release_running }
    }

    fn set(ids: &[u64]) -> HashSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn capacity_follows_the_governor_and_withholding_claims_nothing() {
        assert_eq!(capacity(None, 3), 3);
        assert_eq!(capacity(None, 0), 1, "a limb always takes at least one");
        assert_eq!(capacity(Some(&decision(true, 2, false)), 8), 2, "the governor's bound wins");
        assert_eq!(capacity(Some(&decision(false, 2, false)), 8), 0);
    }

    #[test]
    fn claims_fill_the_room_left_and_skip_claims_in_flight() {
        let mut work = InFlight::default();
        work.running.insert(1);
        work.claiming.insert(2);
        let first = |_: usize| 0;
        assert_eq!(to_claim(&work, &[2, 3, 4, 5], 4, first), vec![3, 5], "room for 2; task 2 is already being claimed");
        assert!(to_claim(&work, &[3, 4], 2, first).is_empty(), "full");
        assert!(to_claim(&work, &[3, 4], 0, first).is_empty(), "withheld");
        assert!(to_claim(&InFlight::default(), &[], 4, first).is_empty(), "nothing pending");
        let picked = to_claim(&InFlight::default(), &[7, 8, 9], 3, |n| n - 1);
        assert_eq!(set(&picked), set(&[7, 8, 9]), "every pick is a distinct pending task");
    }

    #[test]
    fn a_committed_claim_runs_unless_the_owner_asked_for_work_back() {
        assert_eq!(on_claim(true, None), ClaimAnswer::Run);
        assert_eq!(on_claim(false, None), ClaimAnswer::Drop);
        assert_eq!(on_claim(true, Some(&decision(false, 1, true))), ClaimAnswer::Release);
        assert_eq!(on_claim(true, Some(&decision(false, 1, false))), ClaimAnswer::Run, "paused with finish: it runs");
        assert_eq!(on_claim(false, Some(&decision(false, 1, true))), ClaimAnswer::Drop);
    }

    #[test]
    fn release_on_pause_hands_back_every_running_task() {
        let mut work = InFlight { running: set(&[4, 5]), ..InFlight::default() };
        assert!(on_decision(&mut work, &decision(false, 1, false)).is_empty());
        assert_eq!(work.running.len(), 2);
        assert_eq!(set(&on_decision(&mut work, &decision(false, 1, true))), set(&[4, 5]));
        assert!(work.running.is_empty(), "their results will be dropped");
    }

    #[test]
    fn after_a_reconnect_the_hubs_rows_decide() {
        let mut work = InFlight {
            claiming: set(&[9]),
            running: set(&[1, 2]),
            unacked: HashMap::from([(3, Ok("a".into())), (4, Err("b".into())), (5, Ok("c".into()))]),
            resent: set(&[5]),
        };
        // 1 is still ours; 2 was lost; 3's result arrived; 4 is ours, unacknowledged;
        // 5 is still ours but its result, re-sent once already, never arrived: the
        // result is given up and the task runs again (execution is at-least-once);
        // 6 committed while away.
        let snapshot = Snapshot { claimed_by_me: set(&[1, 4, 5, 6]), results_by_me: set(&[3]) };
        let plan = reconcile(&mut work, &snapshot);
        assert_eq!(plan, Reconciled { lost: vec![2, 5], acked: vec![3], resend: vec![4], orphans: vec![5, 6] });
        assert_eq!(work.running, set(&[1]));
        assert_eq!(work.claiming, set(&[5, 6]), "claims in flight before are forgotten; orphans are being taken");
        assert!(work.unacked.contains_key(&4) && !work.unacked.contains_key(&5));
        // A second reconnect does not re-send 4 again: it runs again instead.
        let again = reconcile(&mut work, &snapshot);
        assert!(again.resend.is_empty() && again.lost.contains(&4) && again.orphans.contains(&4));
    }
}
