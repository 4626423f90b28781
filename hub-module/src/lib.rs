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

pub use hub_rules as rules;

mod access;

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

/// Tasks waiting for a limb, oldest first per tenant (task ids only grow).
#[table(name = pending, index(name = by_tenant_age, btree(columns = [tenant_id, task_id])))]
pub struct Pending {
    #[primary_key]
    pub task_id: u64,
    pub tenant_id: u64,
    pub model: String,
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

#[table(name = lease_sweep, scheduled(expire_leases))]
pub struct LeaseSweep {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
}

#[table(name = prune_sweep, scheduled(prune_finished))]
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

// Row-level security: evaluated by the server for every subscription and query;
// several filters on one table show the union of their rows (in SQL replies a
// row two rules match comes twice: `HubHttp::rows` drops the copy).
// A limb's rules are one indexed column equal to its identity (`task.assignee`,
// `task_result.limb_identity`, `assignee.identity`): the server indexes such
// subscriptions by value, so a changed row is matched to the one limb it
// concerns. It reads its own id from `assignee`; `limb` rows are for readers.
// Readers' rules join from the caller's `member` or `reader` row (a primary-key
// lookup whose own rule is that lookup alone) so the server can maintain them
// with index joins; written any other way, SpacetimeDB 1.2 refuses them for
// subscriptions ("Subscriptions require indexes on join columns").
#[client_visibility_filter]
const MEMBER_VISIBILITY: Filter = Filter::Sql("SELECT * FROM member WHERE identity = :sender");
#[client_visibility_filter]
const TENANT_VISIBILITY: Filter = Filter::Sql(
    "SELECT tenant.* FROM member JOIN tenant ON member.tenant_id = tenant.id WHERE member.identity = :sender",
);
#[client_visibility_filter]
const INVITE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM invite WHERE created_by = :sender");
#[client_visibility_filter]
const READER_VISIBILITY: Filter = Filter::Sql("SELECT * FROM reader WHERE identity = :sender");
#[client_visibility_filter]
const LIMB_TENANT_VISIBILITY: Filter = Filter::Sql(
    "SELECT limb.* FROM reader JOIN limb ON reader.tenant_id = limb.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const LIMB_STATS_VISIBILITY: Filter = Filter::Sql(
    "SELECT limb_stats.* FROM reader JOIN limb_stats ON reader.tenant_id = limb_stats.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const BROWSER_INVITE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM browser_invite WHERE created_by = :sender");
#[client_visibility_filter]
const BROWSER_VISIBILITY: Filter = Filter::Sql(
    "SELECT browser.* FROM reader JOIN browser ON reader.tenant_id = browser.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const TENANT_TASK_VISIBILITY: Filter = Filter::Sql(
    "SELECT tenant_task.* FROM reader JOIN tenant_task ON reader.tenant_id = tenant_task.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const LATE_RESULT_VISIBILITY: Filter = Filter::Sql(
    "SELECT late_result.* FROM reader JOIN late_result ON reader.tenant_id = late_result.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const LIMB_KEY_VISIBILITY: Filter = Filter::Sql(
    "SELECT limb_key.* FROM reader JOIN limb_key ON reader.tenant_id = limb_key.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const RESULT_PROOF_VISIBILITY: Filter = Filter::Sql(
    "SELECT result_proof.* FROM reader JOIN result_proof ON reader.tenant_id = result_proof.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const REPLICA_SET_VISIBILITY: Filter = Filter::Sql(
    "SELECT replica_set.* FROM reader JOIN replica_set ON reader.tenant_id = replica_set.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const LIMB_TRUST_VISIBILITY: Filter = Filter::Sql(
    "SELECT limb_trust.* FROM reader JOIN limb_trust ON reader.tenant_id = limb_trust.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const OPERATOR_INVITE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM operator_invite WHERE created_by = :sender");
#[client_visibility_filter]
const OPERATOR_VISIBILITY: Filter = Filter::Sql(
    "SELECT operator.* FROM reader JOIN operator ON reader.tenant_id = operator.tenant_id WHERE reader.identity = :sender",
);
// `limb_control` has two rules, so (as on `task`) a reader's *subscription*
// would hear of no change to it: readers read it by query (`/limbs`), and
// only the limb subscribes to it, by its own rule.
#[client_visibility_filter]
const LIMB_CONTROL_OWN_VISIBILITY: Filter = Filter::Sql("SELECT * FROM limb_control WHERE limb_identity = :sender");
#[client_visibility_filter]
const LIMB_CONTROL_TENANT_VISIBILITY: Filter = Filter::Sql(
    "SELECT limb_control.* FROM reader JOIN limb_control ON reader.tenant_id = limb_control.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const ASSIGNEE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM assignee WHERE identity = :sender");
#[client_visibility_filter]
const TASK_ASSIGNED_VISIBILITY: Filter = Filter::Sql("SELECT * FROM task WHERE assignee = :sender");
#[client_visibility_filter]
const TASK_TENANT_VISIBILITY: Filter = Filter::Sql(
    "SELECT task.* FROM reader JOIN task ON reader.tenant_id = task.tenant_id WHERE reader.identity = :sender",
);
#[client_visibility_filter]
const RESULT_OWN_VISIBILITY: Filter = Filter::Sql("SELECT * FROM task_result WHERE limb_identity = :sender");
#[client_visibility_filter]
const RESULT_TENANT_VISIBILITY: Filter = Filter::Sql(
    "SELECT task_result.* FROM reader JOIN task_result ON reader.tenant_id = task_result.tenant_id WHERE reader.identity = :sender",
);

const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Finished tasks one prune pass deletes at most, so a pass stays short.
const PRUNE_BATCH: usize = 5_000;

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
    ctx.db.lease_sweep().insert(LeaseSweep { scheduled_id: 0, scheduled_at: ScheduleAt::Interval(SWEEP_EVERY.into()) });
    ctx.db.prune_sweep().insert(PruneSweep {
        scheduled_id: 0,
        scheduled_at: ScheduleAt::Interval(Duration::from_secs(rules::DEFAULT_PRUNE_EVERY_SECS).into()),
    });
}

fn micros(t: Timestamp) -> i64 {
    t.to_micros_since_unix_epoch()
}

fn after(ctx: &ReducerContext, secs: u32) -> Timestamp {
    ctx.timestamp + TimeDuration::from(Duration::from_secs(secs.into()))
}

fn config(ctx: &ReducerContext) -> Result<HubConfig, String> {
    ctx.db.hub_config().id().find(0).ok_or_else(|| "the hub has no configuration (was init run?)".to_string())
}

/// The hub's configuration, when the caller is its admin (who published it).
fn admin(ctx: &ReducerContext, to: &str) -> Result<HubConfig, String> {
    let config = config(ctx)?;
    if ctx.sender != config.admin {
        return Err(format!("only the hub's admin (who published it) can {to}"));
    }
    Ok(config)
}

fn membership(ctx: &ReducerContext) -> Result<Member, String> {
    ctx.db.member().identity().find(ctx.sender).ok_or_else(|| "you are not a member of any tenant".to_string())
}

fn owner(ctx: &ReducerContext) -> Result<Member, String> {
    let member = membership(ctx)?;
    if member.role != Role::Owner {
        return Err("only the tenant's owner can do that".into());
    }
    Ok(member)
}

/// The caller (a browser or an operator, in no tenant yet) becomes a
/// `Submitter` member of `tenant_id` that reads it, and submits if `submits`.
fn admit_reader(ctx: &ReducerContext, tenant_id: u64, submits: bool) {
    ctx.db.member().insert(Member { identity: ctx.sender, tenant_id, role: Role::Submitter, submits });
    ctx.db.reader().insert(Reader { identity: ctx.sender, tenant_id });
}

/// The caller, when it is the tenant's owner or one of its operators (the admin bot).
fn steward(ctx: &ReducerContext) -> Result<Member, String> {
    let member = membership(ctx)?;
    if member.role != Role::Owner && !is_operator(ctx, &member) {
        return Err("only the tenant's owner or an operator can do that".into());
    }
    Ok(member)
}

fn is_operator(ctx: &ReducerContext, member: &Member) -> bool {
    ctx.db.operator().identity().find(member.identity).is_some_and(|op| op.tenant_id == member.tenant_id)
}

/// The tenant (owner or an operator) paused this limb.
fn paused(ctx: &ReducerContext, limb_id: u64) -> bool {
    ctx.db.limb_control().limb_id().find(limb_id).is_some_and(|control| control.paused)
}

/// The caller's own limb. Errors never reveal whether another tenant's row exists.
fn own_limb(ctx: &ReducerContext, limb_id: u64) -> Result<Limb, String> {
    ctx.db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.identity == ctx.sender)
        .ok_or_else(|| format!("no limb {limb_id} of yours"))
}

fn tenant_task(ctx: &ReducerContext, tenant_id: u64, task_id: u64) -> Result<Task, String> {
    ctx.db
        .task()
        .id()
        .find(task_id)
        .filter(|task| task.tenant_id == tenant_id)
        .ok_or_else(|| format!("no task {task_id} in your tenant"))
}

/// The task `limb_id` (the caller's) holds with a live lease. A limb that is
/// not the holder learns nothing about the task but that it is not its own.
fn held_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(Limb, Task), String> {
    let limb = own_limb(ctx, limb_id)?;
    let task = tenant_task(ctx, limb.tenant_id, task_id)?;
    let lease = ctx.db.lease().task_id().find(task_id).map(|lease| micros(lease.until));
    rules::check_holder(task_id, task.state, task.assigned_to, lease, limb.id, micros(ctx.timestamp))?;
    Ok((limb, task))
}

fn held_count(ctx: &ReducerContext, limb_id: u64) -> u32 {
    ctx.db.lease().limb_id().filter(limb_id).count() as u32
}

/// Write `limb` with `online` set, noting in `limb_stats` when that changed.
fn set_online(ctx: &ReducerContext, limb: Limb, online: bool) -> Limb {
    match ctx.db.limb_stats().limb_id().find(limb.id) {
        Some(_) if limb.online == online => {}
        Some(stats) => {
            ctx.db.limb_stats().limb_id().update(LimbStats { since: ctx.timestamp, ..stats });
        }
        None => {
            ctx.db.limb_stats().insert(LimbStats {
                limb_id: limb.id,
                tenant_id: limb.tenant_id,
                since: ctx.timestamp,
                tasks_done: 0,
            });
        }
    }
    ctx.db.limb().id().update(Limb { online, ..limb })
}

/// Copy `task` (with its result, once there is one) to the readers' `tenant_task`:
/// once per change, by whoever writes its new state (`assign`, `place`, `finish`).
fn mirror(ctx: &ReducerContext, task: &Task) {
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

/// Keep `ready` true to the limb: online with a free slot, or absent.
fn refresh_ready(ctx: &ReducerContext, limb: &Limb) {
    let free = rules::free_slots(limb.capacity, held_count(ctx, limb.id));
    let listed = ctx.db.ready().limb_id().find(limb.id).is_some();
    match (limb.online && free > 0 && !paused(ctx, limb.id), listed) {
        (true, false) => {
            ctx.db.ready().insert(Ready { limb_id: limb.id, tenant_id: limb.tenant_id });
        }
        (false, true) => {
            ctx.db.ready().limb_id().delete(limb.id);
        }
        _ => {}
    }
}

/// Hand a pending task to `limb` under a fresh lease.
fn assign(ctx: &ReducerContext, task: Task, limb: &Limb) {
    ctx.db.pending().task_id().delete(task.id);
    ctx.db.lease().insert(Lease { task_id: task.id, limb_id: limb.id, until: after(ctx, limb.lease_secs) });
    let task = ctx.db.task().id().update(Task {
        state: TaskState::Claimed,
        assigned_to: limb.id,
        assignee: limb.identity,
        attempts: task.attempts + 1,
        updated_at: ctx.timestamp,
        ..task
    });
    mirror(ctx, &task);
    if let Some(set) = ctx.db.replica_set().task_id().find(task.id) {
        if set.verdict == QuorumState::Open && set.copies.len() == 1 {
            replicate(ctx, set, &task, limb);
        }
    }
}

/// The submitted copy of a replicated task went to `limb`: make the other
/// copies now, unless `limb` is trusted: then whether it is spot-checked is
/// decided when its answer arrives ([`spot_check`]), so that nothing the limb
/// can read before it answers depends on that decision.
fn replicate(ctx: &ReducerContext, set: ReplicaSet, task: &Task, limb: &Limb) {
    if rules::is_trusted(trust_of(ctx, limb).streak) || is_scored(ctx, set.task_id) {
        // A scoring copy needs the answer: `judge_scored` makes it.
        return;
    }
    make_copies(ctx, set, task, String::new());
}

/// The other copies of a replicated task, placed at once.
fn make_copies(ctx: &ReducerContext, set: ReplicaSet, task: &Task, note: String) {
    let copies: Vec<Task> = (1..set.replicas).map(|_| new_copy(ctx, task, task.payload.clone(), set.task_id)).collect();
    let mut ids = set.copies.clone();
    ids.extend(copies.iter().map(|copy| copy.id));
    ctx.db.replica_set().task_id().update(ReplicaSet { copies: ids, note, updated_at: ctx.timestamp, ..set });
    for copy in copies {
        place(ctx, copy);
    }
}

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
    let roll = access::spot_check_key(ctx).map(|key| rules::secrets::spot_check_roll(&key, set.task_id));
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

/// One more copy of `task` in replica set `set_id`, asking `payload` (the
/// task's own, or a scoring of its answer), pending (the caller places it).
fn new_copy(ctx: &ReducerContext, task: &Task, payload: String, set_id: u64) -> Task {
    let copy = ctx.db.task().insert(Task {
        id: 0,
        state: TaskState::Pending,
        assigned_to: 0,
        assignee: Identity::ZERO,
        attempts: 0,
        reason: String::new(),
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
        tenant_id: task.tenant_id,
        submitted_by: task.submitted_by,
        payload,
        model: task.model.clone(),
    });
    ctx.db.task_copy().insert(TaskCopy { task_id: copy.id, set_id });
    if let Some(usage) = ctx.db.tenant_usage().tenant_id().find(task.tenant_id) {
        ctx.db.tenant_usage().tenant_id().update(TenantUsage { open_tasks: usage.open_tasks + 1, ..usage });
    }
    copy
}

fn trust_of(ctx: &ReducerContext, limb: &Limb) -> LimbTrust {
    ctx.db.limb_trust().limb_id().find(limb.id).unwrap_or_else(|| {
        ctx.db.limb_trust().insert(LimbTrust {
            limb_id: limb.id,
            tenant_id: limb.tenant_id,
            agreed: 0,
            disputed: 0,
            streak: 0,
            trusted_skips: 0,
            spot_checks: 0,
        })
    })
}

/// The donor a limb belongs to: the invite that admitted it, or itself.
fn donor_of(ctx: &ReducerContext, limb: &Limb) -> String {
    ctx.db.limb_origin().identity().find(limb.identity).map_or_else(|| limb.identity.to_hex().to_string(), |o| o.invite)
}

/// May `limb` take task `task_id`? Always, unless the task is a copy and a
/// limb of the same donor holds or answered another copy of it.
fn may_take(ctx: &ReducerContext, task_id: u64, limb: &Limb) -> bool {
    let Some(set) =
        ctx.db.task_copy().task_id().find(task_id).and_then(|c| ctx.db.replica_set().task_id().find(c.set_id))
    else {
        return true;
    };
    let donor = donor_of(ctx, limb);
    set.copies.iter().filter(|id| **id != task_id).all(|sibling| {
        let answered = ctx.db.task_result().task_id().find(*sibling).map(|r| r.limb_id);
        let held = ctx.db.task().id().find(*sibling).map(|t| t.assigned_to).filter(|id| *id != 0);
        answered.or(held).and_then(|id| ctx.db.limb().id().find(id)).is_none_or(|other| donor_of(ctx, &other) != donor)
    })
}

/// A copy of a replicated task finished: decide the set if every copy has
/// (`rules::quorum`), send a tie-breaker if they disagree, keep the records.
fn judge(ctx: &ReducerContext, task_id: u64) {
    let Some(set) =
        ctx.db.task_copy().task_id().find(task_id).and_then(|c| ctx.db.replica_set().task_id().find(c.set_id))
    else {
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

fn is_scored(ctx: &ReducerContext, set_id: u64) -> bool {
    ctx.db.score_check().set_id().find(set_id).is_some()
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

/// A pending task goes to the first ready limb of its tenant that offers its
/// model; with none, it waits in the queue for a slot to free.
fn place(ctx: &ReducerContext, task: Task) {
    let taker = ctx
        .db
        .ready()
        .tenant_id()
        .filter(task.tenant_id)
        .filter_map(|ready| ctx.db.limb().id().find(ready.limb_id))
        .find(|limb| rules::offers(&limb.models, &task.model) && may_take(ctx, task.id, limb));
    match taker {
        Some(limb) => {
            assign(ctx, task, &limb);
            refresh_ready(ctx, &limb);
        }
        // Its callers (a new task, `finish`) leave no queue row behind.
        None => {
            mirror(ctx, &task);
            ctx.db.pending().insert(Pending { task_id: task.id, tenant_id: task.tenant_id, model: task.model });
        }
    }
}

/// Fill `limb`'s free slots from its tenant's queue, oldest task first,
/// skipping tasks pinned to a model it does not offer.
fn fill(ctx: &ReducerContext, limb: &Limb) {
    let takes_work = limb.online && !paused(ctx, limb.id);
    let free = if takes_work { rules::free_slots(limb.capacity, held_count(ctx, limb.id)) } else { 0 };
    if free > 0 {
        let queued: Vec<u64> = ctx
            .db
            .pending()
            .by_tenant_age()
            .filter(limb.tenant_id)
            .filter(|pending| rules::offers(&limb.models, &pending.model) && may_take(ctx, pending.task_id, limb))
            .take(free as usize)
            .map(|pending| pending.task_id)
            .collect();
        for task_id in queued {
            if let Some(task) = ctx.db.task().id().find(task_id) {
                assign(ctx, task, limb);
            }
        }
    }
    refresh_ready(ctx, limb);
}

fn usage(ctx: &ReducerContext, tenant_id: u64, config: &HubConfig) -> TenantUsage {
    ctx.db.tenant_usage().tenant_id().find(tenant_id).unwrap_or_else(|| {
        let bucket = rules::Bucket::full(config.submit_burst, micros(ctx.timestamp));
        ctx.db.tenant_usage().insert(TenantUsage {
            tenant_id,
            open_tasks: 0,
            milli_tokens: bucket.milli_tokens,
            refilled_at: ctx.timestamp,
        })
    })
}

/// Move a task to `state`. Its holder (if any) loses it and takes queued work
/// in its place; a task back to `Pending` is placed again at once.
fn finish(ctx: &ReducerContext, task: Task, state: TaskState, reason: String) {
    let holder = task.assigned_to;
    let was_open = !rules::is_finished(task.state);
    ctx.db.lease().task_id().delete(task.id);
    ctx.db.pending().task_id().delete(task.id);
    let task = ctx.db.task().id().update(Task {
        state,
        reason,
        assigned_to: 0,
        assignee: Identity::ZERO,
        updated_at: ctx.timestamp,
        ..task
    });
    // A task back to `Pending` is copied once, where `place` puts it.
    if state != TaskState::Pending {
        mirror(ctx, &task);
    }
    if was_open && rules::is_finished(state) {
        if let Some(usage) = ctx.db.tenant_usage().tenant_id().find(task.tenant_id) {
            ctx.db
                .tenant_usage()
                .tenant_id()
                .update(TenantUsage { open_tasks: usage.open_tasks.saturating_sub(1), ..usage });
        }
    }
    if rules::is_finished(state) {
        judge(ctx, task.id);
    }
    if let Some(limb) = ctx.db.limb().id().find(holder) {
        fill(ctx, &limb);
    }
    if state == TaskState::Pending {
        place(ctx, task);
    }
}

/// The owner lets one of its limbs read the whole tenant and/or submit tasks (or takes that back).
#[reducer]
pub fn grant_limb(ctx: &ReducerContext, limb_id: u64, reads_tenant: bool, submits: bool) -> Result<(), String> {
    let member = owner(ctx)?;
    let limb = ctx
        .db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.tenant_id == member.tenant_id)
        .ok_or_else(|| format!("no limb {limb_id} in your tenant"))?;
    let granted = ctx.db.member().identity().find(limb.identity).ok_or("that limb is no longer a member")?;
    ctx.db.member().identity().update(Member { submits, ..granted });
    ctx.db.reader().identity().delete(limb.identity);
    if reads_tenant {
        ctx.db.reader().insert(Reader { identity: limb.identity, tenant_id: limb.tenant_id });
    }
    Ok(())
}

/// The owner takes a browser's access back: it reads nothing from now on and
/// is refused at its next connect.
#[reducer]
pub fn revoke_browser(ctx: &ReducerContext, browser: Identity) -> Result<(), String> {
    let member = owner(ctx)?;
    ctx.db
        .browser()
        .identity()
        .find(browser)
        .filter(|row| row.tenant_id == member.tenant_id)
        .ok_or("no such browser in your tenant")?;
    ctx.db.browser().identity().delete(browser);
    revoke(ctx, browser);
    Ok(())
}

/// The owner takes an operator's access back (the bot is retired, or its
/// hub token leaked): its rows go now, and it is refused at every connect.
#[reducer]
pub fn revoke_operator(ctx: &ReducerContext, operator: Identity) -> Result<(), String> {
    let member = owner(ctx)?;
    ctx.db
        .operator()
        .identity()
        .find(operator)
        .filter(|row| row.tenant_id == member.tenant_id)
        .ok_or("no such operator in your tenant")?;
    ctx.db.operator().identity().delete(operator);
    revoke(ctx, operator);
    Ok(())
}

/// A reading member (a browser, an operator) is no longer one, and never again.
fn revoke(ctx: &ReducerContext, identity: Identity) {
    ctx.db.reader().identity().delete(identity);
    ctx.db.member().identity().delete(identity);
    ctx.db.revoked().insert(Revoked { identity, at: ctx.timestamp });
}

/// The owner or an operator pauses (or resumes) one of the tenant's limbs:
/// paused, it is assigned nothing and offers nothing; what it runs finishes.
/// Resumed, its free slots fill at once.
#[reducer]
pub fn pause_limb(ctx: &ReducerContext, limb_id: u64, paused: bool, reason: String) -> Result<(), String> {
    let member = steward(ctx)?;
    rules::check_reason(&reason)?;
    let limb = ctx
        .db
        .limb()
        .id()
        .find(limb_id)
        .filter(|limb| limb.tenant_id == member.tenant_id)
        .ok_or_else(|| format!("no limb {limb_id} in your tenant"))?;
    let control = LimbControl {
        limb_id,
        tenant_id: limb.tenant_id,
        limb_identity: limb.identity,
        paused,
        by: ctx.sender,
        reason,
        at: ctx.timestamp,
    };
    if ctx.db.limb_control().limb_id().find(limb_id).is_some() {
        ctx.db.limb_control().limb_id().update(control);
    } else {
        ctx.db.limb_control().insert(control);
    }
    fill(ctx, &limb);
    Ok(())
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

/// Register the caller as a limb, or rename it and change its lease if it is
/// one. It takes no work until it offers slots ([`offer`]).
#[reducer]
pub fn register_limb(ctx: &ReducerContext, name: String, lease_secs: u32) -> Result<(), String> {
    rules::check_name("limb", &name)?;
    rules::check_lease_secs(lease_secs)?;
    let member = membership(ctx)?;
    if member.role == Role::Submitter {
        return Err("a submitter cannot be a limb; join with a limb invite".into());
    }
    match ctx.db.limb().identity().find(ctx.sender) {
        Some(limb) => {
            ctx.db.limb().id().update(Limb { name, lease_secs, ..limb });
        }
        None => {
            let limb = ctx.db.limb().insert(Limb {
                id: 0,
                tenant_id: member.tenant_id,
                identity: ctx.sender,
                name,
                lease_secs,
                capacity: 0,
                models: Vec::new(),
                tool: false,
                gpu: false,
                online: false,
            });
            ctx.db.presence().insert(Presence { limb_id: limb.id, last_seen: ctx.timestamp, connection: None });
            ctx.db.assignee().insert(Assignee { identity: ctx.sender, limb_id: limb.id });
            ctx.db.limb_stats().insert(LimbStats {
                limb_id: limb.id,
                tenant_id: limb.tenant_id,
                since: ctx.timestamp,
                tasks_done: 0,
            });
        }
    }
    Ok(())
}

/// The limb's public signing key. A limb has one: the same key again is
/// accepted, another refused (a copied token must not replace the key its
/// results were signed with).
#[reducer]
pub fn register_limb_key(ctx: &ReducerContext, limb_id: u64, public_key: Vec<u8>) -> Result<(), String> {
    rules::check_public_key(&public_key)?;
    let limb = own_limb(ctx, limb_id)?;
    match ctx.db.limb_key().limb_id().find(limb_id) {
        Some(known) if known.public_key == public_key => Ok(()),
        Some(_) => Err(format!(
            "limb {limb_id} registered another signing key; a limb keeps its first key (restore its key file, or join as a new limb)"
        )),
        None => {
            ctx.db.limb_key().insert(LimbKey {
                limb_id,
                tenant_id: limb.tenant_id,
                public_key,
                registered_at: ctx.timestamp,
            });
            Ok(())
        }
    }
}

/// What the limb can take now: `capacity` tasks at once (0 to stop taking
/// work), the models it has, the tool, a GPU. Its free slots fill at once.
#[reducer]
pub fn offer(
    ctx: &ReducerContext,
    limb_id: u64,
    capacity: u32,
    models: Vec<ModelOffer>,
    tool: bool,
    gpu: bool,
) -> Result<(), String> {
    rules::check_offer(capacity, &models)?;
    let limb = own_limb(ctx, limb_id)?;
    let limb = set_online(ctx, Limb { capacity, models, tool, gpu, ..limb }, true);
    ctx.db.presence().limb_id().update(Presence { limb_id, last_seen: ctx.timestamp, connection: ctx.connection_id });
    fill(ctx, &limb);
    Ok(())
}

/// The limb is alive: renew the lease of every task it holds. Only from the
/// connection it last offered on: a second connection with the same identity
/// (a copied token on another host) that offered later has taken over, and
/// this one is refused, so one limb never runs twice. The newest offer wins
/// because a limb that reconnects must not be locked out by its own dead
/// connection, which the hub may not have seen close.
#[reducer]
pub fn heartbeat(ctx: &ReducerContext, limb_id: u64) -> Result<(), String> {
    let limb = own_limb(ctx, limb_id)?;
    let current = ctx.db.presence().limb_id().find(limb_id).and_then(|presence| presence.connection);
    if current.is_some() && current != ctx.connection_id {
        return Err(rules::SUPERSEDED.into());
    }
    let until = after(ctx, limb.lease_secs);
    for lease in ctx.db.lease().limb_id().filter(limb_id).collect::<Vec<_>>() {
        ctx.db.lease().task_id().update(Lease { until, ..lease });
    }
    ctx.db.presence().limb_id().update(Presence { limb_id, last_seen: ctx.timestamp, connection: ctx.connection_id });
    if !limb.online {
        // The sweep had given up on it (a long pause); it is back.
        let limb = set_online(ctx, limb, true);
        fill(ctx, &limb);
    }
    Ok(())
}

/// A limb's connection closed (crash, network, shutdown): it gets no new work
/// until it offers again. What it holds stays its own until the lease runs out,
/// so a limb that reconnects in time finishes it.
#[reducer(client_disconnected)]
pub fn client_disconnected(ctx: &ReducerContext) {
    let Some(limb) = ctx.db.limb().identity().find(ctx.sender) else { return };
    let offered_here = ctx.db.presence().limb_id().find(limb.id).is_some_and(|p| p.connection == ctx.connection_id);
    if offered_here {
        let limb = set_online(ctx, limb, false);
        refresh_ready(ctx, &limb);
    }
}

/// Submit a task; `model` pins it to limbs offering that model (empty: any).
#[reducer]
pub fn submit_task(ctx: &ReducerContext, payload: String, model: String) -> Result<(), String> {
    rules::check_payload(&payload)?;
    rules::check_model(&model)?;
    let member = submitter(ctx)?;
    accept_task(ctx, &member, payload, model, Check::Copies(1))
}

/// Submit a task at most once per `key` in the tenant: the same key again is
/// accepted and changes nothing. A producer that got no answer (a dropped
/// connection, a hub restart) sends again with the same key instead of guessing.
#[reducer]
pub fn submit_task_once(ctx: &ReducerContext, key: String, payload: String, model: String) -> Result<(), String> {
    rules::check_submit_key(&key)?;
    submit_task_replicated(ctx, key, payload, model, 1)
}

/// Submit a task to be answered by `replicas` limbs of different donors and
/// decided by their agreement (1: one limb, as `submit_task`). `key`, when not
/// empty, makes it idempotent as in `submit_task_once`.
#[reducer]
pub fn submit_task_replicated(
    ctx: &ReducerContext,
    key: String,
    payload: String,
    model: String,
    replicas: u32,
) -> Result<(), String> {
    rules::check_replicas(replicas)?;
    rules::check_payload(&payload)?;
    rules::check_model(&model)?;
    submit_keyed(ctx, key, payload, model, Check::Copies(replicas))
}

/// Submit a greedy generation (`rules::generate_payload`) pinned to `model`,
/// checked by scoring: a limb of another donor with the same model scores the
/// answer teacher-forced, a fraction of generating it again. `key` as in
/// `submit_task_replicated`.
#[reducer]
pub fn submit_task_scored(ctx: &ReducerContext, key: String, payload: String, model: String) -> Result<(), String> {
    rules::check_payload(&payload)?;
    rules::check_model(&model)?;
    rules::check_scored(&payload, &model)?;
    submit_keyed(ctx, key, payload, model, Check::Score)
}

/// How a task's answer is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// By this many copies on different donors' limbs (1: not checked).
    Copies(u32),
    /// By scoring on another donor's limb.
    Score,
}

/// Accept a task once per non-empty `key` in the tenant.
fn submit_keyed(ctx: &ReducerContext, key: String, payload: String, model: String, check: Check) -> Result<(), String> {
    let member = submitter(ctx)?;
    if key.is_empty() {
        return accept_task(ctx, &member, payload, model, check);
    }
    rules::check_submit_key(&key)?;
    let tenant_key = format!("{}:{key}", member.tenant_id);
    if ctx.db.submit_key().key().find(&tenant_key).is_some() {
        return Ok(());
    }
    accept_task(ctx, &member, payload, model, check)?;
    ctx.db.submit_key().insert(SubmitKey { key: tenant_key, at: ctx.timestamp });
    Ok(())
}

/// The caller, if it may submit.
fn submitter(ctx: &ReducerContext) -> Result<Member, String> {
    let member = membership(ctx)?;
    if !member.submits {
        return Err("you may not submit tasks to this tenant; its owner can grant it".into());
    }
    Ok(member)
}

/// The quotas, then a new task, placed at once.
fn accept_task(
    ctx: &ReducerContext,
    member: &Member,
    payload: String,
    model: String,
    check: Check,
) -> Result<(), String> {
    let config = config(ctx)?;
    let usage = usage(ctx, member.tenant_id, &config);
    rules::check_open_tasks(usage.open_tasks, config.max_open_tasks)?;
    let bucket = rules::take_submit(
        rules::Bucket { milli_tokens: usage.milli_tokens, at: micros(usage.refilled_at) },
        micros(ctx.timestamp),
        config.submits_per_sec,
        config.submit_burst,
    )?;
    ctx.db.tenant_usage().tenant_id().update(TenantUsage {
        open_tasks: usage.open_tasks + 1,
        milli_tokens: bucket.milli_tokens,
        refilled_at: ctx.timestamp,
        ..usage
    });
    let task = ctx.db.task().insert(Task {
        id: 0,
        tenant_id: member.tenant_id,
        submitted_by: ctx.sender,
        payload,
        model,
        state: TaskState::Pending,
        assigned_to: 0,
        assignee: Identity::ZERO,
        attempts: 0,
        reason: String::new(),
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    });
    let replicas = match check {
        Check::Copies(replicas) => replicas,
        // The generation and its first scorer.
        Check::Score => 2,
    };
    if check == Check::Score {
        ctx.db.score_check().insert(ScoreCheck { set_id: task.id });
    }
    if replicas > 1 {
        ctx.db.replica_set().insert(ReplicaSet {
            task_id: task.id,
            tenant_id: task.tenant_id,
            replicas,
            copies: vec![task.id],
            verdict: QuorumState::Open,
            answer: String::new(),
            agreeing: Vec::new(),
            note: String::new(),
            updated_at: ctx.timestamp,
        });
        ctx.db.task_copy().insert(TaskCopy { task_id: task.id, set_id: task.id });
    }
    place(ctx, task);
    Ok(())
}

#[reducer]
pub fn complete_task(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String) -> Result<(), String> {
    complete(ctx, task_id, limb_id, summary).map(|_| ())
}

/// A result with the statement its limb signed about it (heiwa-provenance),
/// kept beside it for anyone to check.
#[reducer]
pub fn complete_task_signed(
    ctx: &ReducerContext,
    task_id: u64,
    limb_id: u64,
    summary: String,
    statement: String,
    signature: Vec<u8>,
) -> Result<(), String> {
    rules::check_proof(&statement, &signature)?;
    let tenant_id = complete(ctx, task_id, limb_id, summary)?;
    ctx.db.result_proof().insert(ResultProof { task_id, tenant_id, limb_id, statement, signature });
    Ok(())
}

/// Record `summary` as the result of a task `limb_id` holds; the tenant's id.
fn complete(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String) -> Result<u64, String> {
    rules::check_summary(&summary)?;
    let (limb, task) = held_task(ctx, task_id, limb_id)?;
    ctx.db.task_result().insert(TaskResult {
        task_id,
        tenant_id: limb.tenant_id,
        limb_id,
        limb_identity: limb.identity,
        summary,
        finished_at: ctx.timestamp,
    });
    if let Some(stats) = ctx.db.limb_stats().limb_id().find(limb_id) {
        ctx.db.limb_stats().limb_id().update(LimbStats { tasks_done: stats.tasks_done + 1, ..stats });
    }
    finish(ctx, task, TaskState::Done, String::new());
    Ok(limb.tenant_id)
}

/// A limb delivers a result for a task that is no longer its own (it was
/// away past its lease and the task went on without it): recorded as a late
/// attempt, so it is not lost silently; the task keeps its first result.
#[reducer]
pub fn report_late_result(ctx: &ReducerContext, task_id: u64, limb_id: u64, summary: String) -> Result<(), String> {
    rules::check_summary(&summary)?;
    let limb = own_limb(ctx, limb_id)?;
    let task = tenant_task(ctx, limb.tenant_id, task_id)?;
    if task.state == TaskState::Claimed && task.assigned_to == limb_id {
        return Err(format!("task {task_id} is still yours: complete it"));
    }
    ctx.db.late_result().insert(LateResult {
        id: 0,
        tenant_id: limb.tenant_id,
        task_id,
        limb_id,
        summary,
        at: ctx.timestamp,
    });
    Ok(())
}

#[reducer]
pub fn fail_task(ctx: &ReducerContext, task_id: u64, limb_id: u64, reason: String) -> Result<(), String> {
    rules::check_reason(&reason)?;
    let (_, task) = held_task(ctx, task_id, limb_id)?;
    finish(ctx, task, TaskState::Failed, reason);
    Ok(())
}

/// Give a held task back (a limb shutting down or pausing offers 0 slots
/// first): it goes to another limb, or waits for one.
#[reducer]
pub fn release_task(ctx: &ReducerContext, task_id: u64, limb_id: u64) -> Result<(), String> {
    let (_, task) = held_task(ctx, task_id, limb_id)?;
    finish(ctx, task, TaskState::Pending, String::new());
    Ok(())
}

/// The submitter, the tenant's owner or an operator may cancel a pending or claimed task.
#[reducer]
pub fn cancel_task(ctx: &ReducerContext, task_id: u64) -> Result<(), String> {
    let member = membership(ctx)?;
    let task = tenant_task(ctx, member.tenant_id, task_id)?;
    if task.submitted_by != ctx.sender && member.role != Role::Owner && !is_operator(ctx, &member) {
        return Err(format!("only the submitter, the tenant's owner or an operator can cancel task {task_id}"));
    }
    rules::check_cancel(task_id, task.state)?;
    finish(ctx, task, TaskState::Cancelled, "cancelled".into());
    Ok(())
}

/// The hub's admin sets the quotas and the retention for every tenant.
#[reducer]
pub fn configure_hub(
    ctx: &ReducerContext,
    max_open_tasks: u32,
    submits_per_sec: u32,
    submit_burst: u32,
    retain_secs: u64,
    prune_every_secs: u64,
) -> Result<(), String> {
    let config = admin(ctx, "configure it")?;
    if max_open_tasks == 0 || submit_burst == 0 || !(1..=86_400).contains(&prune_every_secs) {
        return Err("the open-task limit and the burst must be at least 1; prune every 1 s to 1 day".into());
    }
    ctx.db.hub_config().id().update(HubConfig {
        max_open_tasks,
        submits_per_sec,
        submit_burst,
        retain_secs,
        prune_every_secs,
        ..config
    });
    for sweep in ctx.db.prune_sweep().iter().collect::<Vec<_>>() {
        ctx.db.prune_sweep().scheduled_id().update(PruneSweep {
            scheduled_at: ScheduleAt::Interval(Duration::from_secs(prune_every_secs).into()),
            ..sweep
        });
    }
    Ok(())
}

/// Scheduled: limbs not heard from within their lease are offline (no new
/// work); tasks whose lease ran out go back to `Pending` and to another limb
/// (or fail after too many attempts). Only the scheduler may call it.
#[reducer]
pub fn expire_leases(ctx: &ReducerContext, _sweep: LeaseSweep) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err("expire_leases is run by the hub's scheduler only".into());
    }
    let now = micros(ctx.timestamp);
    let expired: Vec<Lease> = ctx.db.lease().iter().filter(|lease| micros(lease.until) < now).collect();
    let mut suspects: Vec<u64> = ctx.db.ready().iter().map(|ready| ready.limb_id).collect();
    suspects.extend(expired.iter().map(|lease| lease.limb_id));
    for limb_id in suspects {
        let (Some(limb), Some(presence)) =
            (ctx.db.limb().id().find(limb_id), ctx.db.presence().limb_id().find(limb_id))
        else {
            continue;
        };
        let silent_micros = now - micros(presence.last_seen);
        if limb.online && silent_micros > i64::from(limb.lease_secs) * 1_000_000 {
            let limb = set_online(ctx, limb, false);
            refresh_ready(ctx, &limb);
        }
    }
    for lease in expired {
        let Some(task) = ctx.db.task().id().find(lease.task_id) else {
            ctx.db.lease().task_id().delete(lease.task_id);
            continue;
        };
        let next = rules::after_lease_expiry(task.attempts);
        let reason =
            if next == TaskState::Failed { format!("lease expired {} times", task.attempts) } else { String::new() };
        finish(ctx, task, next, reason);
    }
    Ok(())
}

/// Scheduled: delete finished tasks (and their results) older than the
/// retention, a batch per pass. Owners export first with `heiwa task export`.
#[reducer]
pub fn prune_finished(ctx: &ReducerContext, _sweep: PruneSweep) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err("prune_finished is run by the hub's scheduler only".into());
    }
    let config = config(ctx)?;
    let now = micros(ctx.timestamp);
    let old: Vec<u64> = ctx
        .db
        .task()
        .iter()
        .filter(|task| rules::is_prunable(task.state, micros(task.updated_at), now, config.retain_secs))
        .take(PRUNE_BATCH)
        .map(|task| task.id)
        .collect();
    for task_id in old {
        ctx.db.task_result().task_id().delete(task_id);
        ctx.db.result_proof().task_id().delete(task_id);
        ctx.db.task_copy().task_id().delete(task_id);
        ctx.db.replica_set().task_id().delete(task_id);
        ctx.db.score_check().set_id().delete(task_id);
        ctx.db.task().id().delete(task_id);
        ctx.db.tenant_task().id().delete(task_id);
    }
    let old_keys: Vec<String> = ctx
        .db
        .submit_key()
        .iter()
        .filter(|key| rules::is_past_retention(micros(key.at), now, config.retain_secs))
        .take(PRUNE_BATCH)
        .map(|key| key.key)
        .collect();
    for key in old_keys {
        ctx.db.submit_key().key().delete(&key);
    }
    Ok(())
}

// The cutover from the legacy SurrealDB deployment (`heiwa migrate surrealdb`).
// Each call is one batch and one transaction: a batch is written whole or,
// at its first bad record (named by its legacy id), not at all. A record whose
// legacy id is already mapped is skipped, so a rerun after a crash writes
// only what is missing and a second full run writes nothing.

fn migrated(ctx: &ReducerContext, legacy_id: &str) -> bool {
    ctx.db.legacy_record().legacy_id().find(legacy_id.to_string()).is_some()
}

fn map_legacy(ctx: &ReducerContext, legacy_id: String, kind: &str, hub_id: u64, submitter: String) {
    ctx.db.legacy_record().insert(LegacyRecord {
        legacy_id,
        kind: kind.into(),
        hub_id,
        submitter,
        migrated_at: ctx.timestamp,
    });
}

/// The hub tenant a legacy organization became.
fn migrated_tenant(ctx: &ReducerContext, tenant_legacy_id: &str) -> Result<u64, String> {
    ctx.db
        .legacy_record()
        .legacy_id()
        .find(tenant_legacy_id.to_string())
        .filter(|record| record.kind == "tenant")
        .map(|record| record.hub_id)
        .ok_or_else(|| format!("its organization {tenant_legacy_id} was not migrated"))
}

/// What every `migrate_*` shares: the admin only, one batch, and each record
/// skipped when its legacy id is mapped already, or else written by `write`,
/// whose refusal names the record (`task:7: …`) and undoes the batch.
fn migrate_batch<R>(
    ctx: &ReducerContext,
    batch: Vec<R>,
    legacy_id: fn(&R) -> &str,
    mut write: impl FnMut(R) -> Result<(), String>,
) -> Result<(), String> {
    admin(ctx, "migrate")?;
    rules::migration::check_batch(batch.len())?;
    for record in batch {
        let id = legacy_id(&record).to_string();
        rules::migration::check_legacy_id(&id).map_err(|e| format!("{id}: {e}"))?;
        if !migrated(ctx, &id) {
            write(record).map_err(|e| format!("{id}: {e}"))?;
        }
    }
    Ok(())
}

#[reducer]
pub fn migrate_tenants(ctx: &ReducerContext, batch: Vec<MigratedTenant>) -> Result<(), String> {
    migrate_batch(
        ctx,
        batch,
        |t| &t.legacy_id,
        |record| {
            rules::migration::check_tenant_name(&record.name)?;
            // No identity owns it until its owner's claim code is used.
            let tenant = ctx.db.tenant().insert(Tenant {
                id: 0,
                name: record.name,
                owner: Identity::ZERO,
                created_at: Timestamp::from_micros_since_unix_epoch(record.created_at_micros),
            });
            map_legacy(ctx, record.legacy_id, "tenant", tenant.id, String::new());
            Ok(())
        },
    )
}

#[reducer]
pub fn migrate_members(ctx: &ReducerContext, batch: Vec<MigratedMember>) -> Result<(), String> {
    migrate_batch(
        ctx,
        batch,
        |m| &m.legacy_id,
        |record| {
            let role = rules::migration::MigratedRole::parse(&record.role)?;
            rules::migration::check_label(&record.label)?;
            let tenant_id = migrated_tenant(ctx, &record.tenant_legacy_id)?;
            if role == rules::migration::MigratedRole::Owner {
                let owner_name = rules::migration::MigratedRole::Owner.name();
                if let Some(other) = ctx.db.legacy_claim().tenant_id().filter(tenant_id).find(|c| c.role == owner_name)
                {
                    return Err(format!("its organization already has an owner, {}", other.legacy_id));
                }
            }
            rules::secrets::check_code_hash(&record.code_hash)?;
            if ctx.db.legacy_claim().code().find(&record.code_hash).is_some() {
                return Err("its claim code is another user's: make a fresh one".into());
            }
            ctx.db.legacy_claim().insert(LegacyClaim {
                code: record.code_hash,
                legacy_id: record.legacy_id.clone(),
                tenant_id,
                role: role.name().into(),
                label: record.label,
                claimed_by: Identity::ZERO,
                claimed_at: None,
            });
            map_legacy(ctx, record.legacy_id, "member", tenant_id, String::new());
            Ok(())
        },
    )
}

/// The admin gives unclaimed migrated users new claim codes (`heiwa
/// migrate` does, for users whose code it does not know: made by an older
/// hub, whose codes could be guessed, or a journal lost). Their old codes
/// stop working. One transaction: a bad record refuses the batch, naming it.
#[reducer]
pub fn reissue_claims(ctx: &ReducerContext, batch: Vec<ReissuedClaim>) -> Result<(), String> {
    admin(ctx, "re-issue claim codes")?;
    rules::migration::check_batch(batch.len())?;
    for record in batch {
        let id = record.legacy_id;
        rules::secrets::check_code_hash(&record.code_hash).map_err(|e| format!("{id}: {e}"))?;
        let claim =
            ctx.db.legacy_claim().legacy_id().find(&id).ok_or_else(|| format!("{id}: no such migrated user"))?;
        if claim.claimed_by != Identity::ZERO {
            return Err(format!("{id}: already claimed"));
        }
        if ctx.db.legacy_claim().code().find(&record.code_hash).is_some() {
            return Err(format!("{id}: that code is taken: make a fresh one"));
        }
        ctx.db.legacy_claim().code().delete(&claim.code);
        ctx.db.legacy_claim().insert(LegacyClaim { code: record.code_hash, ..claim });
    }
    Ok(())
}

#[reducer]
pub fn migrate_tasks(ctx: &ReducerContext, batch: Vec<MigratedTask>) -> Result<(), String> {
    let config = config(ctx)?;
    migrate_batch(
        ctx,
        batch,
        |t| &t.legacy_id,
        |record| {
            let state = rules::migration::migrated_state(&record.state)?;
            rules::migration::check_migrated_task(state, &record.payload, &record.summary, &record.reason)?;
            rules::check_model(&record.model)?;
            let tenant_id = migrated_tenant(ctx, &record.tenant_legacy_id)?;
            let submitter = ctx.db.legacy_claim().legacy_id().find(&record.submitter_legacy_id);
            if !record.submitter_legacy_id.is_empty() && submitter.as_ref().is_none_or(|c| c.tenant_id != tenant_id) {
                let submitter = &record.submitter_legacy_id;
                return Err(format!("its submitter {submitter} is not a migrated member of its organization"));
            }
            // Already claimed: the task is that identity's at once.
            let submitted_by = submitter.map_or(Identity::ZERO, |c| c.claimed_by);
            // `updated_at` is the cutover's time, so the retention counts from it
            // and a finished legacy task is not pruned at the next sweep.
            let task = ctx.db.task().insert(Task {
                id: 0,
                tenant_id,
                submitted_by,
                payload: record.payload,
                model: record.model,
                state,
                assigned_to: 0,
                assignee: Identity::ZERO,
                attempts: 0,
                reason: record.reason,
                created_at: Timestamp::from_micros_since_unix_epoch(record.created_at_micros),
                updated_at: ctx.timestamp,
            });
            map_legacy(ctx, record.legacy_id, "task", task.id, record.submitter_legacy_id);
            if state == TaskState::Done {
                ctx.db.task_result().insert(TaskResult {
                    task_id: task.id,
                    tenant_id,
                    limb_id: 0,
                    limb_identity: Identity::ZERO,
                    summary: record.summary,
                    finished_at: Timestamp::from_micros_since_unix_epoch(record.finished_at_micros),
                });
            }
            if rules::is_finished(state) {
                mirror(ctx, &task);
            } else {
                // Open work counts against the tenant's quota like any other (the
                // admin's import is never refused by it), and goes to a limb.
                let usage = usage(ctx, tenant_id, &config);
                ctx.db.tenant_usage().tenant_id().update(TenantUsage { open_tasks: usage.open_tasks + 1, ..usage });
                place(ctx, task);
            }
            Ok(())
        },
    )
}

/// A legacy user signs in with its claim (`access::claim_legacy` checked the
/// code): the caller becomes that member, and the tasks the user submitted
/// become the caller's.
fn admit_claimant(ctx: &ReducerContext, claim: LegacyClaim, role: rules::migration::MigratedRole) {
    let hub_role = if role == rules::migration::MigratedRole::Owner { Role::Owner } else { Role::Submitter };
    ctx.db.member().insert(Member {
        identity: ctx.sender,
        tenant_id: claim.tenant_id,
        role: hub_role,
        submits: role.submits(),
    });
    ctx.db.reader().insert(Reader { identity: ctx.sender, tenant_id: claim.tenant_id });
    if role == rules::migration::MigratedRole::Owner {
        if let Some(tenant) = ctx.db.tenant().id().find(claim.tenant_id) {
            ctx.db.tenant().id().update(Tenant { owner: ctx.sender, ..tenant });
        }
    }
    let submitted: Vec<u64> =
        ctx.db.legacy_record().submitter().filter(&claim.legacy_id).map(|record| record.hub_id).collect();
    for task_id in submitted {
        if let Some(task) = ctx.db.task().id().find(task_id) {
            let task = ctx.db.task().id().update(Task { submitted_by: ctx.sender, ..task });
            mirror(ctx, &task);
        }
    }
    ctx.db.legacy_claim().code().update(LegacyClaim {
        claimed_by: ctx.sender,
        claimed_at: Some(ctx.timestamp),
        ..claim
    });
}
