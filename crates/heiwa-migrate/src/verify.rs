//! `--verify`: the source and the hub (and this machine's memory) compared
//! record by record. Each side is reduced to a digest per legacy id (the
//! fields the hub keeps, hashed as [`crate::plan`] hashes them); a table
//! matches when both sides hold the same ids with the same digests, and its
//! checksum is the hash of those sorted pairs.

use crate::documents::{MemorySink, NAME_PREFIX};
use crate::plan::{self, hash_hex, Kind, MigratedTask, Planned, Planner};
use crate::run::Options;
use crate::source::{Line, Source};
use crate::target::HubTarget;
use crate::MigrateError;
use std::collections::{BTreeMap, HashMap};

/// Digests by legacy id.
pub type Digests = BTreeMap<String, String>;

#[derive(Debug)]
pub struct TableCheck {
    pub kind: Kind,
    pub source_count: usize,
    pub target_count: usize,
    pub source_checksum: String,
    pub target_checksum: String,
    /// In the source, not migrated.
    pub missing: Vec<String>,
    /// Migrated, no longer (or never) in the source.
    pub extra: Vec<String>,
    /// On both sides, different.
    pub differing: Vec<String>,
}

impl TableCheck {
    pub fn compare(kind: Kind, source: &Digests, target: &Digests) -> Self {
        let missing = source.keys().filter(|id| !target.contains_key(*id)).cloned().collect();
        let extra = target.keys().filter(|id| !source.contains_key(*id)).cloned().collect();
        let differing = source
            .iter()
            .filter(|(id, digest)| target.get(*id).is_some_and(|d| d != *digest))
            .map(|(id, _)| id.clone())
            .collect();
        TableCheck {
            kind,
            source_count: source.len(),
            target_count: target.len(),
            source_checksum: checksum(source),
            target_checksum: checksum(target),
            missing,
            extra,
            differing,
        }
    }

    pub fn matches(&self) -> bool {
        self.source_checksum == self.target_checksum
    }
}

pub fn checksum(digests: &Digests) -> String {
    let lines: String = digests.iter().map(|(id, digest)| format!("{id}\t{digest}\n")).collect();
    hash_hex(lines.as_bytes())
}

/// Compare every mapped table: the hub's with `hub`, documents with a
/// `memory` that stores (they live in it).
pub async fn verify(
    options: &Options,
    hub: Option<&HubTarget>,
    mut memory: Option<&mut MemorySink<'_>>,
) -> Result<Vec<TableCheck>, MigrateError> {
    let mut source: BTreeMap<Kind, Digests> = BTreeMap::new();
    let mut planner = Planner::new(options.mapping.clone());
    let mut reader = Source::open(&options.source, &options.mapping.tables()).await?;
    while let Some(line) = reader.next().await {
        let Line::Record(raw) = line? else { continue };
        let Ok(planned) = planner.plan(&raw) else { continue };
        let digest = match (&planned, memory.as_deref_mut()) {
            (Planned::Document(document), Some(sink))
                if options.documents_for.as_deref() == Some(document.tenant_legacy_id.as_str()) =>
            {
                sink.extract(document).await.ok().map(|text| heiwa_memory::content_hash(&text.text))
            }
            _ => planned.digest(),
        };
        if let Some(digest) = digest {
            source.entry(planned.kind()).or_default().insert(planned.legacy_id().to_string(), digest);
        }
    }
    let mut target = match hub {
        Some(hub) => hub_digests(hub).await?,
        None => BTreeMap::new(),
    };
    let stored_in = memory.as_deref().and_then(|sink| sink.store.map(|store| (store, sink.tenant.clone())));
    if let Some((store, tenant)) = &stored_in {
        let stored = heiwa_memory::content_hashes(store.memory, tenant, NAME_PREFIX).await?;
        let documents = target.entry(Kind::Document).or_default();
        for (name, hash) in stored {
            documents.insert(name[NAME_PREFIX.len()..].to_string(), hash);
        }
    }
    let kinds = Kind::ALL.into_iter().filter(|kind| match kind {
        Kind::Document => stored_in.is_some(),
        _ => hub.is_some(),
    });
    let empty = Digests::new();
    Ok(kinds
        .map(|kind| TableCheck::compare(kind, source.get(&kind).unwrap_or(&empty), target.get(&kind).unwrap_or(&empty)))
        .collect())
}

#[derive(serde::Deserialize)]
struct TenantRow {
    id: u64,
    name: String,
    created_at: i64,
}

#[derive(serde::Deserialize)]
struct TaskRow {
    id: u64,
    tenant_id: u64,
    payload: String,
    model: String,
    state: String,
    attempts: u32,
    reason: String,
    created_at: i64,
}

#[derive(serde::Deserialize)]
struct ResultRow {
    task_id: u64,
    summary: String,
    finished_at: i64,
}

/// What the hub holds of every migrated record, as digests.
async fn hub_digests(hub: &HubTarget) -> Result<BTreeMap<Kind, Digests>, MigrateError> {
    let mapped = hub.mapped().await?;
    let tenant_legacy: HashMap<u64, &str> =
        mapped.iter().filter(|r| r.kind == Kind::Tenant.name()).map(|r| (r.hub_id, r.legacy_id.as_str())).collect();
    let tenants: HashMap<u64, TenantRow> =
        hub.rows::<TenantRow>("SELECT * FROM tenant").await?.into_iter().map(|t| (t.id, t)).collect();
    let claims: HashMap<String, _> = hub.claims().await?.into_iter().map(|c| (c.legacy_id.clone(), c)).collect();
    let tasks: HashMap<u64, TaskRow> =
        hub.rows::<TaskRow>("SELECT * FROM task").await?.into_iter().map(|t| (t.id, t)).collect();
    let results: HashMap<u64, ResultRow> =
        hub.rows::<ResultRow>("SELECT * FROM task_result").await?.into_iter().map(|r| (r.task_id, r)).collect();
    let mut digests: BTreeMap<Kind, Digests> = BTreeMap::new();
    for row in &mapped {
        let id = row.legacy_id.clone();
        let (kind, digest) = match row.kind.as_str() {
            "tenant" => {
                let Some(tenant) = tenants.get(&row.hub_id) else { continue };
                (Kind::Tenant, plan::tenant_digest(&id, &tenant.name, tenant.created_at))
            }
            "member" => {
                let Some(claim) = claims.get(&id) else { continue };
                let tenant = tenant_legacy.get(&claim.tenant_id).copied().unwrap_or_default();
                (Kind::Member, plan::member_digest(&id, tenant, &claim.role, &claim.label))
            }
            "task" => {
                // Pruned after the retention, or never written: missing.
                let Some(task) = tasks.get(&row.hub_id) else { continue };
                let tenant = tenant_legacy.get(&task.tenant_id).copied().unwrap_or_default();
                let result = results.get(&task.id);
                // A task migrated finished was never run here (no attempts); any
                // other was migrated pending, whatever became of it since.
                let finished = task.attempts == 0 && task.state != "pending" && task.state != "claimed";
                let migrated = MigratedTask {
                    legacy_id: id.clone(),
                    tenant_legacy_id: tenant.to_string(),
                    submitter_legacy_id: row.submitter.clone(),
                    payload: task.payload.clone(),
                    model: task.model.clone(),
                    state: if finished { task.state.clone() } else { "pending".into() },
                    summary: result.map(|r| r.summary.clone()).unwrap_or_default(),
                    reason: task.reason.clone(),
                    created_at_micros: task.created_at,
                    finished_at_micros: result.map_or(0, |r| r.finished_at),
                };
                (Kind::Task, plan::task_digest(&migrated))
            }
            _ => continue,
        };
        digests.entry(kind).or_default().insert(id, digest);
    }
    Ok(digests)
}
