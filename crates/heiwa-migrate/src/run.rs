//! One migration run: read the legacy tables in order, plan each record,
//! write new ones to the hub in batches (documents to memory), report.
//! What the hub already maps is skipped, so a run killed at any point is
//! finished by the next, and a run after a complete one writes nothing.

use crate::documents::MemorySink;
use crate::mapping::Mapping;
use crate::plan::{Kind, Planned, Planner, Problem};
use crate::source::{Line, Source, SourceSpec};
use crate::target::HubTarget;
use crate::MigrateError;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub struct Options {
    pub source: SourceSpec,
    pub mapping: Mapping,
    /// Read, plan and report; write nothing anywhere.
    pub dry_run: bool,
    /// The organization (legacy id) whose documents go into this machine's
    /// memory; other organizations' documents are counted, never stored.
    pub documents_for: Option<String>,
}

/// What happened to one kind of record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    /// Written in this run (in a dry run: would be).
    pub added: u64,
    /// Already on the hub (or in memory) from an earlier run.
    pub already: u64,
    pub problems: u64,
    /// Documents of organizations other than `documents_for`: left alone.
    pub elsewhere: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub counts: BTreeMap<Kind, Counts>,
    pub problems: Vec<Problem>,
    pub elapsed: Duration,
}

impl Report {
    pub fn records(&self) -> u64 {
        self.counts.values().map(|c| c.read).sum()
    }

    fn problem(&mut self, kind: Kind, problem: Problem, on_event: &mut dyn FnMut(Event)) {
        on_event(Event::Problem(&problem));
        self.counts.entry(kind).or_default().problems += 1;
        self.problems.push(problem);
    }
}

/// Batches planned but not yet written: reading and planning go on while the hub writes.
const WRITE_AHEAD: usize = 2;
/// How often a run says how far it has read (documents, slow to embed: each one).
const PROGRESS_EVERY: u64 = 1000;

/// What a run says as it goes, for a person watching it.
pub enum Event<'a> {
    /// A record that is not migrated, and why.
    Problem(&'a Problem),
    /// How many records of `kind` have been read so far.
    Read { kind: Kind, read: u64 },
}

/// Run the migration. `hub` is where tenants, members and tasks go (none:
/// documents only, on a limb that holds no admin token); `memory` is where
/// documents go (needed only when `options.documents_for` is given);
/// `on_event` hears of each bad record as it is found (those the hub
/// refuses, at the end) and of how far the reading is.
pub async fn migrate(
    options: &Options,
    hub: Option<&HubTarget>,
    memory: Option<&mut MemorySink<'_>>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Report, MigrateError> {
    let started = Instant::now();
    let known: HashSet<String> = match hub {
        Some(hub) => hub.mapped().await?.into_iter().map(|row| row.legacy_id).collect(),
        None => HashSet::new(),
    };
    let (batches, queue) = mpsc::channel(WRITE_AHEAD);
    let reading = read_and_plan(options, &known, memory, hub.is_some().then_some(batches), on_event);
    let writing = write_batches(hub, queue, options.dry_run);
    let (read, written) = tokio::join!(reading, writing);
    // The writer's error first: the reader then only saw its queue close.
    let written = written?;
    let mut report = read?;
    for (kind, sent, refused) in written {
        report.counts.entry(kind).or_default().added += sent - refused.len() as u64;
        for problem in refused {
            report.problem(kind, problem, on_event);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Read the source in order, plan each record, and queue the new ones for
/// the hub a batch at a time (a batch never mixes tables, so a table's
/// records are all written before the next table's).
async fn read_and_plan(
    options: &Options,
    known: &HashSet<String>,
    mut memory: Option<&mut MemorySink<'_>>,
    // None: the records are checked (documents reference organizations) but not written.
    batches: Option<mpsc::Sender<Vec<Planned>>>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Report, MigrateError> {
    let mut planner = Planner::new(options.mapping.clone());
    let mut source = Source::open(&options.source, &options.mapping.tables()).await?;
    let mut report = Report::default();
    let mut batch: Vec<Planned> = Vec::new();
    let queue = |batch: Vec<Planned>| {
        let batches = batches.clone();
        async move {
            let Some(batches) = batches.filter(|_| !batch.is_empty()) else { return Ok(()) };
            // Closed: the writer stopped on an error, which `migrate` reports.
            batches.send(batch).await.map_err(|_| MigrateError::Reader("the hub writer stopped".into()))
        }
    };
    while let Some(line) = source.next().await {
        let raw = match line? {
            Line::Record(raw) => raw,
            Line::End { table, .. } => {
                queue(std::mem::take(&mut batch)).await?;
                if let Some(organization) = options.documents_for.as_deref() {
                    if table == options.mapping.tenants.table && !planner.has_tenant(organization) {
                        return Err(MigrateError::NoSuchOrganization(organization.into()));
                    }
                }
                continue;
            }
        };
        let Some(kind) = planner.kind_of(&raw.table) else { continue };
        let read = {
            let counts = report.counts.entry(kind).or_default();
            counts.read += 1;
            counts.read
        };
        if kind == Kind::Document || read % PROGRESS_EVERY == 0 {
            on_event(Event::Read { kind, read });
        }
        let planned = match planner.plan(&raw) {
            Ok(planned) => planned,
            Err(problem) => {
                report.problem(kind, problem, on_event);
                continue;
            }
        };
        if let Planned::Document(document) = &planned {
            let here = options.documents_for.as_deref() == Some(document.tenant_legacy_id.as_str());
            let Some(sink) = memory.as_deref_mut().filter(|_| here) else {
                report.counts.entry(kind).or_default().elsewhere += 1;
                continue;
            };
            let stored =
                if options.dry_run { sink.extract(document).await.map(|_| true) } else { sink.store(document).await? };
            match stored {
                Ok(true) => report.counts.entry(kind).or_default().added += 1,
                Ok(false) => report.counts.entry(kind).or_default().already += 1,
                Err(problem) => report.problem(kind, problem, on_event),
            }
            continue;
        }
        if batches.is_none() {
            continue;
        }
        if known.contains(planned.legacy_id()) {
            report.counts.entry(kind).or_default().already += 1;
            continue;
        }
        batch.push(planned);
        if batch.len() >= hub_rules::migration::MAX_MIGRATION_BATCH {
            queue(std::mem::take(&mut batch)).await?;
        }
    }
    queue(batch).await?;
    Ok(report)
}

/// Write queued batches in order; per batch, its kind, how many records it
/// had and those the hub refused. A dry run writes nothing and refuses nothing.
async fn write_batches(
    hub: Option<&HubTarget>,
    mut queue: mpsc::Receiver<Vec<Planned>>,
    dry_run: bool,
) -> Result<Vec<(Kind, u64, Vec<Problem>)>, MigrateError> {
    let mut written = Vec::new();
    while let Some(batch) = queue.recv().await {
        let kind = batch[0].kind();
        let sent = batch.len() as u64;
        let refused = match hub {
            Some(hub) if !dry_run => hub.write(kind, batch).await?,
            _ => Vec::new(),
        };
        written.push((kind, sent, refused));
    }
    Ok(written)
}

/// What the claims export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimsWritten {
    /// Migrated users, one row each.
    pub users: usize,
    /// Unclaimed users whose code this machine did not know (made by an
    /// older hub, or a journal gone), given a fresh one now.
    pub reissued: usize,
}

/// Write the claim codes as CSV (0600: each code is a sign-in): one row per
/// migrated user, with its organization, role and whether it is claimed.
/// The codes come from the journal, matched by the hash the hub keeps; a
/// claimed user's code is spent and left empty.
pub async fn export_claims(hub: &HubTarget, path: &std::path::Path) -> Result<ClaimsWritten, MigrateError> {
    let tenants: BTreeMap<u64, String> = hub
        .mapped()
        .await?
        .into_iter()
        .filter(|row| row.kind == Kind::Tenant.name())
        .map(|row| (row.hub_id, row.legacy_id))
        .collect();
    let mut known = hub.journal().by_hash()?;
    let mut claims = hub.claims().await?;
    let unknown: Vec<String> = claims
        .iter()
        .filter(|claim| !claim.claimed() && !known.contains_key(&claim.code))
        .map(|claim| claim.legacy_id.clone())
        .collect();
    if !unknown.is_empty() {
        // Rare (an older hub's codes, a lost journal): read both sides again after.
        hub.reissue(&unknown).await?;
        known = hub.journal().by_hash()?;
        claims = hub.claims().await?;
    }
    claims.sort_by(|a, b| a.legacy_id.cmp(&b.legacy_id));
    let mut text = Vec::new();
    {
        let mut csv = csv::Writer::from_writer(&mut text);
        csv.write_record(["legacy_id", "label", "organization", "role", "code", "claimed"])?;
        for claim in &claims {
            let organization = tenants.get(&claim.tenant_id).map_or("", String::as_str);
            let (code, claimed) =
                if claim.claimed() { ("", "yes") } else { (known.get(&claim.code).map_or("", String::as_str), "no") };
            csv.write_record([&claim.legacy_id, &claim.label, organization, &claim.role, code, claimed])?;
        }
        csv.flush()?;
    }
    heiwa_config::write_secret(path, &String::from_utf8(text).expect("CSV of UTF-8 fields is UTF-8"))?;
    Ok(ClaimsWritten { users: claims.len(), reissued: unknown.len() })
}
