//! A limb's side of the mesh: registering (name, lease, signing key),
//! offering free slots and the models it has, heartbeats, and going offline
//! when its connection closes.

use crate::catalogue::follow_offer;
use crate::guard::{own_limb, require_member};
use crate::placement::{fill, refresh_ready};
use crate::*;

/// Write `limb` with `online` set, noting in `limb_stats` when that changed.
pub(crate) fn set_online(ctx: &ReducerContext, limb: Limb, online: bool) -> Limb {
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

/// Register the caller as a limb, or rename it and change its lease if it is
/// one. It takes no work until it offers slots ([`offer`]).
#[reducer]
pub fn register_limb(ctx: &ReducerContext, name: String, lease_secs: u32) -> Result<(), String> {
    rules::check_name("limb", &name)?;
    rules::check_lease_secs(lease_secs)?;
    let member = require_member(ctx)?;
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
    follow_offer(ctx, &limb);
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
        return Err(rules::Refusal::Superseded.into());
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
