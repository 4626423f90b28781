use super::MemoryError;
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
        Ok(PgServer { config, run_as, running: false })
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
        let status = command.stdout(log.try_clone().map_err(io)?).stderr(log).status().map_err(io)?;
        if !status.success() {
            return Err(MemoryError::Command { step, status: status.to_string(), log: log_path });
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
                        return Err(MemoryError::Unreachable { dir: self.config.root.clone(), blocker: ancestor.to_path_buf() });
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
        std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|source| MemoryError::Io { path: log.clone(), source })?;
        if let Some((uid, gid)) = self.run_as {
            chown(&log, uid, gid)?;
        }
        Ok(())
    }

    /// initdb if this is the first start, then start and wait until it accepts connections.
    /// A stale `postmaster.pid` left by a killed server is handled by PostgreSQL itself.
    pub fn start(&mut self) -> Result<(), MemoryError> {
        self.prepare_dirs()?;
        if !self.data_dir().join("PG_VERSION").exists() {
            let mut initdb = self.command("initdb");
            initdb.arg("-D").arg(self.data_dir()).args(["-U", DB_SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]);
            self.run("initdb", initdb)?;
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {SOCKET_PORT} -k {} -c listen_addresses=''", self.socket_dir().display()))
            .arg("start");
        self.run("pg_ctl start", pg_ctl)?;
        self.running = true;
        Ok(())
    }

    /// Fast shutdown: open transactions are rolled back, committed data is kept.
    pub fn stop(&mut self) -> Result<(), MemoryError> {
        if !self.running {
            return Ok(());
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir()).args(["-m", "fast", "-w", "stop"]);
        self.run("pg_ctl stop", pg_ctl)?;
        self.running = false;
        Ok(())
    }

    /// The postmaster's process id, from its pid file (for crash tests and status).
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .port(SOCKET_PORT)
            .username(DB_SUPERUSER)
            .database(database)
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
