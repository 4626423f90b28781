//! The app's PostgreSQL never outlives its owner, whichever way the owner
//! ends, and a start after an owner that died finds its way past what was left.

use super::parts;
use heiwa_memory::{PgServer, PgServerConfig};

/// Whether process `pid` is gone (a zombie counts: it holds nothing).
fn gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// However `heiwa ingest` ends — Ctrl-C, SIGTERM, SIGKILL — it ends at once,
/// and the app's PostgreSQL (daemonised by pg_ctl) stops by itself soon
/// after, through its watchdog; what was committed stays, the document in
/// flight is rolled back, and the next run finishes the folder.
#[test]
fn the_apps_postgres_stops_when_heiwa_ends_any_way_and_the_next_run_finishes() {
    use nix::sys::signal::Signal;
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    // As root, the app's PostgreSQL runs as nobody and must reach its directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for n in 0..120 {
        let text: String =
            (0..30).map(|s| format!("Note {n}, line {s}: the limb files topic {}. ", n * 31 + s)).collect();
        std::fs::write(corpus.join(format!("note{n:03}.txt")), text).unwrap();
    }
    let data = dir.path().join("data");
    let ingest = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"));
        command.arg("ingest").arg(&corpus).env("HEIWA_DATA_DIR", &data);
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        heiwa_testkit::signals::interruptible(&mut command).spawn().unwrap()
    };
    let postmaster = data.join("memory/data/postmaster.pid");
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL] {
        let mut child = ingest();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // Caught in the middle: after its first new document.
        let first = lines.find(|line| line.as_ref().is_ok_and(|l| l.starts_with("added"))).expect("it adds a document");
        assert!(first.is_ok());
        let pg: i32 = std::fs::read_to_string(&postmaster).unwrap().lines().next().unwrap().trim().parse().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let sent = Instant::now();
        child.wait().unwrap();
        assert!(sent.elapsed() < Duration::from_secs(2), "{signal}: heiwa took {:?} to end", sent.elapsed());
        while !gone(pg) {
            assert!(sent.elapsed() < Duration::from_secs(15), "{signal}: PostgreSQL {pg} outlived heiwa");
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{signal}: heiwa ended; PostgreSQL gone {:?} after the signal", sent.elapsed());
    }
    // The next run finishes the folder: what was committed is unchanged, the rest is added.
    let mut child = ingest();
    let output: Vec<String> =
        std::io::BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success(), "{output:?}");
    let summary = output.last().unwrap();
    let counts: Vec<usize> =
        summary.split(',').filter_map(|part| part.split_whitespace().next()?.parse().ok()).collect();
    assert!(counts.len() == 4 && counts[0] + counts[1] == 120 && counts[1] >= 3 && counts[3] == 0, "{summary}");
    assert!(!postmaster.exists(), "a clean exit stops PostgreSQL too");
}

/// An owner killed where no watchdog guards its server (between starting it and
/// the watchdog, or in its own stop) leaves an orphan: the next start stops it
/// and starts its own on the same data, instead of waiting for a stop that never
/// comes and failing on its lock file (the CI once saw exactly that).
#[test]
fn the_next_start_stops_a_server_whose_owner_died_unguarded() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = || PgServerConfig { install_dir: parts().pg_dir, root: dir.path().join("pg") };
    let mut orphaned = PgServer::new(config()).unwrap();
    orphaned.start().unwrap();
    let old = orphaned.pid().unwrap();
    // The owner "dies": its watchdog never fires (its pipe stays open, leaked
    // with the forgotten server) and the owner file names a process that is gone.
    std::mem::forget(orphaned);
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    std::fs::write(dir.path().join("pg/owner.pid"), dead.id().to_string()).unwrap();

    let mut next = PgServer::new(config()).unwrap();
    let started = next.start();
    if started.is_err() {
        // Nothing else would stop it: a failing run leaves nothing behind.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::Signal::SIGTERM);
    }
    started.expect("the next start stops the orphan and starts its own");
    assert!(gone(old), "the orphan {old} was stopped");
    assert_ne!(next.pid(), Some(old), "a server of its own");
    next.stop().unwrap();
}
