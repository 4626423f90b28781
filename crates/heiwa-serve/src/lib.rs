//! `heiwa serve`: this limb's models behind an OpenAI-compatible API on
//! loopback (`/v1/models`, `/v1/chat/completions` with SSE streaming,
//! `/v1/embeddings`), guarded by a bearer key. Errors use OpenAI's JSON shape
//! and status codes, so any OpenAI client (Jan, LM Studio users' tools, the
//! official SDKs) can use it.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heiwa_inference::{
    json_schema_grammar, Batcher, ChatModel, Constraint, Embedder, FinishReason, GenerateOptions, InferenceError,
    Sampling,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// What the server serves.
pub struct Models {
    pub chat: Arc<ChatModel>,
    pub chat_id: String,
    pub embedder: Embedder,
    pub embed_id: String,
}

pub use heiwa_inference::models::model_id;

pub struct ServeState {
    models: Models,
    /// The chat model's sequences, decoded together.
    chat: Batcher,
    key: String,
    /// Requests admitted (running in a slot, or waiting for one or for the embedder).
    admitted: AtomicUsize,
    max_admitted: usize,
}

impl ServeState {
    /// Chat requests are decoded together, as many as the chat model was
    /// loaded for (`ModelOptions::sequences`); `max_admitted`: requests that
    /// may run or wait at once; more get 503.
    pub fn new(models: Models, key: String, max_admitted: usize) -> Result<Arc<Self>, InferenceError> {
        let chat = Batcher::start(models.chat.clone())?;
        Ok(Arc::new(ServeState { models, chat, key, admitted: AtomicUsize::new(0), max_admitted: max_admitted.max(1) }))
    }

    /// What the chat model's batches have done (slots in use, prefix reuse).
    pub fn batch_stats(&self) -> heiwa_inference::BatchStats {
        self.chat.stats()
    }
}

/// An error as OpenAI writes it: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
    /// The request field at fault, when there is one.
    param: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), kind, code, param: None }
    }
    fn about(self, param: &'static str) -> Self {
        ApiError { param: Some(param), ..self }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", None, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        match e {
            InferenceError::ContextOverflow { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("context_length_exceeded"),
                e.to_string(),
            ),
            InferenceError::Constraint(_) => Self::bad_request(e.to_string()).about("response_format"),
            other => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, other.to_string()),
        }
    }
}

fn authorize(headers: &HeaderMap, state: &ServeState) -> Result<(), ApiError> {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time enough for a loopback key: compare every byte regardless.
    let matches = given.is_some_and(|g| {
        g.len() == state.key.len() && g.bytes().zip(state.key.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        ))
    }
}

fn body<T>(parsed: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    parsed.map(|Json(v)| v).map_err(|e| ApiError::bad_request(format!("invalid request body: {}", e.body_text())))
}

fn check_model(requested: &str, served: &str) -> Result<(), ApiError> {
    if requested == served {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!("The model `{requested}` does not exist here; see /v1/models."),
        ))
    }
}

/// A place in line for the model, or 503 when the line is full.
struct Admission(Arc<ServeState>);

impl Admission {
    fn take(state: &Arc<ServeState>) -> Result<Self, ApiError> {
        if state.admitted.fetch_add(1, Ordering::SeqCst) >= state.max_admitted {
            state.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("server_busy"),
                "The model is busy; retry shortly.",
            ));
        }
        Ok(Admission(state.clone()))
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn list_models(State(state): State<Arc<ServeState>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&headers, &state)?;
    let model = |id: &str| json!({ "id": id, "object": "model", "created": 0, "owned_by": "heiwa" });
    Ok(Json(json!({ "object": "list", "data": [model(&state.models.chat_id), model(&state.models.embed_id)] })))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    content: Option<Content>,
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i32>,
    seed: Option<u32>,
    stop: Option<OneOrMany>,
    response_format: Option<ResponseFormat>,
}

/// OpenAI's `response_format`: free text, any JSON object, or JSON a schema accepts.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Deserialize)]
struct JsonSchemaFormat {
    schema: Option<Value>,
}

/// The grammar a response format asks for: llama.cpp then samples only
/// tokens that keep the text valid (so even a small model emits valid JSON).
fn constraint(format: Option<ResponseFormat>) -> Result<Constraint, ApiError> {
    let schema = match format {
        None | Some(ResponseFormat::Text) => return Ok(Constraint::Free),
        Some(ResponseFormat::JsonObject) => json!({ "type": "object" }),
        Some(ResponseFormat::JsonSchema { json_schema }) => json_schema.schema.ok_or_else(|| {
            ApiError::bad_request("response_format.json_schema.schema is required").about("response_format")
        })?,
    };
    json_schema_grammar(&schema)
        .map(Constraint::Grammar)
        .map_err(|e| ApiError::bad_request(format!("response_format: {e}")).about("response_format"))
}

fn message_text(content: Option<Content>) -> Result<String, ApiError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(text)) => Ok(text),
        Some(Content::Parts(parts)) => parts
            .iter()
            .map(|part| match (part["type"].as_str(), part["text"].as_str()) {
                (Some("text"), Some(text)) => Ok(text),
                _ => Err(ApiError::bad_request("only text content parts are supported")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.concat()),
    }
}

/// OpenAI's defaults: temperature 1 and top_p 1; temperature 0 means greedy.
fn sampling(request: &ChatRequest) -> Sampling {
    match request.temperature.unwrap_or(1.0) {
        t if t <= 0.0 => Sampling::Greedy,
        temperature => Sampling::Random {
            temperature,
            top_p: request.top_p.unwrap_or(1.0),
            top_k: request.top_k.unwrap_or(40),
            seed: request.seed.unwrap_or_else(|| fastrand::u32(..)),
        },
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn chat_completions(
    State(state): State<Arc<ServeState>>,
    headers: HeaderMap,
    parsed: Result<Json<ChatRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &state)?;
    let mut request = body(parsed)?;
    check_model(&request.model, &state.models.chat_id)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty"));
    }
    let sampling = sampling(&request);
    let constraint = constraint(request.response_format.take())?;
    let (roles, texts): (Vec<String>, Vec<String>) = request
        .messages
        .into_iter()
        .map(|m| message_text(m.content).map(|text| (m.role, text)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let pairs: Vec<(&str, &str)> = roles.iter().map(String::as_str).zip(texts.iter().map(String::as_str)).collect();
    let chat = &state.models.chat;
    let prompt = chat.format_chat(&pairs)?;
    let prompt_tokens = chat.count_tokens(&prompt);
    let room = (chat.context_len() as usize).saturating_sub(prompt_tokens);
    let max_tokens = request.max_completion_tokens.or(request.max_tokens).unwrap_or(room.min(1024));
    if prompt_tokens.saturating_add(max_tokens) > chat.context_len() as usize {
        return Err(InferenceError::ContextOverflow {
            prompt: prompt_tokens,
            requested: max_tokens,
            context: chat.context_len(),
        }
        .into());
    }
    let stop = request.stop.map(OneOrMany::into_vec).unwrap_or_default();
    let options = GenerateOptions { max_tokens, stop, sampling, constraint };
    let id = format!("chatcmpl-{:016x}", fastrand::u64(..));
    let (created, model) = (unix_now(), state.models.chat_id.clone());
    // Held until the answer is done: running or waiting, it counts against the bound.
    let admission = Admission::take(&state)?;

    if !request.stream {
        let running = state.clone();
        let completion = tokio::task::spawn_blocking(move || {
            let _admission = admission;
            running.chat.generate(&prompt, &options, &mut |_| true)
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, e.to_string()))??;
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": completion.text }, "finish_reason": completion.finish }],
            "usage": { "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.generated_tokens,
                       "total_tokens": completion.prompt_tokens + completion.generated_tokens },
        }))
        .into_response());
    }

    // Streaming: the generation runs on a blocking thread and sends pieces; a
    // client that goes away closes the channel, which stops the generation.
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(64);
    let chunk = move |delta: Value, finish: Option<FinishReason>| {
        json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    };
    let running = state.clone();
    tokio::task::spawn_blocking(move || {
        let _admission = admission;
        if tx.blocking_send(chunk(json!({ "role": "assistant", "content": "" }), None)).is_err() {
            return;
        }
        let outcome = running.chat.generate(&prompt, &options, &mut |piece| {
            tx.blocking_send(chunk(json!({ "content": piece }), None)).is_ok()
        });
        let last = match outcome {
            Ok(completion) => chunk(json!({}), Some(completion.finish)),
            // Headers are sent: an error can only travel in the stream.
            Err(e) => {
                json!({ "error": { "message": e.to_string(), "type": "server_error", "param": null, "code": null } })
            }
        };
        let _ = tx.blocking_send(last);
    });
    let events = futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(value) => {
                Some((Ok::<_, std::convert::Infallible>(Event::default().data(value.to_string())), Some(rx)))
            }
            None => Some((Ok(Event::default().data("[DONE]")), None)),
        }
    });
    Ok(Sse::new(events).into_response())
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: OneOrMany,
}

async fn embeddings(
    State(state): State<Arc<ServeState>>,
    headers: HeaderMap,
    parsed: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&headers, &state)?;
    let request = body(parsed)?;
    check_model(&request.model, &state.models.embed_id)?;
    let inputs = request.input.into_vec();
    if inputs.is_empty() || inputs.iter().any(String::is_empty) {
        return Err(ApiError::bad_request("input must be a non-empty string or array of non-empty strings"));
    }
    let admission = Admission::take(&state)?;
    let running = state.clone();
    let vectors = tokio::task::spawn_blocking(move || {
        let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
        running
            .models
            .embedder
            .embed_whole(&texts)
            .map(|v| (v, inputs.iter().map(|t| t.split_whitespace().count()).sum::<usize>()))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, e.to_string()))?;
    drop(admission);
    let (vectors, words) = vectors?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| json!({ "object": "embedding", "index": index, "embedding": embedding }))
        .collect();
    Ok(Json(
        json!({ "object": "list", "data": data, "model": state.models.embed_id, "usage": { "prompt_tokens": words, "total_tokens": words } }),
    ))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        "Unknown endpoint; this server has /v1/models, /v1/chat/completions and /v1/embeddings.",
    )
}

pub fn router(state: Arc<ServeState>) -> Router {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .fallback(not_found)
        .with_state(state)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServeState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// The API key in `path`, created (random, 0600) on first use.
pub fn api_key(path: &Path) -> std::io::Result<String> {
    if let Ok(key) = std::fs::read_to_string(path) {
        if !key.trim().is_empty() {
            return Ok(key.trim().to_string());
        }
    }
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let key = format!("heiwa-{}", hex::encode(bytes));
    heiwa_config::write_secret(path, &key)?;
    Ok(key)
}
