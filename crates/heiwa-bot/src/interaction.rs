//! Discord's interaction objects as the endpoint receives them, the slash
//! commands they name, and the replies. Only the fields the bot reads are
//! declared; the rest of Discord's object is ignored.
//! (<https://discord.com/developers/docs/interactions/receiving-and-responding>)

use crate::access::Permission;
use crate::text::cut;
use serde::Deserialize;
use serde_json::{json, Value};

/// `type` of an interaction.
pub const PING: u8 = 1;
pub const APPLICATION_COMMAND: u8 = 2;
/// `type` of a response: PONG, and a message in the channel.
const PONG: u8 = 1;
const CHANNEL_MESSAGE: u8 = 4;
/// Message flag: only the user who asked sees it.
const EPHEMERAL: u32 = 1 << 6;
/// The most characters one message's content holds.
pub const MAX_CONTENT: usize = 2000;

#[derive(Debug, Deserialize)]
pub struct Interaction {
    #[serde(rename = "type")]
    pub kind: u8,
    pub id: String,
    pub data: Option<CommandData>,
    /// Set in a server: the user and its roles there.
    pub member: Option<Member>,
    /// Set in a direct message.
    pub user: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct Member {
    pub user: User,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Deserialize)]
pub struct CommandData {
    pub name: String,
    #[serde(default)]
    pub options: Vec<CommandOption>,
}

#[derive(Debug, Deserialize)]
pub struct CommandOption {
    pub name: String,
    pub value: Value,
}

impl Interaction {
    /// Who asked, and the roles Discord says it has where it asked.
    pub fn caller(&self) -> Option<(&User, &[String])> {
        match (&self.member, &self.user) {
            (Some(member), _) => Some((&member.user, member.roles.as_slice())),
            (None, Some(user)) => Some((user, &[])),
            (None, None) => None,
        }
    }
}

/// A slash command, its options read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Status,
    Submit { text: String, replicas: u32, model: Option<String> },
    Task { id: u64 },
    Cancel { id: u64 },
    Limbs,
    Invite,
    Pause { limb: u64 },
    Resume { limb: u64 },
}

impl Command {
    pub fn parse(data: &CommandData) -> Result<Command, String> {
        let option = |name: &str| data.options.iter().find(|o| o.name == name).map(|o| &o.value);
        let id = |name: &str| {
            option(name)
                .and_then(Value::as_u64)
                .filter(|id| *id > 0)
                .ok_or_else(|| format!("/{} needs a positive number as {name}", data.name))
        };
        Ok(match data.name.as_str() {
            "status" => Command::Status,
            "submit" => Command::Submit {
                text: option("text")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|text| !text.is_empty())
                    .ok_or("/submit needs the text of the task")?
                    .to_string(),
                replicas: match option("replicas") {
                    None => 1,
                    Some(value) => {
                        value.as_u64().filter(|n| (1..=3).contains(n)).ok_or("replicas is 1, 2 or 3")? as u32
                    }
                },
                model: option("model").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty()).map(Into::into),
            },
            "task" => Command::Task { id: id("id")? },
            "cancel" => Command::Cancel { id: id("id")? },
            "limbs" => Command::Limbs,
            "invite" => Command::Invite,
            "pause" => Command::Pause { limb: id("limb")? },
            "resume" => Command::Resume { limb: id("limb")? },
            other => return Err(format!("/{other} is not a command of this bot (run `heiwa bot register` again?)")),
        })
    }

    /// What the caller must be granted to run it.
    pub fn needs(&self) -> Permission {
        match self {
            Command::Status | Command::Task { .. } | Command::Limbs => Permission::View,
            Command::Submit { .. } => Permission::Submit,
            Command::Cancel { .. } => Permission::Cancel,
            Command::Invite => Permission::Invite,
            Command::Pause { .. } | Command::Resume { .. } => Permission::Pause,
        }
    }
}

/// The commands `heiwa bot register` installs, in Discord's format.
pub fn definitions() -> Value {
    const STRING: u8 = 3;
    const INTEGER: u8 = 4;
    let id = |name: &str, description: &str| json!({ "type": INTEGER, "name": name, "description": description, "required": true, "min_value": 1 });
    let command = |name: &str, description: &str, options: Value| {
        // Guild-only (`contexts` 0): grants name the roles of a server.
        json!({ "name": name, "type": 1, "description": description, "options": options, "contexts": [0] })
    };
    json!([
        command("status", "Tasks pending, running and done; limbs online", json!([])),
        command(
            "submit",
            "Submit a task to the tenant's limbs",
            json!([
                { "type": STRING, "name": "text", "description": "The question or work", "required": true, "max_length": 4000 },
                { "type": INTEGER, "name": "replicas", "description": "Limbs of different donors that answer it (1-3)", "min_value": 1, "max_value": 3 },
                { "type": STRING, "name": "model", "description": "Only limbs offering this model (id or sha256)" }
            ])
        ),
        command("task", "A task's state, limb and answer with its sources", json!([id("id", "The task's number")])),
        command("cancel", "Cancel a pending or running task", json!([id("id", "The task's number")])),
        command("limbs", "The tenant's limbs: online, slots, paused", json!([])),
        command("invite", "A code for one new limb (shown to you only)", json!([])),
        command("pause", "Stop a limb taking new tasks", json!([id("limb", "The limb's number")])),
        command("resume", "Let a paused limb take tasks again", json!([id("limb", "The limb's number")])),
    ])
}

pub fn pong() -> Value {
    json!({ "type": PONG })
}

/// A reply in the channel (or to the caller only, `private`), cut cleanly
/// to Discord's limit. It mentions nobody, whatever the text says: a task's
/// answer must not ping `@everyone`.
pub fn reply(text: &str, private: bool) -> Value {
    let mut data = json!({ "content": cut(text, MAX_CONTENT), "allowed_mentions": { "parse": [] } });
    if private {
        data["flags"] = json!(EPHEMERAL);
    }
    json!({ "type": CHANNEL_MESSAGE, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: Value) -> CommandData {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn commands_are_read_from_discords_options_and_bad_ones_are_explained() {
        let submit = data(json!({ "name": "submit", "options": [
            { "name": "text", "type": 3, "value": "  what is a lease?  " },
            { "name": "replicas", "type": 4, "value": 2 } ] }));
        assert_eq!(
            Command::parse(&submit),
            Ok(Command::Submit { text: "what is a lease?".into(), replicas: 2, model: None })
        );
        assert_eq!(
            Command::parse(&data(json!({ "name": "task", "options": [{ "name": "id", "type": 4, "value": 12 }] }))),
            Ok(Command::Task { id: 12 })
        );
        assert!(Command::parse(&data(json!({ "name": "task" }))).unwrap_err().contains("positive number"));
        assert!(Command::parse(&data(json!({ "name": "cancel", "options": [{ "name": "id", "value": -3 }] }))).is_err());
        assert!(
            Command::parse(&data(json!({ "name": "submit", "options": [{ "name": "text", "value": " " }] }))).is_err()
        );
        let four = data(
            json!({ "name": "submit", "options": [{ "name": "text", "value": "x" }, { "name": "replicas", "value": 4 }] }),
        );
        assert!(Command::parse(&four).unwrap_err().contains("1, 2 or 3"));
        assert!(Command::parse(&data(json!({ "name": "reboot" }))).unwrap_err().contains("not a command"));
        assert_eq!(Command::Pause { limb: 1 }.needs(), Permission::Pause);
    }

    #[test]
    fn every_defined_command_parses_and_replies_mention_nobody() {
        let names: Vec<String> =
            definitions().as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["status", "submit", "task", "cancel", "limbs", "invite", "pause", "resume"]);
        for name in &names {
            let options =
                json!([{ "name": "text", "value": "t" }, { "name": "id", "value": 1 }, { "name": "limb", "value": 1 }]);
            assert!(Command::parse(&data(json!({ "name": name, "options": options }))).is_ok(), "{name}");
        }
        let shown = reply("@everyone look", true);
        assert_eq!(shown["data"]["allowed_mentions"]["parse"], json!([]));
        assert_eq!(shown["data"]["flags"], json!(64));
        assert!(
            reply(&"word ".repeat(1000), false)["data"]["content"].as_str().unwrap().chars().count() <= MAX_CONTENT
        );
    }
}
