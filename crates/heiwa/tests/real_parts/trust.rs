//! Replication with a quorum on a real hub, with real limbs (`trust_limbs`):
//! honest ones and one that lies.

use super::trust_limbs::{computed, decided, limb, rows};
use super::{local_hub, parts};
use heiwa_hub::InviteRole;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// Limb id → donor (the invite it joined with), as the test made them.
fn donor(names: &[(u64, &str)], limb_id: u64) -> String {
    let name = names.iter().find(|(id, _)| *id == limb_id).map(|(_, n)| *n).unwrap_or("?");
    name.trim_end_matches(char::is_numeric).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_go_to_different_donors_an_honest_pair_agrees_and_a_liar_is_outvoted() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let owner = http.new_identity().await.unwrap().token;
    super::call(&http, &owner, "create_tenant", serde_json::json!(["trust"])).await;
    let invite = |uses| {
        let (http, owner) = (&http, &owner);
        async move { http.create_invite("heiwa", uses, 600, InviteRole::Limb, owner).await.unwrap().0 }
    };
    // Donor "a" has two limbs (one invite); donors "b" and "liar" one each.
    let (a, b, liar) = (invite(2).await, invite(1).await, invite(1).await);
    let _a1 = limb(&http, dir.path(), &a, "a1", false).await;
    let _a2 = limb(&http, dir.path(), &a, "a2", false).await;

    // Only donor a is here: the second copy waits rather than go to a's other limb.
    http.submit_task_replicated("heiwa", None, "the first payload", None, 2, &owner).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks = rows(&http, &owner, "SELECT * FROM task").await;
    assert_eq!(tasks.len(), 2, "two copies: {tasks:#?}");
    let states: Vec<&str> = tasks.iter().filter_map(|t| t["state"].as_str()).collect();
    assert!(states.contains(&"done") && states.contains(&"pending"), "one answered, one waiting: {states:?}");
    let _b = limb(&http, dir.path(), &b, "b", false).await;
    let first = decided(&http, &owner, 1).await;
    assert_eq!(first[0]["verdict"], "agreed", "{first:#?}");

    // The liar joins; replicated tasks go on.
    let _liar = limb(&http, dir.path(), &liar, "liar", true).await;
    const TASKS: usize = 24;
    for i in 0..TASKS {
        let payload = format!("replicated payload {i}");
        http.submit_task_replicated("heiwa", Some(&payload), &payload, None, 2, &owner).await.unwrap();
    }
    let sets = decided(&http, &owner, TASKS + 1).await;
    let limbs = rows(&http, &owner, "SELECT * FROM limb").await;
    let names: Vec<(u64, &str)> =
        limbs.iter().map(|l| (l["id"].as_u64().unwrap(), l["name"].as_str().unwrap())).collect();
    let results = rows(&http, &owner, "SELECT * FROM task_result").await;
    let answered_by = |task: u64| {
        results.iter().find(|r| r["task_id"].as_u64() == Some(task)).and_then(|r| r["limb_id"].as_u64()).unwrap()
    };
    let tasks = rows(&http, &owner, "SELECT * FROM task").await;
    let liar_id = names.iter().find(|(_, n)| *n == "liar").unwrap().0;
    let (mut with_liar, mut trusted) = (0, 0);
    for set in &sets {
        let copies: Vec<u64> = set["copies"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
        let payload = tasks.iter().find(|t| t["id"].as_u64() == Some(copies[0])).unwrap()["payload"].as_str().unwrap();
        if set["verdict"] == "trusted" {
            // An honest limb that earned its streak here answered alone; the liar never earns one.
            assert_eq!(copies.len(), 1, "{set:#?}");
            assert_ne!(answered_by(copies[0]), liar_id, "{set:#?}");
            let summary = results.iter().find(|r| r["task_id"].as_u64() == Some(copies[0])).unwrap()["summary"].clone();
            assert_eq!(summary, computed(payload).as_str());
            trusted += 1;
            continue;
        }
        assert_eq!(set["verdict"], "agreed", "every set agrees: two honest donors outvote one liar: {set:#?}");
        assert_eq!(set["answer"], computed(payload).as_str(), "the agreed answer is the true one: {set:#?}");
        let donors: Vec<String> = copies.iter().map(|c| donor(&names, answered_by(*c))).collect();
        let mut distinct = donors.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), donors.len(), "never two copies to one donor's limbs: {donors:?}");
        let lied = copies.iter().any(|c| answered_by(*c) == liar_id);
        assert_eq!(copies.len(), if lied { 3 } else { 2 }, "a third copy exactly when the liar was in: {set:#?}");
        assert!(!set["agreeing"].as_array().unwrap().contains(&serde_json::json!(liar_id)));
        with_liar += usize::from(lied);
    }
    assert!(with_liar > 0, "the liar got copies (it is a third of the donors)");
    eprintln!(
        "{} replicated tasks: {with_liar} with the liar, each outvoted; {trusted} answered by a trusted limb alone",
        sets.len()
    );

    // Credit: every agreed (or trusted) copy's limb is paid what the rule says of its signed
    // result, every outvoted one's escrow is revoked: the liar ends with nothing paid.
    let (mut paid, mut revoked) = (HashMap::<u64, u64>::new(), HashMap::<u64, u64>::new());
    for set in &sets {
        for copy in set["copies"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()) {
            let payload = tasks.iter().find(|t| t["id"].as_u64() == Some(copy)).unwrap()["payload"].as_str().unwrap();
            let result = results.iter().find(|r| r["task_id"].as_u64() == Some(copy)).unwrap();
            let credit = heiwa_hub::result_credit(payload, result["summary"].as_str().unwrap(), 0);
            let limb_id = result["limb_id"].as_u64().unwrap();
            let agreed = set["verdict"] == "trusted" || set["agreeing"].as_array().unwrap().contains(&json!(limb_id));
            *(if agreed { &mut paid } else { &mut revoked }).entry(limb_id).or_default() += credit;
        }
    }
    let sums = http.credit("heiwa", None, &owner).await.unwrap();
    for (limb_id, _) in &names {
        let sum = sums.iter().find(|line| line.limb_id == *limb_id).map(|line| line.all).unwrap_or_default();
        let expected = (paid.get(limb_id).copied().unwrap_or(0), revoked.get(limb_id).copied().unwrap_or(0));
        assert_eq!((sum.milli, sum.revoked_milli, sum.escrow_milli), (expected.0, expected.1, 0), "limb {limb_id}");
    }
    let liar_sum = sums.iter().find(|line| line.limb_id == liar_id).unwrap().all;
    assert_eq!((liar_sum.milli, liar_sum.tasks), (0, 0), "the liar is paid nothing: {liar_sum:?}");
    assert!(liar_sum.revoked_milli > 0, "its escrow was revoked: {liar_sum:?}");

    // The records: the liar disputed every time, honest limbs never (no false alarms).
    let trust = rows(&http, &owner, "SELECT * FROM limb_trust").await;
    for record in &trust {
        let (id, disputed, agreed) = (
            record["limb_id"].as_u64().unwrap(),
            record["disputed"].as_u64().unwrap(),
            record["agreed"].as_u64().unwrap(),
        );
        if id == liar_id {
            assert_eq!((disputed, agreed, record["streak"].as_u64()), (with_liar as u64, 0, Some(0)), "{record:#?}");
        } else {
            assert_eq!(disputed, 0, "an honest limb is never disputed: {record:#?}");
        }
    }
    // The owner sees the records.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["tenant", "limbs", "--hub", http.base_url()])
        .env("HEIWA_TOKEN_FILE", {
            let file = dir.path().join("owner.token");
            std::fs::write(&file, &owner).unwrap();
            file
        })
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let liar_line = listed.lines().find(|l| l.contains("liar")).unwrap_or_else(|| panic!("{listed}"));
    assert!(liar_line.contains(&format!(" {with_liar} ")) && liar_line.contains("every replicated task"), "{listed}");
    let credit = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["tenant", "credit", "--hub", http.base_url()])
        .env("HEIWA_TOKEN_FILE", dir.path().join("owner.token"))
        .output()
        .unwrap();
    let credit = String::from_utf8_lossy(&credit.stdout);
    let liar_line = credit.lines().find(|l| l.contains("liar")).unwrap_or_else(|| panic!("{credit}"));
    let liar_revoked = heiwa_hub::credits_text(liar_sum.revoked_milli);
    assert!(liar_line.contains("  0.000  ") && liar_line.ends_with(&liar_revoked), "{credit}");
    assert!(credit.contains("credits paid to 3 donors; 0.000 in escrow"), "{credit}");
    assert!(
        credit.trim_end().ends_with("queue: oldest first (credit does not buy a place: `--priority on` to change it)"),
        "{credit}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limb_with_a_long_clean_record_is_spot_checked_instead_of_copied() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, admin) = super::local_hub_as_admin(&parts, &dir.path().join("hub")).await;
    let owner = http.new_identity().await.unwrap().token;
    super::call(&http, &owner, "create_tenant", serde_json::json!(["trust"])).await;
    let mut stops = Vec::new();
    for name in ["a", "b"] {
        let code = http.create_invite("heiwa", 1, 600, InviteRole::Limb, &owner).await.unwrap().0;
        stops.push(limb(&http, dir.path(), &code, name, false).await);
    }
    // Until both limbs have TRUSTED_STREAK agreed results, every task is copied.
    let streak = heiwa_hub::TRUSTED_STREAK as usize;
    for i in 0..streak {
        http.submit_task_replicated("heiwa", None, &format!("earning {i}"), None, 2, &owner).await.unwrap();
    }
    let sets = decided(&http, &owner, streak).await;
    assert!(sets.iter().all(|s| s["verdict"] == "agreed"), "no limb is trusted before its streak: {sets:#?}");
    // Now both are trusted: most replicated tasks run once; about one in ten is still copied.
    const MORE: usize = 30;
    for i in 0..MORE {
        http.submit_task_replicated("heiwa", None, &format!("trusted {i}"), None, 2, &owner).await.unwrap();
    }
    let mut sets = decided(&http, &owner, streak + MORE).await;
    sets.sort_by_key(|s| s["task_id"].as_u64());
    let trusted = sets.iter().filter(|s| s["verdict"] == "trusted").count();
    let checked = sets.iter().skip(streak).filter(|s| s["verdict"] == "agreed").count();
    assert_eq!(trusted + checked, MORE, "{sets:#?}");
    // 10 % spot checks of 30: P(trusted < 15) is below 1e-9.
    assert!(trusted >= 15, "trusted limbs are mostly not copied: {trusted} of {MORE}");
    let trust = rows(&http, &owner, "SELECT * FROM limb_trust").await;
    let skips: u64 = trust.iter().map(|r| r["trusted_skips"].as_u64().unwrap()).sum();
    let spot: u64 = trust.iter().map(|r| r["spot_checks"].as_u64().unwrap()).sum();
    assert_eq!((skips as usize, spot as usize), (trusted, checked), "{trust:#?}");

    // Which answers were checked followed the admin's secret key and the
    // task's id alone (`rules::secrets::spot_check_roll`), decided when the
    // answer arrived: nothing a limb reads before it answers depends on it.
    // A limb reads only its own task rows, its results, its seat: no replica
    // set, no trust record, no key, and a checked task's row looks like any
    // other until its answer is in.
    let secret = rows(&http, &admin, "SELECT * FROM hub_secret").await;
    let key = bytes_of(&secret[0]["spot_check_key"]);
    assert_eq!(key.len(), hub_rules::secrets::SPOT_CHECK_KEY_BYTES);
    for set in sets.iter().skip(streak) {
        let roll = hub_rules::secrets::spot_check_roll(&key, set["task_id"].as_u64().unwrap());
        let checked = roll < hub_rules::SPOT_CHECK_PERCENT;
        assert_eq!(set["verdict"] == "agreed", checked, "roll {roll}: {set:#?}");
    }
    let limb_token = std::fs::read_to_string(dir.path().join("a.token")).unwrap();
    for table in ["replica_set", "limb_trust", "task_copy", "score_check"] {
        let seen = http.rows("heiwa", &format!("SELECT * FROM {table}"), limb_token.trim()).await;
        assert!(seen.as_ref().is_ok_and(Vec::is_empty) || seen.is_err(), "a limb reads {table}: {seen:?}");
    }
    let refused = http.rows("heiwa", "SELECT * FROM hub_secret", limb_token.trim()).await.unwrap_err();
    assert!(refused.to_string().contains("hub_secret"), "the key is private: {refused}");
    server.stop();
}

/// A `Vec<u8>` column as the SQL API writes it: hex, or an array of numbers.
fn bytes_of(value: &serde_json::Value) -> Vec<u8> {
    match value {
        serde_json::Value::String(hex) => {
            let hex = hex.trim_start_matches("0x");
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
        }
        serde_json::Value::Array(items) => items.iter().map(|b| b.as_u64().unwrap() as u8).collect(),
        other => panic!("bytes: {other}"),
    }
}

/// The one replica set, once `ready` holds for it.
async fn set_when(
    http: &heiwa_hub::HubHttp,
    owner: &str,
    what: &str,
    ready: impl Fn(&heiwa_hub::Row) -> bool,
) -> heiwa_hub::Row {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sets = rows(http, owner, "SELECT * FROM replica_set").await;
        let newest = sets.iter().max_by_key(|set| set["task_id"].as_u64());
        if let Some(set) = newest.filter(|set| ready(set)) {
            return set.clone();
        }
        assert!(std::time::Instant::now() < deadline, "waiting for {what}: {sets:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn copies_of(set: &heiwa_hub::Row) -> Vec<u64> {
    set["copies"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect()
}

/// Scoring instead of copies, the hub's side (limbs whose "model" is a
/// checksum; the real model's scoring is `scoring_checks_real_greedy_answers`):
/// the answer goes to a limb of another donor to score; a liar's answer is
/// caught by two scorers; a liar's vote against an honest answer is outvoted by
/// a second scorer; the records follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoring_catches_a_lying_generator_and_outvotes_a_lying_scorer() {
    use super::trust_limbs::TEST_MODEL;
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let owner = http.new_identity().await.unwrap().token;
    super::call(&http, &owner, "create_tenant", serde_json::json!(["trust"])).await;
    let invite = || {
        let (http, owner) = (&http, &owner);
        async move { http.create_invite("heiwa", 2, 600, InviteRole::Limb, owner).await.unwrap().0 }
    };
    let (a, b, liar) = (invite().await, invite().await, invite().await);

    // Only scored greedy generations pinned to a model.
    let refused = http.submit_task_scored("heiwa", None, "hello", "", &owner).await.unwrap_err();
    assert!(refused.to_string().contains("must name its model"), "{refused}");
    let refused = http.call("heiwa", "submit_task_scored", serde_json::json!(["", "hello", TEST_MODEL]), &owner).await;
    assert!(refused.unwrap_err().to_string().contains("only a greedy generation"));

    // The liar alone answers; its answer waits for a scorer of another donor.
    let liar1 = limb(&http, dir.path(), &liar, "liar1", true).await;
    http.submit_task_scored("heiwa", None, "the first prompt", TEST_MODEL, &owner).await.unwrap();
    let set = set_when(&http, &owner, "a scoring copy", |s| copies_of(s).len() == 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tasks = rows(&http, &owner, "SELECT * FROM task").await;
    let scorer = tasks.iter().find(|t| t["id"].as_u64() == Some(copies_of(&set)[1])).unwrap();
    assert_eq!(scorer["state"], "pending", "the liar does not score its own answer: {scorer:#?}");
    let payload = scorer["payload"].as_str().unwrap();
    assert!(payload.starts_with("heiwa/score ") && payload.ends_with("checksum 1"), "{payload}");

    // Two honest scorers in turn: both find it is not the answer; disputed.
    let a1 = limb(&http, dir.path(), &a, "a1", false).await;
    set_when(&http, &owner, "a tie-breaker", |s| copies_of(s).len() == 3).await;
    let b1 = limb(&http, dir.path(), &b, "b1", false).await;
    let set = set_when(&http, &owner, "a verdict", |s| s["verdict"] != "open").await;
    assert_eq!(set["verdict"], "disputed", "{set:#?}");
    assert!(set["note"].as_str().unwrap().contains("2 scorers found it is not"), "{set:#?}");

    // An honest answer, and the liar (again online, as another limb of its donor) scores it first.
    liar1.send(true).unwrap();
    b1.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // From the command line this time.
    let token_file = dir.path().join("owner.token");
    std::fs::write(&token_file, &owner).unwrap();
    let submitted = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .args(["task", "submit", "the second prompt", "--scored", "--model", TEST_MODEL, "--hub", http.base_url()])
        .env("HEIWA_TOKEN_FILE", &token_file)
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    set_when(&http, &owner, "the second answer", |s| copies_of(s).len() == 2).await;
    let _liar2 = limb(&http, dir.path(), &liar, "liar2", true).await;
    set_when(&http, &owner, "a tie-breaker", |s| copies_of(s).len() == 3).await;
    let _b2 = limb(&http, dir.path(), &b, "b2", false).await;
    let set = set_when(&http, &owner, "a verdict", |s| s["verdict"] != "open").await;
    assert_eq!(set["verdict"], "agreed", "{set:#?}");
    assert_eq!(set["answer"], computed("the second prompt").as_str());
    assert!(set["note"].as_str().unwrap().contains("1 of 2 scorers agree"), "{set:#?}");

    // The records: each liar limb disputed once, every honest limb agreed.
    let limbs = rows(&http, &owner, "SELECT * FROM limb").await;
    let name_of = |id: u64| limbs.iter().find(|l| l["id"].as_u64() == Some(id)).unwrap()["name"].as_str().unwrap();
    let trust = rows(&http, &owner, "SELECT * FROM limb_trust").await;
    let mut records: Vec<(&str, u64, u64)> = trust
        .iter()
        .map(|r| {
            (name_of(r["limb_id"].as_u64().unwrap()), r["agreed"].as_u64().unwrap(), r["disputed"].as_u64().unwrap())
        })
        .collect();
    records.sort();
    assert_eq!(records, [("a1", 2, 0), ("b1", 1, 0), ("b2", 1, 0), ("liar1", 0, 1), ("liar2", 0, 1)], "{trust:#?}");
    drop(a1);
    server.stop();
}

/// A limb answering plain model work with the real model (`ChatBackend::plain_work`,
/// what the agent executor runs for it); the liar changes one word of its answers.
struct ModelLimb {
    model: limb_core::agent::local::ChatBackend,
    lies: bool,
}

impl limb_core::claim::Executor for ModelLimb {
    fn execute(
        &self,
        _task_id: u64,
        payload: &str,
        _model: Option<&std::path::Path>,
    ) -> Result<limb_core::claim::Output, limb_core::claim::TaskFailure> {
        use limb_core::agent::Model;
        let work = heiwa_hub::Work::parse(payload)?;
        let mut summary = self.model.plain_work(&work)?;
        if self.lies && matches!(work, heiwa_hub::Work::Generate { .. }) {
            let words: Vec<&str> = summary.split(' ').collect();
            let cut = words.len() / 2;
            summary = format!("{} banana {}", words[..cut].join(" "), words[cut..].join(" "));
        }
        Ok(limb_core::claim::Output { summary, evidence: self.model.made_by() })
    }
}

/// Scoring with the real model (CPU): a liar's greedy answer is caught by two
/// scorers with the same model; an honest one passes its scorer; two honest
/// limbs generate the same answer exactly (copies, exact agreement).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoring_checks_real_greedy_answers() {
    use limb_core::agent::local::{ChatBackend, LocalChat};
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = local_hub(&parts, &dir.path().join("hub")).await;
    let owner = http.new_identity().await.unwrap().token;
    super::call(&http, &owner, "create_tenant", serde_json::json!(["trust"])).await;
    let model = heiwa_inference::models::model_id(&parts.chat_model().unwrap());
    let offer = limb_core::claim::Offer {
        models: vec![heiwa_hub::ModelOffer { id: model.clone(), sha256: String::new() }],
        ..Default::default()
    };
    let start = |name: &'static str, lies: bool| {
        let (http, owner, dir, parts, offer) = (&http, &owner, dir.path(), &parts, offer.clone());
        async move {
            let code = http.create_invite("heiwa", 1, 600, InviteRole::Limb, owner).await.unwrap().0;
            let options = heiwa_inference::ModelOptions::default();
            let model = ChatBackend::Local(Box::new(LocalChat::new(parts.chat_model().unwrap(), options).unwrap()));
            let executor = std::sync::Arc::new(ModelLimb { model, lies });
            super::trust_limbs::limb_running(http, dir, &code, name, executor, offer).await
        }
    };
    let liar = start("liar", true).await;
    http.submit_task_scored("heiwa", None, "In one sentence: what is a volunteer computing project?", &model, &owner)
        .await
        .unwrap();
    set_when(&http, &owner, "the liar's answer", |s| copies_of(s).len() == 2).await;
    let _a = start("a", false).await;
    set_when(&http, &owner, "a tie-breaker", |s| copies_of(s).len() == 3).await;
    let _b = start("b", false).await;
    let set = set_when(&http, &owner, "a verdict", |s| s["verdict"] != "open").await;
    assert_eq!(set["verdict"], "disputed", "{set:#?}");
    let results = rows(&http, &owner, "SELECT * FROM task_result").await;
    let votes: Vec<&str> =
        results.iter().filter_map(|r| r["summary"].as_str()).filter(|s| s.starts_with("score:")).collect();
    assert_eq!(votes.len(), 2, "{results:#?}");
    assert!(votes.iter().all(|v| v.starts_with("score: differs")), "both scorers caught it: {votes:?}");

    liar.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    http.submit_task_scored("heiwa", None, "In one sentence: why hash a file?", &model, &owner).await.unwrap();
    let set = set_when(&http, &owner, "the honest verdict", |s| s["verdict"] != "open").await;
    assert_eq!(set["verdict"], "agreed", "the honest answer passes its scorer: {set:#?}");
    assert!(set["answer"].as_str().unwrap().len() > 10, "{set:#?}");

    let prompt = heiwa_hub::generate_payload("In one sentence: what is a lease?");
    http.submit_task_replicated("heiwa", None, &prompt, Some(&model), 2, &owner).await.unwrap();
    let set = set_when(&http, &owner, "the copies' verdict", |s| s["verdict"] != "open").await;
    assert_eq!(set["verdict"], "agreed", "two limbs' greedy answers are equal: {set:#?}");
    server.stop();
}
