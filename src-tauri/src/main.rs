// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // WebKitGTK's accelerated compositing costs ~70 MB in the web process
    // (measured under software GL; docs/benchmarks.md) and this UI is a static
    // page that gains nothing from it. Set the variable to 0 to turn it back on.
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() {
        // Before any thread starts, so nothing reads the environment meanwhile.
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    heiwa_desktop::run();
}
