//! A tenant's model catalogue and the limbs' copies of its models (BOINC's
//! sticky files): the owner or an operator adds a model with where to fetch
//! it; the hub asks every limb of the tenant for it (`limb_model`, `Wanted`)
//! when the catalogue keeps it ready or a task waits for it; each limb fetches
//! within its donor's disk cap and reports how it goes; its offer says when it
//! holds the model, and only then does placement give it tasks pinned to it.

use crate::guard::{own_limb, require_steward};
use crate::*;
use rules::catalogue::{check_entry, EntryCheck, MAX_CATALOGUE_MODELS};

/// The tenant's catalogue entry for `model` (its id, or its file's sha256).
fn entry(ctx: &ReducerContext, tenant_id: u64, model: &str) -> Option<CatalogueModel> {
    ctx.db.catalogue_model().tenant_id().filter(tenant_id).find(|e| e.model_id == model || e.sha256 == model)
}

/// `limb_id`'s copy of the catalogue model `model_id`, if the hub asked for one.
fn copy_of(ctx: &ReducerContext, limb_id: u64, model_id: &str) -> Option<LimbModel> {
    ctx.db.limb_model().limb_id().filter(limb_id).find(|row| row.model_id == model_id)
}

/// The limb offers the entry by its id (what placement matches a task naming
/// that id against) and, when it names the file's hash, the entry's. A limb
/// offering the same file under another id is not counted (it would be given
/// none of the tasks naming this one), nor one offering an older file under
/// this id (the owner changed the entry: it is asked for the new file).
fn holds(limb: &Limb, entry: &CatalogueModel) -> bool {
    limb.models.iter().any(|m| m.id == entry.model_id && (m.sha256.is_empty() || m.sha256 == entry.sha256))
}

/// A queued task of the tenant is pinned to `entry` (by its id or its hash).
fn waited_for(ctx: &ReducerContext, tenant_id: u64, entry: &CatalogueModel) -> bool {
    ctx.db.pending().by_tenant_age().filter(tenant_id).any(|p| p.model == entry.model_id || p.model == entry.sha256)
}

/// Write `row` (changed) and its readers' copy.
fn update_copy(ctx: &ReducerContext, row: LimbModel) {
    let row = ctx.db.limb_model().id().update(row);
    mirror(ctx, &row);
}

/// The readers' `tenant_model_copy` of `row`, made or brought up to date.
fn mirror(ctx: &ReducerContext, row: &LimbModel) {
    let copy = TenantModelCopy {
        id: row.id,
        tenant_id: row.tenant_id,
        limb_id: row.limb_id,
        model_id: row.model_id.clone(),
        size_bytes: row.size_bytes,
        stage: row.stage,
        have: row.have,
        reason: row.reason.clone(),
        updated_at: row.updated_at,
    };
    if ctx.db.tenant_model_copy().id().find(row.id).is_some() {
        ctx.db.tenant_model_copy().id().update(copy);
    } else {
        ctx.db.tenant_model_copy().insert(copy);
    }
}

/// Ask `limb` for `entry` (it already holds it: noted as held).
fn want(ctx: &ReducerContext, limb: &Limb, entry: &CatalogueModel) {
    if copy_of(ctx, limb.id, &entry.model_id).is_some() {
        return;
    }
    let held = holds(limb, entry);
    let row = ctx.db.limb_model().insert(LimbModel {
        id: 0,
        limb_id: limb.id,
        tenant_id: limb.tenant_id,
        limb_identity: limb.identity,
        model_id: entry.model_id.clone(),
        file: entry.file.clone(),
        size_bytes: entry.size_bytes,
        sha256: entry.sha256.clone(),
        sources: entry.sources.clone(),
        stage: if held { ModelState::Held } else { ModelState::Wanted },
        have: if held { entry.size_bytes } else { 0 },
        reason: String::new(),
        updated_at: ctx.timestamp,
    });
    mirror(ctx, &row);
}

/// Add a model to the caller's tenant's catalogue, or replace the entry with
/// the same id (every limb's copy of the old one is asked for again: a new
/// file, or new sources after every old one failed).
#[reducer]
#[allow(clippy::too_many_arguments)] // a reducer's arguments are its wire format
pub fn add_catalogue_model(
    ctx: &ReducerContext,
    model_id: String,
    file: String,
    size_bytes: u64,
    sha256: String,
    sources: Vec<String>,
    license: String,
    keep_ready: bool,
) -> Result<(), String> {
    let member = require_steward(ctx)?;
    let sha256 = sha256.trim().to_ascii_lowercase();
    check_entry(&EntryCheck {
        model_id: &model_id,
        file: &file,
        size_bytes,
        sha256: &sha256,
        sources: &sources,
        license: &license,
    })?;
    let tenant_id = member.tenant_id;
    let existing = ctx.db.catalogue_model().tenant_id().filter(tenant_id).find(|e| e.model_id == model_id);
    if existing.is_none() && ctx.db.catalogue_model().tenant_id().filter(tenant_id).count() >= MAX_CATALOGUE_MODELS {
        return Err(format!("a tenant's catalogue holds at most {MAX_CATALOGUE_MODELS} models: remove one first"));
    }
    let row = CatalogueModel {
        id: existing.as_ref().map_or(0, |e| e.id),
        tenant_id,
        model_id,
        file,
        size_bytes,
        sha256,
        sources,
        license,
        keep_ready,
        added_by: ctx.sender,
        added_at: ctx.timestamp,
    };
    let entry = match existing {
        Some(_) => {
            drop_copies(ctx, tenant_id, &row.model_id);
            ctx.db.catalogue_model().id().update(row)
        }
        None => ctx.db.catalogue_model().insert(row),
    };
    if entry.keep_ready || waited_for(ctx, tenant_id, &entry) {
        for limb in ctx.db.limb().tenant_id().filter(tenant_id) {
            want(ctx, &limb, &entry);
        }
    }
    Ok(())
}

/// Take a model out of the caller's tenant's catalogue: no limb is asked for
/// it any more (a fetch in progress stops; a limb that fetched it stops
/// offering it, the file staying on its disk).
#[reducer]
pub fn remove_catalogue_model(ctx: &ReducerContext, model_id: String) -> Result<(), String> {
    let member = require_steward(ctx)?;
    let entry = ctx
        .db
        .catalogue_model()
        .tenant_id()
        .filter(member.tenant_id)
        .find(|e| e.model_id == model_id)
        .ok_or_else(|| format!("no model {model_id:?} in your tenant's catalogue"))?;
    drop_copies(ctx, member.tenant_id, &entry.model_id);
    ctx.db.catalogue_model().id().delete(entry.id);
    Ok(())
}

fn drop_copies(ctx: &ReducerContext, tenant_id: u64, model_id: &str) {
    let rows: Vec<u64> = ctx
        .db
        .limb_model()
        .tenant_id()
        .filter(tenant_id)
        .filter(|row| row.model_id == model_id)
        .map(|row| row.id)
        .collect();
    for id in rows {
        ctx.db.limb_model().id().delete(id);
        ctx.db.tenant_model_copy().id().delete(id);
    }
}

/// A limb says how its copy of a model it was asked for goes: fetching
/// (`have` bytes so far), failed, or not allowed by its donor's disk cap.
/// That it holds the model, its offer says.
#[reducer]
pub fn report_model(
    ctx: &ReducerContext,
    limb_id: u64,
    model_id: String,
    stage: ModelState,
    have: u64,
    reason: String,
) -> Result<(), String> {
    let limb = own_limb(ctx, limb_id)?;
    if stage == ModelState::Held {
        return Err("a limb's offer says what it holds; it reports fetching, failed, no room or why it waits".into());
    }
    if stage == ModelState::Wanted && reason.is_empty() {
        return Err("a limb reports a model it waits to fetch with why it waits".into());
    }
    let row =
        copy_of(ctx, limb.id, &model_id).ok_or_else(|| format!("limb {limb_id} was not asked for {model_id:?}"))?;
    let reason = rules::truncate_to(&reason, rules::MAX_REASON_BYTES).to_string();
    update_copy(ctx, LimbModel { stage, have: have.min(row.size_bytes), reason, updated_at: ctx.timestamp, ..row });
    Ok(())
}

/// `limb` offered: its copies follow what it offers (held, or asked for
/// again when it no longer has one), and it is asked for the catalogue's
/// keep-ready models and those a queued task waits for.
pub(crate) fn follow_offer(ctx: &ReducerContext, limb: &Limb) {
    for entry in ctx.db.catalogue_model().tenant_id().filter(limb.tenant_id) {
        let held = holds(limb, &entry);
        match copy_of(ctx, limb.id, &entry.model_id) {
            Some(row) if held && row.stage != ModelState::Held => {
                let (stage, have, reason) = (ModelState::Held, row.size_bytes, String::new());
                update_copy(ctx, LimbModel { stage, have, reason, updated_at: ctx.timestamp, ..row });
            }
            Some(row) if !held && row.stage == ModelState::Held => {
                let (stage, have) = (ModelState::Wanted, 0);
                update_copy(ctx, LimbModel { stage, have, updated_at: ctx.timestamp, ..row });
            }
            Some(_) => {}
            None => {
                if held || entry.keep_ready || waited_for(ctx, limb.tenant_id, &entry) {
                    want(ctx, limb, &entry);
                }
            }
        }
    }
}

/// A task pinned to `model` is queued: if the catalogue has the model and no
/// limb of the tenant holds or is getting it, every limb is asked for it.
pub(crate) fn task_queued(ctx: &ReducerContext, tenant_id: u64, model: &str) {
    if model.is_empty() {
        return;
    }
    let Some(entry) = entry(ctx, tenant_id, model) else { return };
    let on_its_way = ctx
        .db
        .limb_model()
        .tenant_id()
        .filter(tenant_id)
        .any(|row| row.model_id == entry.model_id && matches!(row.stage, ModelState::Held | ModelState::Fetching));
    if !on_its_way {
        for limb in ctx.db.limb().tenant_id().filter(tenant_id) {
            want(ctx, &limb, &entry);
        }
    }
}
