//! The Discord admin bot (`heiwa bot discord`) against a real hub and real
//! limbs. Discord cannot be reached from here, so the test stands at its
//! protocol edge: it signs interactions with an Ed25519 key as Discord does
//! and sends them to the bot's endpoint, and Discord's REST API is a
//! recorder on loopback that answers as Discord does (a 429 with
//! `retry_after`, a 400 for a message over 2,000 characters).

use super::mesh::{tenant_with_invite, LimbProcess};
use super::{call, local_hub, parts};
use ed25519_dalek::{Signer, SigningKey};
use heiwa_hub::bindings::{complete_task, offer};
use heiwa_hub::HubHttp;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APPLICATION: &str = "1100000000000000001";
const GUILD: &str = "1000000000000000000";
const CHANNEL: &str = "1200000000000000002";
const OWNER: &str = "1300000000000000003";
const VIEWER_ROLE: &str = "1400000000000000004";
const STRANGER: &str = "1500000000000000005";
const BOT_TOKEN: &str = "test-bot-token.never-in-logs";

/// One request the bot made to "Discord".
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    authorization: String,
    body: Value,
    at: Instant,
    status: u16,
}

/// Discord's REST API as the bot sees it: the first message post is rate
/// limited (429, `retry_after` 0.4 s), a message over 2,000 characters is
/// refused as Discord refuses it, everything else is accepted and recorded.
async fn discord_recorder() -> (String, Arc<Mutex<Vec<Recorded>>>) {
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let seen = log.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
        let log = seen.clone();
        async move {
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let posts = log.lock().unwrap().iter().filter(|r| r.path.ends_with("/messages")).count();
            let content = body["content"].as_str().unwrap_or_default().chars().count();
            let (status, reply) = if uri.path().ends_with("/messages") && posts == 0 {
                let limited = json!({ "message": "You are being rate limited.", "retry_after": 0.4, "global": false });
                (StatusCode::TOO_MANY_REQUESTS, limited)
            } else if content > 2000 {
                let refused = json!({ "code": 50035, "errors": { "content": { "_errors": [
                    { "code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length." } ] } } });
                (StatusCode::BAD_REQUEST, refused)
            } else {
                (StatusCode::OK, json!({ "id": "9000" }))
            };
            let authorization =
                headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            log.lock().unwrap().push(Recorded {
                method: method.to_string(),
                path: uri.path().to_string(),
                authorization,
                body,
                at: Instant::now(),
                status: status.as_u16(),
            });
            (status, axum::Json(reply))
        }
    });
    let listener = heiwa_config::bind_loopback("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}/api/v10", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, log)
}

/// How an interaction is sent: as Discord signs it, or some way it must be refused.
#[derive(Clone, Copy)]
enum Sign {
    Discord,
    Unsigned,
    OtherKey,
    Tampered,
    Stale,
}

struct Endpoint {
    url: String,
    key: SigningKey,
    client: reqwest::Client,
    next_id: std::sync::atomic::AtomicU64,
}

impl Endpoint {
    /// POST `interaction` (its `id` filled in) and return the status and reply.
    async fn send(&self, sign: Sign, mut interaction: Value) -> (u16, Value) {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        interaction["id"] = json!(id.to_string());
        interaction["application_id"] = json!(APPLICATION);
        interaction["token"] = json!(format!("interaction-token-{id}"));
        let body = serde_json::to_string(&interaction).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let timestamp = if matches!(sign, Sign::Stale) { now - 3600 } else { now }.to_string();
        let key = match sign {
            Sign::OtherKey => SigningKey::from_bytes(&[9; 32]),
            _ => self.key.clone(),
        };
        let signature = hex::encode(key.sign(format!("{timestamp}{body}").as_bytes()).to_bytes());
        let sent = if matches!(sign, Sign::Tampered) { body.replace("status", "submit") } else { body };
        let mut request = self.client.post(&self.url).header("content-type", "application/json").body(sent);
        if !matches!(sign, Sign::Unsigned) {
            request = request.header("x-signature-ed25519", signature).header("x-signature-timestamp", timestamp);
        }
        let response = request.send().await.expect("the bot's endpoint answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A slash command from `user` (with `roles`) as a signed interaction; the reply's text.
    async fn command(&self, user: &str, roles: &[&str], name: &str, options: Value) -> Value {
        let interaction = json!({
            "type": 2, "guild_id": GUILD, "channel_id": CHANNEL,
            "member": { "user": { "id": user, "username": format!("user{}", &user[user.len() - 2..]) }, "roles": roles },
            "data": { "id": "77", "name": name, "type": 1, "options": options },
        });
        let (status, reply) = self.send(Sign::Discord, interaction).await;
        assert_eq!(status, 200, "/{name}: {reply}");
        assert_eq!(reply["type"], 4, "/{name}: {reply}");
        reply["data"].clone()
    }
}

fn content(reply: &Value) -> &str {
    reply["content"].as_str().unwrap_or_default()
}

fn private(reply: &Value) -> bool {
    reply["flags"].as_u64() == Some(64)
}

/// The bot's data directory with its settings, joined to the owner's tenant as its operator.
async fn bot_home(http: &HubHttp, owner: &str, dir: &std::path::Path, api_base: &str, key: &SigningKey) -> u16 {
    let code = http.create_operator_invite("heiwa", "discord-bot", 600, owner).await.expect("an operator code");
    let joined = heiwa(dir).args(["bot", "join", &code.0]).env("HEIWA_HUB", http.base_url()).output().unwrap();
    assert!(joined.status.success(), "{}", String::from_utf8_lossy(&joined.stderr));
    let port = heiwa_config::free_loopback_port().unwrap();
    let settings = format!(
        r#"application_id = "{APPLICATION}"
public_key = "{}"
listen = "127.0.0.1:{port}"
api_base = "{api_base}"
guild_id = "{GUILD}"
notify_channel = "{CHANNEL}"
[[grants]]
user = "{OWNER}"
may = ["owner"]
[[grants]]
role = "{VIEWER_ROLE}"
may = ["view"]
"#,
        hex::encode(key.verifying_key().to_bytes())
    );
    std::fs::write(dir.join("discord.toml"), settings).unwrap();
    port
}

/// `heiwa` with its data in `dir` and the bot token in the environment (never an argument).
fn heiwa(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heiwa"));
    command.env("HEIWA_DATA_DIR", dir).env("HEIWA_DISCORD_TOKEN", BOT_TOKEN).env("HEIWA_LOG", "info");
    command
}

fn start_bot(http: &HubHttp, dir: &std::path::Path) -> LimbProcess {
    let child = heiwa(dir)
        .args(["bot", "discord"])
        .env("HEIWA_HUB", http.base_url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("bot.log")).unwrap())
        .spawn()
        .expect("heiwa bot discord starts");
    let bot = LimbProcess::watching(child);
    bot.wait_for_line_within("listening on", Duration::from_secs(30));
    bot.wait_for_line_within("following the tenant's tasks", Duration::from_secs(30));
    bot
}

async fn until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn state_of(http: &HubHttp, owner: &str, task: u64) -> String {
    let rows = http.rows("heiwa", &format!("SELECT * FROM tenant_task WHERE id = {task}"), owner).await.unwrap();
    rows[0]["state"].as_str().unwrap().to_string()
}

fn task_number(reply: &Value) -> u64 {
    let text = content(reply);
    let digits: String =
        text.split("task #").nth(1).unwrap_or_default().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no task number in {text:?}"))
}

/// A hub with an owner's tenant (and a limb invite for `uses` limbs), the
/// Discord recorder, and the bot joined as the tenant's operator, running.
struct Setup {
    dir: tempfile::TempDir,
    server: heiwa_hub::HubServer,
    http: HubHttp,
    owner: String,
    invite: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    home: std::path::PathBuf,
    bot: LimbProcess,
    endpoint: Endpoint,
}

async fn setup(uses: u32) -> Setup {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let (owner, invite) = tenant_with_invite(&http, uses).await;
    let (api_base, recorded) = discord_recorder().await;
    let key = SigningKey::from_bytes(&[7; 32]);
    let home = dir.path().join("bot");
    let port = bot_home(&http, &owner, &home, &api_base, &key).await;
    let bot = start_bot(&http, &home);
    let endpoint = Endpoint {
        url: format!("http://127.0.0.1:{port}/interactions"),
        key,
        client: reqwest::Client::new(),
        next_id: 1_600_000_000_000_000_000.into(),
    };
    Setup { dir, server, http, owner, invite, recorded, home, bot, endpoint }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discord_bot_answers_signed_commands_on_the_real_hub_and_refuses_everything_else() {
    let Setup { dir, server, http, owner, invite, recorded, home, bot, endpoint } = setup(3).await;

    // Discord's endpoint check: PING → PONG, signed; anything not signed by the application's key → 401.
    assert_eq!(endpoint.send(Sign::Discord, json!({ "type": 1 })).await, (200, json!({ "type": 1 })));
    let submit = json!({ "type": 2, "member": { "user": { "id": OWNER }, "roles": [] },
                         "data": { "name": "submit", "options": [{ "name": "text", "type": 3, "value": "status" }] } });
    for sign in [Sign::Unsigned, Sign::OtherKey, Sign::Tampered, Sign::Stale] {
        let (status, _) = endpoint.send(sign, submit.clone()).await;
        assert_eq!(status, 401);
    }
    let tasks = http.rows("heiwa", "SELECT * FROM tenant_task", &owner).await.unwrap();
    assert!(tasks.is_empty(), "a refused request changed nothing: {tasks:?}");

    // A stranger is refused politely and privately; nothing reaches the hub.
    let refused = endpoint.command(STRANGER, &[], "submit", json!([{ "name": "text", "value": "hi" }])).await;
    assert!(private(&refused) && content(&refused).starts_with("Sorry, you may not submit tasks"), "{refused}");
    let viewer = endpoint.command(STRANGER, &[VIEWER_ROLE], "submit", json!([{ "name": "text", "value": "hi" }])).await;
    assert!(content(&viewer).starts_with("Sorry"), "a viewer's role does not submit: {viewer}");
    assert!(http.rows("heiwa", "SELECT * FROM tenant_task", &owner).await.unwrap().is_empty());

    // A limb over a real WebSocket answers the first task at length, with sources.
    let (limb, _) = super::ws_limb(&server, &http, &invite, "workstation", 1).await;
    let asked =
        endpoint.command(OWNER, &[], "submit", json!([{ "name": "text", "value": "Explain leases @everyone" }])).await;
    let first = task_number(&asked);
    assert!(content(&asked).contains(&format!("<#{CHANNEL}>")), "{asked}");
    let task = super::recv(&limb.tasks, "the submitted task at the limb");
    assert_eq!((task.id, task.payload.as_str()), (first, "Explain leases @everyone"));
    let paragraph = "A lease is the time a limb holds a task without a heartbeat. ".repeat(12);
    let answer = format!("{paragraph}\n\n").repeat(7); // ~5,000 characters
    let summary = json!({ "answer": answer, "tool_calls": 0, "steps": 1, "citations": [
        { "n": 1, "file": "volunteer-computing.md", "chunk": 2, "span": [10, 90] } ] });
    limb.conn.conn.reducers.complete_task(first, limb.id, summary.to_string()).unwrap();

    // One notification, split into messages Discord accepts, after waiting out its 429.
    let posts = until("the notification", Duration::from_secs(20), || {
        let log = recorded.lock().unwrap().clone();
        let ok: Vec<Recorded> = log.into_iter().filter(|r| r.path.ends_with("/messages")).collect();
        (ok.iter().filter(|r| r.status == 200).count() >= 3).then_some(ok)
    })
    .await;
    assert_eq!(posts[0].status, 429);
    assert!(posts[1].at - posts[0].at >= Duration::from_millis(400), "retry_after is honoured");
    assert!(posts.iter().all(|p| p.status != 400), "no part was over the limit");
    assert!(posts.iter().all(|p| p.path == format!("/api/v10/channels/{CHANNEL}/messages")));
    assert!(posts.iter().all(|p| p.authorization == format!("Bot {BOT_TOKEN}")));
    let delivered: Vec<&Recorded> = posts.iter().filter(|p| p.status == 200).collect();
    let text: Vec<&str> = delivered.iter().map(|p| p.body["content"].as_str().unwrap()).collect();
    assert!(
        text[0].starts_with(&format!(
            "✅ **Task #{first}** done by limb #{} (workstation) — asked by <@{OWNER}>",
            limb.id
        )),
        "{}",
        text[0]
    );
    assert!(text.last().unwrap().contains("[1] volunteer-computing.md, chunk 2"), "{text:?}");
    assert!(text.iter().all(|t| t.chars().count() <= 2000));
    assert_eq!(
        delivered[0].body["allowed_mentions"],
        json!({ "parse": [], "users": [OWNER] }),
        "only the asker is pinged"
    );
    let words = |s: &str| s.split_whitespace().filter(|w| *w == "lease").count();
    assert_eq!(text.iter().map(|t| words(t)).sum::<usize>(), words(&answer), "the whole answer, in order, cut cleanly");

    // /task, /status, /limbs read the hub as the bot's operator identity sees it.
    let shown = endpoint.command(STRANGER, &[VIEWER_ROLE], "task", json!([{ "name": "id", "value": first }])).await;
    assert!(content(&shown).starts_with(&format!("**Task #{first}** — done · limb #{}", limb.id)), "{shown}");
    assert!(content(&shown).chars().count() <= 2000 && content(&shown).contains("has it all"), "cut cleanly: {shown}");
    let status = endpoint.command(OWNER, &[], "status", json!([])).await;
    assert!(content(&status).contains("done 1") && content(&status).contains("1 of 1 online"), "{status}");
    limb.conn.conn.reducers.offer(limb.id, 0, vec![], false, false).unwrap();

    // /pause: a real limb process takes nothing until /resume.
    let donor = LimbProcess::spawn_with(&http, &dir.path().join("limbs"), &invite, "donor", 30, 50, 2);
    let ready = donor.wait_for_line("ready limb=");
    let donor_id: u64 = ready.trim_start_matches("ready limb=").parse().unwrap();
    let paused = endpoint.command(OWNER, &[], "pause", json!([{ "name": "limb", "value": donor_id }])).await;
    assert!(content(&paused).starts_with(&format!("Paused limb #{donor_id}")), "{paused}");
    let said = donor.wait_for_line("paused by the tenant");
    assert!(said.contains("paused from Discord by @user03"), "the limb says who paused it: {said}");
    let limbs = endpoint.command(OWNER, &[], "limbs", json!([])).await;
    assert!(
        content(&limbs).contains(&format!("#{donor_id} **donor** — online")) && content(&limbs).contains("**paused**"),
        "{limbs}"
    );
    let held = task_number(&endpoint.command(OWNER, &[], "submit", json!([{ "name": "text", "value": "wait" }])).await);
    let doomed =
        task_number(&endpoint.command(OWNER, &[], "submit", json!([{ "name": "text", "value": "drop" }])).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state_of(&http, &owner, held).await, "pending", "a paused limb is assigned nothing");
    // A pending task says why it waits and for how long, as `heiwa task show` does.
    let waits = endpoint.command(OWNER, &[], "task", json!([{ "name": "id", "value": held }])).await;
    assert!(content(&waits).contains("\n⏳ next in line; "), "{waits}");
    let pinned = json!([{ "name": "text", "value": "on phi" }, { "name": "model", "value": "phi-9" }]);
    let pinned = task_number(&endpoint.command(OWNER, &[], "submit", pinned).await);
    let waits = endpoint.command(OWNER, &[], "task", json!([{ "name": "id", "value": pinned }])).await;
    assert!(
        content(&waits).contains("\n⏳ waiting: no limb holds phi-9 (it is not in the tenant's catalogue"),
        "{waits}"
    );
    assert!(!donor.lines().iter().any(|l| l.starts_with("claimed")), "{:?}", donor.lines());

    // /cancel: a stranger changes nothing; the owner's Discord user cancels.
    let denied = endpoint.command(STRANGER, &[VIEWER_ROLE], "cancel", json!([{ "name": "id", "value": doomed }])).await;
    assert!(content(&denied).starts_with("Sorry, you may not cancel tasks") && private(&denied), "{denied}");
    assert_eq!(state_of(&http, &owner, doomed).await, "pending");
    let cancelled = endpoint.command(OWNER, &[], "cancel", json!([{ "name": "id", "value": doomed }])).await;
    assert_eq!(content(&cancelled), format!("Cancelled task #{doomed}."));
    assert_eq!(state_of(&http, &owner, doomed).await, "cancelled");

    let resumed = endpoint.command(OWNER, &[], "resume", json!([{ "name": "limb", "value": donor_id }])).await;
    assert!(content(&resumed).starts_with(&format!("Resumed limb #{donor_id}")), "{resumed}");
    donor.wait_for_line("resumed by the tenant");
    donor.wait_for_line(&format!("completed {held}"));
    // /limbs says what each limb's verified work earned: the donor's signed result, not the unsigned one.
    let limbs = endpoint.command(OWNER, &[], "limbs", json!([])).await;
    let line_of =
        |id: u64| content(&limbs).lines().find(|l| l.starts_with(&format!("#{id} "))).unwrap_or("").to_string();
    assert!(line_of(donor_id).contains(" credits") && !line_of(donor_id).contains("· 0.000 credits"), "{limbs}");
    assert!(line_of(limb.id).contains("· 0.000 credits"), "an unsigned result earns nothing: {limbs}");

    // /invite: a private code that lets one new limb in.
    let invited = endpoint.command(OWNER, &[], "invite", json!([])).await;
    assert!(private(&invited), "{invited}");
    let code = content(&invited).split('`').nth(1).unwrap().to_string();
    let newcomer = http.new_identity().await.unwrap();
    http.join_tenant("heiwa", &code, &newcomer.token).await.unwrap();

    // Another tenant stays invisible to the bot, and out of its reach.
    let other = http.new_identity().await.unwrap();
    call(&http, &other.token, "create_tenant", json!(["elsewhere"])).await;
    call(&http, &other.token, "submit_task", json!(["their secret", ""])).await;
    let theirs: u64 =
        http.rows("heiwa", "SELECT * FROM tenant_task", &other.token).await.unwrap()[0]["id"].as_u64().unwrap();
    let peek = endpoint.command(OWNER, &[], "task", json!([{ "name": "id", "value": theirs }])).await;
    assert_eq!(content(&peek), format!("No task #{theirs} in this tenant."));
    let stop = endpoint.command(OWNER, &[], "cancel", json!([{ "name": "id", "value": theirs }])).await;
    assert!(content(&stop).starts_with("The hub said no") && content(&stop).contains("no task"), "{stop}");
    assert_eq!(state_of(&http, &other.token, theirs).await, "pending");
    let bot_token = std::fs::read_to_string(home.join("bot-identity.token")).unwrap();
    let seen = http.rows("heiwa", "SELECT * FROM tenant_task", &bot_token).await.unwrap();
    assert!(seen.iter().all(|row| row["payload"] != "their secret"), "{seen:?}");

    // `heiwa bot register` installs the eight commands in the configured server.
    let registered = heiwa(&home).args(["bot", "register"]).output().unwrap();
    assert!(registered.status.success(), "{}", String::from_utf8_lossy(&registered.stderr));
    let put = recorded.lock().unwrap().iter().find(|r| r.method == "PUT").cloned().expect("a PUT of the commands");
    assert_eq!(put.path, format!("/api/v10/applications/{APPLICATION}/guilds/{GUILD}/commands"));
    assert_eq!(put.body.as_array().unwrap().len(), 8);

    let lines = bot.stop();
    assert_eq!(lines.last().map(String::as_str), Some("stopped"), "{lines:?}");
    let log = std::fs::read_to_string(home.join("bot.log")).unwrap();
    assert!(log.contains("refused an unsigned interaction"), "refusals are logged");
    for secret in [BOT_TOKEN, bot_token.trim()] {
        assert!(!log.contains(secret) && !lines.iter().any(|l| l.contains(secret)), "no secret in the bot's output");
    }

    // The owner takes the bot's access back (say its token leaked): the bot cannot do it
    // itself, the owner's `heiwa tenant revoke-operator` does, and the identity is done for.
    let bot_identity = http.own_identity("heiwa", &bot_token).await.unwrap().expect("the bot is a member");
    let argument = json!([{ "__identity__": format!("0x{bot_identity}") }]);
    let by_itself = http.call("heiwa", "revoke_operator", argument, &bot_token).await.unwrap_err().to_string();
    assert!(by_itself.contains("only the tenant's owner"), "{by_itself}");
    let owner_home = dir.path().join("owner");
    std::fs::create_dir_all(&owner_home).unwrap();
    std::fs::write(owner_home.join("identity.token"), &owner).unwrap();
    let as_owner = |args: &[&str]| {
        let output = heiwa(&owner_home).args(["tenant"]).args(args).args(["--hub", http.base_url()]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let operators = as_owner(&["operators"]);
    assert!(operators.contains(&bot_identity) && operators.contains("discord-bot"), "{operators}");
    let revoked = as_owner(&["revoke-operator", &bot_identity[..12]]);
    assert!(revoked.contains(&format!("revoked {bot_identity}")), "{revoked}");
    assert!(!as_owner(&["operators"]).contains(&bot_identity), "the list no longer has it");
    let reads = http.rows("heiwa", "SELECT * FROM tenant_task", &bot_token).await;
    assert!(reads.map_or(true, |rows| rows.is_empty()), "a revoked operator reads nothing");
    let code = http.create_operator_invite("heiwa", "again", 600, &owner).await.unwrap();
    assert!(http.join_operator("heiwa", &code.0, &bot_token).await.is_err(), "nor joins again");
    donor.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_from_discord_is_answered_by_a_real_agent_limb_and_posted_with_its_sources() {
    // Every field bound: one left to `..` would be dropped here (the hub server, the directory).
    let Setup { dir, server: _server, http, owner: _owner, invite, recorded, home: _home, bot, endpoint } =
        setup(1).await;
    let ingest = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .arg("ingest")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/docs"))
        .env("HEIWA_DATA_DIR", dir.path().join("limbs/workstation"))
        .output()
        .unwrap();
    assert!(ingest.status.success(), "{}", String::from_utf8_lossy(&ingest.stderr));
    let limb = LimbProcess::launch(&http, &dir.path().join("limbs"), &invite, "workstation", &["--executor", "agent"]);
    limb.wait_for_line_within("ready", Duration::from_secs(120));
    let question = "What happens to a work unit when a volunteer's computer disappears?";
    let asked = endpoint.command(OWNER, &[], "submit", json!([{ "name": "text", "value": question }])).await;
    let task = task_number(&asked);
    limb.wait_for_line_within(&format!("completed {task}"), Duration::from_secs(180));
    let posted = until("the notification", Duration::from_secs(30), || {
        let log = recorded.lock().unwrap().clone();
        log.into_iter().find(|r| r.status == 200 && r.path.ends_with("/messages"))
    })
    .await;
    let text = posted.body["content"].as_str().unwrap();
    assert!(text.starts_with(&format!("✅ **Task #{task}** done by limb #")), "{text}");
    assert!(text.contains("(workstation) — asked by"), "{text}");
    assert!(text.contains("**Sources** — [1] volunteer-computing.md"), "the agent's citation is posted: {text}");
    let messages = recorded.lock().unwrap().iter().filter(|r| r.status == 200).count();
    assert_eq!(messages, 1, "one task, one notification");
    bot.stop();
    limb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_answered_while_the_bot_was_killed_is_posted_once_when_it_is_back() {
    let Setup { dir: _dir, server, http, owner, invite, recorded, home, bot, endpoint } = setup(1).await;
    let (limb, _) = super::ws_limb(&server, &http, &invite, "workstation", 1).await;
    let asked =
        endpoint.command(OWNER, &[], "submit", json!([{ "name": "text", "value": "while you were away" }])).await;
    let task = task_number(&asked);
    assert_eq!(super::recv(&limb.tasks, "the task at the limb").id, task);

    bot.end(nix::sys::signal::Signal::SIGKILL);
    limb.conn.conn.reducers.complete_task(task, limb.id, "answered while the bot was down".into()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_of(&http, &owner, task).await != "done" {
        assert!(Instant::now() < deadline, "the limb's answer reached the hub");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = || recorded.lock().unwrap().iter().filter(|r| r.status == 200).cloned().collect::<Vec<_>>();
    assert!(delivered().is_empty());

    // Back: who asked was kept on disk, so the answer is posted, mentioning them.
    let bot = start_bot(&http, &home);
    let posts =
        until("the late notification", Duration::from_secs(20), || Some(delivered()).filter(|p| !p.is_empty())).await;
    let text = posts[0].body["content"].as_str().unwrap();
    assert!(text.starts_with(&format!("✅ **Task #{task}** done by limb #{}", limb.id)), "{text}");
    assert!(
        text.contains(&format!("asked by <@{OWNER}>")) && text.ends_with("answered while the bot was down"),
        "{text}"
    );
    bot.stop();

    // And once only: a second restart posts nothing more.
    let bot = start_bot(&http, &home);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(delivered().len(), 1, "posted once");
    bot.stop();
}
