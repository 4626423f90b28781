//! A local SpacetimeDB server (the personal hub, tests, benches): started on
//! loopback with its data under a directory, publishing the hub module, and
//! never outliving its owner.

use crate::HubError;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where and how to run a local SpacetimeDB server.
#[derive(Clone, Debug)]
pub struct HubServerConfig {
    pub binary: PathBuf,
    /// Commit log, snapshots and the JWT keys live here; they survive restarts.
    pub data_dir: PathBuf,
    /// Always a loopback address: the limb opens no port beyond loopback.
    pub listen: SocketAddr,
}

/// A SpacetimeDB server process owned by this limb; stopped on drop.
pub struct HubServer {
    child: Child,
    /// Stops the server if this process dies without stopping it (SIGKILL included).
    watchdog: Option<Child>,
    listen: SocketAddr,
}

impl HubServer {
    pub fn start(config: &HubServerConfig) -> Result<Self, HubError> {
        if !config.binary.is_file() {
            return Err(HubError::ServerBinaryMissing(config.binary.clone()));
        }
        assert!(config.listen.ip().is_loopback(), "the hub server must listen on loopback only");
        std::fs::create_dir_all(&config.data_dir)?;
        let log_path = config.data_dir.join("server.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let child = Command::new(&config.binary)
            .arg("start")
            .arg("--listen-addr")
            .arg(config.listen.to_string())
            .arg("--data-dir")
            .arg(&config.data_dir)
            .arg("--jwt-key-dir")
            .arg(config.data_dir.join("keys"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(HubError::Spawn)?;
        let watchdog = watchdog(child.id()).map_err(HubError::Spawn)?;
        let mut server = HubServer { child, watchdog: Some(watchdog), listen: config.listen };
        server.wait_ready(Duration::from_secs(30), &log_path)?;
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration, log: &Path) -> Result<(), HubError> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                return Err(HubError::Spawn(std::io::Error::other(format!(
                    "server exited with {status}; see {}",
                    log.display()
                ))));
            }
            if TcpStream::connect_timeout(&self.listen, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HubError::NotReady { addr: self.listen.to_string(), secs: timeout.as_secs(), log: log.to_path_buf() })
    }

    /// The server's process id (benchmarks read its CPU time and memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.listen)
    }

    /// Stop with SIGTERM, then wait. SpacetimeDB 1.2 does not catch it: the
    /// process ends at once, and transactions from the last half second (it
    /// syncs its commit log every 500 ms) may be gone though acknowledged.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        self.end_server();
        if let Some(mut watchdog) = self.watchdog.take() {
            // Ended without its signal, and only now: ended first, a kill of this
            // process between the two would leave the server running.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    fn end_server(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server never outlives its owner, however the owner ends (a desktop
/// app killed with SIGKILL runs no `Drop`): a small `sh` waits on a pipe
/// whose only writer is this process; when this process ends, the kernel
/// closes the pipe, the read returns, and the watchdog sends the server
/// SIGTERM. The app's PostgreSQL has the same watchdog (heiwa-memory's
/// `PgServer`). In a process group of its own, so a Ctrl-C at a terminal does
/// not end it before it has done its work. (PR_SET_PDEATHSIG would follow the
/// thread that spawned the server, not the process: a runtime's blocking
/// thread that retires would take the server with it.)
fn watchdog(server: u32) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .arg("-c")
        .arg(r#"read -r _; kill -TERM "$0""#)
        .arg(server.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.terminate();
    }
}
