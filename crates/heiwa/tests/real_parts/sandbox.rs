//! Hostile code in the real container sandbox: each snippet is contained and
//! reported with the right kind. Nothing here aims at an address outside
//! loopback; name resolution asks for a name under the reserved `.invalid`.

use super::parts;
use heiwa_sandbox::{LimitHit, Limits, RunOutput, Sandbox};
use std::time::{Duration, Instant};

async fn connect(limits: Limits) -> Sandbox {
    Sandbox::connect(&parts().sandbox_image, limits).await.expect("engine and image present")
}

async fn run(sandbox: &Sandbox, code: &str) -> RunOutput {
    sandbox.run_python(code).await.unwrap_or_else(|e| panic!("{code}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_snippets_are_contained_each_with_its_kind() {
    let limits = Limits {
        memory_bytes: 64 << 20,
        pids: 32,
        timeout: Duration::from_secs(4),
        output_bytes: 64 << 10,
        ..Limits::default()
    };
    let sandbox = connect(limits).await;

    // A fork bomb sits at its pids limit until the wall clock stops it.
    let fork_bomb = connect(Limits { memory_bytes: 512 << 20, pids: 16, ..limits }).await;
    let started = Instant::now();
    let out =
        run(&fork_bomb, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass").await;
    assert_eq!((out.limit, out.exit_code), (Some(LimitHit::Pids), None), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "stopped promptly: {:?}", started.elapsed());

    let out = run(&sandbox, "hog = bytearray(512 << 20)\nprint('allocated')").await;
    assert_eq!((out.limit, out.stdout.as_str()), (Some(LimitHit::Memory), ""), "{out:?}");

    let out = run(&sandbox, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)").await;
    assert_eq!((out.limit, out.stdout.len()), (Some(LimitHit::Output), 64 << 10), "capped at the limit");

    let out = run(&sandbox, "import socket\ntry:\n    print(socket.getaddrinfo('heiwa-sandbox-test.invalid', 80))\nexcept OSError as e:\n    print('no resolution', type(e).__name__)").await;
    assert_eq!(out.stdout, "no resolution gaierror\n", "{out:?}");

    let writes = "for p in ['/etc/passwd', '/usr/bin/x', '/x', '/proc/sysrq-trigger', '/sys/kernel/x']:\n    try:\n        open(p, 'a').write('x')\n        print('wrote', p)\n    except OSError:\n        print('refused', p)";
    let out = run(&sandbox, writes).await;
    assert_eq!(out.stdout.matches("refused").count(), 5, "{out:?}");
    assert!(!out.stdout.contains("wrote"), "{out:?}");

    // Host files: a secret written on the host (in /tmp, where the sandbox has its own tmpfs) is not there.
    let secret = tempfile::Builder::new().prefix("heiwa-host-secret").tempfile_in("/tmp").unwrap();
    std::fs::write(secret.path(), "host secret").unwrap();
    let probe = format!(
        "import os\nfor p in ['{}', '/etc/shadow', '/root', '/var/run/docker.sock', '/proc/1/root/etc/shadow']:\n    print(p, os.path.exists(p))",
        secret.path().display()
    );
    let out = run(&sandbox, &probe).await;
    assert_eq!(out.stdout.matches(" False").count(), 5, "{out:?}");

    let escalate = "import os, ctypes\nprint(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\nfor attempt in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.chown('/tmp', 0, 0)):\n    try:\n        attempt()\n        print('escalated')\n    except PermissionError:\n        print('refused')\nprint(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])";
    let out = run(&sandbox, escalate).await;
    assert_eq!(
        out.stdout, "0000000000000000\nrefused\nrefused\nrefused\n1\n",
        "no capabilities, no setuid, no new privileges: {out:?}"
    );

    // After all of that, the sandbox still serves an ordinary run.
    let out = run(&sandbox, "print(sum(range(10)))").await;
    assert_eq!((out.stdout.as_str(), out.exit_code, out.limit), ("45\n", Some(0), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_code_is_refused_before_any_container_starts() {
    let sandbox = connect(Limits::default()).await;
    let err = sandbox.run_python(&"#".repeat(heiwa_sandbox::MAX_CODE_BYTES + 1)).await.unwrap_err();
    assert!(err.to_string().contains("the sandbox accepts at most"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pool_runs_each_call_in_a_fresh_container_within_the_same_limits() {
    use heiwa_sandbox::WarmPool;
    let limits = Limits { timeout: Duration::from_secs(2), ..Limits::default() };
    let pool = WarmPool::new(std::sync::Arc::new(connect(limits).await), 2);

    let out = pool.run_python("6 * 7").await.unwrap();
    assert_eq!((out.stdout.as_str(), out.exit_code, out.limit), ("42\n", Some(0), None), "{out:?}");

    // Nothing carries over: a file written by one call is gone for the next.
    let out = pool.run_python("open('/tmp/left-behind', 'w').write('x')\nimport os\nprint(os.getpid(), os.path.exists('/tmp/left-behind'))").await.unwrap();
    assert!(out.stdout.ends_with("True\n"), "{out:?}");
    let out = pool.run_python("import os\nprint(os.path.exists('/tmp/left-behind'))").await.unwrap();
    assert_eq!(out.stdout, "False\n", "{out:?}");

    // The limits hold for warm containers too; the clock starts when the code is sent.
    tokio::time::sleep(Duration::from_secs(3)).await; // longer than the timeout, while waiting warm
    let out = pool.run_python("print('still fresh')").await.unwrap();
    assert_eq!((out.stdout.as_str(), out.limit), ("still fresh\n", None), "{out:?}");
    let out = pool.run_python("while True: pass").await.unwrap();
    assert_eq!(out.limit, Some(LimitHit::Timeout), "{out:?}");
    let out = pool.run_python("import socket\nprint(sorted(n for _, n in socket.if_nameindex()))").await.unwrap();
    assert_eq!(out.stdout, "['lo']\n", "{out:?}");
    pool.close().await;
}

#[test]
fn no_engine_is_a_clear_error_never_a_run_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/no-engine.sock", dir.path().display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["mcp"])
        .env("DOCKER_HOST", &socket)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("no container engine answered at {socket}")), "{stderr}");
    assert!(stderr.contains("install Docker (docker.io) or Podman and start it"), "says how to get one: {stderr}");
    assert!(out.stdout.is_empty(), "nothing ran");
}

/// A first use on a machine whose engine lacks the image: the app builds it
/// from its recipe (this machine's Python), and it runs code as the sandbox does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_built_from_the_recipe_on_first_use() {
    let name = format!("heiwa-recipe-test:{}", std::process::id());
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let sandbox = Sandbox::connect(&name, Limits::default()).await.expect("the image is built");
    let out = run(&sandbox, "import json, sqlite3, ctypes, os\nprint(json.dumps([6 * 7, os.getuid()]))").await;
    assert_eq!(
        out.stdout, "[42, 65533]\n",
        "the standard library's extension modules load, as the sandbox user: {out:?}"
    );
    let image = docker.inspect_image(&name).await.unwrap();
    let size = image.size.unwrap_or_default();
    assert!(size > 10 << 20 && size < 200 << 20, "a minimal image: {size} bytes");
    docker.remove_image(&name, None::<bollard::query_parameters::RemoveImageOptions>, None).await.unwrap();
}
