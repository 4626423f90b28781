//! Inference for a Heiwa limb: llama.cpp generation and embeddings from GGUF
//! files ([`engine`]; many sequences in one model, [`Batcher`]), the owner's model store ([`models`]), a remote
//! OpenAI-compatible backend ([`remote`]), and the chat message both speak.

mod batch;
mod engine;
pub mod gpu;
pub mod models;
pub mod remote;
mod runtime;

pub use batch::{BatchStats, Batcher, MAX_SLOTS};
pub use engine::*;
pub use gpu::{DeviceSet, Offload, OffloadChoice};

/// One chat message. Roles are `system`, `user` and `assistant`; tool results
/// go back as a `user` message wrapped in `<tool_response>` (Qwen's convention,
/// and plain enough for any instruction-tuned model).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn new(role: &'static str, content: impl Into<String>) -> Self {
        Message { role, content: content.into() }
    }
}
