//! One interaction in, one reply out: who asked, whether the config lets
//! them, and what the hub says. Discord waits 3 s for the reply, so the
//! hub's part is bounded below that.

use crate::access::permissions;
use crate::config::BotConfig;
use crate::discord::Discord;
use crate::interaction::{pong, reply, Command, Interaction, User, APPLICATION_COMMAND, PING};
use crate::render;
use crate::tenant::Tenant;
use heiwa_hub::{HubError, TaskState};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// How long the hub may take before the user is told to try again (Discord
/// drops a reply after 3 s).
const DEADLINE: Duration = Duration::from_millis(2500);

/// Who on Discord submitted which task, so its notification mentions them:
/// kept in a file so a restart of the bot still says who asked.
pub struct Asked {
    path: PathBuf,
    by_task: Mutex<HashMap<u64, String>>,
}

impl Asked {
    pub fn open(path: PathBuf) -> Asked {
        let by_task =
            std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
        Asked { path, by_task: Mutex::new(by_task) }
    }

    fn save(&self, map: &HashMap<u64, String>) {
        let text = serde_json::to_string(map).expect("a map of ids serialises");
        if let Err(error) = heiwa_config::write_secret(&self.path, &text) {
            tracing::warn!(%error, path = %self.path.display(), "who asked for which task could not be kept");
        }
    }

    pub fn insert(&self, task: u64, user: &str) {
        let mut map = self.by_task.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(task, user.to_string());
        self.save(&map);
    }

    /// Who asked for `task`, forgetting it (its notification is being sent).
    pub fn take(&self, task: u64) -> Option<String> {
        let mut map = self.by_task.lock().unwrap_or_else(|p| p.into_inner());
        let user = map.remove(&task);
        if user.is_some() {
            self.save(&map);
        }
        user
    }

    pub fn contains(&self, task: u64) -> bool {
        self.by_task.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&task)
    }
}

pub struct Bot {
    pub config: BotConfig,
    pub tenant: Tenant,
    pub discord: Discord,
    pub asked: Asked,
    /// Held from a submission until who asked is noted, and by the notifier
    /// before it reads that: a task answered within milliseconds still
    /// mentions its asker. Also makes submissions one at a time ([`Tenant::submit`]).
    pub submitting: tokio::sync::Mutex<()>,
}

/// A name for the audit trail the hub keeps (`limb_control.reason`).
fn who(user: &User) -> String {
    if user.username.is_empty() {
        format!("Discord user {}", user.id)
    } else {
        format!("@{} ({})", user.username, user.id)
    }
}

impl Bot {
    /// The reply to one verified interaction.
    pub async fn handle(&self, interaction: &Interaction) -> Value {
        match interaction.kind {
            PING => pong(),
            APPLICATION_COMMAND => self.command(interaction).await,
            _ => reply("This bot answers its slash commands only.", true),
        }
    }

    async fn command(&self, interaction: &Interaction) -> Value {
        let (Some((user, roles)), Some(data)) = (interaction.caller(), &interaction.data) else {
            return reply("This command came without a user or a name.", true);
        };
        let command = match Command::parse(data) {
            Ok(command) => command,
            Err(why) => return reply(&why, true),
        };
        let needed = command.needs();
        if !permissions(&self.config.grants, &user.id, roles).contains(&needed) {
            tracing::info!(user = %user.id, command = %data.name, "refused: not granted");
            return reply(
                &format!(
                    "Sorry, you may not {} here. The tenant's owner can grant it to your Discord id ({}) \
                     or one of your roles in the bot's settings.",
                    needed.doing(),
                    user.id
                ),
                true,
            );
        }
        tracing::info!(user = %user.id, command = %data.name, "command");
        match tokio::time::timeout(DEADLINE, self.run(command, interaction, user)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(HubError::Reducer { message, .. })) => reply(&format!("The hub said no: {message}"), true),
            Ok(Err(error)) => reply(&format!("The hub could not be asked: {error}"), true),
            Err(_) => reply("The hub did not answer in time; try again in a moment.", true),
        }
    }

    async fn run(&self, command: Command, interaction: &Interaction, user: &User) -> Result<Value, HubError> {
        let tenant = &self.tenant;
        Ok(match command {
            Command::Status => reply(&render::status(&tenant.tasks().await?, &tenant.limbs().await?), false),
            Command::Submit { text, replicas, model } => {
                // Keyed by the interaction: the same request twice makes one task.
                let key = format!("discord-{}", interaction.id);
                let one_at_a_time = self.submitting.lock().await;
                let id = tenant.submit(&key, &text, replicas, model.as_deref()).await?;
                self.asked.insert(id, &user.id);
                drop(one_at_a_time);
                let then = match &self.config.notify_channel {
                    Some(channel) => format!("its answer will be posted in <#{channel}>"),
                    None => format!("`/task {id}` shows its answer"),
                };
                reply(&format!("Submitted as task #{id}; {then}."), false)
            }
            Command::Task { id } => match tenant.task(id).await? {
                Some(row) => {
                    let name = if row.limb_id == 0 { None } else { tenant.limb_name(row.limb_id).await };
                    let waiting = if row.state == TaskState::Pending { tenant.waiting(&row).await? } else { vec![] };
                    reply(&render::task(&row, name.as_deref(), &waiting), false)
                }
                None => reply(&format!("No task #{id} in this tenant."), true),
            },
            Command::Cancel { id } => {
                tenant.cancel(id).await?;
                reply(&format!("Cancelled task #{id}."), false)
            }
            Command::Limbs => reply(&render::limbs(&tenant.limbs().await?, &tenant.credit().await?), false),
            Command::Invite => {
                let code = tenant.invite_limb().await?.0;
                let text = format!(
                    "A code for one new limb, valid for an hour (only you see this):\n`{code}`\n\
                     On the donor's machine: `heiwa limb run --invite {code}`, or the desktop app's Settings."
                );
                reply(&text, true)
            }
            Command::Pause { limb } => {
                tenant.pause(limb, true, &format!("paused from Discord by {}", who(user))).await?;
                let text = format!(
                    "Paused limb #{limb}: it takes no new tasks (what it runs finishes). `/resume {limb}` undoes it."
                );
                reply(&text, false)
            }
            Command::Resume { limb } => {
                tenant.pause(limb, false, &format!("resumed from Discord by {}", who(user))).await?;
                reply(&format!("Resumed limb #{limb}: it takes tasks again."), false)
            }
        })
    }
}
