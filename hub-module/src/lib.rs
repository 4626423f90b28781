//! Heiwa hub module. Tables are the API; reducers are thin: load rows, ask
//! [`rules`] (the `hub-rules` crate), write. A reducer runs in one transaction: it commits whole or
//! returns `Err` and changes nothing.
//!
//! Tenancy: an Identity belongs to at most one tenant, as its owner (who
//! created it), a limb (which joined with a limb invite) or a submitter (a
//! dashboard or bot that joined with a submitter invite). Row-level security
//! shows the owner and submitters the whole tenant, and a limb only its own
//! rows: the tasks assigned to it and its own results. Every reducer checks
//! the caller against the row it touches.
//!
//! Work is assigned here, not raced for: a limb offers free slots (and the
//! models it has), and the hub hands it the tenant's oldest pending tasks it
//! can run, when a task is submitted and whenever a slot frees. A reducer is
//! one transaction, so a task is assigned exactly once.
//!
//! Where things are (as SpacetimeDB's TPC-C module: the shared tables here,
//! one file per transaction family, each importing the helpers it calls):
//! - `lib.rs`: the tables, `init`, `client_connected`, the tenant's copy of
//!   a task (`mirror`) and the clock helpers every file uses;
//! - `visibility.rs`: row-level security; `guard.rs`: the checks on the caller;
//! - `access.rs`: who gets in (tenants, codes, invites, joins, legacy claims);
//! - `limbs.rs`: registering, offering, heartbeats, disconnects;
//! - `tasks.rs`: submitting and every change of a task's state (`finish`);
//! - `placement.rs`: which limb gets which task, and a replicated task's copies;
//! - `quorum.rs`: judging copies and scores, spot checks, trust;
//! - `stewards.rs`: what owners, operators and the admin steer;
//! - `catalogue.rs`: a tenant's models and which limbs hold or fetch them;
//! - `retention.rs`: the scheduled sweeps; `migration.rs`: the SurrealDB cutover.
//!
//! The files call downwards only (guard and placement at the bottom, the
//! sweeps at the top): the tidy test fails on a module cycle.

pub use hub_rules as rules;

mod access;
mod catalogue;
mod credit;
mod guard;
mod limbs;
mod migration;
mod placement;
mod quorum;
mod retention;
mod stewards;
mod tasks;
mod visibility;

pub use rules::catalogue::ModelState;
pub use rules::{ModelOffer, QuorumState, TaskState};
use spacetimedb::{
    client_visibility_filter, reducer, table, ConnectionId, Filter, Identity, ReducerContext, ScheduleAt,
    SpacetimeType, Table, TimeDuration, Timestamp,
};
use std::time::Duration;

#[derive(SpacetimeType, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Created the tenant: sees and steers all of it.
    Owner,
    /// A volunteer's machine: runs what it is assigned, sees only that.
    Limb,
    /// A dashboard or bot: reads the tenant and submits tasks, runs nothing.
    Submitter,
}

/// The hub's own settings, one row. `admin` is whoever published the module.
#[table(name = hub_config, public)]
pub struct HubConfig {
    #[primary_key]
    pub id: u8,
    pub admin: Identity,
    /// Unfinished (pending or claimed) tasks a tenant may have.
    pub max_open_tasks: u32,
    pub submits_per_sec: u32,
    pub submit_burst: u32,
    /// Finished tasks and their results older than this are pruned.
    pub retain_secs: u64,
    pub prune_every_secs: u64,
}

#[table(name = tenant, public)]
pub struct Tenant {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    pub name: String,
    pub owner: Identity,
    pub created_at: Timestamp,
}

#[table(name = member, public)]
pub struct Member {
    #[primary_key]
    pub identity: Identity,
    #[index(btree)]
    pub tenant_id: u64,
    pub role: Role,
    /// May submit tasks (owner, submitter, or a limb granted it).
    pub submits: bool,
}

/// Who reads the whole tenant: its owner, its submitters, and limbs the owner
/// granted it. A table of its own (not a flag on `member`) because
/// row-level security joins through it: SpacetimeDB 1.2 maintains a
/// subscription only over index joins from a plain key lookup, and a second
/// condition on the looked-up row turns the join into one it refuses.
#[table(name = reader, public)]
pub struct Reader {
    #[primary_key]
    pub identity: Identity,
    #[index(btree)]
    pub tenant_id: u64,
}

/// A code the owner hands to a new limb or submitter; visible only to the owner who made it.
#[table(name = invite, public)]
pub struct Invite {
    #[primary_key]
    pub code: String,
    pub tenant_id: u64,
    #[index(btree)]
    pub created_by: Identity,
    pub role: Role,
    pub uses_left: u32,
    pub expires_at: Timestamp,
}

/// A one-use code that signs one browser (the web dashboard) into the tenant;
/// visible only to the owner who made it.
#[table(name = browser_invite, public)]
pub struct BrowserInvite {
    #[primary_key]
    pub code: String,
    pub tenant_id: u64,
    #[index(btree)]
    pub created_by: Identity,
    /// The browser may submit tasks (and cancel its own); otherwise it only reads.
    pub submits: bool,
    pub label: String,
    pub expires_at: Timestamp,
}

/// A browser signed into the tenant's dashboard with its own identity. It is
/// a `Submitter` member and a reader; `submits` false makes it read-only
/// (a role of its own would change `member.role`'s type, which SpacetimeDB 1.2
/// does not migrate in place).
#[table(name = browser, public)]
pub struct Browser {
    #[primary_key]
    pub identity: Identity,
    #[index(btree)]
    pub tenant_id: u64,
    pub label: String,
    pub submits: bool,
    pub joined_at: Timestamp,
    pub last_connected: Timestamp,
}

/// A code the owner hands to an operator (the admin bot); visible only to the owner who made it.
#[table(name = operator_invite, public)]
pub struct OperatorInvite {
    #[primary_key]
    pub code: String,
    pub tenant_id: u64,
    #[index(btree)]
    pub created_by: Identity,
    pub label: String,
    pub expires_at: Timestamp,
}

/// A client that steers the tenant for its owner (the Discord admin bot): a
/// `Submitter` member and a reader that may also cancel any task of the
/// tenant, invite limbs and submitters, and pause or resume limbs. A table
/// of its own rather than a new `Role`, for the reason `Browser` gives.
#[table(name = operator, public)]
pub struct Operator {
    #[primary_key]
    pub identity: Identity,
    #[index(btree)]
    pub tenant_id: u64,
    pub label: String,
    pub joined_at: Timestamp,
}

/// The tenant's word to one limb: while `paused`, the hub assigns it nothing
/// (whatever it offers) and the limb, which sees its own row, offers no
/// slots and says why, as under its own tray pause. Written by the owner or
/// an operator (`pause_limb`); a running task finishes.
#[table(name = limb_control, public)]
pub struct LimbControl {
    #[primary_key]
    pub limb_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    /// The limb's identity: its view of its own row is this one column.
    #[index(btree)]
    pub limb_identity: Identity,
    pub paused: bool,
    /// Who paused or resumed it, and why (shown to the limb's owner).
    pub by: Identity,
    pub reason: String,
    pub at: Timestamp,
}

/// The cutover's map from a legacy record (`table:id` in the old SurrealDB
/// deployment) to the hub row it became: what makes every `migrate_*`
/// idempotent. Private: the hub's admin (the database's owner) reads it by
/// SQL to resume and to verify; nobody else has a use for it.
#[table(name = legacy_record)]
pub struct LegacyRecord {
    #[primary_key]
    pub legacy_id: String,
    /// "tenant", "member" or "task".
    pub kind: String,
    /// The tenant's id (a tenant, a member) or the task's.
    pub hub_id: u64,
    /// A task's submitter, by legacy id: whoever claims that user's code
    /// becomes the task's submitter. Empty for other kinds.
    #[index(btree)]
    pub submitter: String,
    pub migrated_at: Timestamp,
}

/// A legacy user's one-use claim code: whoever calls `claim_legacy` with it
/// becomes that user, in its migrated tenant and role. Private: the hub's
/// admin exports the codes (CSV) and hands each to its person.
#[table(name = legacy_claim)]
pub struct LegacyClaim {
    #[primary_key]
    pub code: String,
    #[unique]
    pub legacy_id: String,
    #[index(btree)]
    pub tenant_id: u64,
    /// `rules::migration::MigratedRole` by name.
    pub role: String,
    /// Who the legacy user was (a name, an email), for the CSV.
    pub label: String,
    /// Who claimed it; `Identity::ZERO` while nobody has.
    pub claimed_by: Identity,
    pub claimed_at: Option<Timestamp>,
}

/// Identities whose access the owner took back: refused at every connect.
#[table(name = revoked)]
pub struct Revoked {
    #[primary_key]
    pub identity: Identity,
    pub at: Timestamp,
}

/// Per limb, what a person watching it wants that the `limb` row does not
/// say: since when it is online (or offline), and how many tasks it finished.
/// It changes only on those events, so heartbeats still change nothing that
/// anybody subscribes to.
#[table(name = limb_stats, public)]
pub struct LimbStats {
    #[primary_key]
    pub limb_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    /// When `limb.online` last changed.
    pub since: Timestamp,
    pub tasks_done: u64,
}

#[table(name = limb, public)]
pub struct Limb {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    #[unique]
    pub identity: Identity,
    pub name: String,
    /// How long this limb's assignments live without a heartbeat.
    pub lease_secs: u32,
    /// How many tasks it asked to hold at once (0: none now).
    pub capacity: u32,
    pub models: Vec<ModelOffer>,
    /// It offers the `run_python` tool.
    pub tool: bool,
    pub gpu: bool,
    /// Connected and heard from within its lease.
    pub online: bool,
}

/// Which limb an identity is: how a limb learns its own id (it reads no
/// `limb` rows, which are for the tenant's readers).
#[table(name = assignee, public)]
pub struct Assignee {
    #[primary_key]
    pub identity: Identity,
    #[unique]
    pub limb_id: u64,
}

#[table(name = task, public)]
pub struct Task {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub submitted_by: Identity,
    pub payload: String,
    /// The model the task must run on (a limb's model id or sha256); empty: any.
    pub model: String,
    pub state: TaskState,
    /// The limb holding it while `Claimed`; 0 otherwise.
    #[index(btree)]
    pub assigned_to: u64,
    /// That limb's identity (`Identity::ZERO` otherwise): a limb's view of
    /// its assignments is this one column, which the server indexes by value.
    #[index(btree)]
    pub assignee: Identity,
    pub attempts: u32,
    /// Why the task failed or was cancelled; empty otherwise.
    pub reason: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[table(name = task_result, public)]
pub struct TaskResult {
    #[primary_key]
    pub task_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    #[index(btree)]
    pub limb_id: u64,
    /// The answering limb's identity: its view of its own results.
    #[index(btree)]
    pub limb_identity: Identity,
    pub summary: String,
    pub finished_at: Timestamp,
}

/// The tenant's tasks with their results, as its readers (the owner, a
/// dashboard, a bot) watch them: a copy of `task` and `task_result` written
/// with every change. A table of its own because SpacetimeDB 1.2 prunes a
/// subscription's updates by the search arguments of *every* row-level rule
/// of its table: on `task`, the limbs' rule (`assignee = :sender`) made a
/// reader's subscription hear only of tasks assigned to the reader itself,
/// that is of none (the initial rows were right; no insert or update came).
/// Here the readers' join is the only rule, so each change reaches exactly
/// the readers of its tenant.
#[table(name = tenant_task, public)]
pub struct TenantTask {
    #[primary_key]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub submitted_by: Identity,
    pub payload: String,
    pub model: String,
    pub state: TaskState,
    /// The limb holding it, or the one that answered it; 0: none.
    pub limb_id: u64,
    pub attempts: u32,
    pub reason: String,
    /// The result's summary; empty until it is done.
    pub summary: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A result a limb sent after the hub had given its task to another limb (its
/// lease ran out while it was away): kept for the owner to see, never a second
/// result (`task_result` keeps the first).
#[table(name = late_result, public)]
pub struct LateResult {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub task_id: u64,
    pub limb_id: u64,
    pub summary: String,
    pub at: Timestamp,
}

/// Each limb's public signing key (Ed25519), registered by the limb itself
/// once: the results it signs are checked against it (`heiwa task verify`).
#[table(name = limb_key, public)]
pub struct LimbKey {
    #[primary_key]
    pub limb_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub public_key: Vec<u8>,
    pub registered_at: Timestamp,
}

/// What the answering limb signed about a result (heiwa-provenance's
/// statement, JSON, and the signature over exactly those bytes). Stored as
/// sent: the hub is not who must be trusted to check it.
#[table(name = result_proof, public)]
pub struct ResultProof {
    #[primary_key]
    pub task_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub limb_id: u64,
    pub statement: String,
    pub signature: Vec<u8>,
}

/// A task submitted with `replicas` > 1 (BOINC's replication with a quorum):
/// its copies go to limbs of different donors, every result is kept, and the
/// hub decides (`rules::quorum`). Readers see it; `task_id` is the task as submitted.
#[table(name = replica_set, public)]
pub struct ReplicaSet {
    #[primary_key]
    pub task_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub replicas: u32,
    /// Every copy's task id: the submitted task first, a tie-breaker last.
    pub copies: Vec<u64>,
    pub verdict: QuorumState,
    /// The agreed summary.
    pub answer: String,
    /// The limbs whose copies agreed.
    pub agreeing: Vec<u64>,
    /// What happened, in words.
    pub note: String,
    pub updated_at: Timestamp,
}

/// Which replica set each copy belongs to (the submitted task too).
#[table(name = task_copy)]
pub struct TaskCopy {
    #[primary_key]
    pub task_id: u64,
    pub set_id: u64,
}

/// A replica set checked by scoring instead of by copies (issue 17's cheap
/// verification): its first copy is a greedy generation; when it is done,
/// each further copy asks a limb of another donor with the same model to score
/// that answer teacher-forced (`rules::Work::Score`), and `rules::score_quorum`
/// decides from their votes.
#[table(name = score_check)]
pub struct ScoreCheck {
    #[primary_key]
    pub set_id: u64,
}

/// The invite that admitted a limb. Limbs admitted by one invite are one
/// donor's: copies of a task never go to two of them. (A limb that joined
/// without one, or before this table, is a donor of its own.)
#[table(name = limb_origin)]
pub struct LimbOrigin {
    #[primary_key]
    pub identity: Identity,
    pub invite: String,
}

/// Each limb's record in replicated work, for the owner to see and for the
/// hub to decide how much to check it (adaptive replication).
#[table(name = limb_trust, public)]
pub struct LimbTrust {
    #[primary_key]
    pub limb_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    /// Its copies that agreed with the quorum, and those that did not.
    pub agreed: u64,
    pub disputed: u64,
    /// Agreed results since its last dispute: trusted from `rules::TRUSTED_STREAK` on.
    pub streak: u32,
    /// Replicated tasks of its that were not copied (trusted), and those spot-checked.
    pub trusted_skips: u64,
    pub spot_checks: u64,
}

/// A tenant's model catalogue: the models its tasks may name, where limbs
/// fetch them from (tried in order), and whether limbs keep them ready. The
/// owner and operators write it; the tenant's readers read it.
#[table(name = catalogue_model, public)]
pub struct CatalogueModel {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    /// What tasks name (`--model`); unique in the tenant.
    pub model_id: String,
    pub file: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// http(s) URLs and/or `hf:` references.
    pub sources: Vec<String>,
    pub license: String,
    /// Every limb of the tenant fetches it, not only when a task waits for it.
    pub keep_ready: bool,
    pub added_by: Identity,
    pub added_at: Timestamp,
}

/// One limb's copy of a catalogue model: the hub's request to the limb (it
/// reads its own rows, by `limb_identity`, and fetches what is `Wanted`) and
/// how the copy stands, which the limb reports and its offers confirm. The
/// entry's fetch details are copied in, as a limb reads no catalogue rows.
#[table(name = limb_model, public)]
pub struct LimbModel {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub limb_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    #[index(btree)]
    pub limb_identity: Identity,
    pub model_id: String,
    pub file: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub sources: Vec<String>,
    /// How the copy stands (not `state`, which the SQL readers read as a task's).
    pub stage: ModelState,
    /// Bytes on the limb's disk (of `size_bytes`).
    pub have: u64,
    /// Why it failed or does not fit, in words.
    pub reason: String,
    pub updated_at: Timestamp,
}

/// The tenant's readers' copy of each `limb_model` row (the same id), less
/// the limb's identity and the fetch details: one rule on a table lets the
/// server push its changes to readers' subscriptions (the dashboard's
/// progress), as `tenant_task` does for `task`.
#[table(name = tenant_model_copy, public)]
pub struct TenantModelCopy {
    #[primary_key]
    pub id: u64,
    #[index(btree)]
    pub tenant_id: u64,
    pub limb_id: u64,
    pub model_id: String,
    pub size_bytes: u64,
    pub stage: ModelState,
    pub have: u64,
    pub reason: String,
    pub updated_at: Timestamp,
}

/// Tasks waiting for a limb, oldest first per tenant (task ids only grow).
#[table(name = pending, index(name = by_tenant_age, btree(columns = [tenant_id, task_id])))]
pub struct Pending {
    #[primary_key]
    pub task_id: u64,
    pub tenant_id: u64,
    pub model: String,
}

/// Where a tenant's queue lies among task ids: no queued task of the tenant
/// has an id below `oldest` or above `newest`. A freed slot reads the queue
/// in small windows from `oldest` instead of the whole queue, which the hub
/// (SpacetimeDB 1.2 hands a module every row of an index range at once) would
/// otherwise copy for every completion. Private.
#[table(name = queue_bounds)]
pub struct QueueBounds {
    #[primary_key]
    pub tenant_id: u64,
    pub oldest: u64,
    pub newest: u64,
}

/// Online limbs with a free slot: where a new task goes without a scan.
#[table(name = ready)]
pub struct Ready {
    #[primary_key]
    pub limb_id: u64,
    #[index(btree)]
    pub tenant_id: u64,
}

/// When each limb was last heard from. Kept off the public `limb` row so
/// that heartbeats change nothing anybody subscribes to.
#[table(name = presence)]
pub struct Presence {
    #[primary_key]
    pub limb_id: u64,
    pub last_seen: Timestamp,
    /// The WebSocket it last offered on. Only that connection's end takes it
    /// offline: an HTTP call made with the same identity (which the server
    /// also ends with `client_disconnected`) does not.
    pub connection: Option<ConnectionId>,
}

/// Assignments with a live lease: the sweep walks these, not every task.
#[table(name = lease)]
pub struct Lease {
    #[primary_key]
    pub task_id: u64,
    #[index(btree)]
    pub limb_id: u64,
    pub until: Timestamp,
}

/// Keys of `submit_task_once`, per tenant (`"{tenant_id}:{key}"`), kept as
/// long as finished tasks are.
#[table(name = submit_key)]
pub struct SubmitKey {
    #[primary_key]
    pub key: String,
    pub at: Timestamp,
}

/// Each tenant's open-task count and submit allowance (the quotas).
#[table(name = tenant_usage)]
pub struct TenantUsage {
    #[primary_key]
    pub tenant_id: u64,
    pub open_tasks: u32,
    pub milli_tokens: u64,
    pub refilled_at: Timestamp,
}

#[table(name = lease_sweep, scheduled(retention::expire_leases))]
pub struct LeaseSweep {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
}

#[table(name = prune_sweep, scheduled(retention::prune_finished))]
pub struct PruneSweep {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
}

/// A legacy organization, as `migrate_tenants` takes it.
#[derive(SpacetimeType, Clone, Debug)]
pub struct MigratedTenant {
    pub legacy_id: String,
    pub name: String,
    pub created_at_micros: i64,
}

/// A legacy user, as `migrate_members` takes it: it becomes a claim code.
#[derive(SpacetimeType, Clone, Debug)]
pub struct MigratedMember {
    pub legacy_id: String,
    pub tenant_legacy_id: String,
    /// owner, submitter or reader (`rules::migration::MigratedRole`).
    pub role: String,
    pub label: String,
    /// SHA-256 (hex) of the user's claim code, which `heiwa migrate` made
    /// from its machine's CSPRNG and keeps: the hub never sees the code.
    pub code_hash: String,
}

/// A migrated user's new claim code (its hash), as `reissue_claims` takes it.
#[derive(SpacetimeType, Clone, Debug)]
pub struct ReissuedClaim {
    pub legacy_id: String,
    pub code_hash: String,
}

/// A legacy task with its outcome, as `migrate_tasks` takes it.
#[derive(SpacetimeType, Clone, Debug)]
pub struct MigratedTask {
    pub legacy_id: String,
    pub tenant_legacy_id: String,
    /// The legacy user who submitted it (empty: unknown).
    pub submitter_legacy_id: String,
    pub payload: String,
    pub model: String,
    /// pending, done, failed or cancelled (`rules::migration::migrated_state`).
    pub state: String,
    pub summary: String,
    pub reason: String,
    pub created_at_micros: i64,
    /// When it finished (0: it has not).
    pub finished_at_micros: i64,
}

#[reducer(init)]
pub fn init(ctx: &ReducerContext) {
    ctx.db.hub_config().insert(HubConfig {
        id: 0,
        admin: ctx.sender,
        max_open_tasks: rules::DEFAULT_MAX_OPEN_TASKS,
        submits_per_sec: rules::DEFAULT_SUBMITS_PER_SEC,
        submit_burst: rules::DEFAULT_SUBMIT_BURST,
        retain_secs: rules::DEFAULT_RETAIN_SECS,
        prune_every_secs: rules::DEFAULT_PRUNE_EVERY_SECS,
    });
    access::init_policy(ctx);
    ctx.db
        .lease_sweep()
        .insert(LeaseSweep { scheduled_id: 0, scheduled_at: ScheduleAt::Interval(retention::SWEEP_EVERY.into()) });
    ctx.db.prune_sweep().insert(PruneSweep {
        scheduled_id: 0,
        scheduled_at: ScheduleAt::Interval(Duration::from_secs(rules::DEFAULT_PRUNE_EVERY_SECS).into()),
    });
}

pub(crate) fn micros(t: Timestamp) -> i64 {
    t.to_micros_since_unix_epoch()
}

pub(crate) fn after(ctx: &ReducerContext, secs: u32) -> Timestamp {
    ctx.timestamp + TimeDuration::from(Duration::from_secs(secs.into()))
}

pub(crate) fn config(ctx: &ReducerContext) -> Result<HubConfig, String> {
    ctx.db.hub_config().id().find(0).ok_or_else(|| "the hub has no configuration (was init run?)".to_string())
}

/// Copy `task` (with its result, once there is one) to the readers' `tenant_task`:
/// once per change, by whoever writes its new state (`assign`, `place`, `finish`).
pub(crate) fn mirror(ctx: &ReducerContext, task: &Task) {
    let result = ctx.db.task_result().task_id().find(task.id);
    let row = TenantTask {
        id: task.id,
        tenant_id: task.tenant_id,
        submitted_by: task.submitted_by,
        payload: task.payload.clone(),
        model: task.model.clone(),
        state: task.state,
        limb_id: result.as_ref().map_or(task.assigned_to, |result| result.limb_id),
        attempts: task.attempts,
        reason: task.reason.clone(),
        finished_at: result.as_ref().map(|result| result.finished_at),
        summary: result.map(|result| result.summary).unwrap_or_default(),
        created_at: task.created_at,
        updated_at: task.updated_at,
    };
    if ctx.db.tenant_task().id().find(task.id).is_some() {
        ctx.db.tenant_task().id().update(row);
    } else {
        ctx.db.tenant_task().insert(row);
    }
}

/// Every connection: a revoked identity is refused (the server closes it);
/// a browser's last sign of life is noted.
#[reducer(client_connected)]
pub fn client_connected(ctx: &ReducerContext) -> Result<(), String> {
    if ctx.db.revoked().identity().find(ctx.sender).is_some() {
        return Err("this browser's access to the tenant was revoked by its owner".into());
    }
    if let Some(browser) = ctx.db.browser().identity().find(ctx.sender) {
        ctx.db.browser().identity().update(Browser { last_connected: ctx.timestamp, ..browser });
    }
    Ok(())
}
