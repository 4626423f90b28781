//! The limb's local chat model: llama.cpp loaded on first use, its slots
//! (one `Batcher` shared by the turns of the tasks it answers at once), the
//! work it runs alone, reloads when the governor decides again, and the
//! keep-alive. Re-exported by `agent::local`, whose agent it answers for.

use super::{parse, Message, Model};
use crate::given::WorkLog;
use heiwa_hub::{score_summary, truncate_to, MAX_SUMMARY_BYTES};
use heiwa_inference::{
    Batcher, ChatModel, Completion, Constraint, DeviceSet, GenerateOptions, InferenceError, ModelOptions, Offload,
    OffloadChoice, SCORE_TOLERANCE,
};
use parking_lot::{RwLock, RwLockWriteGuard};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A llama.cpp chat model, loaded on first use (an idle limb holds no model
/// in memory), reloaded when the governor changes its threads, offload or
/// slots, and unloaded after `keep_alive` without a generation (its GPU
/// memory with it, as Ollama's `keep_alive` does).
///
/// The agent's turns of concurrent tasks share the model's decode steps: one
/// context with a slot per task the limb takes at once (`Batcher`, the
/// donation policy's `max_concurrent`), as `heiwa serve`'s requests do.
/// Greedy generation and scoring — the work other limbs compare token for
/// token — run alone, each in a context of its own, on the batch's thread
/// between its steps (`Batcher::run_alone`): tokens decoded in a batch can
/// flip a near-tie (docs/benchmarks.md, Batching).
/// A tool call is constrained by a grammar from the first `<tool_call>` on,
/// so the model cannot write a malformed one.
pub struct LocalChat {
    wanted: Mutex<(PathBuf, ModelOptions)>,
    /// Shared by the generations running on it; a load or an unload takes it whole.
    loaded: RwLock<Option<Loaded>>,
    /// Answers "is it loaded?" without waiting behind a load.
    is_loaded: AtomicBool,
    /// The last load's offload choice, for the owner to see.
    offload: Mutex<Option<OffloadChoice>>,
    activity: Mutex<Activity>,
    /// `None`: never unload.
    keep_alive: Mutex<Option<Duration>>,
    /// How the last generation went, for the owner to see.
    last_answer: Mutex<Option<AnswerPace>>,
    tool_call: Constraint,
    /// Where its runs for tasks are counted (what this machine gave).
    work_log: Option<Arc<WorkLog>>,
}

/// A model file in memory and the batch its agent turns share.
struct Loaded {
    path: PathBuf,
    batch: Batcher,
}

/// Generations running now, and since when none has (`None` while one runs, and before the first).
#[derive(Default)]
struct Activity {
    running: usize,
    idle_since: Option<Instant>,
}

/// Counts one generation in `Activity` while it lives.
struct Running<'a>(&'a Mutex<Activity>);

impl<'a> Running<'a> {
    fn start(activity: &'a Mutex<Activity>) -> Self {
        let mut now = lock(activity);
        now.running += 1;
        now.idle_since = None;
        Running(activity)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut now = lock(self.0);
        now.running -= 1;
        if now.running == 0 {
            now.idle_since = Some(Instant::now());
        }
    }
}

/// How one generation went, as chat apps show it: its tokens, the wait for
/// the first (the prompt's processing) and the pace after it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct AnswerPace {
    pub tokens: u32,
    pub first_token_s: f64,
    /// `None` for an answer of one token.
    pub tokens_per_s: Option<f64>,
}

/// The model's slots: how many of the limb's tasks it answers at once, and the most it did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct Slots {
    /// Tasks the loaded model answers at once (its batch's slots; 0 when not loaded).
    pub slots: u32,
    /// Agent turns in the batch now.
    pub in_use: u32,
    /// The most agent turns that shared its steps at once since it was loaded.
    pub most_in_use: u32,
    /// Prompt tokens a slot already held, not computed again (a shared system prompt).
    pub reused_tokens: u64,
    /// Tokens its slots generated since it was loaded.
    pub generated_tokens: u64,
}

thread_local! {
    /// The model file the task running on this thread is pinned to (see [`LocalChat::pinned`]).
    static PINNED: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Ollama's default: a model idle this long gives its memory back.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5 * 60);

impl LocalChat {
    pub fn new(path: PathBuf, options: ModelOptions) -> Result<Self, InferenceError> {
        if !path.is_file() {
            return Err(InferenceError::ModelMissing(path));
        }
        Ok(LocalChat {
            wanted: Mutex::new((path, options)),
            loaded: RwLock::new(None),
            is_loaded: AtomicBool::new(false),
            offload: Mutex::new(None),
            activity: Mutex::new(Activity::default()),
            keep_alive: Mutex::new(Some(DEFAULT_KEEP_ALIVE)),
            last_answer: Mutex::new(None),
            tool_call: tool_call_constraint()?,
            work_log: None,
        })
    }

    /// Count every generation and scoring into `log`.
    pub fn counting_into(self, log: Arc<WorkLog>) -> Self {
        LocalChat { work_log: Some(log), ..self }
    }

    fn count(&self, model: &ChatModel, tokens: usize, took: Duration) {
        if let Some(log) = &self.work_log {
            log.add(crate::given::Work::model_run(tokens as u64, took, model.offload().layers > 0));
        }
    }

    /// Threads and offload for the next generation (a reload if they differ).
    pub fn set_resources(&self, threads: i32, offload: Offload) {
        let mut wanted = lock(&self.wanted);
        wanted.1 = ModelOptions { threads, offload, ..wanted.1 };
    }

    /// How many tasks' turns share the model's steps, from the next load on
    /// (a reload if it differs): the limb's tasks at once.
    pub fn set_slots(&self, slots: usize) {
        let sequences = slots.clamp(1, heiwa_inference::MAX_SLOTS) as u32;
        let mut wanted = lock(&self.wanted);
        wanted.1 = ModelOptions { sequences, ..wanted.1 };
    }

    /// The GPUs its layers may go to, from the next generation on (a reload if they differ).
    pub fn set_devices(&self, devices: DeviceSet) {
        let mut wanted = lock(&self.wanted);
        wanted.1 = ModelOptions { devices, ..wanted.1 };
    }

    /// Use the threads, offload, GPUs, slots and keep-alive the governor decided, from the next generation on.
    pub fn follow(&self, decision: &crate::governor::Decision) {
        self.set_resources(decision.threads, decision.offload);
        self.set_devices(given_devices(&decision.gpus));
        self.set_slots(decision.max_in_flight);
        let minutes = u64::from(decision.keep_alive_minutes);
        self.set_keep_alive((minutes > 0).then(|| Duration::from_secs(minutes * 60)));
    }

    /// How long the model may stay loaded without work (`None`: forever).
    pub fn set_keep_alive(&self, keep_alive: Option<Duration>) {
        *lock(&self.keep_alive) = keep_alive;
    }

    /// Answer with another model file from the next generation on.
    pub fn set_model(&self, path: PathBuf) -> Result<(), InferenceError> {
        if !path.is_file() {
            return Err(InferenceError::ModelMissing(path));
        }
        lock(&self.wanted).0 = path;
        Ok(())
    }

    /// The file this thread's generations use: its task's pinned model, or the chosen one.
    pub fn model_path(&self) -> PathBuf {
        PINNED.with(|pinned| pinned.borrow().clone()).unwrap_or_else(|| lock(&self.wanted).0.clone())
    }

    /// Run `work` (a task's whole answer) with `model`'s file instead of the
    /// chosen one for every generation it makes on this thread (`None`: the
    /// chosen one). Scoped to the thread because a task's answer runs on one
    /// blocking thread (the claim loop's), and tasks pinned to different
    /// models may run at once: each gets its own, loaded in turn.
    pub fn pinned<T>(model: Option<&Path>, work: impl FnOnce() -> T) -> T {
        struct Restore(Option<PathBuf>);
        impl Drop for Restore {
            fn drop(&mut self) {
                PINNED.with(|pinned| *pinned.borrow_mut() = self.0.take());
            }
        }
        let _restore = Restore(PINNED.with(|pinned| pinned.replace(model.map(Path::to_path_buf))));
        work()
    }

    pub fn is_loaded(&self) -> bool {
        self.is_loaded.load(Ordering::Relaxed)
    }

    /// Where the last load put the layers and why (`None` before the first load).
    pub fn offload(&self) -> Option<OffloadChoice> {
        lock(&self.offload).clone()
    }

    /// A generation is running now.
    pub fn is_generating(&self) -> bool {
        self.is_loaded() && lock(&self.activity).running > 0
    }

    /// The loaded model's slots and their use (all zero when none is loaded).
    /// Never waits behind a load.
    pub fn slots(&self) -> Slots {
        let Some(loaded) = self.loaded.try_read() else { return Slots::default() };
        loaded.as_ref().map_or_else(Slots::default, |loaded| {
            let stats = loaded.batch.stats();
            Slots {
                slots: stats.slots as u32,
                in_use: stats.running as u32,
                most_in_use: stats.most_running as u32,
                reused_tokens: stats.reused_tokens,
                generated_tokens: stats.generated_tokens,
            }
        })
    }

    /// How the last generation went (`None` before the first).
    pub fn last_answer(&self) -> Option<AnswerPace> {
        *lock(&self.last_answer)
    }

    /// Count `generation` and remember how it went; its text.
    fn remember(&self, model: &ChatModel, generation: Timed) -> String {
        let Timed { completion, started, first_text, ended } = generation;
        self.count(model, completion.generated_tokens, ended.duration_since(started));
        let first = first_text.unwrap_or(ended);
        let decoding = ended.duration_since(first).as_secs_f64();
        *lock(&self.last_answer) = Some(AnswerPace {
            tokens: completion.generated_tokens as u32,
            first_token_s: first.duration_since(started).as_secs_f64(),
            // The tokens after the first, over the time after it: the prompt's processing is the first token's wait.
            tokens_per_s: (completion.generated_tokens > 1 && decoding > 0.0)
                .then(|| (completion.generated_tokens - 1) as f64 / decoding),
        });
        completion.text
    }

    /// Unload the model if it has been idle for its keep-alive; true if it was.
    /// Never waits behind a generation.
    pub fn unload_if_idle(&self) -> bool {
        let keep_alive = *lock(&self.keep_alive);
        let idle_since = lock(&self.activity).idle_since;
        let (Some(keep_alive), Some(idle_since)) = (keep_alive, idle_since) else {
            return false;
        };
        if idle_since.elapsed() < keep_alive {
            return false;
        }
        let Some(mut loaded) = self.loaded.try_write() else { return false };
        if loaded.is_none() || lock(&self.activity).idle_since.is_none() {
            return false; // unloaded already, or a generation started meanwhile
        }
        *loaded = None;
        self.is_loaded.store(false, Ordering::Relaxed);
        tracing::info!(idle_secs = idle_since.elapsed().as_secs(), "model unloaded after its keep-alive");
        true
    }

    /// Run `work` on the loaded model and its batch (loading it, or reloading
    /// it with new options, first); the keep-alive counts from when the last
    /// generation running returns.
    fn with_model<T>(&self, work: impl FnOnce(&Batcher) -> Result<T, InferenceError>) -> Result<T, InferenceError> {
        let _running = Running::start(&self.activity);
        let options = lock(&self.wanted).1;
        // The load (and the GPU fit) counts one context more than the slots:
        // work run alone has a context of its own beside the batch's.
        let slots = options.sequences as usize;
        let options = ModelOptions { sequences: options.sequences + 1, ..options };
        let path = self.model_path();
        let fits = |loaded: &Option<Loaded>| {
            loaded.as_ref().is_some_and(|loaded| loaded.path == path && loaded.batch.model().options() == options)
        };
        let shared = self.loaded.read();
        if fits(&shared) {
            return work(&shared.as_ref().expect("it fits").batch);
        }
        drop(shared);
        // A reload waits for the generations on the old model to end; it is
        // handed on as shared, so that no other reload comes in between.
        let mut whole = self.loaded.write();
        if !fits(&whole) {
            *whole = None; // free the old weights before loading new ones
            self.is_loaded.store(false, Ordering::Relaxed);
            let model = ChatModel::load(&path, options)?;
            if model.offload().layers == 0 && options.offload != Offload::CPU {
                // A GPU was wanted and none took the model: say why where the owner looks.
                tracing::warn!(why = %model.offload().why, "chat model loaded on the CPU");
            } else {
                tracing::info!(offload = %model.offload().why, slots, "chat model loaded");
            }
            *lock(&self.offload) = Some(model.offload().clone());
            *whole = Some(Loaded { path: path.clone(), batch: Batcher::start_with(Arc::new(model), slots)? });
            self.is_loaded.store(true, Ordering::Relaxed);
        }
        let shared = RwLockWriteGuard::downgrade(whole);
        work(&shared.as_ref().expect("loaded just above").batch)
    }

    /// An agent's turn, in the shared batch.
    fn generate(&self, messages: &[Message], max_tokens: usize) -> Result<String, InferenceError> {
        self.with_model(|batch| {
            let pairs: Vec<(&str, &str)> = messages.iter().map(|m| (m.role, m.content.as_str())).collect();
            let prompt = batch.model().format_chat(&pairs)?;
            let options = GenerateOptions { constraint: self.tool_call.clone(), ..GenerateOptions::greedy(max_tokens) };
            let generation = timed(|on_text| batch.generate(&prompt, &options, on_text))?;
            Ok(self.remember(batch.model(), generation))
        })
    }

    /// A greedy generation task: the model's own answer to `prompt` (the
    /// user's turn in its chat template), unconstrained, at most
    /// [`GENERATE_MAX_TOKENS`], cut to what the hub keeps. Deterministic for
    /// one model file and backend: another limb can score it or compare its
    /// own copy, so it runs alone, never in the batch.
    pub fn generate_greedy(&self, prompt: &str) -> Result<String, InferenceError> {
        self.with_model(|batch| {
            let prompt = batch.model().format_chat(&[("user", prompt)])?;
            let options = GenerateOptions::greedy(GENERATE_MAX_TOKENS);
            // On the batch's thread, between its steps: one OpenMP team, not a second beside the batch's.
            let generation =
                batch.run_alone(move |model| timed(|on_text| model.generate(&prompt, &options, on_text)))??;
            let text = self.remember(batch.model(), generation);
            Ok(truncate_to(&text, MAX_SUMMARY_BYTES).to_string())
        })
    }

    /// A scoring task: is `answer` this model's greedy answer to `prompt`?
    /// One prefill of both (`ChatModel::score`, alone as greedy generation
    /// is); the summary carries the vote the hub reads (`hub_rules::score_summary`).
    pub fn score_answer(&self, prompt: &str, answer: &str) -> Result<String, InferenceError> {
        self.with_model(|batch| {
            let started = Instant::now();
            let prompt = batch.model().format_chat(&[("user", prompt)])?;
            let answer = answer.to_string();
            let scored = batch.run_alone(move |model| model.score(&prompt, &answer))??;
            self.count(batch.model(), scored.tokens(), started.elapsed());
            let miss = scored.first_miss(SCORE_TOLERANCE).map(|at| (at, scored.gaps[at]));
            Ok(score_summary(scored.tokens(), miss, SCORE_TOLERANCE))
        })
    }
}

/// A generation and its clock: when it started, when its first text came, when it ended.
struct Timed {
    completion: Completion,
    started: Instant,
    first_text: Option<Instant>,
    ended: Instant,
}

/// Run `generate`, noting when its first piece of text came.
fn timed(
    generate: impl FnOnce(&mut dyn FnMut(&str) -> bool) -> Result<Completion, InferenceError>,
) -> Result<Timed, InferenceError> {
    let started = Instant::now();
    let mut first_text = None;
    let completion = generate(&mut |_| {
        first_text.get_or_insert_with(Instant::now);
        true
    })?;
    Ok(Timed { completion, started, first_text, ended: Instant::now() })
}

/// How a limb loads its chat model until its donation policy says otherwise
/// (`LocalChat::set_resources`): every core, as many layers on the GPU as fit.
/// Public so that benchmarks measure what a limb runs.
pub fn chat_options() -> ModelOptions {
    ModelOptions {
        threads: heiwa_inference::all_cores(),
        offload: Offload::Fit { cap_mib: None },
        context_len: 4096,
        sequences: 1,
        devices: DeviceSet::ALL,
    }
}

/// The most tokens a greedy generation task produces.
pub const GENERATE_MAX_TOKENS: usize = 256;

/// A `run_python` call as the agent reads it, as a JSON Schema: the grammar
/// the local model's calls must follow once it opens one.
fn tool_call_constraint() -> Result<Constraint, InferenceError> {
    let call = serde_json::json!({
        "type": "object",
        "properties": {
            "name": { "const": "run_python" },
            "arguments": {
                "type": "object",
                "properties": { "code": { "type": "string", "minLength": 1 } },
                "required": ["code"],
                "additionalProperties": false
            }
        },
        "required": ["name", "arguments"],
        "additionalProperties": false
    });
    let grammar = heiwa_inference::tagged_json_grammar(parse::OPEN, &call, parse::CLOSE)?;
    Ok(Constraint::After { trigger: parse::OPEN.into(), grammar })
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Model for LocalChat {
    type Error = InferenceError;

    /// Blocks the calling thread until the turn ends: the limb calls it from a blocking thread.
    async fn chat(&self, messages: &[Message], max_tokens: usize) -> Result<String, InferenceError> {
        self.generate(messages, max_tokens)
    }
}

/// The GPUs named in the donor's policy, as this process's llama.cpp numbers
/// them (every GPU when none is named; none, and a warning, when the named
/// ones are not here: the load then says so and runs on the CPU).
fn given_devices(named: &[String]) -> DeviceSet {
    if named.is_empty() {
        return DeviceSet::ALL;
    }
    let found = heiwa_inference::gpu::gpus().unwrap_or_default();
    let choice = heiwa_inference::gpu::choose(&found, named);
    if !choice.missing.is_empty() {
        tracing::warn!(missing = ?choice.missing, "GPUs given in the donation policy are not in this machine");
    }
    choice.devices
}
