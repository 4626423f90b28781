//! The app's own PostgreSQL: initialised, started on a private Unix socket,
//! stopped with its owner (a watchdog stops it if the owner is killed), and
//! shared with a second process while its owner runs.

use crate::MemoryError;
use nix::unistd::{Gid, Uid, User};
use sqlx::postgres::PgConnectOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The user PostgreSQL runs as when the limb itself runs as root (it refuses root).
const UNPRIVILEGED_USER: &str = "nobody";
/// The superuser initdb creates; peer-less trust auth is safe because the
/// server listens only on a private Unix socket in a directory only it can use.
const DB_SUPERUSER: &str = "heiwa";
/// Names the socket file only; there is no TCP listener.
const SOCKET_PORT: u16 = 5432;

#[derive(Clone, Debug)]
pub struct PgServerConfig {
    /// The PostgreSQL installation: `bin/initdb`, `bin/pg_ctl`, `share/extension/vector.control`.
    pub install_dir: PathBuf,
    /// Everything the server writes: `data/`, `socket/`, `postgres.log`.
    pub root: PathBuf,
}

/// An embedded PostgreSQL server owned by the app: initdb on first start, a
/// private Unix socket, stopped by [`PgServer::stop`] or on drop.
pub struct PgServer {
    config: PgServerConfig,
    run_as: Option<(Uid, Gid)>,
    running: bool,
    /// Stops the server if this process ends without doing so ([`PgServer::start`]).
    watchdog: Option<std::process::Child>,
}

impl PgServer {
    pub fn new(config: PgServerConfig) -> Result<Self, MemoryError> {
        let required = ["bin/initdb", "bin/pg_ctl", "bin/postgres", "share/extension/vector.control"];
        let missing: Vec<_> = required.iter().filter(|p| !config.install_dir.join(p).exists()).copied().collect();
        if !missing.is_empty() {
            return Err(MemoryError::MissingBinaries { dir: config.install_dir.clone(), missing: missing.join(", ") });
        }
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name(UNPRIVILEGED_USER)
                .ok()
                .flatten()
                .ok_or_else(|| MemoryError::NoUnprivilegedUser(UNPRIVILEGED_USER.into()))?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        Ok(PgServer { config, run_as, running: false, watchdog: None })
    }

    fn data_dir(&self) -> PathBuf {
        self.config.root.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.config.root.join("socket")
    }

    fn log_path(&self) -> PathBuf {
        self.config.root.join("postgres.log")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.config.install_dir.join("bin").join(program));
        command.stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
    }

    fn run(&self, step: &'static str, mut command: Command) -> Result<(), MemoryError> {
        let log_path = self.log_path();
        let io = |source| MemoryError::Io { path: log_path.clone(), source };
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io)?;
        let log_before = log.metadata().map_or(0, |m| m.len());
        let status = command.stdout(log.try_clone().map_err(io)?).stderr(log).status().map_err(io)?;
        if !status.success() {
            let said = what_the_attempt_said(&log_path, log_before);
            return Err(MemoryError::Command { step, status: status.to_string(), said, log: log_path });
        }
        Ok(())
    }

    fn prepare_dirs(&self) -> Result<(), MemoryError> {
        if self.run_as.is_some() {
            // The unprivileged user must be able to walk down to its directory.
            use std::os::unix::fs::PermissionsExt;
            for ancestor in self.config.root.ancestors().skip(1) {
                if let Ok(meta) = std::fs::metadata(ancestor) {
                    if meta.permissions().mode() & 0o001 == 0 {
                        return Err(MemoryError::Unreachable {
                            dir: self.config.root.clone(),
                            blocker: ancestor.to_path_buf(),
                        });
                    }
                }
            }
        }
        for dir in [self.config.root.clone(), self.socket_dir()] {
            std::fs::create_dir_all(&dir).map_err(|source| MemoryError::Io { path: dir.clone(), source })?;
            restrict(&dir)?;
            if let Some((uid, gid)) = self.run_as {
                chown(&dir, uid, gid)?;
            }
        }
        let log = self.log_path();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| MemoryError::Io { path: log.clone(), source })?;
        if let Some((uid, gid)) = self.run_as {
            chown(&log, uid, gid)?;
        }
        Ok(())
    }

    /// initdb if this is the first start, then start and wait until it accepts connections.
    ///
    /// After a crash (`kill -9`), PostgreSQL clears the stale `postmaster.pid`
    /// itself, but only once the killed postmaster and its backends are really
    /// gone: a killed postmaster lingers as a zombie until init reaps it (it is
    /// daemonised; in a container that can take a while), and its orphaned
    /// backends hold the shared memory until they notice. Until then it refuses
    /// to start, so those two refusals are retried for up to 20 s.
    pub fn start(&mut self) -> Result<(), MemoryError> {
        // Started again (after its server died): the old watchdog must not stop the new server.
        self.end_watchdog();
        if !self.running && self.serving() {
            // Another process (a long `heiwa ingest`, the desktop app) owns this
            // memory's server: use it through its socket and leave its lifetime
            // to its owner (`stop` is then a no-op), as a second psql session would.
            tracing::info!(pid = ?self.pid(), "PostgreSQL already serves this memory; using it");
            return Ok(());
        }
        // A server whose owner has gone is being stopped by its watchdog (a Ctrl-C
        // and an immediate rerun) -- or by nobody: an owner killed between starting
        // the server and its watchdog leaves an orphan. Ask for the fast shutdown
        // too (a second request is harmless) and wait for it to go rather than use it.
        // (Its fast shutdown ends with a checkpoint: slow on a loaded machine.)
        if !self.running && self.going_away() {
            if let Err(error) = self.run("pg_ctl stop", self.fast_stop()) {
                tracing::info!(%error, "stopping the server of an owner that has gone");
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.running && self.going_away() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.prepare_dirs()?;
        if !self.data_dir().join("PG_VERSION").exists() {
            let mut initdb = self.command("initdb");
            initdb.arg("-D").arg(self.data_dir()).args([
                "-U",
                DB_SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]);
            self.run("initdb", initdb)?;
        }
        let pg_ctl_start = || {
            let mut pg_ctl = self.command("pg_ctl");
            pg_ctl
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {SOCKET_PORT} -k {} -c listen_addresses=''", self.socket_dir().display()))
                .arg("start");
            pg_ctl
        };
        // Owned before it starts: another process that finds it serving uses it
        // rather than taking it for one whose owner has gone.
        let owner = self.owner_path();
        std::fs::write(&owner, std::process::id().to_string())
            .map_err(|source| MemoryError::Io { path: owner, source })?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let log_before = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
            match self.run("pg_ctl start", pg_ctl_start()) {
                Ok(()) => break,
                Err(e)
                    if std::time::Instant::now() < deadline
                        && (self.refused_for_a_dead_server(log_before) || self.going_away()) =>
                {
                    tracing::info!(error = %e, "PostgreSQL's previous server is still going away; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
        self.running = true;
        self.watchdog = Some(self.spawn_watchdog()?);
        Ok(())
    }

    /// End the watchdog without its stop: killed, not left to read the
    /// closing pipe (which would stop a server started again after it).
    fn end_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// The server never outlives this process, however it ends (SIGKILL
    /// included): pg_ctl daemonises PostgreSQL, so nothing else would stop it.
    /// A small `sh` waits on a pipe whose only writer is this process; when
    /// this process ends, the kernel closes the pipe, the read returns, and
    /// the watchdog runs a fast shutdown (open transactions rolled back,
    /// committed data kept). In a process group of its own, so a Ctrl-C at a
    /// terminal, which signals the whole foreground group, does not end the
    /// watchdog before it has done its work.
    fn spawn_watchdog(&self) -> Result<std::process::Child, MemoryError> {
        use std::os::unix::process::CommandExt;
        let mut watchdog = Command::new("sh");
        watchdog
            .arg("-c")
            .arg(r#"read -r _; exec "$0" -D "$1" -m fast -w stop"#)
            .arg(self.config.install_dir.join("bin").join("pg_ctl"))
            .arg(self.data_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            watchdog.uid(uid.as_raw()).gid(gid.as_raw());
        }
        watchdog.spawn().map_err(|source| MemoryError::Io { path: "sh (PostgreSQL's watchdog)".into(), source })
    }

    /// Fast shutdown: open transactions are rolled back, committed data is kept.
    pub fn stop(&mut self) -> Result<(), MemoryError> {
        if !self.running {
            self.end_watchdog();
            return Ok(());
        }
        // The watchdog guards until the server is down: ended first, a kill of
        // this process between the two would leave the server running.
        self.run("pg_ctl stop", self.fast_stop())?;
        self.end_watchdog();
        self.running = false;
        let _ = std::fs::remove_file(self.owner_path());
        Ok(())
    }

    fn fast_stop(&self) -> Command {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir()).args(["-m", "fast", "-w", "-t", "60", "stop"]);
        pg_ctl
    }

    /// Whether a live server of this data directory, started by another
    /// process that is still running, listens on its socket.
    fn serving(&self) -> bool {
        let socket = self.socket_dir().join(format!(".s.PGSQL.{SOCKET_PORT}"));
        let owner: Option<i32> =
            std::fs::read_to_string(self.owner_path()).ok().and_then(|pid| pid.trim().parse().ok());
        owner.is_some_and(|owner| owner != std::process::id() as i32 && alive(owner))
            && self.pid().is_some_and(alive)
            && std::fs::symlink_metadata(socket).is_ok()
    }

    /// Whether a server of this data directory whose owner has gone is still
    /// there (its watchdog is stopping it). Its pid file is rewritten while it
    /// shuts down, so one that cannot be read counts as still there.
    fn going_away(&self) -> bool {
        self.data_dir().join("postmaster.pid").exists() && !self.serving() && self.pid().is_none_or(alive)
    }

    /// Which process started the server (and stops it, itself or through its watchdog).
    fn owner_path(&self) -> PathBuf {
        self.config.root.join("owner.pid")
    }

    /// Whether the start attempt whose log begins at `log_offset` was refused
    /// because a killed server's process or shared memory is still around.
    fn refused_for_a_dead_server(&self, log_offset: u64) -> bool {
        let attempt = attempt_text(&self.log_path(), log_offset);
        (attempt.contains("lock file \"postmaster.pid\" already exists") && !self.pid().is_some_and(alive))
            || attempt.contains("pre-existing shared memory block")
    }

    /// The postmaster's process id, from its pid file (for crash tests and status).
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new().socket(self.socket_dir()).port(SOCKET_PORT).username(DB_SUPERUSER).database(database)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::warn!(%error, "stopping PostgreSQL");
        }
    }
}

fn chown(path: &Path, uid: Uid, gid: Gid) -> Result<(), MemoryError> {
    std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
        .map_err(|source| MemoryError::Io { path: path.to_path_buf(), source })
}

fn restrict(path: &Path) -> Result<(), MemoryError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|source| MemoryError::Io { path: path.to_path_buf(), source })
}

/// The lines of `log` from `offset` on that say why a step failed: its
/// FATAL/ERROR/PANIC lines and pg_ctl's own, else the last two, cut to a
/// readable length (the whole log stays on disk).
fn what_the_attempt_said(log: &Path, offset: u64) -> String {
    let attempt = attempt_text(log, offset);
    let lines: Vec<&str> = attempt.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    let telling: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| ["FATAL", "ERROR", "PANIC", "pg_ctl:", "initdb:"].iter().any(|mark| line.contains(mark)))
        .collect();
    let chosen = if telling.is_empty() { &lines[lines.len().saturating_sub(2)..] } else { &telling[..] };
    let said = chosen.join(" / ");
    match said.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &said[..cut]),
        None if said.is_empty() => "it wrote nothing".into(),
        None => said,
    }
}

/// What `log` gained from `offset` on: one attempt's lines.
fn attempt_text(log: &Path, offset: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default()).into_owned()
}

/// Whether process `pid` runs (and is not a zombie waiting to be reaped).
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name: "123 (postgres) S …"; Z is a zombie.
    stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
}

#[cfg(test)]
mod tests {
    use super::what_the_attempt_said;

    #[test]
    fn a_failed_step_says_what_postgres_wrote_in_that_attempt_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("postgres.log");
        let earlier = "2026-12-07 FATAL:  an earlier attempt's refusal\n";
        let attempt =
            "waiting for server to start....\n2026-12-07 FATAL:  lock file \"postmaster.pid\" already exists\n\
                       2026-12-07 HINT:  Is another postmaster running?\npg_ctl: could not start server\n";
        std::fs::write(&log, format!("{earlier}{attempt}")).unwrap();
        let said = what_the_attempt_said(&log, earlier.len() as u64);
        assert_eq!(
            said,
            "2026-12-07 FATAL:  lock file \"postmaster.pid\" already exists / pg_ctl: could not start server"
        );

        std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
        assert_eq!(what_the_attempt_said(&log, 0), "two / three", "nothing telling: the last lines");
        assert_eq!(what_the_attempt_said(&log, 14), "it wrote nothing");
        std::fs::write(&log, format!("FATAL: {}\n", "x".repeat(2000))).unwrap();
        assert_eq!(what_the_attempt_said(&log, 0).chars().count(), 601, "cut to a readable length");
    }
}
