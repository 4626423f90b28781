//! `heiwa ingest`, `heiwa docs` and `heiwa search`: local memory, offline.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use heiwa_config::data_dir;
use heiwa_memory::{IngestReport, LeftOut, LocalMemory, Outcome, Progress, WalkOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct IngestArgs {
    path: PathBuf,
    #[arg(long, default_value = "local")]
    tenant: String,
    /// Keep watching: new, changed and deleted files are picked up until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// Name each file skipped or left out, with its reason (otherwise they are counted, one line per reason).
    #[arg(long)]
    list_skipped: bool,
    /// Take hidden files and folders and what .gitignore, .ignore and .heiwaignore files name.
    #[arg(long)]
    no_ignore: bool,
    /// Take dependency and build folders (node_modules, target, …), lock files, source maps, minified and
    /// generated files.
    #[arg(long)]
    include_generated: bool,
}

#[derive(Subcommand)]
pub enum DocsCommand {
    List {
        #[arg(long, default_value = "local")]
        tenant: String,
    },
    /// Forget a document, or every document under a folder.
    Rm {
        path: PathBuf,
        #[arg(long, default_value = "local")]
        tenant: String,
    },
}

#[derive(Args)]
pub struct SearchArgs {
    query: String,
    #[arg(short, default_value_t = 5)]
    k: i64,
    #[arg(long, default_value = "local")]
    tenant: String,
}

/// Local memory for one command: the app's PostgreSQL and the embedding model.
async fn open_memory() -> anyhow::Result<LocalMemory> {
    let parts = limb_core::chosen_parts(&data_dir())?;
    Ok(LocalMemory::open(&parts.pg_dir, &parts.embed_model, &data_dir().join("memory")).await?)
}

pub async fn ingest(
    IngestArgs { path, tenant, watch, list_skipped, no_ignore, include_generated }: IngestArgs,
) -> anyhow::Result<()> {
    let walk = WalkOptions { no_ignore, include_generated };
    let path = std::fs::canonicalize(&path).with_context(|| format!("{}", path.display()))?;
    let local = open_memory().await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files, {eta} left {wide_msg}")
            .expect("a valid template"),
    );
    // Lines go through `suspend` so they print whether or not the bar is drawn (not on a terminal).
    let mut progress = |step: Progress| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(step.path.display().to_string());
        bar.suspend(|| match &step.outcome {
            Outcome::Added => println!("added      {}", step.path.display()),
            Outcome::Unchanged => println!("unchanged  {}", step.path.display()),
            Outcome::Failed(reason) => println!("not added  {}: {reason}", step.path.display()),
            Outcome::Skipped if list_skipped => {
                println!("skipped    {} (a type memory does not take)", step.path.display())
            }
            Outcome::Skipped => {}
        });
    };
    let mut summary = |report: IngestReport| {
        bar.suspend(|| {
            for file in &report.removed {
                let why = if std::path::Path::new(file).exists() { "now left out" } else { "no longer on disk" };
                println!("removed    {file} ({why})");
            }
            if list_skipped {
                for (entry, why) in &report.left_out {
                    println!("left out   {} ({})", entry.display(), why.reason());
                }
            }
            if !report.skipped.is_empty() {
                println!("{}", skipped_line(&report.skipped, list_skipped));
            }
            for line in left_out_lines(&report.left_out, list_skipped) {
                println!("{line}");
            }
            println!(
                "{} added, {} unchanged, {} removed, {} not added",
                report.added.len(),
                report.unchanged.len(),
                report.removed.len(),
                report.failed.len()
            );
            if watch {
                println!("watching {} for changes; Ctrl-C stops", path.display());
            }
        });
    };
    let outcome = if watch {
        let quiet = std::time::Duration::from_millis(500);
        let stop = crate::shutdown_signal();
        heiwa_memory::watch_path(
            &local.memory,
            &local.embedder,
            &tenant,
            &path,
            walk,
            quiet,
            &mut progress,
            &mut summary,
            stop,
        )
        .await
    } else {
        heiwa_memory::ingest_path(&local.memory, &local.embedder, &tenant, &path, walk, &mut progress)
            .await
            .map(&mut summary)
    };
    bar.finish_and_clear();
    local.close().await?;
    Ok(outcome?)
}

pub async fn docs(command: DocsCommand) -> anyhow::Result<()> {
    match command {
        DocsCommand::List { tenant } => {
            let local = open_memory().await?;
            let documents = local.memory.documents(&tenant).await;
            local.close().await?;
            let documents = documents?;
            for doc in &documents {
                println!("{:>6} chunks  {:>9} bytes  {}", doc.chunks, doc.text_bytes, doc.path);
            }
            println!("{} documents in {tenant}'s memory", documents.len());
        }
        DocsCommand::Rm { path, tenant } => {
            // The file may be gone already: then the path is taken as written, made absolute.
            let path = std::fs::canonicalize(&path).unwrap_or_else(|_| std::path::absolute(&path).unwrap_or(path));
            let local = open_memory().await?;
            let removed = local.memory.remove_documents(&tenant, &path.to_string_lossy()).await;
            local.close().await?;
            let removed = removed?;
            if removed.is_empty() {
                bail!("nothing stored at {} in {tenant}'s memory (see `heiwa docs list`)", path.display());
            }
            for path in &removed {
                println!("removed  {path}");
            }
        }
    }
    Ok(())
}

pub async fn search(SearchArgs { query, k, tenant }: SearchArgs) -> anyhow::Result<()> {
    let local = open_memory().await?;
    let embedding = local.embedder.embed(&[query.as_str()])?.remove(0);
    let hits = local.memory.search(&tenant, &query, &embedding, k).await?;
    if hits.is_empty() {
        println!("no matches in {tenant}'s memory; add documents with `heiwa ingest PATH`");
    }
    for (rank, hit) in hits.iter().enumerate() {
        let excerpt: String = hit.content.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect();
        println!(
            "{}. {}{}{} (chunk {}, bytes {}..{}, score {:.4}, similarity {:.2})\n   {excerpt}",
            rank + 1,
            hit.path,
            hit.page.map(|p| format!(", page {p}")).unwrap_or_default(),
            hit.lines.map(|(first, last)| format!(", lines {first}-{last}")).unwrap_or_default(),
            hit.position,
            hit.span.0,
            hit.span.1,
            hit.score,
            hit.similarity
        );
        if !hit.also.is_empty() {
            let places: Vec<String> = hit
                .also
                .iter()
                .map(|p| {
                    format!(
                        "{}{} (chunk {})",
                        p.path,
                        p.page.map(|p| format!(", page {p}")).unwrap_or_default(),
                        p.position
                    )
                })
                .collect();
            println!("   the same passage is also in: {}", places.join("; "));
        }
    }
    local.close().await?;
    Ok(())
}

/// "185 files skipped, of types memory does not take: .css 60, .js 40, …",
/// the most common first.
fn skipped_line(skipped: &[std::path::PathBuf], listed: bool) -> String {
    let mut by_type: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for path in skipped {
        let extension = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or("no extension".into());
        *by_type.entry(extension).or_default() += 1;
    }
    let mut types: Vec<(String, usize)> = by_type.into_iter().collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let shown: Vec<String> = types.iter().take(8).map(|(t, n)| format!("{t} {n}")).collect();
    let more = if types.len() > 8 { ", …" } else { "" };
    let hint = if listed { "" } else { " (--list-skipped names them)" };
    format!("{} files skipped, of types memory does not take: {}{more}{hint}", skipped.len(), shown.join(", "))
}

/// One line per reason entries were left out: "3 left out, a dependency or build
/// folder: node_modules, vendor, … (--include-generated takes them)".
fn left_out_lines(left_out: &[(std::path::PathBuf, LeftOut)], listed: bool) -> Vec<String> {
    let mut by_reason: std::collections::BTreeMap<LeftOut, Vec<String>> = std::collections::BTreeMap::new();
    for (path, why) in left_out {
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        by_reason.entry(*why).or_default().push(name);
    }
    by_reason
        .into_iter()
        .map(|(why, names)| {
            let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
            let more = if names.len() > 3 { ", …" } else { "" };
            let named = if listed { "" } else { "--list-skipped names them; " };
            format!(
                "{} left out, {}: {}{more} ({named}{} takes them)",
                names.len(),
                why.reason(),
                shown.join(", "),
                why.taken_with()
            )
        })
        .collect()
}
