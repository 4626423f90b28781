//! Local inference with llama.cpp (through `llama-cpp-2`): chat generation and
//! sentence embeddings from GGUF models.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
    #[error("the prompt is {tokens} tokens but the context holds {context}")]
    ContextOverflow { tokens: usize, context: u32 },
    #[error("the model has no usable chat template: {0}")]
    Template(String),
    #[error("llama.cpp decode failed: {0}")]
    Decode(String),
}

/// How much of the machine a model may use.
#[derive(Clone, Copy, Debug)]
pub struct ModelOptions {
    pub threads: i32,
    /// Layers offloaded to the GPU; 0 keeps everything on the CPU.
    pub gpu_layers: u32,
    pub context_len: u32,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { threads: 1, gpu_layers: 0, context_len: 2048 }
    }
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, InferenceError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| InferenceError::Backend(e.clone()))
}

fn load(path: &Path, options: &ModelOptions) -> Result<LlamaModel, InferenceError> {
    if !path.is_file() {
        return Err(InferenceError::ModelMissing(path.to_path_buf()));
    }
    let params = LlamaModelParams::default().with_n_gpu_layers(options.gpu_layers);
    LlamaModel::load_from_file(backend()?, path, &params)
        .map_err(|e| InferenceError::Load { path: path.to_path_buf(), reason: e.to_string() })
}

fn context_params(options: &ModelOptions) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(options.context_len))
        .with_n_batch(options.context_len)
        .with_n_threads(options.threads)
        .with_n_threads_batch(options.threads)
}

/// A text-generation model.
pub struct ChatModel {
    model: LlamaModel,
    options: ModelOptions,
}

/// The text a generation produced and how many tokens it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
}

impl ChatModel {
    pub fn load(path: &Path, options: ModelOptions) -> Result<Self, InferenceError> {
        Ok(ChatModel { model: load(path, &options)?, options })
    }

    /// Format `(role, content)` messages with the chat template stored in the GGUF,
    /// leaving the assistant's turn open.
    pub fn format_chat(&self, messages: &[(&str, &str)]) -> Result<String, InferenceError> {
        let template = self.model.chat_template(None).map_err(|e| InferenceError::Template(e.to_string()))?;
        let messages = messages
            .iter()
            .map(|(role, content)| LlamaChatMessage::new(role.to_string(), content.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| InferenceError::Template(e.to_string()))?;
        self.model
            .apply_chat_template(&template, &messages, true)
            .map_err(|e| InferenceError::Template(e.to_string()))
    }

    /// Greedy generation of at most `max_tokens` after `prompt` (deterministic).
    pub fn complete(&self, prompt: &str, max_tokens: usize) -> Result<Completion, InferenceError> {
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        let context_len = self.options.context_len;
        if tokens.len() + max_tokens > context_len as usize {
            return Err(InferenceError::ContextOverflow { tokens: tokens.len() + max_tokens, context: context_len });
        }
        let mut ctx = self
            .model
            .new_context(backend()?, context_params(&self.options))
            .map_err(|e| InferenceError::Context(e.to_string()))?;
        let mut batch = LlamaBatch::new(context_len as usize, 1);
        let last = tokens.len() - 1;
        for (i, token) in tokens.iter().enumerate() {
            batch.add(*token, i as i32, &[0], i == last).map_err(|e| InferenceError::Decode(e.to_string()))?;
        }
        decode(&mut ctx, &mut batch)?;

        let mut sampler = LlamaSampler::greedy();
        let mut bytes = Vec::new();
        let mut generated = 0;
        let mut position = tokens.len() as i32;
        while generated < max_tokens {
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            sampler.accept(token);
            if vocab.is_eog(token) {
                break;
            }
            // Special tokens are rendered: tool-call tags such as Qwen's <tool_call> are special tokens.
            bytes.extend(vocab.token_to_piece(token, true, None));
            generated += 1;
            batch.clear();
            batch.add(token, position, &[0], true).map_err(|e| InferenceError::Decode(e.to_string()))?;
            position += 1;
            decode(&mut ctx, &mut batch)?;
        }
        Ok(Completion {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            prompt_tokens: tokens.len(),
            generated_tokens: generated,
        })
    }
}

fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch) -> Result<(), InferenceError> {
    ctx.decode(batch).map_err(|e| InferenceError::Decode(e.to_string()))
}

/// A sentence-embedding model (mean pooling as stored in the GGUF).
pub struct Embedder {
    model: LlamaModel,
    options: ModelOptions,
}

impl Embedder {
    pub fn load(path: &Path, options: ModelOptions) -> Result<Self, InferenceError> {
        let options = ModelOptions { context_len: options.context_len.min(512), ..options };
        Ok(Embedder { model: load(path, &options)?, options })
    }

    pub fn dimensions(&self) -> usize {
        self.model.n_embd() as usize
    }

    /// One L2-normalised vector per text, so that a dot product is a cosine.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let params = context_params(&self.options).with_embeddings(true);
        let mut ctx = self.model.new_context(backend()?, params).map_err(|e| InferenceError::Context(e.to_string()))?;
        let vocab = self.model.vocab();
        let mut vectors = Vec::with_capacity(texts.len());
        for text in texts {
            let tokens = vocab.tokenize(text.as_bytes(), true, false);
            if tokens.len() > self.options.context_len as usize {
                return Err(InferenceError::ContextOverflow { tokens: tokens.len(), context: self.options.context_len });
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
    fn normalized_vectors_have_unit_length() {
        let v = normalize(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn cosine_of_orthogonal_and_parallel() {
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn missing_model_is_a_clear_error() {
        let err = ChatModel::load(Path::new("/nonexistent/model.gguf"), ModelOptions::default()).err().unwrap();
        assert!(matches!(err, InferenceError::ModelMissing(_)));
    }
}
