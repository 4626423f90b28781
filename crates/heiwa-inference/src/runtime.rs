//! What every llama.cpp load shares, a leaf both the engine and the GPU fit
//! use: the process's one backend, the options a model is loaded with (where
//! its layers go among them), a context's parameters, and the error type.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What does not fit, said apart: the prompt, the tokens asked for beyond
/// it (an answer to write or to score), and the context.
fn overflow(prompt: usize, requested: usize, context: u32) -> String {
    match requested {
        0 => format!("the prompt is {prompt} tokens but the context holds {context}"),
        _ => format!(
            "the prompt is {prompt} tokens and {requested} more were asked for, {} in all, but the context holds {context}",
            prompt.saturating_add(requested)
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("model file not found: {0}")]
    ModelMissing(PathBuf),
    #[error("llama.cpp backend could not start: {0}")]
    Backend(String),
    #[error("could not load {path} as a GGUF model: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("could not create a llama.cpp context: {0}")]
    Context(String),
    #[error("{}", overflow(*prompt, *requested, *context))]
    ContextOverflow { prompt: usize, requested: usize, context: u32 },
    #[error("the model has no usable chat template: {0}")]
    Template(String),
    #[error("llama.cpp decode failed: {0}")]
    Decode(String),
    #[error("the output constraint is not usable: {0}")]
    Constraint(String),
}

/// How much of the machine a model may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelOptions {
    pub threads: i32,
    /// Where its layers go (the default keeps everything on the CPU).
    pub offload: Offload,
    pub context_len: u32,
    /// Sequences decoded together, each with `context_len` (a `Batcher`'s
    /// slots): the KV cache a load must fit is `context_len × sequences`.
    pub sequences: u32,
    /// The GPUs its layers may go to (the donor's choice, `gpu::choose`).
    pub devices: DeviceSet,
}

/// Which of llama.cpp's devices a model may use, by their index in this
/// process. The donor names GPUs by PCI id or description, which survive a
/// reboot and a changed device order; each process turns the names into
/// indices (`gpu::choose`). Copy, so that options stay cheap to compare: a
/// changed set reloads the model, as changed threads do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSet(u64);

impl DeviceSet {
    /// Every device llama.cpp found (no choice made).
    pub const ALL: DeviceSet = DeviceSet(u64::MAX);

    /// Exactly these devices (indices past 63 cannot be named; llama.cpp holds at most 16).
    pub fn of(indices: impl IntoIterator<Item = usize>) -> DeviceSet {
        DeviceSet(indices.into_iter().filter(|index| *index < 64).fold(0, |set, index| set | 1 << index))
    }

    pub fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    pub fn is_all(self) -> bool {
        self == DeviceSet::ALL
    }
}

/// Threads for generation: every core (llama.cpp scales with them on the CPU).
pub fn all_cores() -> i32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as i32)
}

/// Run `work` on a thread made for it, which ends when it returns. llama.cpp's
/// CPU backend computes with OpenMP, and an OpenMP team stays with the thread
/// that started it until that thread exits; with more teams' threads alive
/// than cores, libgomp stops spinning at its barriers and every model in the
/// process decodes slower: `heiwa serve`'s batch 17.4 tok/s beside an idle
/// thread that had computed (a tokio blocking thread lives 10 s after its
/// task), 23.4 after an embedding on a thread of its own (the inference
/// bench, `lone_team_gain`). So a computation that is not on a `Batcher`'s
/// one long-lived thread (its steps, `Batcher::run_alone`) runs on a thread
/// of its own.
pub fn on_a_thread_of_its_own<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(work).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { threads: 1, offload: Offload::CPU, context_len: 2048, sequences: 1, devices: DeviceSet::ALL }
    }
}

/// Where a model's layers go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Offload {
    /// As many layers as fit the GPUs' free memory, and at most `cap_mib` of it
    /// on each when given.
    Fit { cap_mib: Option<u32> },
    /// Exactly this many layers (0: everything on the CPU).
    Layers { layers: u32 },
}

impl Offload {
    pub const CPU: Offload = Offload::Layers { layers: 0 };
}

/// llama.cpp's backend may be initialised once per process; this is that one
/// (public so a benchmark's raw baseline shares it).
pub fn backend() -> Result<&'static LlamaBackend, InferenceError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // Before any llama.cpp code runs: on a CPU without them it would die of an illegal instruction.
            let missing = missing_cpu_features(cpu_has);
            if !missing.is_empty() {
                return Err(cpu_too_old(&missing));
            }
            // llama.cpp's and ggml's logs (device discovery included) go to
            // `tracing` from the start: errors reach the log, chatter only
            // when asked for (HEIWA_LOG=llama_cpp_2=info).
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| InferenceError::Backend(e.clone()))
}

/// The x86-64 instruction sets this build of llama.cpp's CPU backend is
/// compiled for (llama-cpp-sys-2's default, the AVX2 level: its build log
/// says `-msse4.2 -mf16c -mfma -mbmi2 -mavx -mavx2`).
const BUILT_FOR: [&str; 6] = ["sse4.2", "f16c", "fma", "bmi2", "avx", "avx2"];

/// Instruction sets beyond [`BUILT_FOR`] that ggml's CPU kernels use when
/// built for them (its `skylakex` to `sapphirerapids` levels): a CPU that has
/// them leaves them idle with this build.
const BEYOND_BUILT_FOR: [&str; 6] = ["avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx512bf16", "avxvnni"];

/// Which CPU kernels llama.cpp runs here and why, as `heiwa doctor` and
/// `heiwa gpu list` say it: the one level this build is compiled for, and
/// what this CPU has beyond it that the build leaves unused (a build per
/// level, chosen at run time, is not made yet).
pub fn cpu_kernels() -> String {
    let unused: Vec<&str> = BEYOND_BUILT_FOR.into_iter().filter(|feature| cpu_has(feature)).collect();
    describe_cpu_kernels(&missing_cpu_features(cpu_has), &unused)
}

fn describe_cpu_kernels(missing: &[&str], unused: &[&str]) -> String {
    if !missing.is_empty() {
        return cpu_too_old(missing);
    }
    let named = |features: &[&str]| features.join(", ").to_uppercase();
    // BUILT_FOR ends with its level (AVX2); the rest come with it.
    let (level, with) = BUILT_FOR.split_last().expect("a level");
    let built = format!("built for one level, {} (with {}), which this CPU has", named(&[level]), named(with));
    match unused {
        [] => built,
        _ => format!("{built}; it also has {}, which this build leaves unused", named(unused)),
    }
}

/// Which of [`BUILT_FOR`] the CPU lacks, asking `has` of each.
fn missing_cpu_features(has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    BUILT_FOR.into_iter().filter(|feature| !has(feature)).collect()
}

fn cpu_too_old(missing: &[&str]) -> String {
    format!(
        "this CPU lacks {} ({}), which this build of llama.cpp needs: models cannot run on this machine \
         (a hub, the dashboard and the bot need none)",
        if missing.len() == 1 { "an instruction set" } else { "instruction sets" },
        missing.join(", ").to_uppercase()
    )
}

/// Whether this CPU has `feature` (one of [`BUILT_FOR`] or [`BEYOND_BUILT_FOR`]), as the CPU itself says.
fn cpu_has(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
            "f16c" => std::arch::is_x86_feature_detected!("f16c"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
            "avx" => std::arch::is_x86_feature_detected!("avx"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512vnni" => std::arch::is_x86_feature_detected!("avx512vnni"),
            "avx512bf16" => std::arch::is_x86_feature_detected!("avx512bf16"),
            "avxvnni" => std::arch::is_x86_feature_detected!("avxvnni"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        true // built for another architecture's baseline
    }
}

pub(crate) fn context_params(options: &ModelOptions) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(options.context_len))
        .with_n_batch(options.context_len)
        .with_n_threads(options.threads)
        .with_n_threads_batch(options.threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_kernels_say_their_level_and_what_the_cpu_has_beyond_it() {
        let plain = describe_cpu_kernels(&[], &[]);
        assert!(plain.starts_with("built for one level, AVX2") && !plain.contains("unused"), "{plain}");
        let xeon = describe_cpu_kernels(&[], &["avx512f", "avx512vnni"]);
        assert!(xeon.ends_with("it also has AVX512F, AVX512VNNI, which this build leaves unused"), "{xeon}");
        assert!(describe_cpu_kernels(&["avx2"], &[]).starts_with("this CPU lacks an instruction set (AVX2)"));
        assert!(cpu_kernels().starts_with("built for one level"), "the machine the tests run on: {}", cpu_kernels());
    }

    #[test]
    fn a_cpu_without_avx2_is_refused_with_what_it_lacks_before_llama_cpp_runs() {
        assert_eq!(missing_cpu_features(|_| true), Vec::<&str>::new());
        // A Sandy Bridge: AVX, no AVX2, FMA, F16C or BMI2.
        let sandy_bridge = |feature: &str| matches!(feature, "sse4.2" | "avx");
        let missing = missing_cpu_features(sandy_bridge);
        assert_eq!(missing, vec!["f16c", "fma", "bmi2", "avx2"]);
        let said = cpu_too_old(&missing);
        assert!(
            said.starts_with("this CPU lacks instruction sets (F16C, FMA, BMI2, AVX2), which this build"),
            "{said}"
        );
        assert!(cpu_too_old(&["avx2"]).starts_with("this CPU lacks an instruction set (AVX2)"));
        assert!(missing_cpu_features(cpu_has).is_empty(), "the machine the tests run on can run models");
    }

    #[test]
    fn the_features_asked_for_are_the_ones_llama_cpp_was_built_with() {
        // SAFETY: these report constants of the build (its compile flags); no model is involved.
        let built = unsafe {
            use llama_cpp_sys_2 as ggml;
            [
                ("f16c", ggml::ggml_cpu_has_f16c()),
                ("fma", ggml::ggml_cpu_has_fma()),
                ("bmi2", ggml::ggml_cpu_has_bmi2()),
                ("avx", ggml::ggml_cpu_has_avx()),
                ("avx2", ggml::ggml_cpu_has_avx2()),
                ("avx512", ggml::ggml_cpu_has_avx512()),
                ("avx_vnni", ggml::ggml_cpu_has_avx_vnni()),
            ]
        };
        for (feature, has) in built {
            assert_eq!(has != 0, BUILT_FOR.contains(&feature), "{feature}: the build and BUILT_FOR disagree");
        }
    }
}
