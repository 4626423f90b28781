//! Secrets nobody can guess, on a real hub: codes made by clients from the
//! operating system's CSPRNG (the hub keeps their SHA-256), claim codes of a
//! migrated batch independent of each other, no code in clear in any table,
//! who may create tenants, and wrong codes limited per identity and hub-wide.

use super::{local_hub_as_admin, parts, HubPolicy, TenantCreation};
use heiwa_hub::{HubError, HubHttp, InviteCode, InviteRole};
use heiwa_migrate::claims::ClaimJournal;
use heiwa_migrate::plan::{MigratedMember, MigratedTenant, Planned};
use heiwa_migrate::target::HubTarget;
use heiwa_migrate::Kind;
use rand::{RngCore, SeedableRng};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the hub made before: SpacetimeDB 1.2's `ctx.random()` is
/// `StdRng::seed_from_u64(the call's timestamp in µs)` (spacetimedb-1.2.0
/// src/rng.rs), and `fresh_code` formatted two `u64` of it; a reducer making
/// several codes drew them from one stream. The first `count` codes a call
/// at `micros` would have made.
fn old_codes(micros: i64, count: usize) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(micros as u64);
    (0..count).map(|_| format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())).collect()
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// Every code a call made in `[from, to]` (µs, this machine's clock, which
/// the hub on loopback shares) would have been under the old scheme.
fn old_codes_between(from: i64, to: i64, count: usize) -> Vec<String> {
    (from - 1_000..=to + 1_000).flat_map(|micros| old_codes(micros, count)).collect()
}

#[test]
fn the_old_derivation_is_reproduced_faithfully() {
    // An invite code the module before this change made on a real hub (commit
    // 5866425's hub-module, published to spacetimedb-standalone 1.2.0), read
    // back by its owner, with its call's timestamp (expires_at − ttl): the
    // derivation below computes it exactly, so the checks that follow would
    // have caught every code that module made.
    assert_eq!(old_codes(1_796_576_758_311_152, 1), ["a8a4acaca3d2c26271f150f879542322"]);
    assert_ne!(old_codes(1_796_576_758_311_152, 1), old_codes(1_796_576_758_311_153, 1), "one µs apart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_come_from_clients_and_the_hub_keeps_only_their_hashes() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, admin) = local_hub_as_admin(&parts, dir.path()).await;
    let owner = http.new_identity().await.unwrap().token;
    http.create_tenant("heiwa", "secrets", &owner).await.unwrap();

    // Every kind of code, each with the window of time in which it was made.
    let mut made: Vec<(&str, String, i64, i64)> = Vec::new();
    let before = now_micros();
    let invite = http.create_invite("heiwa", 3, 600, InviteRole::Limb, &owner).await.unwrap().0;
    made.push(("invite", invite.clone(), before, now_micros()));
    let before = now_micros();
    let browser = http.create_browser_invite("heiwa", false, "tablet", 600, &owner).await.unwrap().0;
    made.push(("dashboard code", browser, before, now_micros()));
    let before = now_micros();
    let operator = http.create_operator_invite("heiwa", "bot", 600, &owner).await.unwrap().0;
    made.push(("operator code", operator, before, now_micros()));
    let before = now_micros();
    let tenant_code = http.create_tenant_code("heiwa", 1, 600, &admin).await.unwrap().0;
    made.push(("tenant code", tenant_code, before, now_micros()));

    // A migrated organization of three users: their claim codes, made by heiwa migrate.
    let claims_csv = dir.path().join("claims.csv");
    let target = HubTarget::new(http.clone(), "heiwa", &admin, ClaimJournal::beside(&claims_csv));
    let tenant = MigratedTenant { legacy_id: "organization:acme".into(), name: "Acme".into(), created_at_micros: 0 };
    assert!(target.write(Kind::Tenant, vec![Planned::Tenant(tenant)]).await.unwrap().is_empty());
    let member = |id: &str, role: &str| {
        Planned::Member(MigratedMember {
            legacy_id: id.into(),
            tenant_legacy_id: "organization:acme".into(),
            role: role.into(),
            label: id.into(),
            code_hash: String::new(),
        })
    };
    let before = now_micros();
    let members = vec![member("user:owner", "owner"), member("user:ann", "reader"), member("user:bo", "submitter")];
    assert!(target.write(Kind::Member, members).await.unwrap().is_empty());
    let batch_window = (before, now_micros());
    let written = heiwa_migrate::run::export_claims(&target, &claims_csv).await.unwrap();
    assert_eq!((written.users, written.reissued), (3, 0));
    let csv = std::fs::read_to_string(&claims_csv).unwrap();
    let claim_codes: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_string(), fields[4].to_string())
        })
        .collect();
    assert_eq!(claim_codes.len(), 3, "{csv}");
    for (_, code) in &claim_codes {
        made.push(("claim code", code.clone(), batch_window.0, batch_window.1));
    }

    // None is what the hub's timestamp-seeded generator made for a call in its window.
    for (what, code, from, to) in &made {
        assert_eq!(code.len(), 32, "{what}: 128 bits in hex");
        let guesses = old_codes_between(*from, *to, 3);
        assert!(!guesses.contains(code), "the {what} is computable from the time it was made");
    }
    // The exact time of the invite's call is on its row (expires_at − ttl): not that either.
    let row = &http.rows("heiwa", "SELECT * FROM invite", &owner).await.unwrap()[0];
    let made_at = micros_of(&row["expires_at"]) - 600 * 1_000_000;
    assert!(!old_codes(made_at, 1).contains(&invite));
    assert_eq!(row["code"], json!(InviteCode(invite.clone()).hash()), "the owner sees the invite's hash, not its code");
    // Claim codes of one batch: each independent (a holder of one learns nothing of another).
    let owner_code = &claim_codes.iter().find(|(id, _)| id == "user:owner").unwrap().1;
    let ann_code = &claim_codes.iter().find(|(id, _)| id == "user:ann").unwrap().1;
    for micros in batch_window.0 - 1_000..=batch_window.1 + 1_000 {
        let stream = old_codes(micros, 3);
        assert!(!(stream.contains(ann_code) && stream.contains(owner_code)), "one stream made both");
    }

    // No table holds any code in clear: every table of the module, read as
    // the database's owner (who reads private tables too).
    let schema: serde_json::Value = serde_json::from_str(include_str!("../../../../hub-module/schema.json")).unwrap();
    let tables = schema.as_object().unwrap().values().next().unwrap()["tables"].as_array().unwrap().clone();
    assert!(tables.len() > 30, "every table: {}", tables.len());
    let mut dump = String::new();
    for table in &tables {
        let name = table["name"].as_str().unwrap();
        let rows = http.sql("heiwa", &format!("SELECT * FROM {name}"), &admin).await.unwrap();
        dump.push_str(&rows.to_string());
    }
    assert!(dump.contains(&InviteCode(invite.clone()).hash()), "the dump holds the hashes");
    for (what, code, _, _) in &made {
        assert!(!dump.contains(code.as_str()), "the {what} is in a table in clear");
    }

    // The codes work: the hash of what is presented is what the hub compares.
    let limb = http.new_identity().await.unwrap().token;
    http.join_tenant("heiwa", &invite, &limb).await.expect("the invite admits a limb");
    let ann = http.new_identity().await.unwrap().token;
    http.claim_legacy("heiwa", ann_code, &ann).await.expect("ann's claim code signs her in");
    let refused = http.claim_legacy("heiwa", ann_code, &http.new_identity().await.unwrap().token).await.unwrap_err();
    assert!(refused.to_string().contains("already used"), "{refused}");
    // Presenting the hash instead of the code is no way in.
    let hash = InviteCode(invite.clone()).hash();
    let refused = http.join_tenant("heiwa", &hash, &http.new_identity().await.unwrap().token).await.unwrap_err();
    assert!(refused.to_string().contains("unknown or used-up invite code"), "{refused}");
    server.stop();
}

fn micros_of(timestamp: &serde_json::Value) -> i64 {
    timestamp
        .as_i64()
        .or_else(|| timestamp.get("__timestamp_micros_since_unix_epoch__").and_then(|v| v.as_i64()))
        .unwrap_or_else(|| panic!("a timestamp: {timestamp}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_creation_follows_the_admins_policy() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, admin) = local_hub_as_admin(&parts, dir.path()).await;
    let policy = |creation| HubPolicy { max_tenants: 3, ..HubPolicy::with_tenant_creation(creation) };
    http.set_policy("heiwa", &policy(TenantCreation::AdminOnly), &admin).await.unwrap();
    let tenants = |http: &HubHttp| {
        let (http, admin) = (http.clone(), admin.clone());
        async move { http.rows("heiwa", "SELECT * FROM tenant", &admin).await.unwrap().len() }
    };

    let stranger = http.new_identity().await.unwrap().token;
    let refused = http.create_tenant("heiwa", "mine", &stranger).await.unwrap_err().to_string();
    assert!(refused.contains("only this hub's admin may create tenants"), "{refused}");
    let not_admin = http.set_policy("heiwa", &policy(TenantCreation::Anyone), &stranger).await.unwrap_err();
    assert!(not_admin.to_string().contains("only the hub's admin"), "{not_admin}");
    assert_eq!(tenants(&http).await, 0, "a refusal changes nothing");
    http.create_tenant("heiwa", "the admin's", &admin).await.expect("the admin may");
    let twice = http.create_tenant("heiwa", "another", &admin).await.unwrap_err().to_string();
    assert!(twice.contains("already belong to a tenant"), "an identity owns at most one tenant: {twice}");

    // Policy `code`: only holders of a code from the admin, once per use.
    http.set_policy("heiwa", &policy(TenantCreation::WithCode), &admin).await.unwrap();
    let code = http.create_tenant_code("heiwa", 1, 600, &admin).await.unwrap().0;
    let refused = http.create_tenant("heiwa", "mine", &stranger).await.unwrap_err().to_string();
    assert!(refused.contains("holders of a code"), "{refused}");
    http.create_tenant_with_code("heiwa", "mine", &code, &stranger).await.expect("the code lets them");
    let other = http.new_identity().await.unwrap().token;
    let spent = http.create_tenant_with_code("heiwa", "theirs", &code, &other).await.unwrap_err().to_string();
    assert!(spent.contains("unknown or used-up tenant code"), "{spent}");
    assert_eq!(tenants(&http).await, 2);

    // Policy `anyone`, up to the hub's cap of tenants (3); past it, only the admin's word.
    http.set_policy("heiwa", &policy(TenantCreation::Anyone), &admin).await.unwrap();
    http.create_tenant("heiwa", "third", &other).await.expect("anyone may");
    let full = http.create_tenant("heiwa", "fourth", &http.new_identity().await.unwrap().token).await.unwrap_err();
    assert!(full.to_string().contains("limit of 3 tenants"), "{full}");
    assert_eq!(tenants(&http).await, 3);
    server.stop();
}

/// Join attempts with wrong codes from many fresh identities: each identity
/// is stopped after its limit, the hub after its own; a refusal over a limit
/// says when to retry and changes nothing; the right code still works for
/// its holder once the window has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_codes_are_refused_after_the_limit_and_change_nothing() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let (server, http, _, admin) = local_hub_as_admin(&parts, dir.path()).await;
    const PER_IDENTITY: u32 = 3;
    const HUB_WIDE: u32 = 60;
    const WINDOW_SECS: u32 = 4;
    let policy = HubPolicy {
        failures_per_identity: PER_IDENTITY,
        failures_hub_wide: HUB_WIDE,
        failure_window_secs: WINDOW_SECS,
        ..HubPolicy::with_tenant_creation(TenantCreation::Anyone)
    };
    http.set_policy("heiwa", &policy, &admin).await.unwrap();
    let owner = http.new_identity().await.unwrap().token;
    http.create_tenant("heiwa", "guarded", &owner).await.unwrap();
    let invite = http.create_invite("heiwa", 1, 600, InviteRole::Limb, &owner).await.unwrap().0;
    let invites_before = http.rows("heiwa", "SELECT * FROM invite", &owner).await.unwrap();

    // 1,000 wrong codes, 4 from each of 250 fresh identities.
    let (mut counted, mut per_identity, mut hub_wide) = (0, 0, 0);
    let started = std::time::Instant::now();
    for _ in 0..250 {
        let guesser = http.new_identity().await.unwrap().token;
        for _ in 0..4 {
            let guess = InviteCode::fresh().unwrap();
            match http.join_tenant("heiwa", &guess.0, &guesser).await.unwrap_err() {
                HubError::Reducer { message, .. } if message.contains("unknown or used-up invite code") => counted += 1,
                HubError::Reducer { message, .. } if message.contains("from this identity: try again in") => {
                    per_identity += 1
                }
                HubError::Reducer { message, .. } if message.contains("on this hub: try again in") => hub_wide += 1,
                other => panic!("an unexpected refusal: {other}"),
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(WINDOW_SECS.into()) * 10, "the test's own pace");
    assert_eq!(counted + per_identity + hub_wide, 1000);
    assert!(counted <= HUB_WIDE as usize * (1 + started.elapsed().as_secs() as usize / WINDOW_SECS as usize));
    assert!(hub_wide > 500, "most are refused by the hub-wide limit: {counted} {per_identity} {hub_wide}");
    assert!(per_identity >= 1, "an identity's own limit refuses it first when the hub's is not reached");

    // Over the limit, nothing changes: no member, the invite untouched.
    let members = http.rows("heiwa", "SELECT * FROM member", &admin).await.unwrap();
    assert_eq!(members.len(), 1, "only the owner: {members:?}");
    assert_eq!(http.rows("heiwa", "SELECT * FROM invite", &owner).await.unwrap(), invites_before);
    // The holder of the right code is refused while the hub's window is full,
    // and told when to come back; then it works.
    let holder = http.new_identity().await.unwrap().token;
    let wait = match http.join_tenant("heiwa", &invite, &holder).await {
        Err(HubError::Reducer { message, .. }) if message.contains("on this hub: try again in") => {
            let secs: u64 = message.rsplit("try again in ").next().unwrap().trim_end_matches(" s").parse().unwrap();
            assert!(secs <= WINDOW_SECS.into(), "{message}");
            assert_eq!(http.rows("heiwa", "SELECT * FROM invite", &owner).await.unwrap(), invites_before);
            secs
        }
        Ok(()) => 0, // the window had already rolled over
        Err(other) => panic!("{other}"),
    };
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(200)).await;
    if wait > 0 {
        http.join_tenant("heiwa", &invite, &holder).await.expect("the right code works after the window");
    }
    let members = http.rows("heiwa", "SELECT * FROM member", &admin).await.unwrap();
    assert_eq!(members.len(), 2, "the owner and the holder: {members:?}");
    server.stop();
}
