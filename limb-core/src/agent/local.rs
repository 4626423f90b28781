//! The agent on this machine's real parts: llama.cpp for the model, local
//! memory for retrieval, the container sandbox for `run_python`.

use super::chat::lock;
pub use super::chat::{chat_options, AnswerPace, LocalChat, Slots, DEFAULT_KEEP_ALIVE, GENERATE_MAX_TOKENS};
use super::{summary_payload, Agent, Budget, Message, Model, Retriever, Tools};
use crate::claim::{Evidence, Executor, Output, TaskFailure};
use crate::given::{Given, WorkLog};
use heiwa_config::Parts;
use heiwa_hub::{Work, MAX_SUMMARY_BYTES};
use heiwa_inference::remote::{RemoteClient, RemoteError, RemoteOptions};
use heiwa_inference::{Embedder, InferenceError};
use heiwa_memory::{Citation, LocalMemory, LocalMemoryError, Memory, MemoryError};
use heiwa_sandbox::{Limits, RunOutput, Sandbox, SandboxError, WarmPool};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The chat model the agent uses: llama.cpp here, or a remote
/// OpenAI-compatible server (vLLM, LiteLLM, another limb's `heiwa serve`).
pub enum ChatBackend {
    /// Boxed: it is several times the size of the remote client.
    Local(Box<LocalChat>),
    Remote(RemoteClient),
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Local(#[from] InferenceError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

impl Model for ChatBackend {
    type Error = ChatError;

    async fn chat(&self, messages: &[Message], max_tokens: usize) -> Result<String, ChatError> {
        Ok(match self {
            ChatBackend::Local(local) => local.chat(messages, max_tokens).await?,
            ChatBackend::Remote(remote) => remote.chat(messages, max_tokens).await?,
        })
    }

    fn plain_work(&self, work: &Work<'_>) -> Result<String, TaskFailure> {
        let ChatBackend::Local(local) = self else {
            return Err(
                "this limb's model is a remote server: it cannot run greedy generation or scoring it can vouch for"
                    .into(),
            );
        };
        Ok(match work {
            Work::Generate { prompt } => local.generate_greedy(prompt)?,
            Work::Score { prompt, answer } => local.score_answer(prompt, answer)?,
            Work::Ask(_) => return Err("a question is the agent's work, not plain model work".into()),
        })
    }

    fn made_by(&self) -> Evidence {
        match self {
            ChatBackend::Local(local) => {
                let path = local.model_path();
                let backend = match local.offload() {
                    Some(choice) if choice.layers > 0 => {
                        let devices = heiwa_inference::gpu::gpus().unwrap_or_default();
                        let names: Vec<&str> = devices.iter().map(|d| d.backend.as_str()).collect();
                        format!("{} ({} of {} layers)", names.join("+"), choice.layers, choice.model_layers)
                    }
                    _ => "cpu".into(),
                };
                Evidence {
                    engine: "llama.cpp".into(),
                    backend,
                    model: heiwa_inference::models::model_id(&path),
                    model_sha256: file_sha256(&path).unwrap_or_default(),
                    ..Evidence::default()
                }
            }
            // The server names its model; its weights and hardware are not this limb's to vouch for.
            ChatBackend::Remote(remote) => {
                Evidence { engine: "openai-compatible".into(), model: remote.model().into(), ..Evidence::default() }
            }
        }
    }
}

/// The sha256 of a model file, hashed once per file version (a model is
/// gigabytes: seconds the first time, nothing after).
fn file_sha256(path: &std::path::Path) -> Option<String> {
    type Seen = Mutex<std::collections::HashMap<(PathBuf, u64, std::time::SystemTime), String>>;
    static HASHED: std::sync::OnceLock<Seen> = std::sync::OnceLock::new();
    let meta = std::fs::metadata(path).ok()?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok()?);
    let hashed = HASHED.get_or_init(Default::default);
    if let Some(known) = lock(hashed).get(&key) {
        return Some(known.clone());
    }
    let hex = heiwa_provenance::sha256_of(std::fs::File::open(path).ok()?).ok()?;
    lock(hashed).insert(key, hex.clone());
    Some(hex)
}

/// Passages less similar than this to the task are left out of the prompt:
/// with MiniLM, unrelated text scores below 0.2 and an answering passage above
/// 0.4 (measured on samples/docs), and an irrelevant passage only misleads a
/// small model and adds a false citation.
pub const MIN_SIMILARITY: f64 = 0.25;

/// Hybrid search over one memory tenant, keeping only relevant passages.
pub struct MemoryRetriever {
    pub memory: Arc<Memory>,
    pub embedder: Arc<Embedder>,
    pub tenant: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("embedding the question: {0}")]
    Embed(#[from] InferenceError),
    #[error(transparent)]
    Search(#[from] MemoryError),
}

impl Retriever for MemoryRetriever {
    type Error = RetrieveError;

    async fn retrieve(&self, question: &str, k: i64) -> Result<Vec<Citation>, RetrieveError> {
        let embedding = self.embedder.embed(&[question])?.remove(0);
        let hits = self.memory.search(&self.tenant, question, &embedding, k).await?;
        Ok(hits.into_iter().filter(|hit| hit.similarity >= MIN_SIMILARITY).collect())
    }
}

/// The `run_python` tool: a warm pool of sandboxes, or why there is none.
/// Without a container engine the agent still answers (from memory and the
/// model); a tool call then fails with the engine's message, which the model
/// is shown. Code never runs on the host.
pub enum SandboxTools {
    Ready(WarmPool),
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("run_python is unavailable: {0}")]
    Unavailable(String),
}

impl Tools for SandboxTools {
    type Error = ToolError;

    async fn run_python(&self, code: &str) -> Result<RunOutput, ToolError> {
        match self {
            SandboxTools::Ready(pool) => Ok(pool.run_python(code).await?),
            SandboxTools::Unavailable(why) => Err(ToolError::Unavailable(why.clone())),
        }
    }
}

pub type LocalAgentParts = Agent<ChatBackend, MemoryRetriever, SandboxTools>;

#[derive(Debug, thiserror::Error)]
pub enum LocalAgentError {
    #[error(transparent)]
    Memory(#[from] LocalMemoryError),
    #[error(transparent)]
    Model(#[from] InferenceError),
    #[error(transparent)]
    NoModel(#[from] heiwa_config::MissingPart),
}

/// The agent with its parts started; [`LocalAgent::close`] stops them.
pub struct LocalAgent {
    pub agent: Arc<LocalAgentParts>,
    memory: LocalMemory,
    /// What this machine gave (`data_dir/given.json`).
    work_log: Arc<WorkLog>,
}

impl LocalAgent {
    /// Start memory (under `data_dir/memory`), ready the chat model (it loads
    /// on first use), connect the sandbox (without an engine the agent runs
    /// without its tool: see [`LocalAgent::tool_problem`]). Retrieval reads
    /// `tenant`'s documents. With `remote`, chat goes to that server.
    pub async fn open(
        parts: &Parts,
        data_dir: &Path,
        tenant: &str,
        budget: Budget,
        remote: Option<RemoteOptions>,
    ) -> Result<Self, LocalAgentError> {
        let work_log = Arc::new(WorkLog::open(data_dir));
        let model = match remote {
            Some(remote) => ChatBackend::Remote(RemoteClient::new(remote)),
            None => ChatBackend::Local(Box::new(
                LocalChat::new(parts.chat_model()?, chat_options())?.counting_into(work_log.clone()),
            )),
        };
        let memory = LocalMemory::open(&parts.pg_dir, &parts.embed_model, &data_dir.join("memory")).await?;
        let tools = match Sandbox::connect(&parts.sandbox_image, Limits::default()).await {
            // One container kept warm: a tool call then skips the cold start.
            Ok(sandbox) => SandboxTools::Ready(WarmPool::new(Arc::new(sandbox), 1)),
            Err(error) => {
                tracing::warn!(%error, "the agent runs without run_python");
                SandboxTools::Unavailable(error.to_string())
            }
        };
        let retriever =
            MemoryRetriever { memory: memory.memory.clone(), embedder: memory.embedder.clone(), tenant: tenant.into() };
        let agent = Arc::new(Agent { model, retriever, tools, budget });
        spawn_keep_alive(Arc::downgrade(&agent));
        Ok(LocalAgent { agent, memory, work_log })
    }

    /// Why `run_python` is unavailable (no container engine), if it is.
    pub fn tool_problem(&self) -> Option<&str> {
        match &self.agent.tools {
            SandboxTools::Ready(_) => None,
            SandboxTools::Unavailable(why) => Some(why),
        }
    }

    /// An executor for the limb's claim loop, running on `runtime`.
    pub fn executor(
        &self,
        runtime: tokio::runtime::Handle,
    ) -> AgentExecutor<ChatBackend, MemoryRetriever, SandboxTools> {
        AgentExecutor { agent: self.agent.clone(), runtime, work_log: self.work_log.clone() }
    }

    /// Use the threads, offload and keep-alive the governor decided, from the next task on.
    pub fn follow(&self, decision: &crate::governor::Decision) {
        self.followed().follow(decision);
    }

    /// A handle that follows decisions, for a task that outlives this borrow.
    pub fn followed(&self) -> Follower {
        Follower(self.agent.clone())
    }

    /// The local chat model, `None` when chat goes to a remote server.
    pub fn local_model(&self) -> Option<&LocalChat> {
        match &self.agent.model {
            ChatBackend::Local(local) => Some(local),
            ChatBackend::Remote(_) => None,
        }
    }

    /// What this machine gave: the tasks answered here, the model's tokens and time (this week, all time).
    pub fn given(&self) -> Given {
        self.work_log.given()
    }

    /// The memory the agent retrieves from (to ingest into, for one).
    pub fn memory(&self) -> &LocalMemory {
        &self.memory
    }

    pub async fn close(self) -> Result<(), heiwa_memory::MemoryError> {
        if let SandboxTools::Ready(pool) = &self.agent.tools {
            pool.close().await;
        }
        self.memory.close().await
    }
}

/// Applies the governor's decisions to the agent's local model.
pub struct Follower(Arc<LocalAgentParts>);

impl Follower {
    pub fn follow(&self, decision: &crate::governor::Decision) {
        if let ChatBackend::Local(local) = &self.0.model {
            local.follow(decision);
        }
    }
}

/// Looks every few seconds whether the local model has idled past its
/// keep-alive, until the agent is gone.
fn spawn_keep_alive(agent: std::sync::Weak<LocalAgentParts>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEEP_ALIVE_TICK);
        loop {
            tick.tick().await;
            let Some(agent) = agent.upgrade() else { return };
            if let ChatBackend::Local(local) = &agent.model {
                local.unload_if_idle();
            }
        }
    });
}

/// How often the keep-alive is checked: a model stays at most this much past it.
const KEEP_ALIVE_TICK: Duration = Duration::from_secs(2);

/// Answers claimed tasks with the agent; the summary payload goes to the hub.
pub struct AgentExecutor<M, R, T> {
    agent: Arc<Agent<M, R, T>>,
    runtime: tokio::runtime::Handle,
    /// Each task answered is counted here.
    work_log: Arc<WorkLog>,
}

impl<M: Model + 'static, R: Retriever + 'static, T: Tools + 'static> Executor for AgentExecutor<M, R, T> {
    fn execute(&self, task_id: u64, payload: &str, model: Option<&Path>) -> Result<Output, TaskFailure> {
        let answered = LocalChat::pinned(model, || self.answer(task_id, payload));
        if answered.is_ok() {
            self.work_log.task_done();
        }
        answered
    }
}

impl<M: Model + 'static, R: Retriever + 'static, T: Tools + 'static> AgentExecutor<M, R, T> {
    fn answer(&self, task_id: u64, payload: &str) -> Result<Output, TaskFailure> {
        let question = match Work::parse(payload)? {
            Work::Ask(question) => question,
            plain => {
                let summary = self.agent.model.plain_work(&plain)?;
                tracing::info!(task_id, "answered plain model work");
                return Ok(Output { summary, evidence: self.agent.model.made_by() });
            }
        };
        // The claim loop calls this on a blocking thread, where block_on is allowed.
        let answer = self.runtime.block_on(self.agent.answer(question))?;
        tracing::info!(task_id, steps = answer.steps, tool_calls = answer.tool_uses.len(), "answered");
        let hash = |text: &str| heiwa_provenance::sha256_hex(text.as_bytes());
        let evidence = Evidence {
            chunks: answer.citations.iter().map(|c| hash(&c.content)).collect(),
            tool_code: answer.tool_uses.iter().map(|t| hash(&t.code)).collect(),
            ..self.agent.model.made_by()
        };
        Ok(Output { summary: summary_payload(&answer, MAX_SUMMARY_BYTES), evidence })
    }
}

impl Model for RemoteClient {
    type Error = RemoteError;

    async fn chat(&self, messages: &[Message], max_tokens: usize) -> Result<String, RemoteError> {
        RemoteClient::chat(self, messages, max_tokens).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_pinned_to_a_fetched_model_answers_with_it_on_its_own_thread_only() {
        let dir = tempfile::tempdir().unwrap();
        let (own, fetched) = (dir.path().join("own.gguf"), dir.path().join("fetched.gguf"));
        std::fs::write(&own, b"own weights").unwrap();
        std::fs::write(&fetched, b"fetched weights").unwrap();
        let chat = ChatBackend::Local(Box::new(LocalChat::new(own.clone(), chat_options()).unwrap()));
        let ChatBackend::Local(local) = &chat else { unreachable!() };
        let made_by = || chat.made_by();
        let (inside, elsewhere) = LocalChat::pinned(Some(&fetched), || {
            let elsewhere = std::thread::scope(|s| s.spawn(|| local.model_path()).join().unwrap());
            (made_by(), elsewhere)
        });
        assert_eq!(inside.model, "fetched", "the signed result names the model the task ran on");
        assert_eq!(inside.model_sha256, heiwa_provenance::sha256_hex(b"fetched weights"));
        assert_eq!(elsewhere, own, "another task's thread keeps the limb's own model");
        assert_eq!(local.model_path(), own, "the pin ends with the task");
        assert_eq!(LocalChat::pinned(None, || made_by().model), "own");
    }
}
