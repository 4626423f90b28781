//! Row-level security: evaluated by the server for every subscription and query;
//! several filters on one table show the union of their rows (in SQL replies a
//! row two rules match comes twice: `HubHttp::rows` drops the copy).
//! A limb's rules are one indexed column equal to its identity (`task.assignee`,
//! `task_result.limb_identity`, `assignee.identity`): the server indexes such
//! subscriptions by value, so a changed row is matched to the one limb it
//! concerns. It reads its own id from `assignee`; `limb` rows are for readers.
//! Readers' rules join from the caller's `member` or `reader` row (a primary-key
//! lookup whose own rule is that lookup alone) so the server can maintain them
//! with index joins; written any other way, SpacetimeDB 1.2 refuses them for
//! subscriptions ("Subscriptions require indexes on join columns").

use crate::*;

/// A reader of a tenant (its `reader` row) sees each of these tables' rows of
/// that tenant: one rule per table, the same join each time.
macro_rules! readers_see_their_tenant {
    ($($filter:ident: $table:literal),* $(,)?) => {$(
        #[client_visibility_filter]
        const $filter: Filter = Filter::Sql(concat!(
            "SELECT ", $table, ".* FROM reader JOIN ", $table, " ON reader.tenant_id = ", $table,
            ".tenant_id WHERE reader.identity = :sender"
        ));
    )*};
}

readers_see_their_tenant! {
    LIMB_TENANT_VISIBILITY: "limb",
    LIMB_STATS_VISIBILITY: "limb_stats",
    BROWSER_VISIBILITY: "browser",
    TENANT_TASK_VISIBILITY: "tenant_task",
    LATE_RESULT_VISIBILITY: "late_result",
    LIMB_KEY_VISIBILITY: "limb_key",
    RESULT_PROOF_VISIBILITY: "result_proof",
    REPLICA_SET_VISIBILITY: "replica_set",
    LIMB_TRUST_VISIBILITY: "limb_trust",
    OPERATOR_VISIBILITY: "operator",
    LIMB_CONTROL_TENANT_VISIBILITY: "limb_control",
    TASK_TENANT_VISIBILITY: "task",
    RESULT_TENANT_VISIBILITY: "task_result",
    CATALOGUE_VISIBILITY: "catalogue_model",
    MODEL_COPY_VISIBILITY: "tenant_model_copy",
    CREDIT_EVENT_VISIBILITY: "credit_event",
    CREDIT_ROLLUP_VISIBILITY: "credit_rollup",
    CREDIT_PRIORITY_VISIBILITY: "credit_priority",
}

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
const BROWSER_INVITE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM browser_invite WHERE created_by = :sender");
#[client_visibility_filter]
const OPERATOR_INVITE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM operator_invite WHERE created_by = :sender");
// `limb_control` has two rules (its tenant's readers' is above), so (as on `task`) a reader's *subscription*
// would hear of no change to it: readers read it by query (`/limbs`), and
// only the limb subscribes to it, by its own rule.
#[client_visibility_filter]
const LIMB_CONTROL_OWN_VISIBILITY: Filter = Filter::Sql("SELECT * FROM limb_control WHERE limb_identity = :sender");
// `limb_model` is the limb's alone; its readers' copy is `tenant_model_copy`.
#[client_visibility_filter]
const LIMB_MODEL_OWN_VISIBILITY: Filter = Filter::Sql("SELECT * FROM limb_model WHERE limb_identity = :sender");
#[client_visibility_filter]
const LIMB_CREDIT_OWN_VISIBILITY: Filter = Filter::Sql("SELECT * FROM limb_credit WHERE limb_identity = :sender");
#[client_visibility_filter]
const ASSIGNEE_VISIBILITY: Filter = Filter::Sql("SELECT * FROM assignee WHERE identity = :sender");
#[client_visibility_filter]
const TASK_ASSIGNED_VISIBILITY: Filter = Filter::Sql("SELECT * FROM task WHERE assignee = :sender");
#[client_visibility_filter]
const RESULT_OWN_VISIBILITY: Filter = Filter::Sql("SELECT * FROM task_result WHERE limb_identity = :sender");
