//! The model manager on the real GGUF files from setup.

use super::parts;
use heiwa_inference::models::{inspect, ModelError, ModelStore};

#[test]
fn gguf_metadata_is_read_from_the_files_themselves() {
    let parts = parts();
    let chat = inspect(&parts.chat_model().unwrap()).unwrap();
    assert_eq!(
        (chat.architecture.as_deref(), chat.quantization.as_deref()),
        (Some("qwen2"), Some("Q4_K_M")),
        "{chat:?}"
    );
    assert!(chat.has_chat_template && chat.context_length.unwrap() >= 32_768, "{chat:?}");
    let base = inspect(&super::base_model()).unwrap();
    assert_eq!(
        (base.architecture.as_deref(), base.parameters.as_deref(), base.has_chat_template),
        (Some("gemma3"), Some("270M"), false),
        "{base:?}"
    );
    let embed = inspect(&parts.embed_model).unwrap();
    assert_eq!(
        (embed.architecture.as_deref(), embed.quantization.as_deref(), embed.context_length),
        (Some("bert"), Some("F32"), Some(512))
    );
}

#[test]
fn models_are_imported_listed_chosen_and_removed_and_bad_files_never_get_in() {
    let parts = parts();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path().join("models"));
    assert!(store.list().unwrap().is_empty());

    let imported = store.import(&super::base_model()).unwrap();
    assert_eq!(imported.id, "gemma-3-270m-q4_k_m");
    assert!(matches!(store.import(&super::base_model()), Err(ModelError::Exists(id)) if id == imported.id));
    store.import(&parts.embed_model).unwrap();

    // Bad files: junk named .gguf, a truncated download, a wrong extension. None is copied in.
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"GGUF but not really").unwrap();
    assert!(matches!(store.import(&junk), Err(ModelError::NotGguf { .. })), "{:?}", store.import(&junk));
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&parts.embed_model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = store.import(&truncated).unwrap_err();
    assert!(matches!(err, ModelError::Unloadable { .. }), "{err}");
    assert!(matches!(store.import(&dir.path().join("notes.txt")), Err(ModelError::NotGgufName(_))));

    let listed: Vec<String> = store.list().unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(listed, ["all-minilm-l6-v2-f32", "gemma-3-270m-q4_k_m"], "only the good ones, by id");
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path().join("models")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no partial copies: {leftovers:?}");

    assert_eq!(store.default_path(), None);
    store.set_default("gemma-3-270m-q4_k_m").unwrap();
    assert_eq!(store.default_path().unwrap(), dir.path().join("models/gemma-3-270m-q4_k_m.gguf"));
    assert!(store.list().unwrap().iter().any(|m| m.is_default && m.id == "gemma-3-270m-q4_k_m"));
    assert!(
        matches!(store.set_default("../../etc/passwd"), Err(ModelError::Unknown(_))),
        "ids cannot leave the directory"
    );
    assert!(matches!(store.set_default("missing"), Err(ModelError::Unknown(_))));

    store.remove("gemma-3-270m-q4_k_m").unwrap();
    assert_eq!(store.default_path(), None, "removing the default clears it");
    assert!(matches!(store.remove("gemma-3-270m-q4_k_m"), Err(ModelError::Unknown(_))));
    assert_eq!(store.list().unwrap().len(), 1);
}
