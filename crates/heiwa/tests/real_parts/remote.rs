//! The remote OpenAI-compatible backend against a real one: another limb's
//! `heiwa serve` (real models) on loopback; and the agent using it.

use super::serve::serve;
use heiwa_inference::remote::{RemoteClient, RemoteError, RemoteOptions};
use limb_core::agent::Message;
use std::time::Duration;

fn options(base_url: &str, key: &str, model: &str) -> RemoteOptions {
    RemoteOptions {
        base_url: base_url.into(),
        api_key: Some(key.into()),
        model: model.into(),
        timeout: Duration::from_secs(60),
        attempts: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streaming_and_embeddings_through_another_limbs_api_with_clear_errors() {
    let served = serve(8);
    let chat_id = parts_id(&super::parts().chat_model().unwrap());
    let embed_id = parts_id(&super::parts().embed_model);
    let chat = RemoteClient::new(options(&served.base_url, &served.key, &chat_id));
    let messages = [Message::new("user", "Name three primary colours, comma separated.")];

    let whole = chat.chat(&messages, 24).await.unwrap();
    let mut pieces = Vec::new();
    let streamed = chat.chat_stream(&messages, 24, &mut |p| pieces.push(p.to_string())).await.unwrap();
    assert!(!whole.is_empty());
    assert_eq!(streamed, whole, "greedy: streamed and whole agree");
    assert!(pieces.len() > 1 && pieces.concat() == streamed, "{pieces:?}");

    let embedder = RemoteClient::new(options(&served.base_url, &served.key, &embed_id));
    let vectors = embedder.embed(&["a cat", "a dog", "a car"]).await.unwrap();
    assert_eq!(vectors.iter().map(Vec::len).collect::<Vec<_>>(), [384, 384, 384]);

    // A refusal is not retried and carries the server's message.
    let started = std::time::Instant::now();
    let wrong_key = RemoteClient::new(options(&served.base_url, "wrong", &chat_id));
    match wrong_key.chat(&messages, 8).await {
        Err(RemoteError::Refused { status: 401, message, .. }) => assert!(message.contains("API key"), "{message}"),
        other => panic!("{other:?}"),
    }
    match RemoteClient::new(options(&served.base_url, &served.key, "no-such-model")).chat(&messages, 8).await {
        Err(RemoteError::Refused { status: 404, message, .. }) => {
            assert!(message.contains("no-such-model"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "no retries for refusals");

    // Nothing listening: retried, then a clear error. (A closed loopback port.)
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nowhere = RemoteClient::new(options(&format!("http://{closed}/v1"), "k", &chat_id));
    match nowhere.chat(&messages, 8).await {
        Err(RemoteError::Unreachable { attempts: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
}

fn parts_id(path: &std::path::Path) -> String {
    heiwa_serve::model_id(path)
}

#[test]
fn heiwa_ask_answers_with_a_remote_model() {
    let served = serve(8);
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args([
            "ask",
            "What is 17 * 23?",
            "--remote-url",
            &served.base_url,
            "--remote-model",
            &parts_id(&super::parts().chat_model().unwrap()),
        ])
        .env("HEIWA_REMOTE_KEY", &served.key)
        .env("HEIWA_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("run_python") && stdout.contains("391"),
        "the remote model drove the sandboxed tool: {stdout}"
    );
}
