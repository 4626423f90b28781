//! `heiwa service install`: the unit it writes passes `systemd-analyze
//! verify`, keeps the invite out of itself (a 0600 environment file), and its
//! command line, run as systemd would run it, is a limb that answers a task.

use super::mesh::{submit_many, tenant_with_invite, wait_all_done, LimbProcess};
use super::{local_hub, parts};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_unit_verifies_and_its_command_line_runs_a_limb_that_answers() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let (owner, invite) = tenant_with_invite(&http, 1).await;
    let config = dir.path().join("config");
    let installed = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args([
            "service",
            "install",
            "--no-start",
            "--",
            "--hub",
            http.base_url(),
            "--name",
            "desk",
            "--executor",
            "echo",
        ])
        .env("XDG_CONFIG_HOME", &config)
        .env("HEIWA_INVITE", &invite)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&installed.stdout);
    assert!(installed.status.success(), "{said}{}", String::from_utf8_lossy(&installed.stderr));
    assert!(
        said.contains("systemctl --user daemon-reload && systemctl --user enable --now heiwa-limb.service"),
        "{said}"
    );

    let unit_file = config.join("systemd/user/heiwa-limb.service");
    let unit = std::fs::read_to_string(&unit_file).unwrap();
    let verified = Command::new("systemd-analyze").arg("verify").arg(&unit_file).output().unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(!unit.contains(&invite), "the invite is not in the unit:\n{unit}");
    let env_file = config.join("heiwa/limb.env");
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), format!("HEIWA_INVITE={invite}\n"));
    assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);

    // The unit's command line, with the environment file's variables, as systemd starts it.
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart line");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], env!("CARGO_BIN_EXE_heiwa"), "the unit runs this heiwa");
    let child = Command::new(words[0])
        .args(&words[1..])
        .env_clear()
        .env("HOME", dir.path())
        .env("HEIWA_DATA_DIR", dir.path().join("limb"))
        .env("HEIWA_INVITE", &invite)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let limb = LimbProcess::watching(child);
    limb.wait_for_line("ready");
    submit_many(&http, &owner, 1).await;
    wait_all_done(&http, &owner, 1, Duration::from_secs(60)).await;
    let lines = limb.stop();
    assert!(lines.iter().any(|l| l.starts_with("completed")), "{lines:?}");

    let removed = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["service", "remove"])
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&removed.stdout).contains("removed heiwa-limb.service"));
    assert!(!unit_file.exists() && !env_file.exists(), "remove leaves neither the unit nor the invite");
    server.stop();
}
