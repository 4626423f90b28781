//! One loaded model serving several sequences at once: continuous batching
//! with prefix reuse, as llama-server's slots do.
//!
//! A worker thread owns one llama.cpp context with a KV-cache sequence per
//! slot. Each step decodes one batch holding the next token of every running
//! sequence and chunks of newly admitted prompts; sequences join and leave
//! between steps, each with its own sampler chain (grammar included), stop
//! sequences and cancellation. Decoding one sequence is bound by memory
//! bandwidth; decoding several in one step costs little more, so N streams
//! share the weights' reads instead of competing for them.
//!
//! A slot keeps the tokens its cache holds after its sequence ends: a new
//! prompt goes to the free slot sharing its longest prefix (an agent's system
//! prompt and tool schema, a chat's earlier turns) and is computed from there on.

use crate::engine::{ChatModel, Completion, Detokenizer, FinishReason, GenerateOptions};
use crate::runtime::{backend, context_params, InferenceError, ModelOptions};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// Tokens decoded in one step at most: running sequences' next tokens first,
/// then prompt chunks (llama.cpp's default batch).
const STEP_TOKENS: usize = 512;

/// Slots at most: more than one machine batches usefully, and a bound on the context it allocates.
pub const MAX_SLOTS: usize = 64;

/// A model and the worker that runs its sequences in shared batches.
pub struct Batcher {
    model: Arc<ChatModel>,
    jobs: Option<mpsc::Sender<Work>>,
    worker: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
    slots: usize,
}

/// What the batcher has done so far (for benchmarks and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub slots: usize,
    /// Sequences in a slot now.
    pub running: usize,
    /// The most sequences that were in slots at once.
    pub most_running: usize,
    /// Prompt tokens of every sequence admitted.
    pub prompt_tokens: u64,
    /// Of those, tokens whose KV a slot already held (not computed again).
    pub reused_tokens: u64,
    pub generated_tokens: u64,
    /// Decode steps, each one batch.
    pub steps: u64,
}

#[derive(Default)]
struct Counters {
    running: AtomicUsize,
    most_running: AtomicUsize,
    prompt_tokens: AtomicU64,
    reused_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    steps: AtomicU64,
}

/// What the batch's thread is handed: a sequence for a slot, or a
/// computation run alone between two steps ([`Batcher::run_alone`]).
enum Work {
    Sequence(Job),
    Alone(Box<dyn FnOnce(&ChatModel) + Send>),
}

struct Job {
    tokens: Vec<LlamaToken>,
    options: GenerateOptions,
    events: mpsc::Sender<Event>,
    cancelled: Arc<AtomicBool>,
}

enum Event {
    Text(String),
    Done(Result<Completion, InferenceError>),
}

impl Batcher {
    /// Start serving `model` through as many sequences as it was loaded for
    /// (`ModelOptions::sequences`, 1 to [`MAX_SLOTS`]), each with its whole context length.
    pub fn start(model: Arc<ChatModel>) -> Result<Self, InferenceError> {
        let slots = model.options().sequences as usize;
        Self::start_with(model, slots)
    }

    /// As [`Batcher::start`], with `slots` sequences (1 to [`MAX_SLOTS`]; a model
    /// loaded for more leaves room beside the batch for work run alone).
    pub fn start_with(model: Arc<ChatModel>, slots: usize) -> Result<Self, InferenceError> {
        let slots = slots.clamp(1, MAX_SLOTS);
        let (jobs, queue) = mpsc::channel();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let counters = Arc::new(Counters::default());
        let worker = {
            let (model, counters) = (model.clone(), counters.clone());
            std::thread::Builder::new()
                .name("heiwa-batch".into())
                .spawn(move || work(&model, slots, &queue, &counters, ready_tx))
                .map_err(|e| InferenceError::Context(format!("starting the batch worker: {e}")))?
        };
        ready.recv().unwrap_or_else(|_| Err(InferenceError::Context("the batch worker ended at its start".into())))?;
        Ok(Batcher { model, jobs: Some(jobs), worker: Some(worker), counters, slots })
    }

    pub fn model(&self) -> &ChatModel {
        &self.model
    }

    pub fn stats(&self) -> BatchStats {
        let c = &self.counters;
        BatchStats {
            slots: self.slots,
            running: c.running.load(Ordering::SeqCst),
            most_running: c.most_running.load(Ordering::SeqCst),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            reused_tokens: c.reused_tokens.load(Ordering::Relaxed),
            generated_tokens: c.generated_tokens.load(Ordering::Relaxed),
            steps: c.steps.load(Ordering::Relaxed),
        }
    }

    /// As [`ChatModel::generate`], run in the shared batch: blocks until the
    /// sequence ends, handing each piece of text to `on_text` on this thread;
    /// `on_text` returning false ends the sequence at the next step. Waits
    /// for a free slot when all are taken.
    pub fn generate(
        &self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, InferenceError> {
        let tokens = self.model.checked_tokens(prompt, options.max_tokens)?;
        if options.max_tokens == 0 {
            let prompt_tokens = tokens.len();
            return Ok(Completion {
                text: String::new(),
                prompt_tokens,
                generated_tokens: 0,
                finish: FinishReason::Length,
            });
        }
        let (events, received) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = Job { tokens, options: options.clone(), events, cancelled: cancelled.clone() };
        let gone = || InferenceError::Decode("the batch worker has stopped".into());
        self.jobs.as_ref().ok_or_else(gone)?.send(Work::Sequence(job)).map_err(|_| gone())?;
        // The text is what this caller took: after a refusal, pieces already under way are dropped.
        let mut text = String::new();
        for event in received {
            match event {
                Event::Text(piece) if !cancelled.load(Ordering::Relaxed) => {
                    text.push_str(&piece);
                    if !on_text(&piece) {
                        cancelled.store(true, Ordering::Relaxed);
                    }
                }
                Event::Text(_) => {}
                Event::Done(done) => return done.map(|completion| Completion { text, ..completion }),
            }
        }
        Err(gone())
    }

    /// Run `work` on the batch's thread between two of its steps, the running
    /// sequences waiting for it. For a computation that must not share a
    /// batch — greedy generation and scoring, which other limbs compare, each
    /// in a context of its own — but should share the thread: its OpenMP team
    /// is the batch's, not a second one beside it (`on_a_thread_of_its_own`
    /// says what two cost). A panic in `work` is its caller's error; the
    /// batch goes on.
    pub fn run_alone<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ChatModel) -> T + Send + 'static,
    ) -> Result<T, InferenceError> {
        let (done, result) = mpsc::channel();
        let alone = Work::Alone(Box::new(move |model: &ChatModel| {
            if let Ok(value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(model))) {
                let _ = done.send(value);
            }
        }));
        let gone = || InferenceError::Decode("the batch worker has stopped, or the work alone failed".into());
        self.jobs.as_ref().ok_or_else(gone)?.send(alone).map_err(|_| gone())?;
        result.recv().map_err(|_| gone())
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Closing the queue ends the worker once its running sequences are done.
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A sequence in a slot.
struct Running {
    job: Job,
    sampler: LlamaSampler,
    text: Detokenizer,
    /// Prompt tokens in the cache so far (prefill goes chunk by chunk).
    prefilled: usize,
    /// The token sampled last, to decode in the next step.
    next: Option<LlamaToken>,
    generated: usize,
}

struct Slot {
    seq: i32,
    /// The tokens whose KV this slot's sequence holds, in order.
    cached: Vec<LlamaToken>,
    running: Option<Running>,
}

fn work(
    model: &ChatModel,
    slots: usize,
    queue: &mpsc::Receiver<Work>,
    counters: &Counters,
    ready: mpsc::SyncSender<Result<(), InferenceError>>,
) {
    let options = model.options();
    let context_len = options.context_len as usize;
    let params = context_params(&ModelOptions { context_len: options.context_len * slots as u32, ..options })
        .with_n_batch(STEP_TOKENS as u32)
        .with_n_ubatch(STEP_TOKENS as u32)
        .with_n_seq_max(slots as u32)
        // Each sequence its own part of the cache: a long one cannot crowd the others out.
        .with_kv_unified(false);
    let made = backend().and_then(|backend| {
        model.llama().new_context(backend, params).map_err(|e| InferenceError::Context(e.to_string()))
    });
    let mut ctx = match made {
        Ok(ctx) => {
            let _ = ready.send(Ok(()));
            ctx
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut slots: Vec<Slot> = (0..slots)
        .map(|seq| Slot { seq: seq as i32, cached: Vec::with_capacity(context_len), running: None })
        .collect();
    let mut batch = LlamaBatch::new(STEP_TOKENS, 1);
    // Sequences that came while every slot was taken, in order.
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        while slots.iter().any(|slot| slot.running.is_none()) {
            let Some(job) = waiting.pop_front() else { break };
            admit(model, &mut ctx, &mut slots, job, counters);
        }
        let mut take = |work: Work, ctx: &mut LlamaContext<'_>, slots: &mut [Slot]| match work {
            Work::Sequence(job) if slots.iter().any(|slot| slot.running.is_none()) => {
                admit(model, ctx, slots, job, counters)
            }
            Work::Sequence(job) => waiting.push_back(job),
            Work::Alone(run) => run(model),
        };
        if slots.iter().all(|slot| slot.running.is_none()) {
            match queue.recv() {
                Ok(work) => take(work, &mut ctx, &mut slots),
                Err(_) => return,
            }
        }
        while let Ok(work) = queue.try_recv() {
            take(work, &mut ctx, &mut slots);
        }
        step(model, &mut ctx, &mut slots, &mut batch, counters);
    }
}

/// Put `job` in the free slot whose cache shares the longest prefix with its
/// prompt, and drop the rest of that slot's cache.
fn admit(model: &ChatModel, ctx: &mut LlamaContext<'_>, slots: &mut [Slot], job: Job, counters: &Counters) {
    let shared = |slot: &Slot| slot.cached.iter().zip(&job.tokens).take_while(|(a, b)| a == b).count();
    let Some(slot) = slots.iter_mut().filter(|slot| slot.running.is_none()).max_by_key(|slot| shared(slot)) else {
        unreachable!("admitted only with a slot free")
    };
    // The last prompt token is always decoded again: its logits pick the first new token.
    let reused = shared(slot).min(job.tokens.len() - 1);
    let kept = ctx.clear_kv_cache_seq(Some(slot.seq as u32), Some(reused as u32), None).unwrap_or(false);
    let reused = if kept {
        reused
    } else {
        let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
        0
    };
    slot.cached.truncate(reused);
    counters.prompt_tokens.fetch_add(job.tokens.len() as u64, Ordering::Relaxed);
    counters.reused_tokens.fetch_add(reused as u64, Ordering::Relaxed);
    match model.sampler(&job.options) {
        Ok(sampler) => {
            let text = Detokenizer::new(job.options.stop.clone());
            slot.running = Some(Running { job, sampler, text, prefilled: reused, next: None, generated: 0 });
            let running = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
            counters.most_running.fetch_max(running, Ordering::SeqCst);
        }
        Err(e) => {
            let _ = job.events.send(Event::Done(Err(e)));
        }
    }
}

/// One decode of every running sequence's next token and of prompt chunks,
/// then one sampled token for each sequence whose prompt is in.
fn step(
    model: &ChatModel,
    ctx: &mut LlamaContext<'_>,
    slots: &mut [Slot],
    batch: &mut LlamaBatch,
    counters: &Counters,
) {
    // A caller that stopped listening frees its slot now, mid-prompt too.
    for slot in slots.iter_mut() {
        if slot.running.as_ref().is_some_and(|running| running.job.cancelled.load(Ordering::Relaxed)) {
            end(slot, FinishReason::Stop, counters);
        }
    }
    batch.clear();
    // (slot, index in the batch) of each sequence that samples after this step.
    let mut sampling: Vec<(usize, i32)> = Vec::new();
    let mut room = STEP_TOKENS;
    for (index, slot) in slots.iter_mut().enumerate() {
        let Some(running) = slot.running.as_mut() else { continue };
        if let Some(token) = running.next.take() {
            let added = batch.add(token, slot.cached.len() as i32, &[slot.seq], true);
            added.expect("a step has room for every slot's token");
            slot.cached.push(token);
            sampling.push((index, batch.n_tokens() - 1));
            room -= 1;
        }
    }
    for (index, slot) in slots.iter_mut().enumerate() {
        let Some(running) = slot.running.as_mut() else { continue };
        let prompt = &running.job.tokens;
        if running.prefilled == prompt.len() || room == 0 {
            continue;
        }
        let end = prompt.len().min(running.prefilled + room);
        for position in running.prefilled..end {
            let last = position == prompt.len() - 1;
            let added = batch.add(prompt[position], position as i32, &[slot.seq], last);
            added.expect("a chunk fits the step's room");
            if last {
                sampling.push((index, batch.n_tokens() - 1));
            }
        }
        slot.cached.extend_from_slice(&prompt[running.prefilled..end]);
        room -= end - running.prefilled;
        running.prefilled = end;
    }
    if batch.n_tokens() == 0 {
        return;
    }
    counters.steps.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = ctx.decode(batch) {
        // The step's sequences cannot go on (the cache is left as it was: start them over).
        let reason = e.to_string();
        for slot in slots.iter_mut().filter(|slot| slot.running.is_some()) {
            let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            slot.cached.clear();
            let running = slot.running.take().expect("filtered");
            counters.running.fetch_sub(1, Ordering::SeqCst);
            let _ = running.job.events.send(Event::Done(Err(InferenceError::Decode(reason.clone()))));
        }
        return;
    }
    let vocab = model.llama().vocab();
    for (index, at) in sampling {
        let slot = &mut slots[index];
        let running = slot.running.as_mut().expect("sampling slots run");
        // sample() also accepts the token into every sampler (the grammar's state moves on).
        let token = running.sampler.sample(ctx, at);
        let finish = if vocab.is_eog(token) {
            Some(FinishReason::Stop)
        } else {
            running.generated += 1;
            counters.generated_tokens.fetch_add(1, Ordering::Relaxed);
            // Special tokens are rendered: tool-call tags such as Qwen's <tool_call> are special tokens.
            let (piece, stopped) = running.text.push(&vocab.token_to_piece(token, true, None));
            let delivered = piece.is_empty() || running.job.events.send(Event::Text(piece)).is_ok();
            if !delivered || stopped {
                Some(FinishReason::Stop)
            } else if running.generated >= running.job.options.max_tokens {
                Some(FinishReason::Length)
            } else {
                running.next = Some(token);
                None
            }
        };
        if let Some(finish) = finish {
            end(slot, finish, counters);
        }
    }
}

/// The sequence in `slot` is over: the rest of its text and how it ended go
/// to its caller; the slot's cache stays for the next prompt that shares it.
fn end(slot: &mut Slot, finish: FinishReason, counters: &Counters) {
    let Some(running) = slot.running.take() else { return };
    // Counted out before its caller hears it is done.
    counters.running.fetch_sub(1, Ordering::SeqCst);
    let rest = running.text.finish();
    if !rest.is_empty() {
        let _ = running.job.events.send(Event::Text(rest));
    }
    let prompt_tokens = running.job.tokens.len();
    let completion = Completion { text: String::new(), prompt_tokens, generated_tokens: running.generated, finish };
    let _ = running.job.events.send(Event::Done(Ok(completion)));
}
