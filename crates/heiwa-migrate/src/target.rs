//! The hub side: the admin's `migrate_*` calls, one batch (one transaction)
//! each, and what `--verify` and the claim codes' export read back by SQL.
//! The hub's admin is the database's owner, so its SQL reads every row,
//! the private `legacy_record` and `legacy_claim` included.

use crate::claims::ClaimJournal;
use crate::plan::{Kind, Planned, Problem};
use crate::MigrateError;
use heiwa_hub::{HubError, HubHttp, InviteCode};
use serde_json::Value;

/// Most bytes of records in one call: well under what the hub takes in one request.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

pub struct HubTarget {
    http: HubHttp,
    database: String,
    token: String,
    /// Where the claim codes of the members this target writes are kept.
    journal: ClaimJournal,
}

/// A legacy record the hub holds: what it became.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct MappedRow {
    pub legacy_id: String,
    pub kind: String,
    pub hub_id: u64,
    pub submitter: String,
}

/// A claim code as the hub keeps it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ClaimRow {
    pub code: String,
    pub legacy_id: String,
    pub tenant_id: u64,
    pub role: String,
    pub label: String,
    /// The identity that claimed it, as the SQL API writes one; all zeros while nobody has.
    pub claimed_by: Value,
}

impl ClaimRow {
    pub fn claimed(&self) -> bool {
        let hex = match &self.claimed_by {
            Value::String(hex) => hex.as_str(),
            other => other.get("__identity__").and_then(Value::as_str).unwrap_or(""),
        };
        hex.trim_start_matches("0x").chars().any(|c| c != '0')
    }
}

impl HubTarget {
    /// The hub's admin at `database`; claim codes are journaled in `journal`.
    pub fn new(http: HubHttp, database: impl Into<String>, token: impl Into<String>, journal: ClaimJournal) -> Self {
        HubTarget { http, database: database.into(), token: token.into(), journal }
    }

    pub fn journal(&self) -> &ClaimJournal {
        &self.journal
    }

    /// Give each of these unclaimed users a fresh claim code (journaled
    /// first); the hub forgets their old ones.
    pub async fn reissue(&self, legacy_ids: &[String]) -> Result<(), MigrateError> {
        for chunk in legacy_ids.chunks(hub_rules::migration::MAX_MIGRATION_BATCH) {
            let codes =
                chunk.iter().map(|id| Ok((id.clone(), InviteCode::fresh()?))).collect::<Result<Vec<_>, HubError>>()?;
            self.journal.record(&codes)?;
            let batch: Vec<Value> = codes
                .iter()
                .map(|(legacy_id, code)| serde_json::json!({ "legacy_id": legacy_id, "code_hash": code.hash() }))
                .collect();
            self.http.call(&self.database, "reissue_claims", serde_json::json!([batch]), &self.token).await?;
        }
        Ok(())
    }

    /// The hub's answer to a query as the admin, rows read by column name.
    pub async fn rows<T: serde::de::DeserializeOwned>(&self, query: &str) -> Result<Vec<T>, MigrateError> {
        Ok(self.http.rows_as(&self.database, query, &self.token).await?)
    }

    /// Every legacy record the hub holds (what earlier runs wrote). The map
    /// is private: to anyone but the admin the hub says it does not exist.
    pub async fn mapped(&self) -> Result<Vec<MappedRow>, MigrateError> {
        match self.http.rows_as(&self.database, "SELECT * FROM legacy_record", &self.token).await {
            Err(HubError::Refused { status: 400, body, .. }) if body.contains("not a valid table") => {
                Err(MigrateError::NotAdmin)
            }
            other => Ok(other?),
        }
    }

    pub async fn claims(&self) -> Result<Vec<ClaimRow>, MigrateError> {
        self.rows("SELECT * FROM legacy_claim").await
    }

    /// Write `batch` (records of one kind) in as few calls as the size
    /// limits allow. A record the hub refuses (its reducer names it) is
    /// taken out and reported, and the rest of its batch is sent again; any
    /// other refusal (not the admin, the hub gone) ends the run: what was
    /// written stays, and a rerun goes on from there.
    pub async fn write(&self, kind: Kind, mut batch: Vec<Planned>) -> Result<Vec<Problem>, MigrateError> {
        let reducer = reducer_of(kind);
        self.journal.assign(&mut batch)?;
        let mut problems = Vec::new();
        let mut rest: Vec<(String, String)> =
            batch.iter().filter_map(|record| Some((record.legacy_id().to_string(), record.hub_json()?))).collect();
        while !rest.is_empty() {
            let take = split_at(&rest);
            let (call, after) = (rest[..take].to_vec(), rest[take..].to_vec());
            let records: Vec<&str> = call.iter().map(|(_, json)| json.as_str()).collect();
            let args = format!("[[{}]]", records.join(","));
            match self.http.call_json(&self.database, reducer, args, &self.token).await {
                Ok(()) => rest = after,
                Err(HubError::Reducer { message, .. }) => {
                    let Some(bad) = call.iter().position(|(id, _)| message.starts_with(&format!("{id}: "))) else {
                        return Err(HubError::Reducer { reducer: reducer.into(), message }.into());
                    };
                    let (legacy_id, _) = &call[bad];
                    let reason = message[legacy_id.len() + 2..].to_string();
                    problems.push(Problem {
                        legacy_id: legacy_id.clone(),
                        reason: format!("the hub refused it: {reason}"),
                    });
                    rest =
                        call.into_iter().enumerate().filter(|(i, _)| *i != bad).map(|(_, r)| r).chain(after).collect();
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(problems)
    }
}

/// The admin-only reducer that takes records of `kind`.
pub fn reducer_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Tenant => "migrate_tenants",
        Kind::Member => "migrate_members",
        Kind::Task => "migrate_tasks",
        Kind::Document => unreachable!("documents go to memory, never to the hub"),
    }
}

/// How many of `records` (as JSON text) go in the next call: up to the batch limits, at least one.
fn split_at(records: &[(String, String)]) -> usize {
    let mut bytes = 0;
    let mut take = 0;
    for (_, json) in records.iter().take(hub_rules::migration::MAX_MIGRATION_BATCH) {
        bytes += json.len() + 1;
        if take > 0 && bytes > MAX_BATCH_BYTES {
            break;
        }
        take += 1;
    }
    take
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_stay_under_the_limits() {
        let small: Vec<(String, String)> =
            (0..2500).map(|i| (format!("t:{i}"), json!({"p": "x"}).to_string())).collect();
        assert_eq!(split_at(&small), hub_rules::migration::MAX_MIGRATION_BATCH);
        let big: Vec<(String, String)> = (0..10).map(|i| (format!("t:{i}"), "x".repeat(400_000))).collect();
        assert_eq!(split_at(&big), 2);
        let huge = vec![("t:0".to_string(), "x".repeat(2 * MAX_BATCH_BYTES))];
        assert_eq!(split_at(&huge), 1, "one record always goes, and the hub judges it");
    }

    #[test]
    fn an_unclaimed_code_has_the_zero_identity() {
        let row = |by: &str| ClaimRow {
            code: "c".into(),
            legacy_id: "user:a".into(),
            tenant_id: 1,
            role: "owner".into(),
            label: "a".into(),
            claimed_by: json!(by),
        };
        assert!(!row(&format!("0x{}", "0".repeat(64))).claimed());
        assert!(row("0x00c0ffee").claimed());
    }
}
