//! Who gets in: tenants created under the admin's policy, codes made by
//! clients (the hub keeps their SHA-256 only, `rules::secrets`), joins that
//! present a code, and wrong codes counted and limited.
//!
//! A wrong code must be counted even though the reducer refuses it, and a
//! reducer that returns `Err` commits nothing. So a presented code that is
//! unknown, used up or expired commits the count and the refusal (in the
//! caller's `code_attempt` row) and returns `Ok`: the client reads whether
//! it joined (its `member` row) and, if not, why (`HubHttp::redeem`). Over a
//! limit, the reducer returns `Err` and changes nothing.

use crate::guard::{require_admin, require_owner, require_steward};
use crate::*;
use rules::secrets::{self, Attempts, TenantCreation};

/// The admin's rules for strangers. One row; absent (a hub published before
/// it existed), [`policy`] gives the defaults.
#[table(name = hub_policy, public)]
pub struct HubPolicy {
    #[primary_key]
    pub id: u8,
    /// `rules::secrets::TenantCreation` by name: admin, anyone or code.
    pub tenant_creation: String,
    /// Tenants the hub holds, past which only its admin creates more.
    pub max_tenants: u32,
    pub failures_per_identity: u32,
    pub failures_hub_wide: u32,
    pub failure_window_secs: u32,
}

/// The admin's spot-check key (`rules::secrets::spot_check_roll`). Private:
/// no client, no limb, reads it.
#[table(name = hub_secret)]
pub struct HubSecret {
    #[primary_key]
    pub id: u8,
    pub spot_check_key: Vec<u8>,
}

/// Wrong codes an identity presented in the current window, and the last
/// refusal it was given; `Identity::ZERO`'s row counts the whole hub's.
#[table(name = code_attempt, public)]
pub struct CodeAttempt {
    #[primary_key]
    pub identity: Identity,
    pub failures: u32,
    pub window_start: Timestamp,
    /// Why the last code was refused (empty on the hub-wide row).
    pub refusal: String,
    pub at: Timestamp,
}

#[client_visibility_filter]
const CODE_ATTEMPT_VISIBILITY: Filter = Filter::Sql("SELECT * FROM code_attempt WHERE identity = :sender");

/// A code the admin hands to someone who may create a tenant (policy `code`).
/// Private: the admin reads it by SQL.
#[table(name = tenant_code)]
pub struct TenantCode {
    /// SHA-256 of the code, hex.
    #[primary_key]
    pub code: String,
    pub uses_left: u32,
    pub expires_at: Timestamp,
}

pub(crate) fn init_policy(ctx: &ReducerContext) {
    ctx.db.hub_policy().insert(default_policy());
}

fn default_policy() -> HubPolicy {
    HubPolicy {
        id: 0,
        tenant_creation: secrets::DEFAULT_TENANT_CREATION.name().into(),
        max_tenants: secrets::DEFAULT_MAX_TENANTS,
        failures_per_identity: secrets::DEFAULT_FAILURES_PER_IDENTITY,
        failures_hub_wide: secrets::DEFAULT_FAILURES_HUB_WIDE,
        failure_window_secs: secrets::DEFAULT_FAILURE_WINDOW_SECS,
    }
}

fn policy(ctx: &ReducerContext) -> HubPolicy {
    ctx.db.hub_policy().id().find(0).unwrap_or_else(default_policy)
}

/// The admin sets who may create tenants (`admin`, `anyone`, `code`), how
/// many the hub holds before only the admin may add more, and the limits on
/// wrong codes.
#[reducer]
pub fn set_hub_policy(
    ctx: &ReducerContext,
    tenant_creation: String,
    max_tenants: u32,
    failures_per_identity: u32,
    failures_hub_wide: u32,
    failure_window_secs: u32,
) -> Result<(), String> {
    require_admin(ctx, "set who may create tenants")?;
    TenantCreation::parse(&tenant_creation)?;
    secrets::check_attempt_limits(failures_per_identity, failures_hub_wide, failure_window_secs)?;
    let row = HubPolicy {
        id: 0,
        tenant_creation,
        max_tenants,
        failures_per_identity,
        failures_hub_wide,
        failure_window_secs,
    };
    if ctx.db.hub_policy().id().find(0).is_some() {
        ctx.db.hub_policy().id().update(row);
    } else {
        ctx.db.hub_policy().insert(row);
    }
    Ok(())
}

/// The admin gives the hub its spot-check key (made from the admin's
/// machine's CSPRNG, `HubHttp::publish` does it). The first key stays:
/// a later call changes nothing, so republishing never reshuffles checks.
#[reducer]
pub fn set_spot_check_key(ctx: &ReducerContext, key_hex: String) -> Result<(), String> {
    require_admin(ctx, "set the spot-check key")?;
    let key = secrets::parse_spot_check_key(&key_hex)?;
    if ctx.db.hub_secret().id().find(0).is_none() {
        ctx.db.hub_secret().insert(HubSecret { id: 0, spot_check_key: key });
    }
    Ok(())
}

/// The spot-check key, if the admin gave one.
pub(crate) fn spot_check_key(ctx: &ReducerContext) -> Option<Vec<u8>> {
    ctx.db.hub_secret().id().find(0).map(|secret| secret.spot_check_key)
}

fn attempts_of(ctx: &ReducerContext, identity: Identity) -> Attempts {
    ctx.db.code_attempt().identity().find(identity).map_or(
        Attempts { failures: 0, window_start: micros(ctx.timestamp) },
        |row| Attempts { failures: row.failures, window_start: micros(row.window_start) },
    )
}

fn write_attempts(ctx: &ReducerContext, identity: Identity, attempts: Attempts, refusal: String) {
    let row = CodeAttempt {
        identity,
        failures: attempts.failures,
        window_start: Timestamp::from_micros_since_unix_epoch(attempts.window_start),
        refusal,
        at: ctx.timestamp,
    };
    if ctx.db.code_attempt().identity().find(identity).is_some() {
        ctx.db.code_attempt().identity().update(row);
    } else {
        ctx.db.code_attempt().insert(row);
    }
}

/// The caller presents `code`; `find` looks up its hash and says why it is
/// no good if it is not. `Ok(Some(_))`: go on. `Ok(None)`: refused, counted,
/// the refusal written for the caller; the reducer returns `Ok` so that
/// this commits. `Err`: over a limit (nothing changes) or not a code at all.
fn present<T>(
    ctx: &ReducerContext,
    code: &str,
    find: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    secrets::check_presented_code(code)?;
    let policy = policy(ctx);
    let (now, window) = (micros(ctx.timestamp), policy.failure_window_secs);
    let mine = attempts_of(ctx, ctx.sender);
    let hub = attempts_of(ctx, Identity::ZERO);
    mine.check(now, policy.failures_per_identity, window, "from this identity")?;
    hub.check(now, policy.failures_hub_wide, window, "on this hub")?;
    match find(&secrets::code_hash(code)) {
        Ok(found) => Ok(Some(found)),
        Err(refusal) => {
            write_attempts(ctx, ctx.sender, mine.failed(now, window), refusal);
            write_attempts(ctx, Identity::ZERO, hub.failed(now, window), String::new());
            Ok(None)
        }
    }
}

/// A row found by the code itself was stored before codes were hashed: its
/// code came from the timestamp-seeded generator and can be guessed.
const GUESSABLE: &str =
    "this code was made by an older hub whose codes could be guessed, and is no longer honoured: ask for a new one";

/// Refuse (and forget) a row found by the code itself rather than its hash.
fn refuse_clear(stored: Option<String>, forget: impl FnOnce(&String)) -> Result<(), String> {
    match stored {
        Some(code) if secrets::is_legacy_clear_code(&code) => {
            forget(&code);
            Err(GUESSABLE.to_string())
        }
        _ => Ok(()),
    }
}

fn not_expired(expires_at: Timestamp, ctx: &ReducerContext, what: &str) -> Result<(), String> {
    if micros(expires_at) < micros(ctx.timestamp) {
        return Err(format!("this {what} has expired; ask the owner for a new one"));
    }
    Ok(())
}

fn check_new_code(ctx: &ReducerContext, code_hash: &str, ttl_secs: u32) -> Result<Timestamp, String> {
    secrets::check_code_hash(code_hash)?;
    rules::check_invite_ttl(ttl_secs)?;
    Ok(after(ctx, ttl_secs))
}

fn join_as_owner(ctx: &ReducerContext, name: String) {
    let tenant = ctx.db.tenant().insert(Tenant { id: 0, name, owner: ctx.sender, created_at: ctx.timestamp });
    ctx.db.member().insert(Member { identity: ctx.sender, tenant_id: tenant.id, role: Role::Owner, submits: true });
    ctx.db.reader().insert(Reader { identity: ctx.sender, tenant_id: tenant.id });
}

/// Checks common to both ways of creating a tenant; whether the caller is
/// the admin, and who the policy lets create tenants.
fn may_create_tenant(ctx: &ReducerContext, name: &str) -> Result<(bool, TenantCreation), String> {
    rules::check_name("tenant", name)?;
    // An identity belongs to at most one tenant: it owns at most one.
    if ctx.db.member().identity().find(ctx.sender).is_some() {
        return Err("you already belong to a tenant".into());
    }
    let is_admin = config(ctx)?.admin == ctx.sender;
    let policy = policy(ctx);
    let limit = policy.max_tenants;
    if !is_admin && ctx.db.tenant().count() >= u64::from(limit) {
        return Err(format!("this hub holds its limit of {limit} tenants; ask its admin"));
    }
    Ok((is_admin, TenantCreation::parse(&policy.tenant_creation)?))
}

#[reducer]
pub fn create_tenant(ctx: &ReducerContext, name: String) -> Result<(), String> {
    let (is_admin, creation) = may_create_tenant(ctx, &name)?;
    creation.allows(is_admin, false)?;
    join_as_owner(ctx, name);
    Ok(())
}

/// Create a tenant with a code from the hub's admin (policy `code`).
#[reducer]
pub fn create_tenant_with_code(ctx: &ReducerContext, name: String, code: String) -> Result<(), String> {
    let (is_admin, creation) = may_create_tenant(ctx, &name)?;
    let found = present(ctx, &code, |hash| {
        let row = ctx.db.tenant_code().code().find(hash.to_string()).ok_or("unknown or used-up tenant code")?;
        not_expired(row.expires_at, ctx, "tenant code")?;
        Ok(row)
    })?;
    let Some(row) = found else { return Ok(()) };
    creation.allows(is_admin, true)?;
    if row.uses_left <= 1 {
        ctx.db.tenant_code().code().delete(&row.code);
    } else {
        ctx.db.tenant_code().code().update(TenantCode { uses_left: row.uses_left - 1, ..row });
    }
    join_as_owner(ctx, name);
    Ok(())
}

/// The admin makes a code for `uses` tenants, valid for `ttl_secs`; the
/// caller made the code and sends its hash.
#[reducer]
pub fn create_tenant_code(ctx: &ReducerContext, code_hash: String, uses: u32, ttl_secs: u32) -> Result<(), String> {
    require_admin(ctx, "make tenant codes")?;
    let expires_at = check_new_code(ctx, &code_hash, ttl_secs)?;
    if uses == 0 || uses > 10_000 {
        return Err("a tenant code needs 1 to 10000 uses".into());
    }
    ctx.db.tenant_code().insert(TenantCode { code: code_hash, uses_left: uses, expires_at });
    Ok(())
}

/// An invite for `uses` limbs or submitters (`role`), valid for `ttl_secs`;
/// the owner's or an operator's. The caller made the code and sends its hash.
#[reducer]
pub fn create_invite(
    ctx: &ReducerContext,
    code_hash: String,
    uses: u32,
    ttl_secs: u32,
    role: Role,
) -> Result<(), String> {
    let member = require_steward(ctx)?;
    if role == Role::Owner {
        return Err("a tenant has one owner; invite limbs or submitters".into());
    }
    if uses == 0 || uses > 10_000 {
        return Err("an invite needs 1 to 10000 uses".into());
    }
    let expires_at = check_new_code(ctx, &code_hash, ttl_secs)?;
    ctx.db.invite().insert(Invite {
        code: code_hash,
        tenant_id: member.tenant_id,
        created_by: ctx.sender,
        role,
        uses_left: uses,
        expires_at,
    });
    Ok(())
}

#[reducer]
pub fn join_tenant(ctx: &ReducerContext, code: String) -> Result<(), String> {
    if ctx.db.member().identity().find(ctx.sender).is_some() {
        return Err("you already belong to a tenant".into());
    }
    let found = present(ctx, &code, |hash| {
        refuse_clear(ctx.db.invite().code().find(code.trim().to_string()).map(|row| row.code), |clear| {
            ctx.db.invite().code().delete(clear);
        })?;
        let invite = ctx.db.invite().code().find(hash.to_string()).ok_or("unknown or used-up invite code")?;
        if let Err(expired) = not_expired(invite.expires_at, ctx, "invite") {
            ctx.db.invite().code().delete(&invite.code);
            return Err(expired);
        }
        Ok(invite)
    })?;
    let Some(invite) = found else { return Ok(()) };
    let submitter = invite.role == Role::Submitter;
    if invite.role == Role::Limb {
        ctx.db.limb_origin().insert(LimbOrigin { identity: ctx.sender, invite: invite.code.clone() });
    }
    ctx.db.member().insert(Member {
        identity: ctx.sender,
        tenant_id: invite.tenant_id,
        role: invite.role,
        submits: submitter,
    });
    if submitter {
        ctx.db.reader().insert(Reader { identity: ctx.sender, tenant_id: invite.tenant_id });
    }
    if invite.uses_left <= 1 {
        ctx.db.invite().code().delete(&invite.code);
    } else {
        ctx.db.invite().code().update(Invite { uses_left: invite.uses_left - 1, ..invite });
    }
    Ok(())
}

/// A one-use code for one browser to sign into the dashboard, read-only or
/// able to submit (`submits`), valid for `ttl_secs`; `label` names it in the
/// owner's list of browsers. The caller made the code and sends its hash.
#[reducer]
pub fn create_browser_invite(
    ctx: &ReducerContext,
    code_hash: String,
    submits: bool,
    label: String,
    ttl_secs: u32,
) -> Result<(), String> {
    let member = require_owner(ctx)?;
    rules::check_name("browser", &label)?;
    let expires_at = check_new_code(ctx, &code_hash, ttl_secs)?;
    ctx.db.browser_invite().insert(BrowserInvite {
        code: code_hash,
        tenant_id: member.tenant_id,
        created_by: ctx.sender,
        submits,
        label,
        expires_at,
    });
    Ok(())
}

/// A browser signs in with a dashboard code: it becomes a reader of the
/// tenant (and a submitter, if the code says so). The code is used up.
#[reducer]
pub fn join_dashboard(ctx: &ReducerContext, code: String) -> Result<(), String> {
    if ctx.db.member().identity().find(ctx.sender).is_some() {
        return Err("this browser is already signed into a tenant".into());
    }
    let found = present(ctx, &code, |hash| {
        refuse_clear(ctx.db.browser_invite().code().find(code.trim().to_string()).map(|row| row.code), |clear| {
            ctx.db.browser_invite().code().delete(clear);
        })?;
        let invite =
            ctx.db.browser_invite().code().find(hash.to_string()).ok_or("unknown or already used dashboard code")?;
        not_expired(invite.expires_at, ctx, "dashboard code")?;
        Ok(invite)
    })?;
    let Some(invite) = found else { return Ok(()) };
    ctx.db.browser_invite().code().delete(&invite.code);
    admit_reader(ctx, invite.tenant_id, invite.submits);
    ctx.db.browser().insert(Browser {
        identity: ctx.sender,
        tenant_id: invite.tenant_id,
        label: invite.label,
        submits: invite.submits,
        joined_at: ctx.timestamp,
        last_connected: ctx.timestamp,
    });
    Ok(())
}

/// A one-use code for an operator (the admin bot) to join the tenant, valid
/// for `ttl_secs`; `label` names it in the tenant's list of operators. The
/// caller made the code and sends its hash.
#[reducer]
pub fn create_operator_invite(
    ctx: &ReducerContext,
    code_hash: String,
    label: String,
    ttl_secs: u32,
) -> Result<(), String> {
    let member = require_owner(ctx)?;
    rules::check_name("operator", &label)?;
    let expires_at = check_new_code(ctx, &code_hash, ttl_secs)?;
    ctx.db.operator_invite().insert(OperatorInvite {
        code: code_hash,
        tenant_id: member.tenant_id,
        created_by: ctx.sender,
        label,
        expires_at,
    });
    Ok(())
}

/// An operator joins with its code: a submitting member and a reader of the
/// tenant, with an `operator` row. The code is used up.
#[reducer]
pub fn join_operator(ctx: &ReducerContext, code: String) -> Result<(), String> {
    if ctx.db.member().identity().find(ctx.sender).is_some() {
        return Err("this identity already belongs to a tenant".into());
    }
    let found = present(ctx, &code, |hash| {
        refuse_clear(ctx.db.operator_invite().code().find(code.trim().to_string()).map(|row| row.code), |clear| {
            ctx.db.operator_invite().code().delete(clear);
        })?;
        let invite =
            ctx.db.operator_invite().code().find(hash.to_string()).ok_or("unknown or already used operator code")?;
        not_expired(invite.expires_at, ctx, "operator code")?;
        Ok(invite)
    })?;
    let Some(invite) = found else { return Ok(()) };
    ctx.db.operator_invite().code().delete(&invite.code);
    admit_reader(ctx, invite.tenant_id, true);
    ctx.db.operator().insert(Operator {
        identity: ctx.sender,
        tenant_id: invite.tenant_id,
        label: invite.label,
        joined_at: ctx.timestamp,
    });
    Ok(())
}

/// A legacy user signs in: the caller's identity becomes the member the
/// claim code was made for (once; a used code is refused), and the tasks
/// that user submitted become the caller's.
#[reducer]
pub fn claim_legacy(ctx: &ReducerContext, code: String) -> Result<(), String> {
    if ctx.db.member().identity().find(ctx.sender).is_some() {
        return Err("you already belong to a tenant".into());
    }
    let found = present(ctx, &code, |hash| {
        if let Some(clear) = ctx.db.legacy_claim().code().find(code.trim().to_string()) {
            if secrets::is_legacy_clear_code(&clear.code) && clear.claimed_by == Identity::ZERO {
                return Err("this claim code was made by an older hub whose codes could be guessed, and is no \
                            longer honoured: the hub's admin re-issues codes by running heiwa migrate again"
                    .into());
            }
        }
        let claim = ctx.db.legacy_claim().code().find(hash.to_string()).ok_or("unknown claim code")?;
        if claim.claimed_by != Identity::ZERO {
            return Err("this claim code was already used".into());
        }
        let role = rules::migration::MigratedRole::parse(&claim.role)?;
        Ok((claim, role))
    })?;
    let Some((claim, role)) = found else { return Ok(()) };
    admit_claimant(ctx, claim, role);
    Ok(())
}

/// The caller (a browser or an operator, in no tenant yet) becomes a
/// `Submitter` member of `tenant_id` that reads it, and submits if `submits`.
fn admit_reader(ctx: &ReducerContext, tenant_id: u64, submits: bool) {
    ctx.db.member().insert(Member { identity: ctx.sender, tenant_id, role: Role::Submitter, submits });
    ctx.db.reader().insert(Reader { identity: ctx.sender, tenant_id });
}

/// A legacy user signs in with its claim ([`claim_legacy`] checked the
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
