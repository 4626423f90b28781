//! `heiwa models pull` against a real HTTP server: Debian's nginx on
//! loopback serving a real GGUF model (the embedding model, 87 MiB), as a
//! mirror would. Killed mid-file, it resumes; a flipped byte is refused and
//! nothing is installed; 404 and 403 are clear; a redirect chain is
//! followed; two pulls at once make one download; a file that does not fit
//! the disk (a 64 MiB tmpfs) is refused before the first byte. A server that
//! stops sending is a stall (a socket of the test's own that sends headers
//! and a few bytes, then nothing: nginx cannot be made to hang).

use super::parts;
use heiwa_testkit::nginx::Nginx;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn heiwa(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heiwa"));
    command.args(args).env("HEIWA_DATA_DIR", data).env_remove("HF_TOKEN").env_remove("HF_ENDPOINT");
    command
}

fn run(data: &Path, args: &[&str]) -> Output {
    heiwa(data, args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The number after `word` in `line`.
fn number_before(line: &str, word: &str) -> u64 {
    let head = &line[..line.find(word).unwrap_or_else(|| panic!("{word:?} in {line:?}"))];
    head.trim_end().rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn models_in(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("models"))
        .map(|dir| dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    // The store's own files (downloads in progress, the choice of default) are not models.
    names.retain(|n| !n.starts_with('.') && n != "default");
    names.sort();
    names
}

#[test]
fn a_model_pull_resumes_verifies_and_refuses_clearly() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let model = "minilm.gguf";
    std::fs::copy(&parts.embed_model, served.join(model)).unwrap();
    let (size, sha256) = heiwa_fetch::hash_file(&served.join(model)).unwrap();
    // The same file with one byte flipped, past its header (it still parses as GGUF).
    let mut flipped = std::fs::read(served.join(model)).unwrap();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(served.join("flipped.gguf"), flipped).unwrap();
    let server = Nginx::serve(dir.path(), &served);
    let url = |path: &str| server.url(path);

    // Killed mid-file (SIGKILL, at 4 MiB/s), then pulled again: it resumes.
    let data = dir.path().join("limb");
    let mut first = heiwa(&data, &["models", "pull", &url(&format!("slow/{model}")), "--sha256", &sha256])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = data.join("models/.downloads").join(format!("{model}.partial"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 12 << 20 {
        assert!(Instant::now() < deadline, "the slow pull got nowhere");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= 12 << 20 && kept < size, "a partial file stays: {kept}");
    assert!(models_in(&data).is_empty(), "nothing half-written is a model");
    let out = run(&data, &["models", "pull", &url(&format!("m/{model}")), "--sha256", &sha256]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let received = number_before(&said, "bytes received");
    assert_eq!(received, size - kept, "only the rest is fetched: {said}");
    assert!(said.contains(&sha256) && said.contains("checked"), "{said}");
    assert_eq!(models_in(&data), [model]);
    assert!(said.contains("it answers tasks (the default model)"), "the first model answers tasks: {said}");
    assert_eq!(std::fs::read_to_string(data.join("models/default")).unwrap(), model.trim_end_matches(".gguf"));
    assert_eq!(heiwa_fetch::hash_file(&data.join("models").join(model)).unwrap(), (size, sha256.clone()));
    let again = run(&data, &["models", "pull", &url(&format!("m/{model}"))]);
    assert!(text(&again).contains("already a model here"), "{}", text(&again));
    // A file of that name is checked when a hash is asked for: another file is not taken for it.
    let other_hash = "0".repeat(64);
    let refused = run(&data, &["models", "pull", &url(&format!("m/{model}")), "--sha256", &other_hash]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains(&format!("is another file (SHA-256 {sha256}, not {other_hash})")),
        "{}",
        text(&refused)
    );

    // A donor's bandwidth cap: the same file from the full-speed location, read at 40 MiB/s at most.
    let capped = dir.path().join("capped");
    let started = Instant::now();
    let out =
        run(&capped, &["models", "pull", &url(&format!("m/{model}")), "--sha256", &sha256, "--max-mib-per-s", "40"]);
    assert!(out.status.success(), "{}", text(&out));
    let least = Duration::from_secs_f64(0.9 * size as f64 / f64::from(40 << 20));
    assert!(
        started.elapsed() >= least,
        "{size} bytes at 40 MiB/s take at least {least:?}, not {:?}",
        started.elapsed()
    );

    // One flipped byte: refused, deleted, nothing installed.
    let other = dir.path().join("other");
    let out = run(&other, &["models", "pull", &url("m/flipped.gguf"), "--sha256", &sha256, "--name", "x.gguf"]);
    let said = text(&out);
    assert!(!out.status.success() && said.contains("not the expected") && said.contains("deleted"), "{said}");
    assert!(models_in(&other).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(other.join("models/.downloads")).unwrap().flatten().collect();
    assert!(leftovers.iter().all(|e| e.file_name().to_string_lossy().ends_with(".lock")), "{leftovers:?}");

    // 404 and 403 say what they mean; a bad source is named.
    let out = run(&other, &["models", "pull", &url("m/nothing.gguf")]);
    assert!(
        !out.status.success() && text(&out).contains("404") && text(&out).contains("no such file"),
        "{}",
        text(&out)
    );
    let out = run(&other, &["models", "pull", &url("deny/minilm.gguf")]);
    assert!(!out.status.success() && text(&out).contains("403") && text(&out).contains("token"), "{}", text(&out));
    let out = run(&other, &["models", "pull", "hf:only-an-owner"]);
    assert!(!out.status.success() && text(&out).contains("hf:OWNER/REPO/FILE"), "{}", text(&out));

    // hf: references go to the mirror HF_ENDPOINT names, through a redirect chain.
    let mirror = dir.path().join("mirror");
    let out = heiwa(&mirror, &["models", "pull", &format!("hf:owner/repo/{model}@v1"), "--sha256", &sha256])
        .env("HF_ENDPOINT", url("hf"))
        .output()
        .unwrap();
    assert!(text(&out).contains("/hf/owner/repo/resolve/v1/minilm.gguf"), "the mirror's URL: {}", text(&out));
    let out = run(&mirror, &["models", "pull", &url(&format!("r1/{model}")), "--sha256", &sha256]);
    assert!(out.status.success(), "a redirect chain is followed: {}", text(&out));
    assert_eq!(models_in(&mirror), [model]);

    // Two pulls of one model at once: one download, both succeed.
    let twice = dir.path().join("twice");
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            heiwa(&twice, &["models", "pull", &url(&format!("slow/{model}")), "--sha256", &sha256])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let said: Vec<String> = pulls.into_iter().map(|p| text(&p.wait_with_output().unwrap())).collect();
    let total: u64 =
        said.iter().map(|s| if s.contains("bytes received") { number_before(s, "bytes received") } else { 0 }).sum();
    assert_eq!(total, size, "the file crossed the network once: {said:?}");
    assert!(said.iter().any(|s| s.contains("already a model here")), "{said:?}");
    assert_eq!(models_in(&twice), [model]);

    // Not enough space: refused before the first byte, nothing left behind.
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"]).arg(&small).status().unwrap();
    assert!(mounted.success(), "a 64 MiB tmpfs for the full-disk case (the tests run as root)");
    let out = run(&small, &["models", "pull", &url(&format!("m/{model}"))]);
    let said = text(&out);
    let _ = Command::new("umount").arg(&small).status();
    assert!(!out.status.success() && said.contains("MiB free") && said.contains("nothing was downloaded"), "{said}");
    drop(server);
}

/// A server that answers with a length and a few bytes, then sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_sending_is_a_stall_and_what_arrived_is_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nETag: \"v1\"\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&[7u8; 1000]).await;
            held.push(socket); // open, silent
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let url = format!("http://127.0.0.1:{port}/stuck.gguf");
    let out =
        tokio::task::spawn_blocking(move || run(&data, &["models", "pull", &url, "--stall-secs", "1"])).await.unwrap();
    let said = text(&out);
    assert!(!out.status.success() && said.contains("no byte for 1 s") && said.contains("resume"), "{said}");
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2, "a stall is retried");
    let partial: PathBuf = dir.path().join("models/.downloads/stuck.gguf.partial");
    assert_eq!(std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) % 1000, 0, "what arrived is kept");
    assert!(std::fs::metadata(&partial).is_ok_and(|m| m.len() >= 1000));
}

/// The catalogue's pinned size and SHA-256 are those of the copy the tests
/// use (the same file the clean-root install downloads through its mirror).
#[test]
fn the_catalogue_pins_the_file_the_tests_use() {
    let path = parts().chat_model().unwrap();
    let entry = limb_core::models::CATALOGUE
        .iter()
        .find(|e| Some(std::ffi::OsStr::new(e.file)) == path.file_name())
        .expect("the test chat model is in the catalogue");
    assert_eq!(heiwa_fetch::hash_file(&path).unwrap(), (entry.size_bytes, entry.sha256.to_string()));
}
