//! `run_python`: model-written code runs only here, in a locked-down container
//! reached through the Docker Engine API (Docker, rootless Docker or Podman).
//! There is no fallback to the host: no engine means a clear error.

use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptions, InspectContainerOptions, RemoveContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub mod image;

/// Every sandbox container carries this label, so an operator can find them
/// (`docker ps -a --filter label=org.heiwa.sandbox`).
const CONTAINER_LABEL: &str = "org.heiwa.sandbox";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no container engine answered at {host}: {reason}. To turn run_python on, install Docker (docker.io) or Podman and start it; Heiwa finds its usual socket, or set DOCKER_HOST")]
    EngineUnavailable { host: String, reason: String },
    #[error("the sandbox image could not be built: {0}")]
    Recipe(String),
    #[error("code is {0} bytes; the sandbox accepts at most {MAX_CODE_BYTES}")]
    CodeTooLarge(usize),
    #[error("the sandbox pool is closed")]
    Closed,
    #[error("container engine: {0}")]
    Engine(#[from] bollard::errors::Error),
}

/// The sandbox's user: one no host process runs as (Debian reserves
/// 65000–65533). Not `nobody`: the host's PostgreSQL runs as `nobody`, and a
/// per-user process limit would then be shared with it (a fork bomb in the
/// sandbox could starve the database).
pub const SANDBOX_UID: u32 = 65533;

/// Code is passed as one argument; keep it well under the kernel's limit.
pub const MAX_CODE_BYTES: usize = 64 * 1024;

/// Runs the code (argv[1], or stdin for a warm container) like a notebook cell: when its last statement is an
/// expression, its value is printed. Models often write `17 * 23` and expect
/// to see 391; without this they see nothing and guess.
const CELL_RUNNER: &str = r#"import ast, sys
tree = ast.parse(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read(), "<run_python>")
last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
scope = {"__name__": "__main__"}
exec(compile(tree, "<run_python>", "exec"), scope)
if last is not None:
    value = eval(compile(ast.Expression(last.value), "<run_python>", "eval"), scope)
    if value is not None:
        print(repr(value))
"#;

/// Limits a run cannot exceed. Defaults are safe; callers may tighten or
/// loosen them only within [`Limits::clamp`]'s bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    pub timeout: Duration,
    pub output_bytes: usize,
    pub tmpfs_bytes: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            nano_cpus: 1_000_000_000,
            pids: 64,
            timeout: Duration::from_secs(10),
            output_bytes: 64 << 10,
            tmpfs_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// Keep every limit inside bounds that still contain a hostile program.
    pub fn clamp(self) -> Self {
        Limits {
            memory_bytes: self.memory_bytes.clamp(16 << 20, 4 << 30),
            nano_cpus: self.nano_cpus.clamp(100_000_000, 8_000_000_000),
            pids: self.pids.clamp(8, 1024),
            timeout: self.timeout.clamp(Duration::from_millis(100), Duration::from_secs(600)),
            output_bytes: self.output_bytes.clamp(1024, 16 << 20),
            tmpfs_bytes: self.tmpfs_bytes.clamp(1 << 20, 1 << 30),
        }
    }
}

/// Which limit, if any, stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitHit {
    Timeout,
    Memory,
    Output,
    /// At its process limit when time ran out (a fork bomb).
    Pids,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    /// None when the container was stopped before it exited by itself.
    pub exit_code: Option<i64>,
    pub limit: Option<LimitHit>,
}

/// Where the engine is: `DOCKER_HOST` when set (bollard reads it), else the
/// first socket that exists of Docker's, rootless Docker's and Podman's
/// (rootless, then system-wide); `None` leaves bollard its default.
fn engine_socket() -> Option<String> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return Some(host);
    }
    let runtime = std::env::var("XDG_RUNTIME_DIR").ok().filter(|d| !d.is_empty());
    let mut candidates = vec!["/var/run/docker.sock".to_string()];
    if let Some(runtime) = &runtime {
        candidates.push(format!("{runtime}/docker.sock"));
        candidates.push(format!("{runtime}/podman/podman.sock"));
    }
    candidates.push("/run/podman/podman.sock".into());
    candidates.into_iter().find(|socket| std::path::Path::new(socket).exists())
}

pub struct Sandbox {
    docker: Docker,
    image: String,
    limits: Limits,
}

impl Sandbox {
    /// Connect to the engine (`DOCKER_HOST`, else the usual sockets of
    /// Docker, rootless Docker and Podman), negotiate the API version, and
    /// build the image from its recipe ([`image`]) when the engine lacks it.
    pub async fn connect(image: &str, limits: Limits) -> Result<Self, SandboxError> {
        let socket = engine_socket();
        let host = socket.clone().unwrap_or_else(|| "the default socket".into());
        let unavailable = |reason: String| SandboxError::EngineUnavailable { host: host.clone(), reason };
        let docker = match &socket {
            Some(socket) if !socket.contains("://") => {
                Docker::connect_with_socket(socket, 120, bollard::API_DEFAULT_VERSION)
            }
            _ => Docker::connect_with_defaults(),
        }
        .map_err(|e| unavailable(e.to_string()))?;
        let docker = docker.negotiate_version().await.map_err(|e| unavailable(e.to_string()))?;
        match docker.inspect_image(image).await {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                tracing::info!(image, "building the sandbox image from this machine's Python");
                image::build(&docker, image).await?;
            }
            Err(e) => return Err(unavailable(e.to_string())),
        }
        Ok(Sandbox { docker, image: image.into(), limits: limits.clamp() })
    }

    /// The container for one run: `code` as an argument, or, for a warm
    /// container, read from stdin once it is sent.
    fn container_config(&self, code: Option<&str>) -> ContainerCreateBody {
        let l = self.limits;
        let ulimit =
            |name: &str, value: i64| ResourcesUlimits { name: Some(name.into()), soft: Some(value), hard: Some(value) };
        let mut cmd = vec!["python3".into(), "-I".into(), "-c".into(), CELL_RUNNER.into()];
        cmd.extend(code.map(String::from));
        let from_stdin = code.is_none();
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(cmd),
            user: Some(format!("{SANDBOX_UID}:{SANDBOX_UID}")),
            working_dir: Some("/tmp".into()),
            env: Some(vec!["HOME=/tmp".into(), "PYTHONDONTWRITEBYTECODE=1".into()]),
            labels: Some(HashMap::from([(CONTAINER_LABEL.into(), "1".into())])),
            network_disabled: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(from_stdin),
            open_stdin: Some(from_stdin),
            stdin_once: Some(from_stdin),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".into(),
                    format!("rw,noexec,nosuid,nodev,size={},mode=1777", l.tmpfs_bytes),
                )])),
                memory: Some(l.memory_bytes),
                memory_swap: Some(l.memory_bytes),
                nano_cpus: Some(l.nano_cpus),
                pids_limit: Some(l.pids),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                // RLIMIT_NPROC counts the sandbox uid's processes in every
                // container at once (one uid for all), so at `pids` a warm
                // container elsewhere made a fork bomb fail early (seen: 14 of
                // 16) and one sandbox could starve another: it is a backstop
                // above the per-container pids cgroup, which is the limit.
                ulimits: Some(vec![
                    ulimit("nofile", 256),
                    ulimit("nproc", l.pids * NPROC_BACKSTOP),
                    ulimit("fsize", l.tmpfs_bytes),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Run `code` with `python3 -I` as a notebook cell, collecting at most `output_bytes` of
    /// each stream; the container is always removed.
    pub async fn run_python(&self, code: &str) -> Result<RunOutput, SandboxError> {
        check_code(code)?;
        let started = self.start(Some(code)).await?;
        let id = started.id.clone();
        let result = self.finish(started).await;
        remove(&self.docker, &id).await;
        result
    }

    /// Create, attach and start a container (removed again if any step fails).
    async fn start(&self, code: Option<&str>) -> Result<Started, SandboxError> {
        let id = self.docker.create_container(None, self.container_config(code)).await?.id;
        let attached = async {
            let attach = AttachContainerOptions {
                stream: true,
                stdout: true,
                stderr: true,
                stdin: code.is_none(),
                ..Default::default()
            };
            let streams = self.docker.attach_container(&id, Some(attach)).await?;
            self.docker.start_container(&id, None).await?;
            Ok::<_, SandboxError>(streams)
        };
        match attached.await {
            Ok(streams) => Ok(Started { id, output: streams.output, input: streams.input }),
            Err(e) => {
                remove(&self.docker, &id).await;
                Err(e)
            }
        }
    }

    /// Collect a started run's output within the limits, then stop it.
    async fn finish(&self, started: Started) -> Result<RunOutput, SandboxError> {
        let Started { id, mut output, input } = started;
        drop(input);
        let cap = self.limits.output_bytes;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let collect = async {
            while let Some(chunk) = output.next().await {
                let (buffer, bytes) = match chunk? {
                    bollard::container::LogOutput::StdOut { message } => (&mut stdout, message),
                    bollard::container::LogOutput::StdErr { message } => (&mut stderr, message),
                    _ => continue,
                };
                let room = cap.saturating_sub(buffer.len());
                buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
                if bytes.len() > room {
                    return Ok::<_, SandboxError>(Some(LimitHit::Output));
                }
            }
            Ok(None)
        };
        let mut limit = match tokio::time::timeout(self.limits.timeout, collect).await {
            Ok(result) => result?,
            Err(_) => Some(self.timeout_kind(&id).await),
        };
        // Close the attach stream before stopping the container: the engine
        // waits for a writer blocked on an unread stream, and would hang.
        drop(output);
        if limit.is_some() {
            let _ = self.docker.kill_container(&id, None::<bollard::query_parameters::KillContainerOptions>).await;
        }
        let mut waits = self.docker.wait_container(&id, None::<WaitContainerOptions>);
        while let Some(Ok(_)) | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) = waits.next().await
        {
        }
        let state =
            self.docker.inspect_container(&id, None::<InspectContainerOptions>).await?.state.unwrap_or_default();
        if limit.is_none() && state.oom_killed == Some(true) {
            limit = Some(LimitHit::Memory);
        }
        Ok(RunOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            exit_code: if limit.is_some() { None } else { state.exit_code },
            limit,
        })
    }
}

impl Sandbox {
    /// A limb that dies without closing its pool leaves warm containers that
    /// exit at once (their stdin closes). Remove sandbox containers that
    /// exited over a minute ago: a live limb inspects and removes its own
    /// within milliseconds of their exit, so these belong to nobody.
    async fn remove_stale_leftovers(&self) {
        use bollard::query_parameters::ListContainersOptions;
        let filters = HashMap::from([
            ("label".to_string(), vec![CONTAINER_LABEL.to_string()]),
            ("status".to_string(), vec!["exited".to_string()]),
        ]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let Ok(exited) = self.docker.list_containers(Some(options)).await else { return };
        for id in exited.iter().filter_map(|c| c.id.as_deref()) {
            let finished = self
                .docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
                .ok()
                .and_then(|c| c.state?.finished_at);
            let stale = finished.and_then(|at| age(&at)).is_some_and(|age| age > Duration::from_secs(60));
            if stale {
                remove(&self.docker, id).await;
            }
        }
    }
}

/// Age of an RFC 3339 timestamp as Docker writes it ("2026-11-24T05:58:04.123456789Z").
fn age(at: &str) -> Option<Duration> {
    let then = humantime::parse_rfc3339(at).ok()?;
    Some(std::time::SystemTime::now().duration_since(then).unwrap_or_default())
}

fn check_code(code: &str) -> Result<(), SandboxError> {
    if code.len() > MAX_CODE_BYTES {
        return Err(SandboxError::CodeTooLarge(code.len()));
    }
    Ok(())
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions { force: true, ..Default::default() };
    if let Err(error) = docker.remove_container(id, Some(options)).await {
        tracing::warn!(%error, container = %id, "removing sandbox container");
    }
}

/// A started container with its attached streams.
struct Started {
    id: String,
    output: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Send>,
    >,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Containers started ahead of time, Python already loaded and waiting for
/// code on stdin, so a call skips the cold start. Each container still runs
/// exactly one piece of code and is then removed: nothing carries over from
/// one call to the next.
pub struct WarmPool {
    sandbox: Arc<Sandbox>,
    ready: tokio::sync::Mutex<mpsc::Receiver<Started>>,
    filler: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Removals of used containers, off the callers' path; `close` waits for them.
    removals: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl WarmPool {
    /// Keep `size` containers ready (at least 1).
    pub fn new(sandbox: Arc<Sandbox>, size: usize) -> Self {
        let (tx, rx) = mpsc::channel(size.max(1));
        let filling = sandbox.clone();
        let filler = tokio::spawn(async move {
            filling.remove_stale_leftovers().await;
            loop {
                match filling.start(None).await {
                    Ok(started) => {
                        if let Err(unsent) = tx.send(started).await {
                            remove(&filling.docker, &unsent.0.id).await;
                            return;
                        }
                    }
                    Err(_) if tx.is_closed() => return,
                    Err(error) => {
                        tracing::warn!(%error, "starting a warm sandbox container; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        WarmPool {
            sandbox,
            ready: tokio::sync::Mutex::new(rx),
            filler: std::sync::Mutex::new(Some(filler)),
            removals: Default::default(),
        }
    }

    pub async fn run_python(&self, code: &str) -> Result<RunOutput, SandboxError> {
        use tokio::io::AsyncWriteExt;
        check_code(code)?;
        let mut started = self.ready.lock().await.recv().await.ok_or(SandboxError::Closed)?;
        let sent = async {
            started.input.write_all(code.as_bytes()).await?;
            started.input.shutdown().await
        };
        if let Err(error) = sent.await {
            remove(&self.sandbox.docker, &started.id).await;
            return Err(SandboxError::Engine(bollard::errors::Error::IOError { err: error }));
        }
        let id = started.id.clone();
        let result = self.sandbox.finish(started).await;
        let docker = self.sandbox.docker.clone();
        let mut removals = self.removals.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while removals.try_join_next().is_some() {}
        removals.spawn(async move { remove(&docker, &id).await });
        result
    }

    /// Stop refilling, remove the containers still waiting, and wait for
    /// every removal to finish. Later calls get [`SandboxError::Closed`].
    pub async fn close(&self) {
        let mut ready = self.ready.lock().await;
        ready.close(); // the filler removes what it is starting now, and stops
        while let Some(started) = ready.recv().await {
            remove(&self.sandbox.docker, &started.id).await;
        }
        let filler = self.filler.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(filler) = filler {
            let _ = filler.await;
        }
        let removals = std::mem::take(&mut *self.removals.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        removals.join_all().await;
    }
}

/// The per-uid process backstop, in multiples of a sandbox's pids limit.
const NPROC_BACKSTOP: i64 = 4;

impl Sandbox {
    /// Why a run was still going at its deadline: a fork bomb sits at its
    /// pids limit (its forks fail, it keeps trying), anything else is slow.
    async fn timeout_kind(&self, id: &str) -> LimitHit {
        let processes = self.docker.top_processes(id, None::<bollard::query_parameters::TopOptions>).await;
        let count = processes.ok().and_then(|top| top.processes).map_or(0, |p| p.len() as i64);
        if count >= self.limits.pids {
            LimitHit::Pids
        } else {
            LimitHit::Timeout
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_timestamps_are_aged() {
        let since_2000 =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 951_868_800;
        let aged = age("2000-03-01T00:00:00.123456789Z").unwrap().as_secs();
        assert!(aged.abs_diff(since_2000) <= 2, "{aged} vs {since_2000}: within the seconds the test itself takes");
        assert!(age("2999-01-01T00:00:00Z").unwrap().is_zero(), "a clock skewed into the future is not stale");
        assert!(age("not a time").is_none());
    }

    #[test]
    fn limits_are_clamped_to_safe_bounds() {
        let wild = Limits {
            memory_bytes: 1 << 40,
            pids: 1_000_000,
            timeout: Duration::from_secs(86_400),
            ..Limits::default()
        }
        .clamp();
        assert_eq!(wild.memory_bytes, 4 << 30);
        assert_eq!(wild.pids, 1024);
        assert_eq!(wild.timeout, Duration::from_secs(600));
        let tiny = Limits { memory_bytes: 0, pids: 0, ..Limits::default() }.clamp();
        assert_eq!(tiny.memory_bytes, 16 << 20);
        assert_eq!(tiny.pids, 8);
    }
}
