//! Local inference with llama.cpp (through `llama-cpp-2`): chat generation and
//! sentence embeddings from GGUF models.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::gpu::OffloadChoice;
use crate::runtime::context_params;
pub use crate::runtime::{all_cores, backend, cpu_kernels, on_a_thread_of_its_own, InferenceError, ModelOptions};

fn load(path: &Path, options: &ModelOptions) -> Result<(LlamaModel, OffloadChoice), InferenceError> {
    if !path.is_file() {
        return Err(InferenceError::ModelMissing(path.to_path_buf()));
    }
    let (params, choice) = crate::gpu::model_params(path, options)?;
    let model = LlamaModel::load_from_file(backend()?, path, &params)
        .map_err(|e| InferenceError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok((model, choice))
}

/// Load `path` (memory-mapped, CPU) and drop it: llama.cpp checks every
/// tensor lies within the file, which catches truncated downloads that still
/// have readable metadata.
pub fn check_loads(path: &Path) -> Result<(), InferenceError> {
    load(path, &ModelOptions::default()).map(drop)
}

/// The parameters of a context for one call that needs `tokens` at most
/// (prompt and generation), within the model's `context_len`. llama.cpp
/// allocates the KV cache and its compute buffers for the whole context up
/// front: ~40 ms per call at 4,096 tokens for Qwen 0.5B, ~3 ms at 256, and a
/// task rarely needs the whole context. Rounded up to llama.cpp's own
/// padding of 256.
fn context_for(options: &ModelOptions, tokens: usize) -> LlamaContextParams {
    let needed = u32::try_from(tokens.div_ceil(256) * 256).unwrap_or(u32::MAX);
    context_params(&ModelOptions { context_len: needed.min(options.context_len), ..*options })
}

/// A text-generation model.
pub struct ChatModel {
    model: LlamaModel,
    options: ModelOptions,
    offload: OffloadChoice,
    /// Used instead of the GGUF's own chat template when set.
    template: Option<String>,
}

/// How the next token is picked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely token: deterministic for a model, whatever the threads.
    Greedy,
    /// top-k, then top-p, then temperature, then a seeded draw.
    Random { temperature: f32, top_p: f32, top_k: i32, seed: u32 },
}

/// What the generated text must follow (llama.cpp grammars, GBNF with a `root` rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Constraint {
    #[default]
    Free,
    /// The whole text matches the grammar.
    Grammar(String),
    /// Free text until `trigger` is generated; from there on (the trigger
    /// included) the text matches the grammar: a tool call inside a reply.
    After { trigger: String, grammar: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// Generation ends before the first of these; it is not part of the text.
    pub stop: Vec<String>,
    pub sampling: Sampling,
    pub constraint: Constraint,
}

impl GenerateOptions {
    pub fn greedy(max_tokens: usize) -> Self {
        GenerateOptions { max_tokens, stop: Vec::new(), sampling: Sampling::Greedy, constraint: Constraint::Free }
    }
}

/// A GBNF grammar (root rule `root`) for the JSON values `schema` (a JSON
/// Schema) accepts, by llama.cpp's own converter. An unusable schema is an error.
pub fn json_schema_grammar(schema: &serde_json::Value) -> Result<String, InferenceError> {
    // A schema is an object (or true/false): say so, rather than the converter's bare error code.
    if !schema.is_object() && !schema.is_boolean() {
        return Err(InferenceError::Constraint("a JSON schema is an object".into()));
    }
    llama_cpp_2::json_schema_to_grammar(&schema.to_string())
        .map_err(|e| InferenceError::Constraint(format!("llama.cpp cannot turn this JSON schema into a grammar ({e})")))
}

/// A grammar for `open`, a JSON value `schema` accepts, then `close` (a tagged tool call).
pub fn tagged_json_grammar(open: &str, schema: &serde_json::Value, close: &str) -> Result<String, InferenceError> {
    let value = json_schema_grammar(schema)?;
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    // The converter's own root becomes `value`, under a root of ours.
    let renamed: Vec<String> = value
        .lines()
        .map(|line| match line.strip_prefix("root ::=") {
            Some(rest) => format!("value ::={rest}"),
            None => line.to_string(),
        })
        .collect();
    Ok(format!("root ::= {} [ \\t\\n]* value [ \\t\\n]* {}\n{}\n", quote(open), quote(close), renamed.join("\n")))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of generation, or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// The text a generation produced and how many tokens it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub finish: FinishReason,
}

/// Turns generated bytes into text pieces: never splits a UTF-8 character,
/// and holds back what could still become a stop sequence.
pub(crate) struct Detokenizer {
    bytes: Vec<u8>,
    /// Bytes of `bytes` already handed out.
    sent: usize,
    stop: Vec<String>,
}

impl Detokenizer {
    pub(crate) fn new(stop: Vec<String>) -> Self {
        Detokenizer { bytes: Vec::new(), sent: 0, stop }
    }

    /// Add a token's bytes; returns a piece that is safe to hand out, and
    /// whether a stop sequence has appeared (the text then ends before it).
    pub(crate) fn push(&mut self, piece: &[u8]) -> (String, bool) {
        self.bytes.extend_from_slice(piece);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(text) => text.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = std::str::from_utf8(&self.bytes[..valid]).expect("valid prefix");
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| text[self.sent.min(text.len())..].find(s.as_str()).map(|i| self.sent + i))
            .min()
        {
            let out = text[self.sent..at].to_string();
            self.bytes.truncate(at);
            self.sent = at;
            return (out, true);
        }
        // Hold back the longest tail that is a prefix of some stop sequence.
        let hold = self
            .stop
            .iter()
            .flat_map(|s| (1..s.len()).filter(|n| s.is_char_boundary(*n)).map(move |n| &s[..n]))
            .filter(|prefix| text.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let safe = (valid - hold).max(self.sent);
        let out = text[self.sent..safe].to_string();
        self.sent = safe;
        (out, false)
    }

    /// What is left once generation ends.
    pub(crate) fn finish(self) -> String {
        String::from_utf8_lossy(&self.bytes[self.sent..]).into_owned()
    }
}

impl ChatModel {
    pub fn load(path: &Path, options: ModelOptions) -> Result<Self, InferenceError> {
        let (model, offload) = load(path, &options)?;
        Ok(ChatModel { model, options, offload, template: None })
    }

    /// The threads, offload and context it was loaded with.
    pub fn options(&self) -> ModelOptions {
        self.options
    }

    /// How many layers went to the GPU, and why.
    pub fn offload(&self) -> &OffloadChoice {
        &self.offload
    }

    /// Format chats with `template` instead of the GGUF's own: a llama.cpp
    /// template name ("chatml", "llama3", "gemma", …) or a template text. For
    /// models that carry none, or carry a wrong one.
    pub fn with_template(self, template: impl Into<String>) -> Self {
        ChatModel { template: Some(template.into()), ..self }
    }

    /// Format `(role, content)` messages with the chat template (the override,
    /// else the one stored in the GGUF), leaving the assistant's turn open.
    pub fn format_chat(&self, messages: &[(&str, &str)]) -> Result<String, InferenceError> {
        let template = match &self.template {
            Some(own) => LlamaChatTemplate::new(own).map_err(|e| InferenceError::Template(e.to_string()))?,
            None => self.model.chat_template(None).map_err(|e| {
                InferenceError::Template(format!("{e}; give one with a template override (e.g. chatml)"))
            })?,
        };
        let messages = messages
            .iter()
            .map(|(role, content)| LlamaChatMessage::new(role.to_string(), content.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| InferenceError::Template(e.to_string()))?;
        self.model.apply_chat_template(&template, &messages, true).map_err(|e| InferenceError::Template(e.to_string()))
    }

    /// Tokens in `prompt` (with the model's start token), to check a context before generating.
    pub fn count_tokens(&self, prompt: &str) -> usize {
        self.model.vocab().tokenize(prompt.as_bytes(), true, true).len()
    }

    pub fn context_len(&self) -> u32 {
        self.options.context_len
    }

    /// Greedy generation of at most `max_tokens` after `prompt` (deterministic).
    pub fn complete(&self, prompt: &str, max_tokens: usize) -> Result<Completion, InferenceError> {
        self.generate(prompt, &GenerateOptions::greedy(max_tokens), &mut |_| true)
    }

    /// Generate after `prompt`, handing each new piece of text to `on_text` as
    /// it is decoded (streaming); `on_text` returning false stops early.
    pub fn generate(
        &self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, InferenceError> {
        let vocab = self.model.vocab();
        let tokens = self.checked_tokens(prompt, options.max_tokens)?;
        let mut ctx = self
            .model
            .new_context(backend()?, context_for(&self.options, tokens.len() + options.max_tokens))
            .map_err(|e| InferenceError::Context(e.to_string()))?;
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        let last = tokens.len() - 1;
        for (i, token) in tokens.iter().enumerate() {
            batch.add(*token, i as i32, &[0], i == last).map_err(|e| InferenceError::Decode(e.to_string()))?;
        }
        decode(&mut ctx, &mut batch)?;
        let mut sampler = self.sampler(options)?;
        let mut text = Detokenizer::new(options.stop.clone());
        let mut out = String::new();
        let mut emit = |piece: String, out: &mut String| {
            out.push_str(&piece);
            piece.is_empty() || on_text(&piece)
        };
        let (mut generated, mut finish) = (0, FinishReason::Length);
        let mut position = tokens.len() as i32;
        while generated < options.max_tokens {
            // sample() also accepts the token into every sampler (the grammar's state moves on).
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            if vocab.is_eog(token) {
                finish = FinishReason::Stop;
                break;
            }
            generated += 1;
            // Special tokens are rendered: tool-call tags such as Qwen's <tool_call> are special tokens.
            let (piece, stopped) = text.push(&vocab.token_to_piece(token, true, None));
            if !emit(piece, &mut out) || stopped {
                finish = FinishReason::Stop;
                break;
            }
            batch.clear();
            batch.add(token, position, &[0], true).map_err(|e| InferenceError::Decode(e.to_string()))?;
            position += 1;
            decode(&mut ctx, &mut batch)?;
        }
        emit(text.finish(), &mut out);
        Ok(Completion { text: out, prompt_tokens: tokens.len(), generated_tokens: generated, finish })
    }

    /// The prompt's tokens (with the model's start token), if it and
    /// `max_tokens` more fit the context.
    pub(crate) fn checked_tokens(
        &self,
        prompt: &str,
        max_tokens: usize,
    ) -> Result<Vec<llama_cpp_2::token::LlamaToken>, InferenceError> {
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        let context = self.options.context_len;
        if tokens.is_empty() || tokens.len().saturating_add(max_tokens) > context as usize {
            return Err(InferenceError::ContextOverflow { prompt: tokens.len(), requested: max_tokens, context });
        }
        Ok(tokens)
    }

    pub(crate) fn llama(&self) -> &LlamaModel {
        &self.model
    }

    /// The sampler chain `options` ask for: the constraint removes what may
    /// not come next, then the pick.
    pub(crate) fn sampler(&self, options: &GenerateOptions) -> Result<LlamaSampler, InferenceError> {
        let vocab = self.model.vocab();
        let pick = match options.sampling {
            Sampling::Greedy => LlamaSampler::greedy(),
            Sampling::Random { temperature, top_p, top_k, seed } => LlamaSampler::chain_simple([
                LlamaSampler::top_k(top_k.max(1)),
                LlamaSampler::top_p(top_p.clamp(0.0, 1.0), 1),
                LlamaSampler::temp(temperature.max(0.0)),
                LlamaSampler::dist(seed),
            ]),
        };
        let constraint = match &options.constraint {
            Constraint::Free => None,
            Constraint::Grammar(grammar) => Some(LlamaSampler::grammar(&self.model, grammar, "root")),
            Constraint::After { trigger, grammar } => {
                // A trigger that is one token (Qwen's <tool_call>) is matched as that token.
                let trigger_tokens = match vocab.tokenize(trigger.as_bytes(), false, true).as_slice() {
                    [one] => vec![*one],
                    _ => Vec::new(),
                };
                Some(LlamaSampler::grammar_lazy(&self.model, grammar, "root", [trigger.as_bytes()], &trigger_tokens))
            }
        }
        .transpose()
        .map_err(|e| InferenceError::Constraint(e.to_string()))?;
        Ok(match constraint {
            Some(constraint) => LlamaSampler::chain_simple([constraint, pick]),
            None => pick,
        })
    }
}

/// How far below the top logit an answer token may be and still count as the
/// model's choice when scoring (see [`Scored`]). Not 0: a prefill of many
/// tokens runs other kernels than one-token decoding, so the same model's
/// own greedy token can come out a hair below a near-tie (up to 0.17 logits on
/// CPU in `benches/trust.rs`), while a word that is not the model's was 16 or
/// more below. 1.0 passes the first and catches the second.
pub const SCORE_TOLERANCE: f32 = 1.0;

/// How a model rates an answer it is shown after a prompt, teacher-forced:
/// for each answer token, how far its logit is below the best one there (0:
/// it is the model's top choice).
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    pub gaps: Vec<f32>,
}

impl Scored {
    pub fn tokens(&self) -> usize {
        self.gaps.len()
    }

    /// The first answer token more than `tolerance` below the model's top
    /// choice (0-based), if any. Tolerance 0: every token must be the top one.
    pub fn first_miss(&self, tolerance: f32) -> Option<usize> {
        self.gaps.iter().position(|gap| *gap > tolerance)
    }
}

impl ChatModel {
    /// Score `answer` after `prompt` the way a second limb checks a first
    /// one's greedy answer: one decode of prompt and answer together (a
    /// prefill, no generation), and at every answer token whether it is the
    /// token this model ranks first there. A greedy answer of the same model
    /// file on the same backend is on top everywhere; what costs a generation
    /// token by token costs one batch here.
    pub fn score(&self, prompt: &str, answer: &str) -> Result<Scored, InferenceError> {
        let vocab = self.model.vocab();
        let prompt_tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        let answer_tokens = vocab.tokenize(answer.as_bytes(), false, true);
        let total = prompt_tokens.len() + answer_tokens.len();
        if prompt_tokens.is_empty() || total > self.options.context_len as usize {
            return Err(InferenceError::ContextOverflow {
                prompt: prompt_tokens.len(),
                requested: answer_tokens.len(),
                context: self.options.context_len,
            });
        }
        let mut ctx = self
            .model
            .new_context(backend()?, context_for(&self.options, total))
            .map_err(|e| InferenceError::Context(e.to_string()))?;
        let mut batch = LlamaBatch::new(total, 1);
        // Logits where each answer token is predicted: the last prompt token and every answer token but the last.
        let first_prediction = prompt_tokens.len() - 1;
        for (i, token) in prompt_tokens.iter().chain(&answer_tokens).enumerate() {
            let wanted = i >= first_prediction && i < total - 1;
            batch.add(*token, i as i32, &[0], wanted).map_err(|e| InferenceError::Decode(e.to_string()))?;
        }
        decode(&mut ctx, &mut batch)?;
        let gaps = answer_tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let logits = ctx.get_logits_ith((first_prediction + i) as i32);
                let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                best - logits.get(token.0 as usize).copied().unwrap_or(f32::NEG_INFINITY)
            })
            .collect();
        Ok(Scored { gaps })
    }
}

fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch) -> Result<(), InferenceError> {
    ctx.decode(batch).map_err(|e| InferenceError::Decode(e.to_string()))
}

/// A sentence-embedding model (mean pooling as stored in the GGUF). Made
/// with [`Embedder::lazy`] it loads on the first `embed`, so a limb that is
/// only waiting keeps no model in memory. A clone shares the model (one
/// load, one copy in memory): ingestion embeds on a thread of its own with one.
#[derive(Clone)]
pub struct Embedder {
    path: PathBuf,
    options: ModelOptions,
    model: Arc<OnceLock<LlamaModel>>,
    loading: Arc<std::sync::Mutex<()>>,
}

impl Embedder {
    pub fn load(path: &Path, options: ModelOptions) -> Result<Self, InferenceError> {
        let embedder = Self::lazy(path, options)?;
        embedder.model()?;
        Ok(embedder)
    }

    /// Check the file is there; load it when first needed.
    pub fn lazy(path: &Path, options: ModelOptions) -> Result<Self, InferenceError> {
        if !path.is_file() {
            return Err(InferenceError::ModelMissing(path.into()));
        }
        let options = ModelOptions { context_len: options.context_len.min(512), ..options };
        Ok(Embedder { path: path.into(), options, model: Arc::default(), loading: Arc::default() })
    }

    fn model(&self) -> Result<&LlamaModel, InferenceError> {
        if let Some(model) = self.model.get() {
            return Ok(model);
        }
        let _one_loader = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if self.model.get().is_none() {
            let _ = self.model.set(load(&self.path, &self.options)?.0);
        }
        Ok(self.model.get().expect("set above"))
    }

    pub fn is_loaded(&self) -> bool {
        self.model.get().is_some()
    }

    pub fn dimensions(&self) -> Result<usize, InferenceError> {
        Ok(self.model()?.n_embd() as usize)
    }

    /// One L2-normalised vector per text, so that a dot product is a cosine.
    /// A text longer than the context is embedded by its beginning, as
    /// sentence-transformers does: a passage dense with tokens (a wide CSV
    /// row, a line of numbers) is still stored and found, by full-text search
    /// for the rest of it.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InferenceError> {
        self.embed_with(texts, true)
    }

    /// As [`Embedder::embed`], but a text longer than the context is an
    /// error (an API whose callers must learn that their input was cut).
    pub fn embed_whole(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InferenceError> {
        self.embed_with(texts, false)
    }

    fn embed_with(&self, texts: &[&str], truncate: bool) -> Result<Vec<Vec<f32>>, InferenceError> {
        // Its OpenMP team ends with the thread (`on_a_thread_of_its_own`).
        on_a_thread_of_its_own(|| self.embed_here(texts, truncate))
    }

    fn embed_here(&self, texts: &[&str], truncate: bool) -> Result<Vec<Vec<f32>>, InferenceError> {
        let model = self.model()?;
        let params = context_params(&self.options).with_embeddings(true);
        let mut ctx = model.new_context(backend()?, params).map_err(|e| InferenceError::Context(e.to_string()))?;
        let vocab = model.vocab();
        let mut vectors = Vec::with_capacity(texts.len());
        for text in texts {
            let mut tokens = vocab.tokenize(text.as_bytes(), true, false);
            let context = self.options.context_len as usize;
            if tokens.len() > context && truncate {
                // Keep the end-of-sequence token the model pools at.
                let last = tokens[tokens.len() - 1];
                tokens.truncate(context - 1);
                tokens.push(last);
            }
            if tokens.len() > context {
                return Err(InferenceError::ContextOverflow {
                    prompt: tokens.len(),
                    requested: 0,
                    context: self.options.context_len,
                });
            }
            let mut batch = LlamaBatch::new(tokens.len(), 1);
            batch.add_sequence(&tokens, 0, true).map_err(|e| InferenceError::Decode(e.to_string()))?;
            ctx.clear_kv_cache();
            ctx.encode(&mut batch).map_err(|e| InferenceError::Decode(e.to_string()))?;
            let embedding = ctx.embeddings_seq_ith(0).map_err(|e| InferenceError::Decode(e.to_string()))?;
            vectors.push(normalize(embedding));
        }
        Ok(vectors)
    }
}

fn normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    v.iter().map(|x| x / norm).collect()
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflow_says_what_is_too_large() {
        let asked = InferenceError::ContextOverflow { prompt: 9, requested: 1_000_000_000_000, context: 4096 };
        assert_eq!(
            asked.to_string(),
            "the prompt is 9 tokens and 1000000000000 more were asked for, 1000000000009 in all, but the context holds 4096"
        );
        let prompt = InferenceError::ContextOverflow { prompt: 5000, requested: 0, context: 4096 };
        assert_eq!(prompt.to_string(), "the prompt is 5000 tokens but the context holds 4096");
    }

    #[test]
    fn normalized_vectors_have_unit_length() {
        let v = normalize(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn cosine_of_orthogonal_and_parallel() {
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
    }

    fn pieces(stop: &[&str], tokens: &[&[u8]]) -> (Vec<String>, bool, String) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let mut d = Detokenizer::new(stop);
        let mut out = Vec::new();
        for token in tokens {
            let (piece, stopped) = d.push(token);
            out.push(piece);
            if stopped {
                return (out, true, d.finish());
            }
        }
        (out, false, d.finish())
    }

    #[test]
    fn streaming_never_splits_a_character() {
        let (out, stopped, rest) = pieces(&[], &[b"caf", &[0xc3], &[0xa9], b"!"]);
        assert_eq!((out, stopped, rest), (vec!["caf".into(), "".into(), "é".into(), "!".into()], false, String::new()));
    }

    #[test]
    fn a_stop_sequence_across_tokens_ends_the_text_before_it() {
        let (out, stopped, _) = pieces(&["\nUser:"], &[b"Hi", b" there\n", b"Us", b"er: more"]);
        assert!(stopped);
        assert_eq!(out.concat(), "Hi there", "held back while it could be the stop: {out:?}");
        let (out, stopped, rest) = pieces(&["\nUser:"], &[b"a\n", b"Use", b"ful"]);
        assert!(!stopped);
        assert_eq!(out.concat() + &rest, "a\nUseful", "released once it cannot be");
    }

    #[test]
    fn missing_model_is_a_clear_error() {
        let err = ChatModel::load(Path::new("/nonexistent/model.gguf"), ModelOptions::default()).err().unwrap();
        assert!(matches!(err, InferenceError::ModelMissing(_)));
    }
}
