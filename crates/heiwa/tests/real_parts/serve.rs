//! `heiwa serve` with the real models, driven by the official `openai` Python
//! client (from PyPI, in the venv HEIWA_TEST_PYTHON names) and by raw HTTP for
//! bad input and load. Loopback only.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub(super) struct Served {
    child: Child,
    pub(super) base_url: String,
    pub(super) key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn serve(max_waiting: usize) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["serve", "--listen", "127.0.0.1:0", "--max-waiting", &max_waiting.to_string()])
        .env("HEIWA_DATA_DIR", dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut banner).unwrap();
    let base_url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{banner:?}"))
        .to_string();
    let key_file = dir.path().join("api.key");
    assert!(banner.contains(&key_file.display().to_string()), "the banner names the key file: {banner}");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!banner.contains(&key), "the key itself is never printed");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    Served { child, base_url, key, _dir: dir }
}

/// Run `tests/clients/SCRIPT` (the official clients' venv) against `served`;
/// what it saw, as the one JSON object it prints.
fn client_against(served: &Served, script: &str) -> serde_json::Value {
    let python = std::env::var("HEIWA_TEST_PYTHON")
        .expect("HEIWA_TEST_PYTHON names the venv with the openai client (scripts/setup makes it)");
    let script = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python).args([&script, &served.base_url, &served.key]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_openai_python_client_lists_chats_streams_and_embeds_and_gets_openai_errors() {
    let seen = client_against(&serve(8), "openai_client.py");

    assert_eq!(seen["models"].as_array().unwrap().len(), 2, "{seen}");
    let whole = seen["whole"]["text"].as_str().unwrap();
    assert!(!whole.is_empty());
    assert_eq!(seen["streamed"]["text"], seen["whole"]["text"], "greedy streaming and non-streaming agree: {seen}");
    assert!(seen["streamed"]["pieces"].as_u64().unwrap() > 1, "it really streamed: {seen}");
    assert_eq!((seen["whole"]["finish"].as_str(), seen["streamed"]["finish"].as_str()), (Some("stop"), Some("stop")));
    let stopped = seen["stopped"].as_str().unwrap();
    assert!(!stopped.contains(',') && whole.starts_with(stopped), "a stop sequence ends the text before it: {seen}");
    assert_eq!(seen["embeddings"], serde_json::json!([384, 384]));
    assert_eq!(
        seen["wrong_key"],
        serde_json::json!({"status": 401, "type": "AuthenticationError", "code": "invalid_api_key"})
    );
    assert_eq!(
        seen["unknown_model"],
        serde_json::json!({"status": 404, "type": "NotFoundError", "code": "model_not_found"})
    );
    assert_eq!(
        seen["too_long"],
        serde_json::json!({"status": 400, "type": "BadRequestError", "code": "context_length_exceeded"})
    );
}

#[test]
fn response_format_with_a_json_schema_gets_json_the_schema_validates_and_a_bad_schema_gets_a_400() {
    let seen = client_against(&serve(8), "structured_client.py");
    let answers = seen["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 20);
    let invalid: Vec<_> = answers.iter().filter(|a| a["valid"] != true).collect();
    assert!(invalid.is_empty(), "every greedy answer is JSON the schema validates: {invalid:?}");
    assert_eq!(seen["json_object"], "dict", "json_object gets a JSON object: {seen}");
    for bad in ["bad_schema", "no_schema"] {
        let error = &seen[bad];
        assert_eq!(
            (error["status"].as_u64(), error["type"].as_str(), error["param"].as_str()),
            (Some(400), Some("BadRequestError"), Some("response_format")),
            "{bad}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_openai_errors_and_eight_at_once_complete_or_get_a_clean_busy() {
    let served = serve(3);
    let http = reqwest::Client::new();
    let chat = format!("{}/chat/completions", served.base_url);
    let models: serde_json::Value = http
        .get(format!("{}/models", served.base_url))
        .bearer_auth(&served.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let model = models["data"][0]["id"].as_str().unwrap().to_string();

    let malformed = http
        .post(&chat)
        .bearer_auth(&served.key)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let empty = http
        .post(&chat)
        .bearer_auth(&served.key)
        .json(&serde_json::json!({"model": model, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
    let missing_key = http.post(&chat).json(&serde_json::json!({"model": model, "messages": []})).send().await.unwrap();
    assert_eq!(missing_key.status(), 401);
    let nowhere = http.get(format!("{}/engines", served.base_url)).bearer_auth(&served.key).send().await.unwrap();
    assert_eq!(nowhere.status(), 404);

    let request = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Count to five."}], "temperature": 0, "max_tokens": 16});
    let calls = (0..8).map(|_| {
        let (http, chat, request, key) = (http.clone(), chat.clone(), request.clone(), served.key.clone());
        tokio::spawn(async move {
            let response = http.post(&chat).bearer_auth(&key).json(&request).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        })
    });
    let outcomes: Vec<(u16, serde_json::Value)> =
        futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let done: Vec<&serde_json::Value> = outcomes.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
    let busy: Vec<&serde_json::Value> = outcomes.iter().filter(|(s, _)| *s == 503).map(|(_, b)| b).collect();
    assert_eq!(done.len() + busy.len(), 8, "only answers and clean busy errors: {outcomes:?}");
    assert!(done.len() >= 3, "the admitted ones complete: {outcomes:?}");
    assert!(!busy.is_empty(), "beyond --max-waiting 3, requests are turned away: {outcomes:?}");
    let first = &done[0]["choices"][0]["message"]["content"];
    assert!(done.iter().all(|b| &b["choices"][0]["message"]["content"] == first), "greedy answers agree under load");
    assert!(busy.iter().all(|b| b["error"]["code"] == "server_busy"), "{busy:?}");
}

/// `heiwa serve` and `heiwa mcp --http` both bind through this.
#[tokio::test]
async fn the_limbs_servers_refuse_to_listen_beyond_loopback() {
    // Refused before anything is bound: no socket is opened on that address.
    let err = heiwa_config::bind_loopback("0.0.0.0:0".parse().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("loopback only"), "{err}");
}
