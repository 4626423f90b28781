//! What a donor's verified work earns. Credit is counted in milli-credits
//! from what the hub itself holds — the accepted result's text, the work the
//! payload asked for, the catalogue's size of the model it was pinned to —
//! never from what a limb says of itself (tool runs, seconds, tokens it
//! claims), which a limb could make up. A replicated or scored task's credit
//! waits in escrow until its copies or its scorers agree.

use crate::Work;

/// What one accepted result earns before its size: a credit.
pub const TASK_MILLI: u64 = 1000;
/// And a credit for every this many characters of work (about 100 tokens).
pub const CHARS_PER_CREDIT: u64 = 400;

/// How one ledger row moves a donor's credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "spacetimedb", derive(spacetimedb::SpacetimeType))]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CreditKind {
    /// Paid at once: a result accepted that nobody checks.
    Earned,
    /// Held until the task's copies or scorers decide.
    Escrowed,
    /// An escrow paid: the limb's answer was agreed (or its trust spared the check).
    Released,
    /// An escrow taken back: the limb was outvoted, or its answer disputed.
    Revoked,
}

impl CreditKind {
    pub const ALL: [CreditKind; 4] =
        [CreditKind::Earned, CreditKind::Escrowed, CreditKind::Released, CreditKind::Revoked];

    pub fn name(self) -> &'static str {
        match self {
            CreditKind::Earned => "earned",
            CreditKind::Escrowed => "escrowed",
            CreditKind::Released => "released",
            CreditKind::Revoked => "revoked",
        }
    }
}

/// The milli-credits an accepted result earns: [`TASK_MILLI`], and a credit
/// for every [`CHARS_PER_CREDIT`] characters of the work — the answer
/// scored for a scoring copy (its prompt and answer are the hub's own), the
/// result's text otherwise — times (1 + the model's whole GiB) when the task
/// was pinned to a catalogue model of `model_bytes` (0: not pinned, or not
/// to a catalogue model).
pub fn result_credit(payload: &str, summary: &str, model_bytes: u64) -> u64 {
    let work = match Work::parse(payload) {
        Ok(Work::Score { answer, .. }) => answer,
        _ => summary,
    };
    let chars = work.chars().count() as u64;
    let base = TASK_MILLI + chars.saturating_mul(1000) / CHARS_PER_CREDIT;
    base.saturating_mul(1 + (model_bytes >> 30))
}

/// Where a donor's own submission goes in its tenant's queue when the owner
/// put credit first (AI Horde's kudos priority): ahead of every task without
/// a rank, the donor with more paid credit first (`None`: no credit, the
/// ordinary queue, oldest first). Smaller ranks go first; among equal ranks,
/// the older task.
pub fn queue_rank(paid_milli: u64) -> Option<u64> {
    (paid_milli > 0).then(|| u64::MAX - paid_milli)
}

/// A donor's or a limb's credit, summed from ledger rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Totals {
    /// Paid: earned and released.
    pub milli: u64,
    /// Held in escrow now.
    pub escrow_milli: u64,
    /// Taken back from escrow.
    pub revoked_milli: u64,
    /// Results paid for.
    pub tasks: u64,
}

impl Totals {
    /// Add one ledger row.
    pub fn add(&mut self, kind: CreditKind, milli: u64) {
        match kind {
            CreditKind::Earned => {
                self.milli += milli;
                self.tasks += 1;
            }
            CreditKind::Escrowed => self.escrow_milli += milli,
            CreditKind::Released => {
                self.escrow_milli = self.escrow_milli.saturating_sub(milli);
                self.milli += milli;
                self.tasks += 1;
            }
            CreditKind::Revoked => {
                self.escrow_milli = self.escrow_milli.saturating_sub(milli);
                self.revoked_milli += milli;
            }
        }
    }
}

/// Milli-credits as people read them: "12.345".
pub fn credits_text(milli: u64) -> String {
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_earns_a_credit_and_one_per_400_characters_of_work_times_the_models_gib() {
        assert_eq!(result_credit("What is a lease?", "", 0), 1000, "an empty answer: the task's credit");
        assert_eq!(result_credit("q", &"x".repeat(400), 0), 2000);
        assert_eq!(result_credit("q", &"é".repeat(200), 0), 1500, "characters, not bytes");
        assert_eq!(result_credit("q", &"x".repeat(400), (4 << 30) + 1), 10_000, "a 4 GiB model: ×5");
        assert_eq!(result_credit("q", &"x".repeat(400), (1 << 30) - 1), 2000, "under a GiB: ×1");
        let scoring = crate::score_payload("prompt", &"y".repeat(800));
        assert_eq!(result_credit(&scoring, "score: agrees", 0), 3000, "a scorer is paid for what it scored");
        let generated = crate::generate_payload("prompt");
        assert_eq!(result_credit(&generated, &"z".repeat(4000), 0), 11_000);
    }

    #[test]
    fn more_credit_goes_first_and_none_waits_in_the_ordinary_queue() {
        assert_eq!(queue_rank(0), None);
        assert!(queue_rank(5000) < queue_rank(4999), "more credit, smaller rank");
        assert_eq!(queue_rank(u64::MAX), Some(0));
    }

    #[test]
    fn totals_follow_the_ledger_and_an_escrow_is_paid_or_taken_back_once() {
        let mut totals = Totals::default();
        totals.add(CreditKind::Earned, 1500);
        totals.add(CreditKind::Escrowed, 2000);
        totals.add(CreditKind::Escrowed, 3000);
        assert_eq!(totals, Totals { milli: 1500, escrow_milli: 5000, revoked_milli: 0, tasks: 1 });
        totals.add(CreditKind::Released, 2000);
        totals.add(CreditKind::Revoked, 3000);
        assert_eq!(totals, Totals { milli: 3500, escrow_milli: 0, revoked_milli: 3000, tasks: 2 });
        assert_eq!(credits_text(3500), "3.500");
        assert_eq!(CreditKind::Revoked.name(), "revoked");
    }
}
