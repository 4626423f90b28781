//! Models follow the work (issue 35), measured: from "the owner added a model
//! to the tenant's catalogue" to "a limb offers it" (the hub marks the limb's
//! copy held, so tasks pinned to it can be placed), against the same file's
//! raw download from the same server by the same downloader
//! (`heiwa_fetch::fetch`, hashing as it goes), alternated in the same run.
//! What the catalogue adds: the hub's round trips (the request row, progress
//! reports, the offer), the limb's check that the file loads, the rename into
//! its store.
//!
//! Two links, both nginx on loopback: at full speed (the fixed costs show
//! most) and paced to 24 MiB/s (about a 200 Mbit/s home link, where the
//! download is what a donor waits for). The model is the embedding model (a
//! real GGUF, 87 MiB). The last line is machine-readable: `RESULT catalogue …`.
//!
//!   source scripts/lib/env.sh; cargo bench --profile dev --workspace --bench catalogue

mod common;

use common::{percentile, result_prefix, sized};
use heiwa_hub::CatalogueRow;
use heiwa_testkit::nginx::Nginx;
use heiwa_testkit::TestHub;
use limb_core::claim::ModelFetching;
use std::path::Path;
use std::time::{Duration, Instant};

/// Seconds from the catalogue entry's addition to the hub's "held" for the one limb.
async fn offered_after(http: &heiwa_hub::HubHttp, owner: &str, entry: &CatalogueRow) -> f64 {
    let started = Instant::now();
    http.add_catalogue_model("heiwa", entry, owner).await.unwrap();
    loop {
        let copies = http.model_copies("heiwa", owner).await.unwrap();
        match copies.iter().find(|copy| copy.model_id == entry.model_id).map(|copy| copy.stage.as_str()) {
            Some("held") => return started.elapsed().as_secs_f64(),
            Some(stage @ ("failed" | "no room")) => panic!("{}: {stage}: {copies:?}", entry.model_id),
            _ => assert!(started.elapsed() < Duration::from_secs(120), "{} never held: {copies:?}", entry.model_id),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Seconds for the raw download of `url` to `dest`, verified.
async fn raw_download(url: &str, dest: &Path, sha256: &str) -> f64 {
    let mut fetch = heiwa_fetch::Fetch::new(url, dest);
    fetch.sha256 = Some(sha256.into());
    let started = Instant::now();
    heiwa_fetch::fetch(&heiwa_fetch::client(), &fetch, |_| {}).await.unwrap();
    let took = started.elapsed().as_secs_f64();
    std::fs::remove_file(dest).unwrap();
    took
}

/// The wait estimate against the wait, on a steady queue (AI Horde's aim: p50
/// within 50 % or 60 s). A tenant of its own with two echo limbs taking 2
/// tasks at a time for 200 ms each (20 tasks/s between them); a backlog of 40
/// unpinned tasks, then tasks submitted at that pace for `secs`; every 10th is
/// asked for its estimate as soon as it is queued and timed until done (its
/// result's `finished_at` − its `created_at`). Returns the relative and the
/// absolute errors' medians and the samples.
async fn estimate_errors(http: &heiwa_hub::HubHttp, dir: &Path, secs: u64) -> (f64, f64, usize) {
    let owner = http.new_identity().await.unwrap().token;
    http.create_tenant("heiwa", "queue bench", &owner).await.unwrap();
    let invite = http.create_invite("heiwa", 2, 600, heiwa_hub::InviteRole::Limb, &owner).await.unwrap().0;
    let executor = std::sync::Arc::new(limb_core::claim::EchoExecutor { work: Duration::from_millis(200) });
    let mut stops = Vec::new();
    for name in ["steady-a", "steady-b"] {
        stops.push(
            heiwa_testkit::trust_limbs::limb_running(http, dir, &invite, name, executor.clone(), Default::default())
                .await,
        );
    }
    let submit = |payload: String| {
        let owner = owner.clone();
        async move { http.submit_task("heiwa", &payload, None, &owner).await.unwrap() }
    };
    for i in 0..40 {
        submit(format!("backlog {i}")).await;
    }
    let every = Duration::from_millis(50); // 20 a second, the limbs' pace
    let (started, mut sampled) = (Instant::now(), Vec::new());
    let mut i: u32 = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        let payload = format!("steady {i}");
        submit(payload.clone()).await;
        if i % 10 == 0 {
            let rows = http.rows("heiwa", "SELECT * FROM task", &owner).await.unwrap();
            let id =
                rows.iter().find(|row| row["payload"] == payload.as_str()).and_then(|row| row["id"].as_u64()).unwrap();
            let estimate = http.wait_estimate("heiwa", id, "", &owner).await.unwrap();
            sampled.push((id, estimate.secs));
        }
        i += 1;
        tokio::time::sleep_until((started + every * i).into()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let rows = http.rows("heiwa", "SELECT * FROM tenant_task", &owner).await.unwrap();
        if rows.iter().all(|row| row["state"] == "done") {
            break rows;
        }
        assert!(Instant::now() < deadline, "the steady queue never drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for stop in stops {
        let _ = stop.send(true);
    }
    let took = |id: u64| {
        let row = finished.iter().find(|row| row["id"] == id).unwrap();
        (row["finished_at"].as_i64().unwrap() - row["created_at"].as_i64().unwrap()) as f64 / 1e6
    };
    let (mut relative, mut absolute) = (Vec::new(), Vec::new());
    for (id, estimate) in &sampled {
        // Early samples may have no pace yet: an estimate that is not there is a miss.
        let (actual, estimate) = (took(*id), estimate.unwrap_or(f64::INFINITY));
        relative.push(((estimate - actual) / actual).abs());
        absolute.push((estimate - actual).abs());
    }
    (percentile(&mut relative, 0.5), percentile(&mut absolute, 0.5), sampled.len())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let parts = heiwa_testkit::parts();
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::copy(&parts.embed_model, served.join("minilm.gguf")).unwrap();
    let (size, sha256) = heiwa_fetch::hash_file(&served.join("minilm.gguf")).unwrap();
    let mirror = Nginx::serve(dir.path(), &served);

    let TestHub { server, http, .. } = TestHub::start(&parts, &dir.path().join("hub")).await;
    let owner = http.new_identity().await.unwrap().token;
    http.create_tenant("heiwa", "catalogue bench", &owner).await.unwrap();
    let invite = http.create_invite("heiwa", 1, 600, heiwa_hub::InviteRole::Limb, &owner).await.unwrap().0;
    let store = heiwa_inference::models::ModelStore::new(dir.path().join("limb/models"));
    let how = ModelFetching::for_policy(store.clone(), &Default::default(), limb_core::models::HF_ENDPOINT.into());
    let stop = heiwa_testkit::trust_limbs::limb_fetching(&http, &dir.path().join("limb"), &invite, "donor", how).await;

    // nginx's pacing varies by ±0.2 s a download: medians of several alternated rounds.
    let rounds = sized(7, 1);
    let mut fields = vec![format!("mib={}", size >> 20), format!("rounds={rounds}")];
    let mut ratios = Vec::new();
    // The smoke mode runs every step on the fast link only (the paced one only waits longer).
    let links = sized(vec![("loopback", "m"), ("paced", "paced")], vec![("loopback", "m")]);
    for (link, path) in links {
        let url = mirror.url(&format!("{path}/minilm.gguf"));
        let (mut raw, mut offered) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            raw.push(raw_download(&url, &dir.path().join("raw.gguf"), &sha256).await);
            let model_id = format!("{link}-{round}");
            let entry = CatalogueRow {
                model_id: model_id.clone(),
                file: format!("{model_id}.gguf"),
                size_bytes: size,
                sha256: sha256.clone(),
                sources: vec![url.clone()],
                license: String::new(),
                keep_ready: true,
            };
            offered.push(offered_after(&http, &owner, &entry).await);
            // Out of the catalogue and off the disk: the next round fetches afresh.
            http.remove_catalogue_model("heiwa", &model_id, &owner).await.unwrap();
            store.remove(&model_id).unwrap();
        }
        let (raw_s, offered_s) = (percentile(&mut raw, 0.5), percentile(&mut offered, 0.5));
        let ratio = raw_s / offered_s;
        println!(
            "{link}: raw download {raw_s:.2} s, added → offered {offered_s:.2} s (median of {rounds}): ratio {ratio:.2}"
        );
        fields.push(format!("{link}_raw_s={raw_s:.2} {link}_offered_s={offered_s:.2} {link}_ratio={ratio:.2}"));
        ratios.push(ratio);
    }
    let _ = stop.send(true);
    let (eta_error, eta_error_s, eta_samples) = estimate_errors(&http, &dir.path().join("queue"), sized(30, 5)).await;
    println!(
        "wait estimate on a steady queue: p50 error {:.0} % ({eta_error_s:.1} s) over {eta_samples} tasks",
        eta_error * 100.0
    );
    fields.push(format!("eta_p50_error={eta_error:.2} eta_p50_error_s={eta_error_s:.1} eta_samples={eta_samples}"));
    // The limb hands back and disconnects first (the 1.2 SDK panics on a call into a closed socket).
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    println!("{} {}", result_prefix("catalogue"), fields.join(" "));
    assert!(ratios.iter().all(|r| *r > 0.0 && r.is_finite()), "a ratio could not be measured: {ratios:?}");
}
