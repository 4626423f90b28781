//! The tenant's credit ledger over the hub's HTTP API, and each limb's sums
//! from it over the last day, the last week and all time (readers see the
//! ledger; `hub_rules::credit` says what a result earns).

use crate::args::{SetCredit, SetCreditPriority};
use crate::{CreditKind, HubError, HubHttp, Totals};

/// One ledger row, as the tenant's readers read it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct CreditRow {
    /// The hub appends rows in this order: an escrow comes before its release or revocation.
    pub id: u64,
    /// The donor: the invite that admitted the limb (its hash), or the limb's identity.
    pub donor: String,
    pub limb_id: u64,
    pub task_id: u64,
    /// earned, escrowed, released or revoked.
    pub kind: String,
    pub milli: u64,
    /// Microseconds since the epoch.
    pub at: i64,
}

impl CreditRow {
    pub fn kind(&self) -> Option<CreditKind> {
        CreditKind::ALL.into_iter().find(|kind| kind.name() == self.kind)
    }
}

/// A limb's ledger rows older than the hub's retention, added up (`credit_rollup`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct RollupRow {
    pub donor: String,
    pub limb_id: u64,
    pub milli: u64,
    pub escrow_milli: u64,
    pub revoked_milli: u64,
    pub tasks: u64,
}

/// One limb's credit: paid in the last 24 hours, the last 7 days, and all of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LimbCreditLine {
    pub donor: String,
    pub limb_id: u64,
    pub day: Totals,
    pub week: Totals,
    pub all: Totals,
}

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Each limb's sums from the ledger `rows` and the `rollups` of rows older
/// than the hub's retention (all time only: a rolled row is older than any
/// day or week a hub keeps less than), as of `now_micros`.
pub fn credit_by_limb(rows: &[CreditRow], rollups: &[RollupRow], now_micros: i64) -> Vec<LimbCreditLine> {
    let mut lines: Vec<LimbCreditLine> = Vec::new();
    let line_of = |lines: &mut Vec<LimbCreditLine>, donor: &str, limb_id: u64| -> usize {
        lines.iter().position(|line| line.limb_id == limb_id).unwrap_or_else(|| {
            let (day, week, all) = Default::default();
            lines.push(LimbCreditLine { donor: donor.into(), limb_id, day, week, all });
            lines.len() - 1
        })
    };
    for rollup in rollups {
        let at = line_of(&mut lines, &rollup.donor, rollup.limb_id);
        lines[at].all = Totals {
            milli: rollup.milli,
            escrow_milli: rollup.escrow_milli,
            revoked_milli: rollup.revoked_milli,
            tasks: rollup.tasks,
        };
    }
    for row in rows {
        let Some(kind) = row.kind() else { continue };
        let at = line_of(&mut lines, &row.donor, row.limb_id);
        let line = &mut lines[at];
        line.all.add(kind, row.milli);
        if row.at >= now_micros - 7 * DAY_MICROS {
            line.week.add(kind, row.milli);
        }
        if row.at >= now_micros - DAY_MICROS {
            line.day.add(kind, row.milli);
        }
    }
    lines
}

/// A limb's own sums (`limb_credit`), which only that limb reads.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct OwnCreditRow {
    pub limb_id: u64,
    pub milli: u64,
    pub escrow_milli: u64,
    pub revoked_milli: u64,
    pub tasks: u64,
}

impl HubHttp {
    /// Turn credit on or off for the whole hub (its admin only): off, results
    /// earn nothing and the ledger stays as it is.
    pub async fn set_credit(&self, name: &str, on: bool, token: &str) -> Result<(), HubError> {
        self.call_reducer(name, &SetCredit { on }, token).await
    }

    /// The tenant's owner puts its donors' own submissions ahead in the queue
    /// by their credit (`on`), or back to oldest first.
    pub async fn set_credit_priority(&self, name: &str, on: bool, token: &str) -> Result<(), HubError> {
        self.call_reducer(name, &SetCreditPriority { on }, token).await
    }

    /// Whether the caller's tenant puts credit first in its queue (off unless its owner chose it).
    pub async fn credit_priority(&self, name: &str, token: &str) -> Result<bool, HubError> {
        #[derive(serde::Deserialize)]
        struct Row {
            on: bool,
        }
        let rows: Vec<Row> = self.rows_as(name, "SELECT * FROM credit_priority", token).await?;
        Ok(rows.iter().any(|row| row.on))
    }

    /// The caller's own sums, when it is a limb that earned any.
    pub async fn own_credit(&self, name: &str, token: &str) -> Result<Option<OwnCreditRow>, HubError> {
        Ok(self.rows_as(name, "SELECT * FROM limb_credit", token).await?.into_iter().next())
    }

    /// Each limb's credit in the caller's tenant (one limb's, when `limb`
    /// names it): its ledger rows and their rollup, summed as of now.
    pub async fn credit(&self, name: &str, limb: Option<u64>, token: &str) -> Result<Vec<LimbCreditLine>, HubError> {
        let rows = self.credit_ledger(name, limb, token).await?;
        let query = match limb {
            Some(limb_id) => format!("SELECT * FROM credit_rollup WHERE limb_id = {limb_id}"),
            None => "SELECT * FROM credit_rollup".into(),
        };
        let rollups: Vec<RollupRow> = self.rows_as(name, &query, token).await?;
        let now_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as i64);
        Ok(credit_by_limb(&rows, &rollups, now_micros))
    }

    /// Every row of the caller's tenant's credit ledger (of one limb's, when
    /// `limb` names it), in the order the hub wrote them (an escrow and its
    /// release written in one transaction share their time, not their id).
    pub async fn credit_ledger(&self, name: &str, limb: Option<u64>, token: &str) -> Result<Vec<CreditRow>, HubError> {
        let query = match limb {
            Some(limb_id) => format!("SELECT * FROM credit_event WHERE limb_id = {limb_id}"),
            None => "SELECT * FROM credit_event".into(),
        };
        let mut rows: Vec<CreditRow> = self.rows_as(name, &query, token).await?;
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(limb_id: u64, kind: &str, milli: u64, hours_ago: i64) -> CreditRow {
        let at = 1_000 * DAY_MICROS - hours_ago * 3600 * 1_000_000;
        CreditRow { id: 0, donor: format!("d{limb_id}"), limb_id, task_id: 1, kind: kind.into(), milli, at }
    }

    #[test]
    fn each_limbs_credit_is_summed_over_a_day_a_week_and_all_time() {
        let rows = [
            row(1, "earned", 1000, 24 * 10),
            row(1, "earned", 2000, 24 * 3),
            row(1, "escrowed", 500, 2),
            row(1, "released", 500, 1),
            row(2, "escrowed", 700, 1),
            row(2, "revoked", 700, 0),
            row(2, "unknown", 9, 0),
        ];
        let lines = credit_by_limb(&rows, &[], 1_000 * DAY_MICROS);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].day.milli, lines[0].week.milli, lines[0].all.milli), (500, 2500, 3500));
        assert_eq!(lines[0].all.tasks, 3);
        assert_eq!((lines[1].all.milli, lines[1].all.revoked_milli, lines[1].all.escrow_milli), (0, 700, 0));
        // The first two rows rolled up by retention: the same sums, all time.
        let rollup =
            RollupRow { donor: "d1".into(), limb_id: 1, milli: 3000, escrow_milli: 0, revoked_milli: 0, tasks: 2 };
        let rolled = credit_by_limb(&rows[2..], &[rollup], 1_000 * DAY_MICROS);
        assert_eq!(rolled[0].all, lines[0].all);
        assert_eq!((rolled[0].day.milli, rolled[0].week.milli), (500, 500), "rolled rows count in all time only");
    }
}
