//! Sandbox benchmark: `run_python("print(1)")` through the limb's sandbox,
//! cold (create, start, collect, remove) against a bare `docker run --rm` of
//! the same image and command in the same run, and through the warm pool.
//!
//! `cargo bench --profile dev --workspace --bench sandbox` (after `source scripts/lib/env.sh`
//! and with the engine running, as scripts/test starts it). Both cold paths are
//! timed to completion, container removal included. Warm calls are spaced so
//! the pool has refilled (a call arriving faster than that waits for a start).
//! The last line is machine-readable: `RESULT sandbox …`.

mod common;

use common::percentile;
use heiwa_config::Parts;
use heiwa_sandbox::{Limits, Sandbox, WarmPool};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn samples() -> usize {
    common::sized(30, 3)
}
const CODE: &str = "print(1)";

fn millis(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

fn docker_run(image: &str) -> f64 {
    let started = Instant::now();
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", image, "python3", "-I", "-c", CODE])
        .output()
        .expect("the docker CLI runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{}", String::from_utf8_lossy(&out.stderr));
    millis(started)
}

#[tokio::main]
async fn main() {
    let parts = Parts::find(None).unwrap_or_else(|missing| panic!("{missing}"));
    let sandbox = Arc::new(Sandbox::connect(&parts.sandbox_image, Limits::default()).await.expect("engine and image"));
    for _ in 0..3 {
        sandbox.run_python(CODE).await.unwrap();
        docker_run(&parts.sandbox_image);
    }

    // Interleaved, so that load on the machine hits both alike.
    let (mut cold, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..samples() {
        let started = Instant::now();
        let out = sandbox.run_python(CODE).await.unwrap();
        cold.push(millis(started));
        assert_eq!(out.stdout, "1\n");
        let image = parts.sandbox_image.clone();
        bare.push(tokio::task::spawn_blocking(move || docker_run(&image)).await.unwrap());
    }

    let pool = WarmPool::new(sandbox.clone(), 1);
    let mut warm = Vec::new();
    for _ in 0..samples() {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let started = Instant::now();
        let out = pool.run_python(CODE).await.unwrap();
        warm.push(millis(started));
        assert_eq!(out.stdout, "1\n");
    }
    pool.close().await;

    let (cold_p50, bare_p50, warm_p50) =
        (percentile(&mut cold, 0.5), percentile(&mut bare, 0.5), percentile(&mut warm, 0.5));
    println!("cold  p50 {cold_p50:.1} ms  p90 {:.1} ms", percentile(&mut cold, 0.9));
    println!("bare  p50 {bare_p50:.1} ms  p90 {:.1} ms  (docker run --rm --network none)", percentile(&mut bare, 0.9));
    println!("warm  p50 {warm_p50:.1} ms  p90 {:.1} ms", percentile(&mut warm, 0.9));
    let result = common::result_prefix("sandbox");
    println!(
        "{result} cold_ratio={:.2} cold_p50_ms={cold_p50:.0} warm_p50_ms={warm_p50:.0} docker_run_p50_ms={bare_p50:.0}",
        cold_p50 / bare_p50
    );
}
