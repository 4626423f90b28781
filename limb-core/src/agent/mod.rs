//! The agent loop that answers a task: retrieve passages from local memory,
//! prompt the model with them and the one tool's schema, run the tool when
//! the model calls it and feed the result back, until the model answers or the
//! budget runs out. Then build the small summary payload the hub receives.
//!
//! The loop is written against three small traits ([`Model`], [`Retriever`],
//! [`Tools`]) so it runs with scripted parts in unit tests and with llama.cpp,
//! pgvector and the container sandbox for real ([`local`]).

mod chat;
pub mod local;
mod parse;
mod summary;

pub use parse::{parse_reply, Reply, ToolCall};
pub use summary::{summary_payload, Summary, SummaryCitation};

use heiwa_memory::Citation;
use heiwa_sandbox::RunOutput;
use std::future::Future;

/// A part's own error, kept whole (its source chain included) in [`AgentError`].
pub type PartError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the model failed: {0}")]
    Model(#[source] PartError),
    #[error("memory retrieval failed: {0}")]
    Retrieval(#[source] PartError),
    #[error("the run_python tool failed: {0}")]
    Tool(#[source] PartError),
    #[error("no final answer within {steps} steps ({tool_calls} tool calls)")]
    Budget { steps: usize, tool_calls: usize },
    #[error("the task is empty")]
    EmptyTask,
}

pub use heiwa_inference::Message;

/// Generates the assistant's next message.
pub trait Model: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;
    fn chat(&self, messages: &[Message], max_tokens: usize)
        -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// What the limb can say about this model when it signs a result (the
    /// engine, backend, model id and file hash); nothing, unless it knows.
    fn made_by(&self) -> crate::claim::Evidence {
        crate::claim::Evidence::default()
    }

    /// Plain model work (a greedy generation, or scoring another limb's
    /// answer), on the calling thread: only a model whose logits this limb
    /// holds can do it, so by default it is refused.
    fn plain_work(&self, work: &heiwa_hub::Work<'_>) -> Result<String, crate::claim::TaskFailure> {
        let _ = work;
        Err("this limb's model cannot run greedy generation or scoring: only a local llama.cpp model can".into())
    }
}

/// Finds passages for a question.
pub trait Retriever: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;
    fn retrieve(&self, question: &str, k: i64) -> impl Future<Output = Result<Vec<Citation>, Self::Error>> + Send;
}

/// The one tool. An `Err` means the tool itself could not run (no engine);
/// code that fails inside the sandbox is an `Ok` with its stderr and exit code.
pub trait Tools: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;
    fn run_python(&self, code: &str) -> impl Future<Output = Result<RunOutput, Self::Error>> + Send;
}

/// How much one task may use.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Model turns, tool calls included.
    pub max_steps: usize,
    pub max_tokens_per_step: usize,
    /// Passages retrieved from memory for the prompt.
    pub passages: i64,
    /// Characters of each passage and of each tool result shown to the model.
    pub excerpt_chars: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_steps: 4, max_tokens_per_step: 256, passages: 3, excerpt_chars: 700 }
    }
}

/// A tool call the agent made, for the summary and the log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ToolUse {
    pub code: String,
    pub stdout: String,
    pub exit_code: Option<i64>,
    pub limit: Option<heiwa_sandbox::LimitHit>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Answer {
    pub text: String,
    pub citations: Vec<Citation>,
    pub tool_uses: Vec<ToolUse>,
    pub steps: usize,
}

pub struct Agent<M, R, T> {
    pub model: M,
    pub retriever: R,
    pub tools: T,
    pub budget: Budget,
}

pub const TOOL_SCHEMA: &str = r#"{"type": "function", "function": {"name": "run_python", "description": "Run Python 3 code in an isolated sandbox with no network and no files, and return what it printed. Use print() for results.", "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "The Python code to run"}}, "required": ["code"]}}}"#;

fn system_prompt() -> String {
    format!(
        "You are a Heiwa limb answering a task. Answer briefly and correctly.\n\n\
         You have one tool, run_python, for arithmetic and other calculations only:\n<tools>\n{TOOL_SCHEMA}\n</tools>\n\n\
         For example, to compute 2**10, reply with only:\n\
         <tool_call>\n{{\"name\": \"run_python\", \"arguments\": {{\"code\": \"print(2**10)\"}}}}\n</tool_call>\n\
         Its output comes back inside <tool_response>.\n\n\
         When the task is a question about the passages from the user's documents, do not call the tool: answer \
         from the passages and cite them by number, like [1]."
    )
}

fn excerpt(text: &str, chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

fn user_prompt(question: &str, passages: &[Citation], chars: usize) -> String {
    if passages.is_empty() {
        return question.to_string();
    }
    let mut prompt = String::from("Passages from my documents:\n");
    for (n, passage) in passages.iter().enumerate() {
        let name = summary::file_name(&passage.path);
        prompt.push_str(&format!("[{}] {name}: {}\n", n + 1, excerpt(&passage.content, chars)));
    }
    prompt.push_str(&format!("\nTask: {question}"));
    prompt
}

fn tool_response(body: &str) -> Message {
    Message::new(
        "user",
        format!("<tool_response>\n{body}\n</tool_response>\nIf this answers the task, reply with the final answer in words."),
    )
}

/// The last turn, asked without the tool: the task, the passages and what the
/// tool printed so far. Small models otherwise call the tool again and again
/// with the same code; asked like this they answer.
fn final_turn(question: &str, passages: &[Citation], tool_uses: &[ToolUse], chars: usize) -> Vec<Message> {
    let mut task = user_prompt(question, passages, chars);
    if !tool_uses.is_empty() {
        task.push_str("\n\nComputed with Python:");
        for tool in tool_uses {
            task.push_str(&format!("\n{}\nprinted: {}", tool.code, excerpt_raw(tool.stdout.trim(), chars)));
        }
    }
    task.push_str("\n\nReply with the final answer in words.");
    vec![
        Message::new(
            "system",
            "You are a Heiwa limb answering a task. Answer briefly and correctly; cite passages by number, like [1].",
        ),
        Message::new("user", task),
    ]
}

impl<M: Model, R: Retriever, T: Tools> Agent<M, R, T> {
    /// Answer `question`, or say why not. The last allowed step, or a step
    /// after the model repeated a call it already made, is a [`final_turn`].
    pub async fn answer(&self, question: &str) -> Result<Answer, AgentError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(AgentError::EmptyTask);
        }
        let budget = self.budget;
        let citations =
            self.retriever.retrieve(question, budget.passages).await.map_err(|e| AgentError::Retrieval(e.into()))?;
        let mut messages = vec![
            Message::new("system", system_prompt()),
            Message::new("user", user_prompt(question, &citations, budget.excerpt_chars)),
        ];
        let mut tool_uses: Vec<ToolUse> = Vec::new();
        let mut stuck = false;
        for step in 1..=budget.max_steps {
            let last = step == budget.max_steps || stuck;
            let prompt = if last {
                final_turn(question, &citations, &tool_uses, budget.excerpt_chars)
            } else {
                messages.clone()
            };
            let reply =
                self.model.chat(&prompt, budget.max_tokens_per_step).await.map_err(|e| AgentError::Model(e.into()))?;
            tracing::debug!(step, %reply, "model reply");
            let feedback = match parse_reply(&reply) {
                Reply::Final(text) => return Ok(Answer { text, citations, tool_uses, steps: step }),
                _ if last => break,
                Reply::Call(ToolCall { code }) if tool_uses.iter().any(|used| used.code == code) => {
                    stuck = true;
                    continue;
                }
                Reply::Call(ToolCall { code }) => {
                    let output = self.tools.run_python(&code).await.map_err(|e| AgentError::Tool(e.into()))?;
                    let body = serde_json::json!({
                        "stdout": excerpt_raw(&output.stdout, budget.excerpt_chars),
                        "stderr": excerpt_raw(&output.stderr, budget.excerpt_chars),
                        "exit_code": output.exit_code,
                        "stopped_by": output.limit,
                    });
                    tool_uses.push(ToolUse {
                        code,
                        stdout: output.stdout,
                        exit_code: output.exit_code,
                        limit: output.limit,
                    });
                    body.to_string()
                }
                Reply::Malformed(problem) => format!("error: {problem}"),
            };
            messages.push(Message::new("assistant", reply));
            messages.push(tool_response(&feedback));
        }
        Err(AgentError::Budget { steps: budget.max_steps, tool_calls: tool_uses.len() })
    }
}

/// The first `chars` characters, whitespace kept (program output is shown as is).
fn excerpt_raw(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…[truncated]", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
