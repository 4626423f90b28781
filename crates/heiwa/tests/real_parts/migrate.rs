//! The cutover (`heiwa migrate surrealdb`) from a real SurrealDB database,
//! written by SurrealDB's own engine (the `surrealdb` package), into a real
//! hub and a real limb memory: bad records named and skipped, a run killed
//! with SIGKILL finished exactly by the next, a second run a no-op, verify
//! matching (and catching a change), the admin alone allowed, claim codes
//! binding people once.

use super::{local_hub_as_admin, parts, recv, refusal, ws_limb};
use heiwa_hub::HubHttp;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ORGANIZATIONS: usize = 20;
const USERS_PER_ORGANIZATION: usize = 25;
const TASKS: usize = 14_500;

fn python() -> String {
    std::env::var("HEIWA_MIGRATE_PYTHON")
        .expect("HEIWA_MIGRATE_PYTHON names a Python with surrealdb==2.0.0 (scripts/test sets it)")
}

/// The legacy database, and what it holds (the fixture's own account of it).
fn legacy_database(dir: &Path) -> (PathBuf, Value) {
    let path = dir.join("legacy.db");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legacy_surrealdb.py");
    let output = Command::new(python())
        .args([fixture, path.to_str().unwrap()])
        .args([ORGANIZATIONS, USERS_PER_ORGANIZATION, TASKS].map(|n| n.to_string()))
        .output()
        .expect("the fixture runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (path, serde_json::from_slice(&output.stdout).expect("the fixture prints its counts"))
}

struct Cutover {
    hub: String,
    data: PathBuf,
    source: String,
    admin_token: PathBuf,
    claims: PathBuf,
}

impl Cutover {
    fn command(&self, extra: &[&str]) -> Command {
        self.command_as(&self.admin_token, extra)
    }

    /// As the identity whose token is at `token`.
    fn command_as(&self, token: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_heiwa"));
        command
            .env("HEIWA_DATA_DIR", &self.data)
            .args(["migrate", "surrealdb", "--source", &self.source, "--hub", &self.hub])
            .args(["--documents-for", "organization:org0"])
            .arg("--token-file")
            .arg(token)
            .arg("--claims")
            .arg(&self.claims)
            .args(extra);
        command
    }

    fn run(&self, extra: &[&str]) -> (bool, String) {
        let Output { status, stdout, stderr } = self.command(extra).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
        (status.success(), text)
    }

    fn heiwa(&self, args: &[&str]) -> String {
        let output =
            Command::new(env!("CARGO_BIN_EXE_heiwa")).env("HEIWA_DATA_DIR", &self.data).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "heiwa {args:?}: {text}");
        text
    }
}

/// "tasks     read   9507  added   9500  already there      0  problems    7" → (read, added, already, problems).
fn counts(output: &str, table: &str) -> (u64, u64, u64, u64) {
    let line = output.lines().find(|l| l.starts_with(table)).unwrap_or_else(|| panic!("no {table} line in:\n{output}"));
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1], numbers[2], numbers[3])
}

async fn count(http: &HubHttp, token: &str, query: &str) -> usize {
    http.rows("heiwa", query, token).await.unwrap_or_else(|e| panic!("{query}: {e}")).len()
}

/// A process is gone (or a zombie nobody waits for: it runs nothing).
fn gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .flat_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_surrealdb_is_cut_over_exactly_through_sigkill_and_verified() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _config, admin) = local_hub_as_admin(&parts, &dir.path().join("hub")).await;
    let (legacy, expected) = legacy_database(dir.path());
    let organizations = expected["organization"].as_u64().unwrap();
    let users = expected["user"].as_u64().unwrap();
    let tasks = expected["task"].as_u64().unwrap();
    let bad = &expected["bad"];
    let mapped_total = (organizations + users + tasks) as usize;
    assert!(mapped_total + 4 + 13 >= 10_000, "the legacy database holds at least 10,000 records");
    let admin_token = dir.path().join("admin.token");
    std::fs::write(&admin_token, &admin).unwrap();
    let cutover = Cutover {
        hub: http.base_url().to_string(),
        data: dir.path().join("limb"),
        source: format!("surrealkv://{}", legacy.display()),
        admin_token,
        claims: dir.path().join("claims.csv"),
    };

    // A dry run names every bad record and changes nothing.
    let (ok, dry) = cutover.run(&["--dry-run"]);
    assert!(ok, "{dry}");
    for id in expected["bad_ids"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        assert!(dry.lines().any(|l| l.starts_with(&format!("problem  {id}: "))), "{id} is reported:\n{dry}");
    }
    assert_eq!(counts(&dry, "tasks"), (tasks + bad["task"].as_u64().unwrap(), tasks, 0, bad["task"].as_u64().unwrap()));
    assert_eq!(counts(&dry, "documents").1, 2, "org0's two good documents would go into memory:\n{dry}");
    assert!(dry.contains("dry run: nothing was changed"));
    assert_eq!(count(&http, &admin, "SELECT * FROM legacy_record").await, 0);
    assert_eq!(count(&http, &admin, "SELECT * FROM task").await, 0);
    assert!(!cutover.claims.exists(), "a dry run writes no claim codes");
    assert!(!cutover.data.join("memory").exists(), "nor starts memory: documents are only extracted");

    // Nobody but the hub's admin migrates: the CLI with another identity, or its reducer called directly.
    let stranger = dir.path().join("stranger.token");
    std::fs::write(&stranger, http.new_identity().await.unwrap().token).unwrap();
    let refused = cutover.command_as(&stranger, &[]).output().unwrap();
    let refused_text = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && refused_text.contains("only the hub's admin"), "{refused_text}");
    let owner = http.new_identity().await.unwrap();
    super::call(&http, &owner.token, "create_tenant", json!(["somebody else"])).await;
    let batch = json!([[{"legacy_id": "organization:x", "name": "X", "created_at_micros": 0}]]);
    assert!(refusal(&http, &owner.token, "migrate_tenants", batch).await.contains("only the hub's admin"));
    assert_eq!(count(&http, &admin, "SELECT * FROM legacy_record").await, 0);

    // Killed with SIGKILL once the tasks are under way: some batches are in, none half.
    let mut child = cutover.command(&[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let (started, mut reader) = (Instant::now(), None);
    let before_tasks = (organizations + users) as usize;
    loop {
        reader = reader.or_else(|| children(child.id()).first().copied());
        let mapped = count(&http, &admin, "SELECT * FROM legacy_record").await;
        if mapped > before_tasks {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no task was migrated within a minute");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = count(&http, &admin, "SELECT * FROM legacy_record").await;
    assert!(at_kill < mapped_total, "killed mid-run: {at_kill} of {mapped_total} records were in");
    let hub_tasks = count(&http, &admin, "SELECT * FROM task").await;
    assert_eq!(
        hub_tasks + before_tasks,
        at_kill,
        "every task the hub holds is mapped, and no other: batches are whole"
    );
    let reader = reader.expect("the SurrealDB reader was seen running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(reader) {
        assert!(Instant::now() < deadline, "the SurrealDB reader (pid {reader}) outlived heiwa");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The rerun finishes exactly: every good record once, no bad one.
    let (ok, rerun) = cutover.run(&[]);
    assert!(ok, "{rerun}");
    let (_, added, already, _) = counts(&rerun, "tasks");
    assert_eq!((added + already, already), (tasks, hub_tasks as u64), "{rerun}");
    assert_eq!(count(&http, &admin, "SELECT * FROM legacy_record").await, mapped_total);
    assert_eq!(count(&http, &admin, "SELECT * FROM task").await, tasks as usize);
    assert_eq!(count(&http, &admin, "SELECT * FROM legacy_claim").await, users as usize);
    assert_eq!(count(&http, &admin, "SELECT * FROM tenant").await, organizations as usize + 1);
    let pending = expected["pending"].as_u64().unwrap() as usize;
    let states = http.rows("heiwa", "SELECT * FROM task", &admin).await.unwrap();
    let waiting = states.iter().filter(|task| task["state"] == "pending").count();
    assert_eq!(waiting, pending, "queued and running tasks wait for a limb");
    for id in ["task:noprompt", "user:ghost", "organization:nameless"] {
        assert_eq!(count(&http, &admin, &format!("SELECT * FROM legacy_record WHERE legacy_id = '{id}'")).await, 0);
    }

    // A second full run changes nothing.
    let (ok, again) = cutover.run(&[]);
    assert!(ok, "{again}");
    for table in ["tenants", "members", "tasks", "documents"] {
        assert_eq!(counts(&again, table).1, 0, "{table} again:\n{again}");
    }
    assert_eq!(count(&http, &admin, "SELECT * FROM task").await, tasks as usize);

    // Verify: counts and checksums match, documents included.
    let (ok, verified) = cutover.run(&["--verify"]);
    assert!(ok && verified.contains("verified: every table matches"), "{verified}");
    assert_eq!(verified.lines().filter(|l| l.ends_with("match")).count(), 4, "{verified}");

    // Documents: in this limb's memory, cited by legacy id; another organization's never.
    let found = cutover.heiwa(&["search", "harbour gate code", "-k", "1"]);
    assert!(found.contains("surrealdb:document:harbour") && found.contains("4471"), "{found}");
    let found = cutover.heiwa(&["search", "where is the backup pump", "-k", "1"]);
    assert!(
        found.contains("surrealdb:document:manual") && found.contains("blue shed"),
        "the HTML was extracted: {found}"
    );
    let listed = cutover.heiwa(&["docs", "list"]);
    assert!(listed.contains("2 documents") && !listed.contains("document:other"), "{listed}");

    // Documents for another limb: no admin token there, nothing written to the hub.
    let other_limb = dir.path().join("other-limb");
    let documents_only = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_heiwa"))
            .env("HEIWA_DATA_DIR", &other_limb)
            .args(["migrate", "surrealdb", "--source", &cutover.source, "--documents-only"])
            .args(["--documents-for", "organization:org0", "--hub", &cutover.hub])
            .args(extra)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{text}");
        text
    };
    let stored = documents_only(&[]);
    assert_eq!(counts(&stored, "documents").1, 2, "{stored}");
    assert!(!stored.contains("tasks "), "only documents are reported: {stored}");
    let checked = documents_only(&["--verify"]);
    assert!(
        checked.contains("verified: every table matches") && checked.lines().any(|l| l.starts_with("documents")),
        "{checked}"
    );
    assert_eq!(count(&http, &admin, "SELECT * FROM legacy_record").await, mapped_total, "the hub is untouched");

    // Claim codes: a CSV only its owner reads; a code binds one person, once.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cutover.claims).unwrap().permissions().mode() & 0o777, 0o600);
    let csv = std::fs::read_to_string(&cutover.claims).unwrap();
    assert_eq!(csv.lines().count(), users as usize + 1, "a header and one row per user");
    let owner_row = csv.lines().find(|l| l.starts_with("user:u0_0,")).expect("org0's owner has a code");
    let fields: Vec<&str> = owner_row.split(',').collect();
    assert_eq!(&fields[2..4], ["organization:org0", "owner"]);
    let code = fields[4];
    let ada = dir.path().join("ada.token");
    let claim = |token: &Path| {
        Command::new(env!("CARGO_BIN_EXE_heiwa"))
            .env("HEIWA_DATA_DIR", dir.path().join("ada"))
            .args(["migrate", "claim", code, "--hub", &cutover.hub, "--token-file"])
            .arg(token)
            .output()
            .unwrap()
    };
    let claimed = claim(&ada);
    assert!(claimed.status.success(), "{}", String::from_utf8_lossy(&claimed.stderr));
    let ada_token = std::fs::read_to_string(&ada).unwrap();
    let ada_identity = http.own_identity("heiwa", &ada_token).await.unwrap().expect("ada is a member now");
    let org0_tasks = (1..=TASKS).filter(|i| i % ORGANIZATIONS == 0).count();
    assert_eq!(count(&http, &ada_token, "SELECT * FROM tenant_task").await, org0_tasks, "she reads her tenant, only");
    let hers = (1..=TASKS).filter(|i| i % ORGANIZATIONS == 0 && i % USERS_PER_ORGANIZATION == 0).count();
    let query = format!("SELECT * FROM tenant_task WHERE submitted_by = 0x{ada_identity}");
    assert_eq!(count(&http, &ada_token, &query).await, hers, "the tasks she submitted are hers");
    let tenants = http.rows("heiwa", "SELECT * FROM tenant", &ada_token).await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["name"], "Organization 0");
    let again = claim(&dir.path().join("mallory.token"));
    let again_text = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && again_text.contains("already used"), "{again_text}");

    // A queued legacy task is real work: a limb she invites is given one and sees its question.
    let invite = http.create_invite("heiwa", 1, 600, heiwa_hub::InviteRole::Limb, &ada_token).await.unwrap();
    let (limb, _) = ws_limb(&server, &http, &invite.0, "donor", 1).await;
    let given = recv(&limb.tasks, "a migrated pending task");
    assert!(given.payload.starts_with("What is ") && given.payload.ends_with(" squared?"), "{}", given.payload);

    // Verify catches a change: she cancels a migrated pending task of hers.
    let visible = http.rows("heiwa", "SELECT * FROM tenant_task", &ada_token).await.unwrap();
    let open = visible
        .iter()
        .find(|task| task["state"] == "pending" && task["id"] != given.id)
        .expect("org0 has pending tasks");
    let task_id = open["id"].as_u64().unwrap();
    super::call(&http, &ada_token, "cancel_task", json!([task_id])).await;
    let (ok, differs) = cutover.run(&["--verify"]);
    assert!(!ok && differs.contains("DIFFER") && differs.contains("different: task:"), "{differs}");

    // The hub judges every record again: one it refuses (here, of an organization
    // never migrated) is taken out by its legacy id and the rest of its batch written.
    let journal = heiwa_migrate::claims::ClaimJournal::beside(&dir.path().join("late-claims.csv"));
    let target = heiwa_migrate::target::HubTarget::new(http.clone(), "heiwa", &admin, journal);
    let late = |id: &str, organization: &str| {
        heiwa_migrate::Planned::Task(heiwa_migrate::plan::MigratedTask {
            legacy_id: id.into(),
            tenant_legacy_id: organization.into(),
            submitter_legacy_id: String::new(),
            payload: "a late question".into(),
            model: String::new(),
            state: "done".into(),
            summary: "its answer".into(),
            reason: String::new(),
            created_at_micros: 0,
            finished_at_micros: 0,
        })
    };
    let batch = vec![
        late("task:late1", "organization:org0"),
        late("task:stray", "organization:zzz"),
        late("task:late2", "organization:org1"),
    ];
    let refused = target.write(heiwa_migrate::Kind::Task, batch).await.unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].legacy_id, "task:stray");
    assert!(refused[0].reason.contains("organization:zzz was not migrated"), "{}", refused[0].reason);
    assert_eq!(count(&http, &admin, "SELECT * FROM legacy_record").await, mapped_total + 2);
    assert_eq!(count(&http, &admin, "SELECT * FROM task").await, tasks as usize + 2);
}
