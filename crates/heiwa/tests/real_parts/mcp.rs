//! `heiwa mcp` driven by the official MCP Python SDK (`mcp`, from PyPI; set up
//! by scripts/setup and named by HEIWA_TEST_PYTHON), over stdio and over
//! streamable HTTP on loopback; the tool runs in the real sandbox.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn test_python() -> String {
    std::env::var("HEIWA_TEST_PYTHON")
        .expect("HEIWA_TEST_PYTHON names the venv with the MCP SDK (scripts/setup makes it)")
}

fn client(mode: &str, target: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/mcp_client.py");
    let out = Command::new(test_python()).args([script, mode, target]).output().expect("the MCP client runs");
    assert!(out.status.success(), "MCP client over {mode} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn assert_one_working_tool(seen: &serde_json::Value) {
    assert_eq!(seen["tools"], serde_json::json!(["run_python"]), "exactly one tool: {seen}");
    assert_eq!(seen["schema"]["required"], serde_json::json!(["code"]));
    assert_eq!(seen["ok"]["is_error"], false);
    let ran: serde_json::Value = serde_json::from_str(seen["ok"]["text"][0].as_str().unwrap()).unwrap();
    assert_eq!((ran["stdout"].as_str(), ran["exit_code"].as_i64()), (Some("42\n"), Some(0)), "{seen}");
    let failed: serde_json::Value = serde_json::from_str(seen["failing"]["text"][0].as_str().unwrap()).unwrap();
    assert_eq!((seen["failing"]["is_error"].as_bool(), failed["exit_code"].as_i64()), (Some(true), Some(3)), "{seen}");
}

#[test]
fn the_mcp_python_sdk_lists_one_tool_and_runs_code_over_stdio() {
    let seen = client("stdio", env!("CARGO_BIN_EXE_heiwa"));
    assert_one_working_tool(&seen);
}

#[test]
fn the_mcp_python_sdk_lists_one_tool_and_runs_code_over_http_on_loopback() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["mcp", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(server.stderr.take().unwrap()).read_line(&mut banner).unwrap();
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {banner:?}"));
    let url = url.trim_end_matches(';');
    let seen = client("http", url);
    // SIGTERM: the server stops gracefully and removes its warm container.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(server.wait().unwrap().success(), "a clean exit on SIGTERM");
    assert_one_working_tool(&seen);
}
