//! Memory: add folders (with progress events), list and forget documents,
//! search with citations.

use super::with_limb;
use crate::error::{said, CommandError, CommandResult};
use crate::event::{Event, LIMB_CHANGED};
use crate::state::{AppState, Limb};
use heiwa_memory::{Citation, DocumentInfo, LeftOut, Progress, WalkOptions};
use serde::Serialize;
use std::path::PathBuf;
use tauri::{AppHandle, Manager, State};
use tauri_plugin_dialog::DialogExt;
use ts_rs::TS;

/// The event the window hears while a folder is ingested.
pub const INGEST: Event<IngestEvent> = Event::named("ingest");

/// The native folder picker; `None` when the owner cancels.
#[tauri::command]
pub async fn pick_folder(app: AppHandle) -> CommandResult<Option<String>> {
    let picked = tauri::async_runtime::spawn_blocking(move || {
        app.dialog().file().set_title("Add a folder to memory").blocking_pick_folder()
    })
    .await?;
    picked.map(|p| p.into_path().map(|p| p.display().to_string())).transpose().map_err(said)
}

/// What the window hears while a folder is ingested.
#[derive(Clone, Serialize, TS)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum IngestEvent {
    File(Progress),
    Finished {
        folder: String,
        added: usize,
        unchanged: usize,
        failed: usize,
        skipped: usize,
        removed: usize,
        /// Entries left out unread (hidden, ignored, dependency trees, lock files, minified or
        /// generated), each named once: a folder for everything under it.
        left_out: Vec<LeftOutEntry>,
    },
    Stopped {
        folder: String,
        error: String,
    },
}

/// An entry the walk left out, and why, as `heiwa ingest --list-skipped` names it.
#[derive(Clone, Serialize, TS)]
pub struct LeftOutEntry {
    pub path: String,
    pub kind: LeftOut,
    /// The reason, as a person reads it.
    pub reason: String,
}

/// Ingest a folder (or one file) into memory in the background; progress
/// arrives as `ingest` events. One folder at a time. `options` takes back
/// what the walk leaves out by default (the CLI's `--no-ignore` and
/// `--include-generated`).
#[tauri::command]
pub async fn ingest_folder(
    app: AppHandle,
    state: State<'_, AppState>,
    path: String,
    options: WalkOptions,
) -> CommandResult<()> {
    let root = PathBuf::from(path.trim());
    if !root.is_absolute() {
        return Err(CommandError::with_hint(
            format!("\"{}\" is not a full path", root.display()),
            "choose the folder with \"Add folder…\"",
        ));
    }
    if !root.exists() {
        return Err(format!("{} does not exist", root.display()).into());
    }
    let (memory, embedder) = match &*state.limb.lock().await {
        Limb::Ready(running) => (running.agent.memory().memory.clone(), running.agent.memory().embedder.clone()),
        other => return Err(other.not_ready()),
    };
    let folder = root.display().to_string();
    {
        let mut ingesting = state.ingesting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = &*ingesting {
            return Err(CommandError::with_hint(format!("{current} is still being added"), "wait for it to finish"));
        }
        *ingesting = Some(folder.clone());
    }
    tauri::async_runtime::spawn(async move {
        let emitter = app.clone();
        let mut progress = move |step: Progress| {
            INGEST.emit(&emitter, IngestEvent::File(step));
        };
        let outcome = heiwa_memory::ingest_path(&memory, &embedder, "local", &root, options, &mut progress).await;
        let event = match outcome {
            Ok(report) => IngestEvent::Finished {
                folder: folder.clone(),
                added: report.added.len(),
                unchanged: report.unchanged.len(),
                failed: report.failed.len(),
                skipped: report.skipped.len(),
                removed: report.removed.len(),
                left_out: report
                    .left_out
                    .into_iter()
                    .map(|(path, kind)| LeftOutEntry {
                        path: path.display().to_string(),
                        kind,
                        reason: kind.reason().to_string(),
                    })
                    .collect(),
            },
            Err(error) => IngestEvent::Stopped { folder: folder.clone(), error: error.to_string() },
        };
        *app.state::<AppState>().ingesting.lock().unwrap_or_else(|p| p.into_inner()) = None;
        INGEST.emit(&app, event);
        LIMB_CHANGED.emit(&app, ());
    });
    Ok(())
}

#[tauri::command]
pub async fn documents(state: State<'_, AppState>) -> CommandResult<Vec<DocumentInfo>> {
    with_limb(&state, async |running| Ok(running.agent.memory().memory.documents("local").await?)).await
}

/// Forget a document (or everything under a folder); the files stay.
#[tauri::command]
pub async fn remove_document(state: State<'_, AppState>, path: String) -> CommandResult<usize> {
    with_limb(&state, async |running| Ok(running.agent.memory().memory.remove_documents("local", &path).await?.len()))
        .await
}

/// The passages the agent would retrieve for `query`, with where they come from.
#[tauri::command]
pub async fn search_memory(state: State<'_, AppState>, query: String) -> CommandResult<Vec<Citation>> {
    use limb_core::agent::Retriever;
    if query.trim().is_empty() {
        return Err("type what to search for".into());
    }
    let agent = match &*state.limb.lock().await {
        Limb::Ready(running) => running.agent.agent.clone(),
        other => return Err(other.not_ready()),
    };
    Ok(agent.retriever.retrieve(&query, 5).await?)
}
