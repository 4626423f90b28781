//! Offline ingestion and hybrid search against the real PostgreSQL + pgvector
//! and the real MiniLM embedding model.

use super::parts;
use heiwa_inference::{Embedder, ModelOptions};
use heiwa_memory::{ingest_path, watch_path, Memory, PgServer, PgServerConfig, WalkOptions, MAX_WHOLE_BYTES};
use std::path::{Path, PathBuf};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/docs")
}

/// PostgreSQL started under `dir`, its memory database, and the embedding model.
pub(super) async fn memory_in(dir: &Path) -> (PgServer, Memory, Embedder) {
    let parts = parts();
    let mut server = PgServer::new(PgServerConfig { install_dir: parts.pg_dir.clone(), root: dir.join("pg") }).unwrap();
    server.start().unwrap();
    let memory = Memory::open(&server).await.unwrap();
    (server, memory, Embedder::load(&parts.embed_model, ModelOptions::default()).unwrap())
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_ingested_and_questions_find_the_right_file_with_citations() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, memory, embedder) = memory_in(dir.path()).await;

    // The sample documents plus every kind of bad input, side by side.
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(corpus.join(".hidden")).unwrap();
    for entry in std::fs::read_dir(samples()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), corpus.join(entry.file_name())).unwrap();
    }
    std::fs::write(corpus.join(".hidden/secret.txt"), "never ingested").unwrap();
    std::fs::write(corpus.join("junk.txt"), [0u8, 159, 146, 150, 0, 1, 2, 3]).unwrap();
    std::fs::write(corpus.join("latin1.txt"), b"caf\xe9 au lait").unwrap();
    std::fs::write(corpus.join("empty.md"), b"  \n").unwrap();
    std::fs::write(corpus.join("photo.png"), b"\x89PNG\r\n").unwrap();
    std::fs::File::create(corpus.join("huge.html")).unwrap().set_len(MAX_WHOLE_BYTES + 1).unwrap();
    std::os::unix::fs::symlink(&corpus, corpus.join("loop")).unwrap();

    let mut steps = Vec::new();
    let report =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |step| steps.push(step))
            .await
            .unwrap();
    let added: Vec<&str> = report.added.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(added, ["rust-ownership.md", "sourdough.txt", "vector-search.md", "volunteer-computing.md"]);
    // Progress: one step per file or refused entry, counting up to the total.
    assert_eq!(
        steps.iter().map(|s| (s.done, s.total)).collect::<Vec<_>>(),
        (1..=10).map(|n| (n, 10)).collect::<Vec<_>>()
    );
    assert_eq!(steps.iter().filter(|s| s.outcome == heiwa_memory::Outcome::Added).count(), 4);
    let reasons: std::collections::HashMap<String, String> =
        report.failed.iter().map(|(p, r)| (p.file_name().unwrap().to_string_lossy().into_owned(), r.clone())).collect();
    assert!(reasons["junk.txt"].contains("binary"), "{reasons:?}");
    assert!(reasons["latin1.txt"].contains("not valid UTF-8"), "{reasons:?}");
    assert!(reasons["empty.md"].contains("empty"), "{reasons:?}");
    assert!(reasons["huge.html"].contains("the limit is"), "{reasons:?}");
    assert!(reasons["loop"].contains("symbolic link"), "{reasons:?}");
    assert_eq!(reasons.len(), 5, "the hidden folder is skipped silently: {reasons:?}");
    // A type memory does not take is counted, not a failure that would bury the real ones.
    assert_eq!(
        report.skipped.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect::<Vec<_>>(),
        ["photo.png"]
    );
    assert!(steps.iter().any(|s| s.outcome == heiwa_memory::Outcome::Skipped && s.path.ends_with("photo.png")));

    for (question, expected) in [
        ("How does HNSW trade recall for speed at query time?", "vector-search.md"),
        ("What happens to a work unit when a volunteer's computer disappears?", "volunteer-computing.md"),
        ("How long should the dough ferment before baking?", "sourdough.txt"),
        ("Who frees memory when a value goes out of scope?", "rust-ownership.md"),
    ] {
        let embedding = embedder.embed(&[question]).unwrap().remove(0);
        let hits = memory.search("tenant-a", question, &embedding, 3).await.unwrap();
        let top3: Vec<&str> = hits.iter().map(|h| file_name(&h.path)).collect();
        assert!(top3.contains(&expected), "{question} → {top3:?}");
        let cited = &hits[0];
        let original = std::fs::read_to_string(&cited.path).unwrap();
        assert_eq!(
            &original[cited.span.0 as usize..cited.span.1 as usize],
            cited.content,
            "the citation's span is exact"
        );
    }

    // Tenant B sees nothing of A's; a second pass skips unchanged files.
    let embedding = embedder.embed(&["sourdough"]).unwrap().remove(0);
    assert!(memory.search("tenant-b", "sourdough", &embedding, 3).await.unwrap().is_empty());
    let again =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!((again.added.len(), again.unchanged.len(), again.removed.len()), (0, 4, 0));

    // A deleted file leaves memory on the next scan; a changed one is replaced.
    std::fs::remove_file(corpus.join("sourdough.txt")).unwrap();
    std::fs::write(corpus.join("rust-ownership.md"), "# Ownership\n\nBorrowing rules, rewritten.").unwrap();
    let rescan =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!(rescan.removed.iter().map(|p| file_name(p)).collect::<Vec<_>>(), ["sourdough.txt"]);
    assert_eq!(rescan.added.len(), 1, "the changed file is re-ingested");
    let hits = memory.search("tenant-a", "sourdough", &embedding, 4).await.unwrap();
    assert!(hits.iter().all(|h| file_name(&h.path) != "sourdough.txt"), "{hits:?}");

    // Listing and removing by hand; tenant B lists nothing and removes nothing of A's.
    let listed = memory.documents("tenant-a").await.unwrap();
    assert_eq!(
        listed.iter().map(|d| file_name(&d.path)).collect::<Vec<_>>(),
        ["rust-ownership.md", "vector-search.md", "volunteer-computing.md"]
    );
    assert!(listed.iter().all(|d| d.chunks >= 1 && d.text_bytes > 0), "{listed:?}");
    let vector = corpus.join("vector-search.md").to_string_lossy().into_owned();
    assert!(memory.remove_documents("tenant-b", &vector).await.unwrap().is_empty());
    assert!(memory.documents("tenant-b").await.unwrap().is_empty());
    assert_eq!(memory.remove_documents("tenant-a", &vector).await.unwrap(), std::slice::from_ref(&vector));
    assert_eq!(memory.documents("tenant-a").await.unwrap().len(), 2);
    assert!(corpus.join("vector-search.md").exists(), "the file itself is untouched");
    let folder = corpus.to_string_lossy().into_owned();
    assert_eq!(
        memory.remove_documents("tenant-a", &folder).await.unwrap().len(),
        2,
        "a folder removes what is under it"
    );
    assert!(memory.documents("tenant-a").await.unwrap().is_empty());
    memory.close().await;
    server.stop().unwrap();
}

/// A PDF with one page per text (Courier, a standard font), written with lopdf.
fn pdf(pages: &[&str]) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier" });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let kids: Vec<Object> = pages
        .iter()
        .map(|text| {
            let content = Content {
                operations: vec![
                    Operation::new("BT", vec![]),
                    Operation::new("Tf", vec!["F1".into(), 12.into()]),
                    Operation::new("Td", vec![72.into(), 720.into()]),
                    Operation::new("Tj", vec![Object::string_literal(*text)]),
                    Operation::new("ET", vec![]),
                ],
            };
            let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
            doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id }).into()
        })
        .collect();
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

/// A zip holding `word/document.xml` with `xml`, deflated.
fn docx(xml: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("word/document.xml", options).unwrap();
    zip.write_all(xml).unwrap();
    zip.finish().unwrap().into_inner()
}

fn paragraphs(texts: &[&str]) -> Vec<u8> {
    let body: String = texts.iter().map(|t| format!("<w:p><w:r><w:t>{t}</w:t></w:r></w:p>")).collect();
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_csv_docx_and_pdf_are_ingested_and_broken_ones_are_per_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, memory, embedder) = memory_in(dir.path()).await;

    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(
        corpus.join("report.html"),
        "<html><head><script>var tracking = 1;</script></head><body><h1>Glacier survey</h1><p>The Vatnajokull glacier lost three metres of ice thickness during the 2025 melt season.</p></body></html>",
    )
    .unwrap();
    std::fs::write(corpus.join("rainfall.csv"), "city,annual_rainfall_mm\nBergen,2250\nLima,13\nCairo,24\n").unwrap();
    std::fs::write(
        corpus.join("minutes.docx"),
        docx(&paragraphs(&["Board meeting minutes.", "The board approved the solar panel budget &amp; a new roof."])),
    )
    .unwrap();
    let manual = pdf(&[
        "Chapter one introduces the water pump and its parts.",
        "To reset the water pump, hold the red button for ten seconds.",
    ]);
    std::fs::write(corpus.join("manual.pdf"), &manual).unwrap();

    std::fs::write(corpus.join("truncated.pdf"), &manual[..manual.len() / 2]).unwrap();
    std::fs::write(
        corpus.join("bomb.docx"),
        docx(&vec![b' '; (heiwa_memory::MAX_PACKAGE_XML_BYTES + (1 << 20)) as usize]),
    )
    .unwrap();
    std::fs::write(corpus.join("letter.docx"), b"just text, not a zip").unwrap();
    std::fs::write(corpus.join("ragged.csv"), "a,b\n1,2,3\n").unwrap();

    let report =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    let added: Vec<&str> = report.added.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(added, ["manual.pdf", "minutes.docx", "rainfall.csv", "report.html"], "{report:?}");
    let reasons: std::collections::HashMap<String, String> =
        report.failed.iter().map(|(p, r)| (p.file_name().unwrap().to_string_lossy().into_owned(), r.clone())).collect();
    assert!(reasons["truncated.pdf"].contains("unreadable PDF"), "{reasons:?}");
    assert!(reasons["bomb.docx"].contains("zip bomb"), "{reasons:?}");
    assert!(reasons["letter.docx"].contains("not readable as DOCX"), "{reasons:?}");
    assert!(reasons["ragged.csv"].contains("malformed CSV"), "{reasons:?}");
    assert_eq!(reasons.len(), 4);

    for (question, expected) in [
        ("How do I reset the water pump?", "manual.pdf"),
        ("What did the board approve?", "minutes.docx"),
        ("How much ice did the glacier lose?", "report.html"),
        ("What is the annual rainfall in Bergen?", "rainfall.csv"),
    ] {
        let embedding = embedder.embed(&[question]).unwrap().remove(0);
        let hits = memory.search("tenant-a", question, &embedding, 1).await.unwrap();
        assert_eq!(file_name(&hits[0].path), expected, "{question} → {hits:?}");
        assert!(!hits[0].content.contains('<'), "no markup in the text: {:?}", hits[0].content);
    }
    let embedding = embedder.embed(&["reset the water pump"]).unwrap().remove(0);
    let hits = memory.search("tenant-a", "reset the water pump", &embedding, 5).await.unwrap();
    let pump: Vec<_> = hits.iter().filter(|h| h.content.contains("red button")).collect();
    assert_eq!(pump[0].page, Some(2), "PDF citations carry their page: {pump:?}");
    assert!(hits.iter().filter(|h| file_name(&h.path) != "manual.pdf").all(|h| h.page.is_none()));
    let minutes = hits
        .iter()
        .chain(memory.search("tenant-a", "board", &embedder.embed(&["board"]).unwrap()[0], 5).await.unwrap().iter())
        .find(|h| file_name(&h.path) == "minutes.docx")
        .cloned();
    assert!(minutes.unwrap().content.contains("solar panel budget & a new roof"), "entities decoded");
    memory.close().await;
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_ingest_leaves_no_half_document_and_a_rescan_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, memory, embedder) = memory_in(dir.path()).await;
    let (memory, embedder) = (std::sync::Arc::new(memory), std::sync::Arc::new(embedder));

    // 40 documents of several chunks each: the ingest takes long enough to be caught in the middle.
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let mut expected_chunks = std::collections::HashMap::new();
    for n in 0..40 {
        let text: String = (0..30)
            .map(|s| format!("Document {n}, sentence {s}: the limb keeps notes about topic {}. ", n * 31 + s))
            .collect();
        let path = corpus.join(format!("doc{n:02}.txt"));
        std::fs::write(&path, &text).unwrap();
        expected_chunks.insert(path.to_string_lossy().into_owned(), heiwa_memory::chunks(&text).len() as i64);
    }

    let ingesting = tokio::spawn({
        let (memory, embedder, corpus) = (memory.clone(), embedder.clone(), corpus.clone());
        async move { ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await }
    });
    loop {
        let stored = memory.documents("tenant-a").await.unwrap().len();
        if stored >= 5 {
            break;
        }
        assert!(!ingesting.is_finished(), "the ingest finished before it could be interrupted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = server.pid().expect("postmaster.pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let outcome = ingesting.await.expect("the ingest returns, it does not panic");
    assert!(outcome.is_err(), "the ingest reports the lost database: {outcome:?}");
    memory.close().await;

    server.start().expect("PostgreSQL restarts after SIGKILL (its pid file left behind)");
    let memory = Memory::open(&server).await.unwrap();
    let survivors = memory.documents("tenant-a").await.unwrap();
    assert!(survivors.len() >= 5 && survivors.len() < 40, "{} documents survived", survivors.len());
    for doc in &survivors {
        assert_eq!(doc.chunks, expected_chunks[&doc.path], "{} is whole or absent, never half", doc.path);
    }
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM chunk WHERE document_id IS NULL OR document_id NOT IN (SELECT id FROM document)",
    )
    .fetch_one(memory.pool())
    .await
    .unwrap();
    assert_eq!(orphans, 0);

    let rescan =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!((rescan.added.len() + rescan.unchanged.len(), rescan.unchanged.len()), (40, survivors.len()));
    let all = memory.documents("tenant-a").await.unwrap();
    assert!(all.iter().all(|doc| doc.chunks == expected_chunks[&doc.path]) && all.len() == 40);
    memory.close().await;
    server.stop().unwrap();
}

async fn next_pass(
    passes: &mut tokio::sync::mpsc::UnboundedReceiver<heiwa_memory::IngestReport>,
) -> heiwa_memory::IngestReport {
    tokio::time::timeout(std::time::Duration::from_secs(20), passes.recv())
        .await
        .expect("a pass after the change")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_folder_picks_up_new_changed_and_deleted_files() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, memory, embedder) = memory_in(dir.path()).await;
    let (memory, embedder) = (std::sync::Arc::new(memory), std::sync::Arc::new(embedder));
    let folder = dir.path().join("watched");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("first.md"), "Tomatoes need full sun and deep watering.").unwrap();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (pass_tx, mut passes) = tokio::sync::mpsc::unbounded_channel();
    let watching = tokio::spawn({
        let (memory, embedder, folder) = (memory.clone(), embedder.clone(), folder.clone());
        async move {
            let stop = async {
                let _ = stop_rx.await;
            };
            let quiet = std::time::Duration::from_millis(200);
            watch_path(
                &memory,
                &embedder,
                "tenant-a",
                &folder,
                WalkOptions::default(),
                quiet,
                &mut |_| {},
                &mut |report| pass_tx.send(report).unwrap(),
                stop,
            )
            .await
        }
    });
    assert_eq!(next_pass(&mut passes).await.added.len(), 1, "the first pass ingests what is there");

    std::fs::write(folder.join("second.txt"), "Basil grows well next to tomatoes.").unwrap();
    let pass = next_pass(&mut passes).await;
    assert_eq!((pass.added.len(), pass.unchanged.len()), (1, 1), "{pass:?}");

    std::fs::write(folder.join("first.md"), "Tomatoes need full sun, deep watering and stakes.").unwrap();
    let pass = next_pass(&mut passes).await;
    assert_eq!((pass.added.len(), pass.unchanged.len()), (1, 1), "the changed file is re-ingested: {pass:?}");

    std::fs::remove_file(folder.join("second.txt")).unwrap();
    let pass = next_pass(&mut passes).await;
    assert_eq!(pass.removed.len(), 1, "{pass:?}");
    let docs = memory.documents("tenant-a").await.unwrap();
    assert_eq!(docs.iter().map(|d| file_name(&d.path)).collect::<Vec<_>>(), ["first.md"]);

    stop_tx.send(()).unwrap();
    watching.await.unwrap().expect("the watch ends cleanly when stopped");
    memory.close().await;
    server.stop().unwrap();
}

/// Documents that stall a parser (html2text spent minutes on each of these)
/// are stopped from outside by their budget — time or memory — and are their
/// own error; the rest of the folder is ingested, in bounded time.
#[test]
fn a_document_over_its_time_or_memory_budget_is_its_own_error_and_the_folder_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |folder: &Path, budget: [(&str, &str); 2]| {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
            .arg("ingest")
            .arg(folder)
            .env("HEIWA_DATA_DIR", dir.path().join("data"))
            .envs(budget)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), started.elapsed())
    };
    // Deeply nested: slow to lay out. A million tiny elements: large to hold.
    let deep = dir.path().join("deep");
    std::fs::create_dir_all(&deep).unwrap();
    for sample in std::fs::read_dir(samples()).unwrap() {
        let sample = sample.unwrap().path();
        std::fs::copy(&sample, deep.join(sample.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        deep.join("nested.html"),
        format!("<html><body>{}x{}</body></html>", "<div>".repeat(400_000), "</div>".repeat(400_000)),
    )
    .unwrap();
    let (said, took) = run(&deep, [("HEIWA_EXTRACT_TIMEOUT_SECS", "2"), ("HEIWA_EXTRACT_MEMORY_MIB", "2048")]);
    assert!(said.contains("nested.html: extracting its text took longer than its budget of 2 s"), "{said}");
    assert!(said.lines().last().unwrap().starts_with("4 added"), "the rest of the folder went on: {said}");
    assert!(took < Duration::from_secs(60), "bounded: {took:?}");

    let wide = dir.path().join("wide");
    std::fs::create_dir_all(&wide).unwrap();
    std::fs::write(wide.join("tiny.html"), format!("<html><body>{}</body></html>", "<b>x</b>".repeat(900_000)))
        .unwrap();
    std::fs::write(wide.join("note.txt"), "A short note that fits any budget.").unwrap();
    for name in ["site.css", "app.css", "logo.png"] {
        std::fs::write(wide.join(name), "not for memory").unwrap();
    }
    let (said, _) = run(&wide, [("HEIWA_EXTRACT_TIMEOUT_SECS", "120"), ("HEIWA_EXTRACT_MEMORY_MIB", "64")]);
    assert!(said.contains("tiny.html: extracting its text needed more than its memory budget of 64 MiB"), "{said}");
    assert!(said.contains("added      ") && said.contains("note.txt"), "{said}");
    // Types memory does not take: one line, not three failures burying the real one.
    assert!(!said.contains("site.css") && !said.contains("logo.png"), "{said}");
    assert!(
        said.contains("3 files skipped, of types memory does not take: .css 2, .png 1 (--list-skipped names them)"),
        "{said}"
    );
    assert!(said.lines().last().unwrap().ends_with("1 not added"), "{said}");
}

/// A rescan decides by each file's size and modification time before reading
/// it: a file whose stamp is unchanged is not read again (here its bytes were
/// swapped behind the stamp's back and the rescan still calls it unchanged);
/// a moved mtime makes it read, hashed and, changed, stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_skips_files_whose_size_and_mtime_are_unchanged_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, memory, embedder) = memory_in(dir.path()).await;
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for sample in std::fs::read_dir(samples()).unwrap() {
        let sample = sample.unwrap().path();
        std::fs::copy(&sample, corpus.join(sample.file_name().unwrap())).unwrap();
    }
    let first =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!(first.added.len(), 4);

    let file = corpus.join("sourdough.txt");
    let (size, mtime) = {
        let meta = std::fs::metadata(&file).unwrap();
        (meta.len() as usize, meta.modified().unwrap())
    };
    std::fs::write(&file, "z".repeat(size)).unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
    let second =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!((second.added.len(), second.unchanged.len()), (0, 4), "nothing read again: {second:?}");

    std::fs::File::options().write(true).open(&file).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
    let third =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!(third.added, vec![file], "its stamp moved: read, and its new text stored: {third:?}");
    memory.close().await;
    server.stop().unwrap();
}

/// The same passage in several files (a copy, an edition that repeats it
/// with its line breaks changed) is one hit citing every place; the other
/// hits are other passages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_passage_are_one_hit_that_cites_every_place() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, memory, embedder) = memory_in(dir.path()).await;
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(corpus.join("copies")).unwrap();
    for sample in std::fs::read_dir(samples()).unwrap() {
        let sample = sample.unwrap().path();
        std::fs::copy(&sample, corpus.join(sample.file_name().unwrap())).unwrap();
    }
    let sourdough = std::fs::read_to_string(samples().join("sourdough.txt")).unwrap();
    std::fs::write(corpus.join("copies/sourdough.txt"), &sourdough).unwrap();
    std::fs::write(corpus.join("single-page.txt"), sourdough.replace('\n', " \n\n")).unwrap();
    let report =
        ingest_path(&memory, &embedder, "tenant-a", &corpus, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!(report.added.len(), 6, "{report:?}");

    let question = "How long does sourdough ferment?";
    let embedding = embedder.embed(&[question]).unwrap().remove(0);
    let hits = memory.search("tenant-a", question, &embedding, 3).await.unwrap();
    assert_eq!(hits.len(), 3, "three distinct passages: {hits:#?}");
    assert_eq!(file_name(&hits[0].path), "sourdough.txt", "{hits:#?}");
    let mut places: Vec<String> = hits[0].also.iter().map(|p| p.path.clone()).collect();
    places.push(hits[0].path.clone());
    places.sort();
    let places: Vec<&str> = places.iter().map(|p| p.rsplit("corpus/").next().unwrap()).collect();
    assert_eq!(places, ["copies/sourdough.txt", "single-page.txt", "sourdough.txt"], "{hits:#?}");
    for (i, a) in hits.iter().enumerate() {
        for b in &hits[i + 1..] {
            assert_ne!(
                a.content.split_whitespace().collect::<Vec<_>>(),
                b.content.split_whitespace().collect::<Vec<_>>()
            );
        }
    }
    memory.close().await;
    server.stop().unwrap();
}

/// Source code is chunked along its structure and cited by lines: a search
/// for what a function does finds that whole function, and the lines named
/// are the function's own in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_code_is_found_by_whole_definitions_cited_by_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, memory, embedder) = memory_in(dir.path()).await;
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    // Filler functions so that the file is many chunks, the one sought in the middle.
    let filler = |name: &str| {
        format!("/// Returns the {name} of the values.\nfn {name}(values: &[f64]) -> f64 {{\n    let total: f64 = values.iter().sum();\n    total / values.len() as f64 + 0.0 * {}.0\n}}\n\n", name.len())
    };
    let sought = "/// Converts a temperature in degrees Celsius to degrees Fahrenheit.\n#[must_use]\nfn celsius_to_fahrenheit(celsius: f64) -> f64 {\n    // Water boils at 100 C, which is 212 F.\n    celsius * 9.0 / 5.0 + 32.0\n}\n\n";
    let before: String = ["mean", "average", "centre", "middle", "typical", "expected"].map(filler).concat();
    let after: String = ["median", "mode", "spread", "range", "variance", "deviation"].map(filler).concat();
    let source = format!("use std::fmt;\n\n{before}{sought}{after}");
    std::fs::write(code.join("stats.rs"), &source).unwrap();
    std::fs::write(
        code.join("convert.py"),
        "import math\n\n\nclass Units:\n    \"\"\"Unit conversions.\"\"\"\n\n    def miles_to_kilometres(self, miles):\n        return miles * 1.609344\n",
    )
    .unwrap();
    let report = ingest_path(&memory, &embedder, "tenant-a", &code, WalkOptions::default(), &mut |_| {}).await.unwrap();
    assert_eq!(report.added.len(), 2, "{report:?}");

    let question = "convert Celsius temperature to Fahrenheit";
    let embedding = embedder.embed(&[question]).unwrap().remove(0);
    let hits = memory.search("tenant-a", question, &embedding, 3).await.unwrap();
    let hit = &hits[0];
    assert_eq!(file_name(&hit.path), "stats.rs", "{hits:#?}");
    assert!(hit.content.contains(sought.trim()), "the whole function, its comment and attribute: {:?}", hit.content);
    assert!(!hit.content.contains("fn mean"), "not the file's head: {:?}", hit.content);
    let first = source.lines().position(|line| line.starts_with("/// Converts")).unwrap() as i32 + 1;
    let last = source.lines().position(|line| line.starts_with("    celsius * 9.0")).unwrap() as i32 + 2;
    let (from, to) = hit.lines.expect("code is cited by lines");
    assert!(from <= first && to >= last, "lines {from}-{to} hold the function at {first}-{last}");
    let cited: Vec<&str> = source.lines().skip(from as usize - 1).take((to - from + 1) as usize).collect();
    assert_eq!(cited.join("\n"), hit.content, "the lines named are the chunk's own");
    memory.close().await;
    server.stop().unwrap();
}

/// A file far over the whole-file limit is streamed, not refused: `heiwa
/// ingest` holds one section at a time (its memory and its worker's stay far
/// below the file's size), every passage is found at its own byte offset in
/// the file, and a later version that turns out bad part-way is refused as a
/// whole, the last good version staying searchable.
#[test]
fn a_large_file_is_streamed_in_bounded_memory_and_stored_whole_or_not_at_all() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let passages = [
        "The lighthouse keeper writes the height of the tide in the log at dawn and at dusk.",
        "Beekeepers move their hives to the heather moors in August for the late honey flow.",
        "A cooper bends oak staves over a small fire before the hoops are driven home.",
        "The glassblower gathers molten glass on the pipe and turns it to keep it centred.",
    ];
    // 64 MiB: the passages at the start, a third, two thirds and the end; blank lines between.
    let size: usize = 64 << 20;
    let mut offsets = Vec::new();
    let file = corpus.join("archive.txt");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let mut written = 0;
    for (i, passage) in passages.iter().enumerate() {
        let target = if i == passages.len() - 1 { size - 200 } else { size * i / 3 };
        let gap = "\n".repeat(target.saturating_sub(written));
        out.write_all(gap.as_bytes()).unwrap();
        written += gap.len();
        offsets.push(written);
        out.write_all(format!("{passage}\n\n").as_bytes()).unwrap();
        written += passage.len() + 2;
    }
    out.flush().unwrap();
    drop(out);
    let heiwa = |args: &[&str]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
            .args(args)
            .env("HEIWA_DATA_DIR", dir.path().join("data"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Its pipes are read while it runs: a full pipe would stall it and this poll with it.
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let (mut peak, deadline) = (0, std::time::Instant::now() + std::time::Duration::from_secs(600));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "heiwa {args:?} still running after 10 min");
            peak = peak.max(crate::resident::peak_rss_kib(pid));
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        assert!(status.success(), "{stderr}");
        (stdout, peak)
    };
    // The baseline: the same command on a small file (the embedding model is most of it).
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("note.txt"), "A short note, nothing like the archive.").unwrap();
    let (_, baseline_kib) = heiwa(&["ingest", small.to_str().unwrap()]);
    let (said, peak_kib) = heiwa(&["ingest", corpus.to_str().unwrap()]);
    assert!(said.contains("added") && said.contains("archive.txt"), "{said}");
    let grown = peak_kib.saturating_sub(baseline_kib) >> 10;
    eprintln!(
        "a {} MiB file ingested with {grown} MiB more resident than a small one (heiwa and its worker)",
        size >> 20
    );
    assert!(grown < 40, "{grown} MiB more resident for a {} MiB file: not streamed", size >> 20);
    for (passage, offset) in passages.iter().zip(&offsets) {
        let (found, _) = heiwa(&["search", passage]);
        let first = found.lines().next().unwrap_or_default();
        let span = format!("bytes {}..{}", offset, offset + passage.len());
        assert!(first.contains("archive.txt") && first.contains(&span), "{passage:?} at {span}: {found}");
    }
    // A new version, bad at its very end: refused whole, the last good one kept.
    std::fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(b"Le caf\xe9.\n").unwrap();
    let (said, _) = heiwa(&["ingest", corpus.to_str().unwrap()]);
    let at = written + "Le caf".len();
    assert!(said.contains(&format!("archive.txt: not valid UTF-8 text (at byte {at})")), "{said}");
    let (found, _) = heiwa(&["search", passages[2]]);
    assert!(found.lines().next().unwrap_or_default().contains("archive.txt"), "the last good version: {found}");
}

/// The adversarial corpus (`heiwa_extract::adversarial`: deep nesting,
/// giant lines, millions of tiny elements, compression bombs, broken
/// encodings, lying file types, empty files) plus special files: `heiwa
/// ingest` ends in bounded time, and every case is reported once, as text or
/// as its own error, as the case expects; the good file beside them is added.
#[test]
fn every_adversarial_case_ends_in_bounded_time_as_text_or_its_own_error() {
    use heiwa_extract::adversarial::{write_corpus, Expect};
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let corpus = dir.path().join("corpus");
    let cases = write_corpus(&corpus).unwrap();
    std::fs::write(corpus.join("good.txt"), "A good note among the hostile ones.").unwrap();
    assert!(std::process::Command::new("mkfifo").arg(corpus.join("pipe.txt")).status().unwrap().success());
    let _socket = std::os::unix::net::UnixListener::bind(corpus.join("socket.md")).unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heiwa"))
        .arg("ingest")
        .arg(&corpus)
        // Every case reaches the extractors, the one-line ones too.
        .arg("--include-generated")
        .env("HEIWA_DATA_DIR", dir.path().join("data"))
        .env("HEIWA_EXTRACT_TIMEOUT_SECS", "5")
        .env("HEIWA_EXTRACT_MEMORY_MIB", "512")
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{} adversarial cases in {took:?}", cases.len());
    assert!(took < Duration::from_secs(240), "bounded: {took:?}\n{said}");
    let line_of = |path: &Path| {
        let shown = path.display().to_string();
        let lines: Vec<&str> = said
            .lines()
            .filter(|line| {
                line.strip_prefix("added      ").or(line.strip_prefix("not added  ")).is_some_and(|rest| {
                    rest == shown || rest.strip_prefix(&shown).is_some_and(|reason| reason.starts_with(": "))
                })
            })
            .collect();
        assert_eq!(lines.len(), 1, "{shown} is reported once: {said}");
        lines[0].to_string()
    };
    for case in &cases {
        let line = line_of(&case.path);
        let added = line.starts_with("added");
        match case.expect {
            Expect::Text => assert!(added, "{line}"),
            Expect::Error => assert!(!added, "{line}"),
            Expect::Either => {}
        }
        eprintln!("{line}");
    }
    assert!(line_of(&corpus.join("good.txt")).starts_with("added"));
    assert!(line_of(&corpus.join("pipe.txt")).ends_with("not a regular file (a named pipe); not read"));
    assert!(line_of(&corpus.join("socket.md")).ends_with("not a regular file (a socket); not read"));
}
