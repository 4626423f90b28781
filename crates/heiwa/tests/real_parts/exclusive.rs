//! Exclusive programs (issue 36) on a real limb process: a program the donor
//! listed starts (a copy of `sleep` under a game's name, a real process in
//! /proc), the limb stops giving and takes no task; it exits, the limb gives
//! again and answers what waited.

use super::mesh::{submit_many, tenant_with_invite, LimbProcess};
use super::{local_hub, parts};
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_program_running_stops_giving_and_its_exit_resumes_it() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let (owner, invite) = tenant_with_invite(&http, 1).await;
    let policy = dir.path().join("policy.json");
    let listed =
        r#"{"exclusive_programs": ["Heiwa-Game.exe"], "exclusive_stops_all": true, "exclusive_resume_minutes": 0}"#;
    std::fs::write(&policy, listed).unwrap();
    let game = dir.path().join("Heiwa-Game.exe");
    std::fs::copy("/bin/sleep", &game).unwrap();

    let donor_args = ["--executor", "echo", "--donation", policy.to_str().unwrap()];
    let limb = LimbProcess::launch(&http, dir.path(), &invite, "gamer", &donor_args);
    limb.wait_for_line("ready");
    let mut playing = Command::new(&game).arg("120").spawn().unwrap();
    // The governor samples every 5 s.
    let said = limb.wait_for_line_within("not giving", Duration::from_secs(15));
    assert_eq!(said, "not giving (Heiwa-Game.exe is running: nothing is given while it runs)");
    submit_many(&http, &owner, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!limb.lines().iter().any(|l| l.starts_with("claimed")), "nothing taken while it runs: {:?}", limb.lines());

    playing.kill().unwrap();
    playing.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let lines = limb.lines();
        let stopped = lines.iter().position(|l| l.starts_with("not giving")).unwrap();
        if lines[stopped..].iter().any(|l| l == "giving (always on)") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never gave again: {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    limb.wait_for_line_within("completed ", Duration::from_secs(20));
    limb.stop();
    server.stop();
}
