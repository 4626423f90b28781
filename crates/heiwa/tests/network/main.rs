//! Across a real network: the hub and each limb on a host of its own — network
//! namespaces this test makes (`ip netns` + veth pairs, addresses in
//! 10.231.0.0/16 that exist only inside them) — and the limbs reaching the hub
//! only through nginx terminating TLS with a certificate from a CA the test
//! makes. Faults are real: `iptables` in a limb's namespace drops its packets
//! (at random, or all of them), processes are SIGKILLed. After each, every task
//! is done exactly once: one result row, none lost, none stuck.
//!
//! Needs root (namespaces, iptables), `ip`, `iptables`, `openssl`, `ss` and
//! nginx at `HEIWA_NGINX` (scripts/setup unpacks Debian's): a missing one fails
//! the test, it never skips.

mod net;

use net::{submit, tenant, Net, Proc, HUB_NAME, LEASE_SECS};
use std::time::{Duration, Instant};

#[test]
fn limbs_on_other_hosts_answer_through_tls_verify_it_and_listen_on_nothing() {
    let mut net = Net::new(3);
    net.start_hub();
    net.start_proxy();
    let invite = tenant(&net, 6);

    // A wrong CA, a name the certificate does not carry, plain ws: each a clear refusal, never a plain fallback.
    let mut wrong_ca = net.limb_with(1, &format!("https://{HUB_NAME}"), "other-ca.pem", &invite, &[]);
    let mut wrong_name = net.limb_with(2, "https://10.231.2.1", "ca.pem", &invite, &[]);
    let mut plain = net.limb_with(3, &format!("http://{HUB_NAME}"), "ca.pem", &invite, &[]);
    for (what, limb, words) in [
        ("a CA it does not trust", &mut wrong_ca, "certificate"),
        ("an address the certificate does not name", &mut wrong_name, "certificate"),
        ("plain http", &mut plain, "unencrypted"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !limb.exited() {
            assert!(Instant::now() < deadline, "a limb given {what} kept running: {:?}", limb.lines());
            std::thread::sleep(Duration::from_millis(100));
        }
        let said = limb.lines().join("\n");
        assert!(said.to_lowercase().contains(words), "{what}: {said}");
        assert_eq!(limb.count("ready"), 0, "{what}: {said}");
    }

    let limbs: Vec<Proc> = (1..=3).map(|n| net.start_limb(n, &invite)).collect();
    submit(&net, 0, 30);
    net.expect_all_done(30, Duration::from_secs(60));
    let executed: usize = limbs.iter().map(|l| l.count("executed")).sum();
    assert_eq!(executed, 30, "clean links: each task ran once");

    // Outbound only: nothing listens on a limb host beyond loopback.
    for n in 1..=3 {
        let listening = net.exec_ok(&format!("l{n}"), &["ss", "-ltnuH"]);
        for line in listening.lines() {
            let local = line.split_whitespace().nth(4).unwrap_or_default();
            assert!(
                local.starts_with("127.") || local.starts_with("[::1]") || local.starts_with("::1"),
                "limb host {n} listens beyond loopback: {line}"
            );
        }
    }
}

#[test]
fn lost_packets_a_partition_a_killed_hub_and_a_restarted_proxy_lose_nothing_and_do_nothing_twice() {
    let mut net = Net::new(3);
    net.start_hub();
    net.start_proxy();
    let invite = tenant(&net, 3);
    let mut limbs: Vec<Proc> = (1..=3).map(|n| net.start_limb(n, &invite)).collect();
    for n in 1..=3 {
        net.drop_packets(n, Some(0.05));
    }
    submit(&net, 0, 40);
    net.expect_all_done(40, Duration::from_secs(120));

    // Limb 1 cut off for longer than its lease: its work goes to the others.
    net.drop_packets(1, None);
    std::thread::sleep(Duration::from_secs(u64::from(LEASE_SECS) * 2 + 2));
    submit(&net, 40, 20);
    net.expect_all_done(60, Duration::from_secs(120));
    net.heal(1);
    net.drop_packets(1, Some(0.05));
    submit(&net, 60, 30);
    net.expect_all_done(90, Duration::from_secs(120));

    // The hub's server SIGKILLed and restarted; the proxy restarted.
    net.kill_in("hub", "spacetimedb-sta", "-9");
    net.hub.as_mut().unwrap().kill(nix::sys::signal::Signal::SIGTERM);
    net.start_hub();
    // The crash may have lost the last half second: send every task again under its key.
    submit(&net, 0, 90);
    submit(&net, 90, 10);
    net.proxy.as_mut().unwrap().kill(nix::sys::signal::Signal::SIGTERM);
    net.start_proxy();
    submit(&net, 100, 10);
    net.expect_all_done(110, Duration::from_secs(180));
    // The SDK 1.2 can panic on a connection's own message thread (a row it
    // does not know, after a link comes back); the limb counts that as a
    // disconnect and goes on. What must never happen is the limb going down.
    for limb in &mut limbs {
        assert!(!limb.exited(), "a limb ended: {:?}", limb.lines());
    }
    let sdk_panics: usize = limbs.iter().map(|l| l.count("thread '<unnamed>'")).sum();
    let reconnects: usize = limbs.iter().map(|l| l.count("reconnected")).sum();
    eprintln!(
        "network faults: 110 tasks, 110 done with one result each, 0 lost; {reconnects} reconnects, \
         {sdk_panics} SDK thread panics survived"
    );
}

#[test]
fn a_result_the_hub_never_heard_is_delivered_from_the_outbox_once_after_a_crash() {
    let mut net = Net::new(1);
    net.start_hub();
    net.start_proxy();
    let invite = tenant(&net, 1);
    // A long lease: the task is still this limb's when it comes back.
    let slow = ["--lease-secs", "60", "--work-ms", "3000"];
    let mut first = net.start_limb_with(1, &invite, &slow);
    submit(&net, 0, 1);
    first.wait_for("claimed", Duration::from_secs(30));
    // The link goes while it works: its result cannot reach the hub. Then it dies.
    net.drop_packets(1, None);
    first.wait_for("executed", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    first.kill(nix::sys::signal::Signal::SIGKILL);
    // nginx closes the dead limb's upstream after 5 s of silence; the new process connects after that.
    std::thread::sleep(Duration::from_secs(6));
    let outbox = limb_core::claim::Outbox::beside(&net.path("limb1").join("limb.token")).unwrap();
    assert_eq!(outbox.waiting().unwrap().len(), 1, "the finished result is on disk, waiting");
    let status = net.exec_ok(
        "l1",
        &[net::HEIWA, "limb", "status", "--token-file", &net.path("limb1").join("limb.token").display().to_string()],
    );
    assert!(status.contains("1 result waiting"), "{status}");
    assert_eq!(net.tasks().values().next().map(|t| t.0.clone()), Some("claimed".into()), "the hub never heard it");

    net.heal(1);
    let second = net.start_limb_with(1, &invite, &slow);
    net.expect_all_done(1, Duration::from_secs(30));
    second.wait_for("completed", Duration::from_secs(10));
    assert_eq!(first.count("executed") + second.count("executed"), 1, "delivered from the outbox, not run again");
    assert!(outbox.waiting().unwrap().is_empty(), "acknowledged: the outbox is empty");
}

#[test]
fn a_result_too_late_is_recorded_as_a_late_attempt_never_a_second_result() {
    let mut net = Net::new(2);
    net.start_hub();
    net.start_proxy();
    let invite = tenant(&net, 2);
    let slow = ["--work-ms", "2000"];
    let mut away = net.start_limb_with(1, &invite, &slow);
    submit(&net, 0, 1);
    away.wait_for("claimed", Duration::from_secs(30));
    // Limb 1 finishes while cut off, dies, and stays away past its 4 s lease: the task goes to limb 2.
    net.drop_packets(1, None);
    away.wait_for("executed", Duration::from_secs(30));
    away.kill(nix::sys::signal::Signal::SIGKILL);
    let other = net.start_limb(2, &invite);
    net.expect_all_done(1, Duration::from_secs(60));
    other.wait_for("completed", Duration::from_secs(10));

    // Back, limb 1 has its result in the outbox; the hub records it as late, and keeps limb 2's.
    net.heal(1);
    std::thread::sleep(Duration::from_secs(6)); // nginx lets go of the dead connection first
    let back = net.start_limb_with(1, &invite, &slow);
    back.wait_for("lost", Duration::from_secs(30));
    let shown: serde_json::Value = serde_json::from_str(&net.owner(&["task", "show", "1", "--json"])).unwrap();
    let winner = shown["result"]["limb_id"].as_u64();
    let late = shown["late_results"].as_array().cloned().unwrap_or_default();
    assert_eq!(late.len(), 1, "one late attempt: {shown:#}");
    assert_ne!(late[0]["limb_id"].as_u64(), winner, "the late one is limb 1's, the result limb 2's: {shown:#}");
    assert!(late[0]["summary"].as_str().is_some_and(|s| s.starts_with("received 6 bytes")), "{shown:#}");
    assert_eq!(net.tasks().len(), 1, "still one task, one result");
    let outbox = limb_core::claim::Outbox::beside(&net.path("limb1").join("limb.token")).unwrap();
    assert!(outbox.waiting().unwrap().is_empty(), "given to the hub as late, it leaves the outbox");
}

#[test]
fn a_copied_token_without_its_key_is_refused_and_a_whole_copy_takes_over_and_the_first_limb_stops() {
    let mut net = Net::new(2);
    net.start_hub();
    net.start_proxy();
    let invite = tenant(&net, 1);
    let mut first = net.start_limb(1, &invite);
    // Limb 1's token alone copied to host 2: without the limb's signing key the copy is refused.
    std::fs::create_dir_all(net.path("limb2")).unwrap();
    std::fs::copy(net.path("limb1").join("limb.token"), net.path("limb2").join("limb.token")).unwrap();
    let mut tokenless = net.limb_with(2, &format!("https://{HUB_NAME}"), "ca.pem", &invite, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tokenless.exited() {
        assert!(Instant::now() < deadline, "a copy without the key kept running: {:?}", tokenless.lines());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tokenless.lines().iter().any(|l| l.contains("another signing key")), "{:?}", tokenless.lines());
    assert!(!first.exited(), "the limb itself goes on: {:?}", first.lines());
    // The token and the key copied (the whole identity, as a stolen disk would give it).
    std::fs::remove_file(net.path("limb2").join("limb.key")).unwrap();
    std::fs::copy(net.path("limb1").join("limb.key"), net.path("limb2").join("limb.key")).unwrap();
    let copy = net.start_limb(2, &invite);
    // The newest connection counts; the first is refused at its next heartbeat and stops, saying why.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !first.exited() {
        assert!(Instant::now() < deadline, "the first limb kept running beside its copy: {:?}", first.lines());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(first.lines().iter().any(|l| l.contains("connected from elsewhere")), "{:?}", first.lines());
    submit(&net, 0, 5);
    net.expect_all_done(5, Duration::from_secs(60));
    assert_eq!(copy.count("executed"), 5, "the copy runs the limb's tasks, once each");
}
