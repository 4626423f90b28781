//! Notifications: the bot's subscription to the tenant's tasks pushes each
//! one that finishes (done or failed); it is posted to the configured
//! channel, split to Discord's limits. No polling: the hub sends the change.
//!
//! A task is posted once: it is posted when it leaves the set of tasks seen
//! unfinished. After a reconnect the fresh rows are compared with that set,
//! so a task that finished while the link was down is posted then.

use crate::bot::Bot;
use crate::config::Notify;
use crate::interaction::MAX_CONTENT;
use crate::render;
use crate::tenant::TaskRow;
use heiwa_hub::bindings::{TenantTask, TenantTaskTableAccess};
use heiwa_hub::{connect, TaskState};
use serde_json::json;
use spacetimedb_sdk::{DbContext, Table, TableWithPrimaryKey};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// At most this many messages for one notification (the last says it was cut).
const MAX_PARTS: usize = 4;

fn row(task: &TenantTask) -> TaskRow {
    TaskRow {
        id: task.id,
        state: TaskState::from(task.state),
        payload: task.payload.clone(),
        model: task.model.clone(),
        limb_id: task.limb_id,
        attempts: task.attempts,
        reason: task.reason.clone(),
        summary: task.summary.clone(),
    }
}

fn finished(task: &TenantTask) -> bool {
    matches!(TaskState::from(task.state), TaskState::Done | TaskState::Failed)
}

fn open(task: &TenantTask) -> bool {
    matches!(TaskState::from(task.state), TaskState::Pending | TaskState::Claimed)
}

/// Where the hub is and who the bot is there.
#[derive(Clone)]
pub struct HubLink {
    pub ws: String,
    pub database: String,
    pub token: String,
}

/// Which tasks this bot posts about.
struct Scope {
    notify: Notify,
    /// The bot's own identity (hex): what it submitted.
    me: String,
}

impl Scope {
    fn wants(&self, task: &TenantTask) -> bool {
        self.notify == Notify::All || task.submitted_by.to_hex().to_string() == self.me
    }
}

/// Follow the tenant's tasks until `shutdown`, posting the finished ones.
/// `following` turns true once the subscription is live (after every reconnect too).
pub async fn run(bot: Arc<Bot>, hub: HubLink, following: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
    let Some(channel) = bot.config.notify_channel.clone() else { return };
    let scope = Arc::new(Scope { notify: bot.config.notify, me: bot.tenant.identity().to_string() });
    let unfinished: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let (finished_tx, finished_rx) = mpsc::unbounded_channel::<TaskRow>();
    let poster = tokio::spawn(post_each(bot.clone(), channel, finished_rx));
    let mut delay = Duration::from_millis(500);
    loop {
        let (gone_tx, mut gone_rx) = mpsc::unbounded_channel();
        let (uri, db, tok) = (hub.ws.clone(), hub.database.clone(), hub.token.clone());
        let queries = vec!["SELECT * FROM tenant_task".to_string()];
        let connected = tokio::task::spawn_blocking(move || {
            connect(&uri, &db, Some(tok), queries, move |reason| {
                let _ = gone_tx.send(reason);
            })
        })
        .await;
        match connected {
            Ok(Ok(connected)) => {
                delay = Duration::from_millis(500);
                follow(&connected.conn, &scope, &bot, &unfinished, &finished_tx);
                following.send_replace(true);
                tokio::select! {
                    _ = shutdown.changed() => {
                        let _ = connected.conn.disconnect();
                        break;
                    }
                    reason = gone_rx.recv() => {
                        following.send_replace(false);
                        tracing::warn!(reason = ?reason.flatten(), "the hub connection ended; reconnecting");
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "the hub is unreachable; retrying"),
            Err(error) => tracing::warn!(%error, "connecting to the hub failed"),
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    poster.abort();
}

/// Wire the callbacks, then read the fresh rows: what was unfinished before
/// and is finished now is posted (and, at the first connection, what was
/// asked from Discord and finished while the bot was away), what is
/// unfinished now is remembered.
fn follow(
    conn: &heiwa_hub::bindings::DbConnection,
    scope: &Arc<Scope>,
    bot: &Bot,
    unfinished: &Arc<Mutex<HashSet<u64>>>,
    sink: &mpsc::UnboundedSender<TaskRow>,
) {
    let changed = {
        let (scope, unfinished, sink) = (scope.clone(), unfinished.clone(), sink.clone());
        move |task: &TenantTask| observe(task, &scope, &unfinished, &sink, false)
    };
    let on_insert = changed.clone();
    conn.db.tenant_task().on_insert(move |_, task| on_insert(task));
    conn.db.tenant_task().on_update(move |_, _, task| changed(task));
    for task in conn.db.tenant_task().iter() {
        observe(&task, scope, unfinished, sink, bot.asked.contains(task.id));
    }
}

/// One row seen: remember it while unfinished; post it when it finishes
/// after being seen unfinished (or when `asked` says Discord is waiting for it).
fn observe(
    task: &TenantTask,
    scope: &Scope,
    unfinished: &Mutex<HashSet<u64>>,
    sink: &mpsc::UnboundedSender<TaskRow>,
    asked: bool,
) {
    if !scope.wants(task) {
        return;
    }
    let mut set = unfinished.lock().unwrap_or_else(|p| p.into_inner());
    if open(task) {
        set.insert(task.id);
    } else if (set.remove(&task.id) || asked) && finished(task) {
        let _ = sink.send(row(task));
    }
}

/// Post every finished task, one after another (Discord's rate limits are
/// per channel; waiting them out keeps the order).
async fn post_each(bot: Arc<Bot>, channel: String, mut finished: mpsc::UnboundedReceiver<TaskRow>) {
    while let Some(task) = finished.recv().await {
        if let Err(error) = post(&bot, &channel, &task).await {
            tracing::warn!(%error, task = task.id, "the notification was not posted");
        }
    }
}

async fn post(bot: &Bot, channel: &str, task: &TaskRow) -> Result<(), crate::BotError> {
    // A submission in progress notes who asked before it lets go of this.
    let asked_by = {
        let _noted = bot.submitting.lock().await;
        bot.asked.take(task.id)
    };
    if bot.config.notify == Notify::Submitted && asked_by.is_none() {
        // The hub's copies of a replicated task: the submitted one is posted.
        return Ok(());
    }
    let limb = if task.limb_id == 0 { None } else { bot.tenant.limb_name(task.limb_id).await };
    let text = render::finished(task, limb.as_deref(), asked_by.as_deref());
    for (n, part) in crate::text::split(&text, MAX_CONTENT, MAX_PARTS).iter().enumerate() {
        // Only the person who asked is pinged, once; nothing the answer says pings anyone.
        let users: Vec<&str> = asked_by.as_deref().filter(|_| n == 0).into_iter().collect();
        let message = json!({ "content": part, "allowed_mentions": { "parse": [], "users": users } });
        bot.discord.post_message(channel, &message).await?;
    }
    Ok(())
}
