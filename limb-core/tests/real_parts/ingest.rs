//! Offline ingestion and hybrid search against the real PostgreSQL + pgvector
//! and the real MiniLM embedding model.

use super::parts;
use limb_core::inference::{Embedder, ModelOptions};
use limb_core::memory::{ingest_path, Memory, PgServer, PgServerConfig, MAX_FILE_BYTES};
use std::path::{Path, PathBuf};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/docs")
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_ingested_and_questions_find_the_right_file_with_citations() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let mut server = PgServer::new(PgServerConfig { install_dir: parts.pg_dir.clone(), root: dir.path().join("pg") }).unwrap();
    server.start().unwrap();
    let memory = Memory::open(&server).await.unwrap();
    let embedder = Embedder::load(&parts.embed_model, ModelOptions::default()).unwrap();

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
    std::fs::File::create(corpus.join("huge.txt")).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
    std::os::unix::fs::symlink(&corpus, corpus.join("loop")).unwrap();

    let report = ingest_path(&memory, &embedder, "tenant-a", &corpus).await.unwrap();
    let added: Vec<&str> = report.added.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(added, ["rust-ownership.md", "sourdough.txt", "vector-search.md", "volunteer-computing.md"]);
    let reasons: std::collections::HashMap<String, String> =
        report.failed.iter().map(|(p, r)| (p.file_name().unwrap().to_string_lossy().into_owned(), r.clone())).collect();
    assert!(reasons["junk.txt"].contains("binary"), "{reasons:?}");
    assert!(reasons["latin1.txt"].contains("not valid UTF-8"), "{reasons:?}");
    assert!(reasons["empty.md"].contains("empty"), "{reasons:?}");
    assert!(reasons["photo.png"].contains("unsupported"), "{reasons:?}");
    assert!(reasons["huge.txt"].contains("the limit is"), "{reasons:?}");
    assert!(reasons["loop"].contains("symbolic link"), "{reasons:?}");
    assert_eq!(reasons.len(), 6, "the hidden folder is skipped silently: {reasons:?}");

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
        assert_eq!(&original[cited.span.0 as usize..cited.span.1 as usize], cited.content, "the citation's span is exact");
    }

    // Tenant B sees nothing of A's; a second pass skips unchanged files.
    let embedding = embedder.embed(&["sourdough"]).unwrap().remove(0);
    assert!(memory.search("tenant-b", "sourdough", &embedding, 3).await.unwrap().is_empty());
    let again = ingest_path(&memory, &embedder, "tenant-a", &corpus).await.unwrap();
    assert_eq!((again.added.len(), again.unchanged.len(), again.removed.len()), (0, 4, 0));

    // A deleted file leaves memory on the next scan; a changed one is replaced.
    std::fs::remove_file(corpus.join("sourdough.txt")).unwrap();
    std::fs::write(corpus.join("rust-ownership.md"), "# Ownership\n\nBorrowing rules, rewritten.").unwrap();
    let rescan = ingest_path(&memory, &embedder, "tenant-a", &corpus).await.unwrap();
    assert_eq!(rescan.removed.iter().map(|p| file_name(p)).collect::<Vec<_>>(), ["sourdough.txt"]);
    assert_eq!(rescan.added.len(), 1, "the changed file is re-ingested");
    let hits = memory.search("tenant-a", "sourdough", &embedding, 4).await.unwrap();
    assert!(hits.iter().all(|h| file_name(&h.path) != "sourdough.txt"), "{hits:?}");
    memory.close().await;
    server.stop().unwrap();
}
