//! `run_python`: model-written code runs only here, in a locked-down container
//! reached through the Docker Engine API (Docker, rootless Docker or Podman).
//! There is no fallback to the host: no engine means a clear error.

use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{AttachContainerOptions, InspectContainerOptions, RemoveContainerOptions, WaitContainerOptions};
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no container engine answered at {host}: {reason}. Install Docker or Podman, start it, and set DOCKER_HOST (scripts/setup starts one for development)")]
    EngineUnavailable { host: String, reason: String },
    #[error("sandbox image {0} is missing (scripts/setup builds it locally)")]
    ImageMissing(String),
    #[error("code is {0} bytes; the sandbox accepts at most {MAX_CODE_BYTES}")]
    CodeTooLarge(usize),
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

/// Runs the code (argv[1]) like a notebook cell: when its last statement is an
/// expression, its value is printed. Models often write `17 * 23` and expect
/// to see 391; without this they see nothing and guess.
const CELL_RUNNER: &str = r#"import ast, sys
tree = ast.parse(sys.argv[1], "<run_python>")
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

pub struct Sandbox {
    docker: Docker,
    image: String,
    limits: Limits,
}

impl Sandbox {
    /// Connect to the engine named by `DOCKER_HOST` (or the platform default),
    /// negotiate the API version, and check the image is present.
    pub async fn connect(image: &str, limits: Limits) -> Result<Self, SandboxError> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into());
        let unavailable = |reason: String| SandboxError::EngineUnavailable { host: host.clone(), reason };
        let docker = Docker::connect_with_defaults().map_err(|e| unavailable(e.to_string()))?;
        let docker = docker.negotiate_version().await.map_err(|e| unavailable(e.to_string()))?;
        match docker.inspect_image(image).await {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                return Err(SandboxError::ImageMissing(image.into()))
            }
            Err(e) => return Err(unavailable(e.to_string())),
        }
        Ok(Sandbox { docker, image: image.into(), limits: limits.clamp() })
    }

    fn container_config(&self, code: &str) -> ContainerCreateBody {
        let l = self.limits;
        let ulimit = |name: &str, value: i64| ResourcesUlimits { name: Some(name.into()), soft: Some(value), hard: Some(value) };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(vec!["python3".into(), "-I".into(), "-c".into(), CELL_RUNNER.into(), code.into()]),
            user: Some(format!("{SANDBOX_UID}:{SANDBOX_UID}")),
            working_dir: Some("/tmp".into()),
            env: Some(vec!["HOME=/tmp".into(), "PYTHONDONTWRITEBYTECODE=1".into()]),
            network_disabled: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
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
                ulimits: Some(vec![ulimit("nofile", 256), ulimit("nproc", l.pids), ulimit("fsize", l.tmpfs_bytes)]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Run `code` with `python3 -I` as a notebook cell, collecting at most `output_bytes` of
    /// each stream; the container is always removed.
    pub async fn run_python(&self, code: &str) -> Result<RunOutput, SandboxError> {
        if code.len() > MAX_CODE_BYTES {
            return Err(SandboxError::CodeTooLarge(code.len()));
        }
        let created = self.docker.create_container(None, self.container_config(code)).await?;
        let id = created.id;
        let result = self.run_created(&id).await;
        let remove = RemoveContainerOptions { force: true, ..Default::default() };
        if let Err(error) = self.docker.remove_container(&id, Some(remove)).await {
            tracing::warn!(%error, container = %id, "removing sandbox container");
        }
        result
    }

    async fn run_created(&self, id: &str) -> Result<RunOutput, SandboxError> {
        let attach = AttachContainerOptions { stream: true, stdout: true, stderr: true, ..Default::default() };
        let mut output = self.docker.attach_container(id, Some(attach)).await?.output;
        self.docker.start_container(id, None).await?;

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
            Err(_) => Some(self.timeout_kind(id).await),
        };
        // Close the attach stream before stopping the container: the engine
        // waits for a writer blocked on an unread stream, and would hang.
        drop(output);
        if limit.is_some() {
            let _ = self.docker.kill_container(id, None::<bollard::query_parameters::KillContainerOptions>).await;
        }
        let mut waits = self.docker.wait_container(id, None::<WaitContainerOptions>);
        while let Some(Ok(_)) | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) = waits.next().await {}
        let state = self.docker.inspect_container(id, None::<InspectContainerOptions>).await?.state.unwrap_or_default();
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
    fn limits_are_clamped_to_safe_bounds() {
        let wild = Limits { memory_bytes: 1 << 40, pids: 1_000_000, timeout: Duration::from_secs(86_400), ..Limits::default() }.clamp();
        assert_eq!(wild.memory_bytes, 4 << 30);
        assert_eq!(wild.pids, 1024);
        assert_eq!(wild.timeout, Duration::from_secs(600));
        let tiny = Limits { memory_bytes: 0, pids: 0, ..Limits::default() }.clamp();
        assert_eq!(tiny.memory_bytes, 16 << 20);
        assert_eq!(tiny.pids, 8);
    }
}
