//! Helpers the benchmarks share. Each bench uses some of them.
#![allow(dead_code)]

pub mod drain;

/// The `p`-quantile (0..=1) of `samples`, nearest rank.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// `HEIWA_BENCH_QUICK=1` is the smoke mode `scripts/test` runs: every phase and
/// every assert of a bench on a few items, so a broken bench fails CI. Its
/// figures are not measurements (the RESULT line says `quick=1`).
pub fn quick() -> bool {
    std::env::var_os("HEIWA_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// `full` when measuring, `small` in the smoke mode.
pub fn sized<T>(full: T, small: T) -> T {
    if quick() {
        small
    } else {
        full
    }
}

/// Printed before a RESULT line's fields: marks a smoke run's line so nobody records it.
pub fn result_prefix(name: &str) -> String {
    if quick() {
        format!("RESULT {name} quick=1")
    } else {
        format!("RESULT {name}")
    }
}

/// `HEIWA_BENCH_GPU_LAYERS=N`: layers every contender of a bench offloads
/// alike (0, the CPU, unless set; `GGML_VK_VISIBLE_DEVICES` picks the device).
pub fn gpu_layers() -> u32 {
    std::env::var("HEIWA_BENCH_GPU_LAYERS").map_or(0, |n| n.parse().expect("HEIWA_BENCH_GPU_LAYERS: a layer count"))
}
