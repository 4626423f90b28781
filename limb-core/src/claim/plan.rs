//! The limb loop's decisions, as pure functions of what the loop knows: the
//! work in flight, a snapshot of the hub's rows in its cache, and the
//! governor's decision. The hub assigns the work; the limb decides how many
//! slots to offer and what to do with what it is given. The loop (`super`) does the I/O these ask for; the
//! rules are unit-tested here without a server, as `governor::decide` is.

use crate::governor::Decision;
use std::collections::{HashMap, HashSet};

/// A task's outcome as the hub receives it: a signed summary, or a failure reason.
pub type Outcome = Result<Answered, String>;

/// A summary and what the limb signed about it (kept so in the outbox).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Answered {
    pub summary: String,
    pub proof: heiwa_provenance::Proof,
}

/// Work in progress, by task id.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Tasks the hub assigned us, being executed.
    pub running: HashSet<u64>,
    /// Results sent and not yet acknowledged by the hub.
    pub unacked: HashMap<u64, Outcome>,
    /// Results already re-sent once after a reconnect.
    pub resent: HashSet<u64>,
}

impl InFlight {
    /// Is this task already ours in some way (running, or its result on the way)?
    pub fn knows(&self, task_id: u64) -> bool {
        self.running.contains(&task_id) || self.unacked.contains_key(&task_id)
    }
}

/// How many tasks to offer the hub at once: the governor's bound, else the
/// limb's own, never above what the hub accepts. None while the governor
/// withholds or the tenant paused this limb (`paused_by_tenant`: a pause
/// from the owner or the admin bot, followed like the owner's own pause).
pub fn capacity(decision: Option<&Decision>, paused_by_tenant: bool, own_max: usize) -> u32 {
    let slots = match decision {
        _ if paused_by_tenant => 0,
        Some(decision) if !decision.give => 0,
        Some(decision) => decision.max_in_flight.max(1),
        None => own_max.max(1),
    };
    u32::try_from(slots).unwrap_or(u32::MAX).min(heiwa_hub::MAX_CAPACITY)
}

/// What to do with a task the hub assigned us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignment {
    /// Execute it.
    Run,
    /// Assigned just as the governor said stop and hand work back: release it.
    Release,
    /// Already running or answered (a row seen again): nothing to do.
    Known,
}

pub fn on_assigned(work: &InFlight, task_id: u64, decision: Option<&Decision>) -> Assignment {
    if work.knows(task_id) {
        Assignment::Known
    } else if decision.is_some_and(|d| !d.give && d.release_running) {
        Assignment::Release
    } else {
        Assignment::Run
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
    /// Tasks the hub shows as assigned to this limb.
    pub assigned_to_me: HashSet<u64>,
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
    /// Assigned to us while we were away (or before a restart): run them.
    pub orphans: Vec<u64>,
}

pub fn reconcile(work: &mut InFlight, snapshot: &Snapshot) -> Reconciled {
    let mut plan = Reconciled::default();
    work.running.retain(|id| {
        let ours = snapshot.assigned_to_me.contains(id);
        if !ours {
            plan.lost.push(*id);
        }
        ours
    });
    let unacked: Vec<u64> = work.unacked.keys().copied().collect();
    for task_id in unacked {
        if snapshot.results_by_me.contains(&task_id) {
            plan.acked.push(task_id);
        } else if snapshot.assigned_to_me.contains(&task_id) && work.resent.insert(task_id) {
            plan.resend.push(task_id);
        } else {
            work.unacked.remove(&task_id);
            plan.lost.push(task_id);
        }
    }
    plan.orphans = snapshot.assigned_to_me.iter().copied().filter(|id| !work.knows(*id)).collect();
    for list in [&mut plan.lost, &mut plan.acked, &mut plan.resend, &mut plan.orphans] {
        list.sort_unstable();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(give: bool, max_in_flight: usize, release_running: bool) -> Decision {
        Decision {
            give,
            reason: String::new(),
            max_in_flight,
            threads: 1,
            offload: heiwa_inference::Offload::CPU,
            gpus: Vec::new(),
            keep_alive_minutes: 5,
            release_running,
        }
    }

    fn set(ids: &[u64]) -> HashSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_offer_follows_the_governor_and_withholding_offers_nothing() {
        assert_eq!(capacity(None, false, 3), 3);
        assert_eq!(capacity(None, false, 0), 1, "a limb always takes at least one");
        assert_eq!(capacity(Some(&decision(true, 2, false)), false, 8), 2, "the governor's bound wins");
        assert_eq!(capacity(Some(&decision(false, 2, false)), false, 8), 0);
        assert_eq!(capacity(None, false, 1000), heiwa_hub::MAX_CAPACITY, "never more than the hub accepts");
        assert_eq!(capacity(None, true, 3), 0, "the tenant's pause offers nothing");
        assert_eq!(capacity(Some(&decision(true, 2, false)), true, 8), 0, "whatever the governor allows");
    }

    fn answered(summary: &str) -> Outcome {
        Ok(Answered {
            summary: summary.into(),
            proof: heiwa_provenance::Proof { statement: "{}".into(), signature: vec![0; 64] },
        })
    }

    #[test]
    fn an_assignment_runs_once_unless_the_owner_asked_for_work_back() {
        let work = InFlight { running: set(&[1]), unacked: HashMap::from([(2, answered("a"))]), ..InFlight::default() };
        assert_eq!(on_assigned(&work, 3, None), Assignment::Run);
        assert_eq!(on_assigned(&work, 1, None), Assignment::Known, "already running");
        assert_eq!(on_assigned(&work, 2, None), Assignment::Known, "answered, awaiting the hub");
        assert_eq!(on_assigned(&work, 3, Some(&decision(false, 1, true))), Assignment::Release);
        assert_eq!(on_assigned(&work, 3, Some(&decision(false, 1, false))), Assignment::Run, "paused with finish");
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
            running: set(&[1, 2]),
            unacked: HashMap::from([(3, answered("a")), (4, Err("b".into())), (5, answered("c"))]),
            resent: set(&[5]),
        };
        // 1 is still ours; 2 was lost; 3's result arrived; 4 is ours, unacknowledged;
        // 5 is still ours but its result, re-sent once already, never arrived: the
        // result is given up and the task runs again (execution is at-least-once);
        // 6 was assigned while away.
        let snapshot = Snapshot { assigned_to_me: set(&[1, 4, 5, 6]), results_by_me: set(&[3]) };
        let plan = reconcile(&mut work, &snapshot);
        assert_eq!(plan, Reconciled { lost: vec![2, 5], acked: vec![3], resend: vec![4], orphans: vec![5, 6] });
        assert_eq!(work.running, set(&[1]), "orphans are run by the loop, which adds them");
        assert!(work.unacked.contains_key(&4) && !work.unacked.contains_key(&5));
        // A second reconnect does not re-send 4 again: it runs again instead.
        let again = reconcile(&mut work, &snapshot);
        assert!(again.resend.is_empty() && again.lost.contains(&4) && again.orphans.contains(&4));
    }
}
