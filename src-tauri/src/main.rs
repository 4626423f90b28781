//! The desktop app's binary: an extraction worker when started as one, else the app (`heiwa_desktop::run`).

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Started as a document extractor for an ingest (see heiwa_memory::isolate): serve, and never open a window.
    heiwa_memory::serve_if_worker();
    heiwa_desktop::run();
}
