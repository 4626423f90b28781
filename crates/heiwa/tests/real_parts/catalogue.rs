//! A tenant's model catalogue against a real hub, real `heiwa limb run`
//! processes and Debian's nginx on loopback serving a real GGUF (the
//! embedding model, 87 MiB) as a model mirror would. The owner works through
//! the `heiwa` CLI, as a person does.

use super::mesh::{result_limbs, tenant_with_invite, LimbProcess};
use super::{local_hub_with_config, parts};
use heiwa_testkit::nginx::Nginx;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `heiwa ARGS` as the tenant's owner; its output, or a panic with it.
fn owner(http: &heiwa_hub::HubHttp, token_file: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(args)
        .env("HEIWA_HUB", http.base_url())
        .env("HEIWA_TOKEN_FILE", token_file)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "heiwa {args:?} failed: {text}");
    text
}

/// Run `heiwa ARGS` as the owner until its output satisfies `done`, for at most `limit`.
fn owner_until(
    http: &heiwa_hub::HubHttp,
    token_file: &Path,
    args: &[&str],
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = owner(http, token_file, args);
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "heiwa {args:?} never showed what was waited for; last:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sha256_of(path: &Path) -> String {
    heiwa_fetch::hash_file(path).unwrap().1
}

fn ready_id(limb: &LimbProcess) -> u64 {
    limb.wait_for_line_within("ready limb=", Duration::from_secs(30))["ready limb=".len()..].parse().unwrap()
}

/// A hub with a tenant (its owner's token in a 0600 file, an invite for
/// `limbs` limbs) and nginx serving the embedding model as `minilm.gguf`.
struct Mirrored {
    dir: tempfile::TempDir,
    server: heiwa_hub::HubServer,
    http: heiwa_hub::HubHttp,
    owner_token: String,
    invite: String,
    token_file: std::path::PathBuf,
    sha256: String,
    size: u64,
    mirror: Nginx,
}

async fn mirrored(limbs: u32) -> Mirrored {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _) = local_hub_with_config(&parts, &dir.path().join("hub")).await;
    let (owner_token, invite) = tenant_with_invite(&http, limbs).await;
    let token_file = dir.path().join("owner.token");
    heiwa_config::write_secret(&token_file, &owner_token).unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::copy(&parts.embed_model, served.join("minilm.gguf")).unwrap();
    let (size, sha256) = heiwa_fetch::hash_file(&served.join("minilm.gguf")).unwrap();
    let mirror = Nginx::serve(dir.path(), &served);
    Mirrored { dir, server, http, owner_token, invite, token_file, sha256, size, mirror }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_pinned_to_a_catalogue_model_waits_with_a_reason_until_a_limb_fetches_it_then_runs_there() {
    let Mirrored { dir, server, http, owner_token, invite, token_file, sha256, size, mirror } = mirrored(2).await;

    // Two donors: one with room, one that gives models 10 MiB of disk.
    let roomy = LimbProcess::launch(&http, dir.path(), &invite, "roomy", &["--executor", "echo"]);
    let small = LimbProcess::launch(
        &http,
        dir.path(),
        &invite,
        "small",
        &["--executor", "echo", "--models-disk-cap-mib", "10"],
    );
    let (roomy_id, small_id) = (ready_id(&roomy), ready_id(&small));

    // Pinned to a model nobody holds and the catalogue does not list: it says so.
    http.submit_task("heiwa", "pinned to minilm", Some("minilm"), &owner_token).await.unwrap();
    let task_id = http.rows("heiwa", "SELECT * FROM task", &owner_token).await.unwrap()[0]["id"].as_u64().unwrap();
    let shown = owner(&http, &token_file, &["task", "show", &task_id.to_string()]);
    assert!(
        shown.contains("waiting: no limb holds minilm (it is not in the tenant's catalogue"),
        "the owner is told why it waits: {shown}"
    );
    assert!(
        shown.contains(
            "queue     next in line; no limb that can run it finished a task in the last 10 minutes: no estimate"
        ),
        "and how long it may wait: {shown}"
    );

    // The owner adds it: a dead source first, then the mirror (paced, so the fetch can be seen).
    let (dead, paced) = (mirror.url("m/gone.gguf"), mirror.url("paced/minilm.gguf"));
    let (size_text, id_text) = (size.to_string(), task_id.to_string());
    let added = owner(
        &http,
        &token_file,
        &[
            "tenant",
            "model",
            "add",
            "minilm",
            "--source",
            &dead,
            "--source",
            &paced,
            "--file",
            "minilm.gguf",
            "--sha256",
            &sha256,
            "--size",
            &size_text,
            "--license",
            "Apache-2.0",
        ],
    );
    assert!(added.contains("minilm is in the catalogue (minilm.gguf"), "{added}");
    // The queued task asks every limb: the roomy one fetches, the small one has no room.
    let fetching = owner_until(&http, &token_file, &["task", "show", &id_text], Duration::from_secs(60), |shown| {
        shown.contains("1 limb fetching")
    });
    assert!(fetching.contains("waiting: no limb holds minilm; 1 limb fetching, "), "{fetching}");
    assert!(fetching.contains("too large for the disk cap of 1 limb"), "{fetching}");

    // Held, offered, and the task runs there, never on the limb without room.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !result_limbs(&http, &owner_token).await.contains_key(&task_id) {
        assert!(Instant::now() < deadline, "the pinned task never ran: {:?}", roomy.lines());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(result_limbs(&http, &owner_token).await[&task_id], roomy_id, "the limb that holds the model ran it");
    let result =
        http.rows("heiwa", &format!("SELECT * FROM task_result WHERE task_id = {task_id}"), &owner_token).await;
    let summary = result.unwrap()[0]["summary"].as_str().unwrap().to_string();
    assert!(summary.ends_with(" on minilm.gguf"), "the task ran on the fetched file: {summary}");
    assert_eq!(sha256_of(&dir.path().join("roomy/models/minilm.gguf")), sha256, "the fetched copy is the file");
    assert!(!dir.path().join("small/models/minilm.gguf").exists(), "nothing was fetched past the donor's cap");
    assert!(!dir.path().join("roomy/models/default").exists(), "a fetched model is not the donor's chat model");
    let listed = owner(&http, &token_file, &["tenant", "model", "list"]);
    assert!(listed.contains(&format!("limb {roomy_id:>4}  held")), "{listed}");
    let needs = size.div_ceil(1 << 20);
    assert!(
        listed.contains(&format!(
            "limb {small_id:>4}  no room: minilm needs {needs} MiB; this donor gives models 10 MiB of disk, 0 MiB of it held"
        )),
        "{listed}"
    );

    // A model whose listed hash is not its file's: fetched, refused, deleted, and the owner is told.
    let wrong = "0".repeat(64);
    let plain = mirror.url("m/minilm.gguf");
    owner(
        &http,
        &token_file,
        &[
            "tenant",
            "model",
            "add",
            "tampered",
            "--source",
            &plain,
            "--file",
            "tampered.gguf",
            "--sha256",
            &wrong,
            "--size",
            &size_text,
            "--keep-ready",
        ],
    );
    let listed = owner_until(&http, &token_file, &["tenant", "model", "list"], Duration::from_secs(60), |listed| {
        listed.contains(&format!("limb {roomy_id:>4}  failed"))
    });
    assert!(listed.contains("every source failed: ") && listed.contains("SHA-256"), "{listed}");
    assert!(!dir.path().join("roomy/models/tampered.gguf").exists(), "a file that fails its hash is never installed");
    http.submit_task("heiwa", "pinned to the tampered model", Some("tampered"), &owner_token).await.unwrap();
    let tampered_id = http
        .rows("heiwa", "SELECT * FROM task", &owner_token)
        .await
        .unwrap()
        .iter()
        .find(|row| row["model"] == "tampered")
        .and_then(|row| row["id"].as_u64())
        .unwrap();
    let shown = owner(&http, &token_file, &["task", "show", &tampered_id.to_string()]);
    assert!(
        shown.contains("every source failed on 1 limb; too large for the disk cap of 1 limb (no limb can get it)"),
        "{shown}"
    );

    // Removed from the catalogue: no limb is asked for it any more.
    owner(&http, &token_file, &["tenant", "model", "remove", "tampered"]);
    let listed = owner(&http, &token_file, &["tenant", "model", "list"]);
    assert!(!listed.contains("tampered") && listed.contains("1 model in the catalogue"), "{listed}");
    roomy.stop();
    small.stop();
    server.stop();
}

/// The MiB a `model M: fetching N of T MiB` line says it has.
fn fetched_mib(line: &str) -> u64 {
    line.split("fetching ").nth(1).and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limb_killed_mid_fetch_resumes_where_it_stopped_and_then_offers_the_model() {
    let Mirrored { dir, server, http, owner_token, invite, token_file, sha256, size, mirror } = mirrored(1).await;
    let paced = mirror.url("paced/minilm.gguf");
    let size_text = size.to_string();
    owner(
        &http,
        &token_file,
        &[
            "tenant",
            "model",
            "add",
            "minilm",
            "--source",
            &paced,
            "--sha256",
            &sha256,
            "--size",
            &size_text,
            "--keep-ready",
        ],
    );

    let limb = LimbProcess::launch(&http, dir.path(), &invite, "donor", &["--executor", "echo"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let progress =
            limb.lines().into_iter().filter(|l| l.starts_with("model minilm: fetching")).map(|l| fetched_mib(&l)).max();
        if let Some(mib) = progress.filter(|mib| *mib > 0) {
            break mib;
        }
        assert!(Instant::now() < deadline, "no progress: {:?}", limb.lines());
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = limb.end(nix::sys::signal::Signal::SIGKILL);
    assert!(!killed.iter().any(|l| l == "model minilm: held"), "killed before the end of the file: {killed:?}");

    // This time a dropped model is deleted at once (and the clock that sweeps ticks every 2 s).
    let quick = ["--executor", "echo", "--models-keep-dropped-hours", "0", "--lease-secs", "6"];
    let again = LimbProcess::launch(&http, dir.path(), &invite, "donor", &quick);
    again.wait_for_line_within("model minilm: held", Duration::from_secs(60));
    let resumed_at = again.lines().iter().find(|l| l.starts_with("model minilm: fetching")).map(|l| fetched_mib(l));
    assert!(resumed_at.is_some_and(|mib| mib >= before), "resumed from {before} MiB on: {:?}", again.lines());
    assert_eq!(sha256_of(&dir.path().join("donor/models/minilm.gguf")), sha256, "the resumed copy is the file");
    let listed = owner_until(&http, &token_file, &["tenant", "model", "list"], Duration::from_secs(20), |l| {
        l.contains("  held")
    });
    assert!(listed.contains("minilm  minilm.gguf") && listed.contains(", kept ready"), "{listed}");

    // The owner changes the entry to a new file under the same id: the limb that held the old one fetches it.
    let mut newer = std::fs::read(dir.path().join("served/minilm.gguf")).unwrap();
    let middle = newer.len() / 2;
    newer[middle] ^= 0x40; // still a GGUF that loads; another file
    std::fs::write(dir.path().join("served/minilm-v2.gguf"), &newer).unwrap();
    let (newer_sha, source) = (sha256_of(&dir.path().join("served/minilm-v2.gguf")), mirror.url("m/minilm-v2.gguf"));
    let args = [
        "tenant",
        "model",
        "add",
        "minilm",
        "--source",
        &source,
        "--sha256",
        &newer_sha,
        "--size",
        &size_text,
        "--keep-ready",
    ];
    owner(&http, &token_file, &args);
    let listed = owner_until(&http, &token_file, &["tenant", "model", "list"], Duration::from_secs(60), |l| {
        l.contains("minilm-v2.gguf") && l.contains("  held")
    });
    assert_eq!(sha256_of(&dir.path().join("donor/models/minilm-v2.gguf")), newer_sha, "the new file: {listed}");
    let limbs = http.rows("heiwa", "SELECT * FROM limb", &owner_token).await.unwrap();
    let offers = limbs[0]["models"].to_string();
    assert!(offers.contains(&newer_sha) && !offers.contains(&sha256), "it offers the new file only: {offers}");
    // The old file is the catalogue's no more: deleted after the grace period (none here).
    let models = dir.path().join("donor/models");
    gone_within(&models.join("minilm.gguf"), Duration::from_secs(20));

    // The donor pins the new file; the owner drops the model: the pinned file stays.
    let pin = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["models", "pin", "minilm-v2"])
        .env("HEIWA_DATA_DIR", dir.path().join("donor"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&pin.stdout).contains("minilm-v2 is pinned"), "{pin:?}");
    let listed = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["models", "list"])
        .env("HEIWA_DATA_DIR", dir.path().join("donor"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.lines().any(|l| l.starts_with("  minilm-v2 ") && l.ends_with(", pinned")), "{listed}");
    owner(&http, &token_file, &["tenant", "model", "remove", "minilm"]);
    let said = "model minilm: no longer asked for"; // once for the changed entry's old file, once now
    let deadline = Instant::now() + Duration::from_secs(20);
    while again.lines().iter().filter(|line| *line == said).count() < 2 {
        assert!(Instant::now() < deadline, "the limb never said so: {:?}", again.lines());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The sweep has seen the drop once the record no longer watches the file (a pinned file is the donor's).
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(models.join("catalogue.json")).unwrap().contains("minilm-v2.gguf") {
        assert!(Instant::now() < deadline, "the drop was never swept: {:?}", again.lines());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sha256_of(&models.join("minilm-v2.gguf")), newer_sha, "pinned: kept");
    again.stop();
    server.stop();
}

fn gone_within(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while path.exists() {
        assert!(Instant::now() < deadline, "{} was never deleted", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limb_fetches_only_in_its_donors_download_hours_and_says_so_outside_them() {
    let Mirrored { dir, server, http, owner_token, invite, token_file, sha256, size, mirror } = mirrored(1).await;
    use limb_core::governor::{hhmm, local_minute_of_day};
    // A window that starts in two hours (local time, as the limb reads its clock) and one around now.
    let now = local_minute_of_day();
    let later = format!("{}-{}", hhmm((now + 120) % 1440), hhmm((now + 180) % 1440));
    let around = format!("{}-{}", hhmm((now + 1440 - 60) % 1440), hhmm((now + 60) % 1440));
    let (source, size_text) = (mirror.url("m/minilm.gguf"), size.to_string());
    let args = ["tenant", "model", "add", "minilm", "--source", &source, "--sha256", &sha256, "--size", &size_text];
    owner(&http, &token_file, &args);
    http.submit_task("heiwa", "pinned to minilm", Some("minilm"), &owner_token).await.unwrap();
    let task_id = http.rows("heiwa", "SELECT * FROM task", &owner_token).await.unwrap()[0]["id"].as_u64().unwrap();

    let night = ["--executor", "echo", "--models-download-hours", &later];
    let limb = LimbProcess::launch(&http, dir.path(), &invite, "donor", &night);
    let listed = owner_until(&http, &token_file, &["tenant", "model", "list"], Duration::from_secs(30), |l| {
        l.contains("waits for this donor's download hours")
    });
    let window = later.replace('-', "–");
    assert!(listed.contains(&format!("wanted: waits for this donor's download hours ({window}; now ")), "{listed}");
    let shown = owner(&http, &token_file, &["task", "show", &task_id.to_string()]);
    assert!(
        shown.contains("waiting: no limb holds minilm; 1 limb waiting for the donor's download hours"),
        "the owner sees why: {shown}"
    );
    assert!(!dir.path().join("donor/models/minilm.gguf").exists(), "nothing fetched outside the hours");
    assert!(!dir.path().join("donor/models/.downloads").exists(), "not a byte: {:?}", limb.lines());
    limb.stop();

    // Inside its hours, the same donor fetches it, offers it, and the task runs.
    let day = ["--executor", "echo", "--models-download-hours", &around];
    let limb = LimbProcess::launch(&http, dir.path(), &invite, "donor", &day);
    limb.wait_for_line_within("model minilm: held", Duration::from_secs(60));
    limb.wait_for_line_within(&format!("completed {task_id}"), Duration::from_secs(30));
    assert_eq!(sha256_of(&dir.path().join("donor/models/minilm.gguf")), sha256);
    limb.stop();
    server.stop();
}
