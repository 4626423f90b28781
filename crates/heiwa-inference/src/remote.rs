//! A remote OpenAI-compatible backend (vLLM, LiteLLM, llama.cpp's server,
//! another limb's `heiwa serve`): chat, streaming chat and embeddings, with a
//! timeout per request, retries with backoff on transient failures (no
//! connection, timeouts, 429, 5xx), and the server's own message otherwise.

use crate::Message;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{url} could not be reached after {attempts} attempts: {reason}")]
    Unreachable { url: String, attempts: u32, reason: String },
    #[error("{url} answered {status}: {message}")]
    Refused { url: String, status: u16, message: String },
    #[error("{url} answered with something that is not an OpenAI response: {reason}")]
    Malformed { url: String, reason: String },
}

#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// e.g. `http://127.0.0.1:8000/v1`
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub timeout: Duration,
    /// Attempts for a transient failure, the first included.
    pub attempts: u32,
}

pub struct RemoteClient {
    options: RemoteOptions,
    http: reqwest::Client,
}

/// The message of an OpenAI-shaped error body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

impl RemoteClient {
    /// The model this client asks the server for.
    pub fn model(&self) -> &str {
        &self.options.model
    }

    pub fn new(options: RemoteOptions) -> Self {
        let http = reqwest::Client::builder().timeout(options.timeout).build().expect("a TLS backend is available");
        RemoteClient { options, http }
    }

    /// POST `body` to `path`, retrying transient failures; the successful response.
    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response, RemoteError> {
        let url = format!("{}{path}", self.options.base_url.trim_end_matches('/'));
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=self.options.attempts.max(1) {
            let mut request = self.http.post(&url).json(body);
            if let Some(key) = &self.options.api_key {
                request = request.bearer_auth(key);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let message = error_message(&response.text().await.unwrap_or_default());
                    if !(status.as_u16() == 429 || status.is_server_error()) {
                        return Err(RemoteError::Refused { url, status: status.as_u16(), message });
                    }
                    last = format!("{status}: {message}");
                }
                Err(e) => last = e.to_string(),
            }
            if attempt < self.options.attempts {
                tokio::time::sleep(delay.mul_f64(0.5 + fastrand::f64())).await;
                delay *= 2;
            }
        }
        Err(RemoteError::Unreachable { url, attempts: self.options.attempts.max(1), reason: last })
    }

    fn chat_body(&self, messages: &[Message], max_tokens: usize, stream: bool) -> Value {
        let messages: Vec<Value> = messages.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect();
        json!({ "model": self.options.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": stream })
    }

    pub async fn chat(&self, messages: &[Message], max_tokens: usize) -> Result<String, RemoteError> {
        let url = format!("{}/chat/completions", self.options.base_url);
        let response = self.post("/chat/completions", &self.chat_body(messages, max_tokens, false)).await?;
        let value: Value =
            response.json().await.map_err(|e| RemoteError::Malformed { url: url.clone(), reason: e.to_string() })?;
        value["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RemoteError::Malformed { url, reason: "no choices[0].message.content".into() })
    }

    /// Streamed chat: `on_text` gets each piece as it arrives; returns the whole text.
    pub async fn chat_stream(
        &self,
        messages: &[Message],
        max_tokens: usize,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, RemoteError> {
        let url = format!("{}/chat/completions", self.options.base_url);
        let malformed = |reason: String| RemoteError::Malformed { url: url.clone(), reason };
        let mut response = self.post("/chat/completions", &self.chat_body(messages, max_tokens, true)).await?;
        let (mut buffer, mut text) = (String::new(), String::new());
        while let Some(bytes) = response.chunk().await.map_err(|e| malformed(e.to_string()))? {
            buffer.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim) else { continue };
                if data == "[DONE]" {
                    return Ok(text);
                }
                let value: Value = serde_json::from_str(data).map_err(|e| malformed(e.to_string()))?;
                if let Some(message) = value["error"]["message"].as_str() {
                    return Err(malformed(format!("the stream failed: {message}")));
                }
                if let Some(piece) = value["choices"][0]["delta"]["content"].as_str() {
                    on_text(piece);
                    text.push_str(piece);
                }
            }
        }
        Err(malformed("the stream ended without [DONE]".into()))
    }

    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, RemoteError> {
        let url = format!("{}/embeddings", self.options.base_url);
        let response = self.post("/embeddings", &json!({ "model": self.options.model, "input": texts })).await?;
        let value: Value =
            response.json().await.map_err(|e| RemoteError::Malformed { url: url.clone(), reason: e.to_string() })?;
        let mut data: Vec<(usize, Vec<f32>)> = value["data"]
            .as_array()
            .ok_or_else(|| RemoteError::Malformed { url: url.clone(), reason: "no data".into() })?
            .iter()
            .map(|d| {
                let index = d["index"].as_u64().unwrap_or(0) as usize;
                let vector = d["embedding"]
                    .as_array()
                    .map(|v| v.iter().filter_map(Value::as_f64).map(|x| x as f32).collect())
                    .unwrap_or_default();
                (index, vector)
            })
            .collect();
        data.sort_by_key(|(index, _)| *index);
        Ok(data.into_iter().map(|(_, v)| v).collect())
    }
}
