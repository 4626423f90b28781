//! The real Vulkan backend, on Mesa's software Vulkan device (lavapipe, Debian
//! `mesa-vulkan-drivers`): layers offloaded to it, fitted under a memory cap,
//! moved back to the CPU by the GPU pause, kept to the GPUs the donor gave,
//! and given back by the keep-alive.
//!
//! llama.cpp skips a Vulkan device of CPU type unless GGML_VK_VISIBLE_DEVICES
//! names it, and reads that once, when its backends register; this binary
//! sets it before anything touches llama.cpp (its own process, so the other
//! tests keep lavapipe out, as a user's machine does). No device is a failure.

use heiwa_config::Parts;
use heiwa_inference::gpu::{gpus, model_layers};
use heiwa_inference::{ChatModel, GenerateOptions, ModelOptions, Offload};
use limb_core::agent::local::LocalChat;
use limb_core::agent::Message;
use limb_core::governor::{decide, DonationPolicy, Signals};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

/// Debian's mesa-vulkan-drivers puts lavapipe's driver manifest here.
const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

/// One test at a time: they compare the process's memory, and lavapipe's
/// threads and the CPU's would only slow each other down.
fn lavapipe() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    static VISIBLE: Once = Once::new();
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // The loader sees lavapipe's driver only (so on a machine with a real GPU
    // device 0 is still lavapipe), and llama.cpp is told to use device 0.
    // SAFETY: set under the lock, before the first llama.cpp call of this
    // process; nothing reads the environment concurrently then.
    VISIBLE.call_once(|| unsafe {
        std::env::set_var("VK_DRIVER_FILES", LAVAPIPE_ICD);
        std::env::set_var("VK_ICD_FILENAMES", LAVAPIPE_ICD); // the older loaders' name for it
        std::env::set_var("GGML_VK_VISIBLE_DEVICES", "0");
    });
    let gpus = gpus().expect("llama.cpp starts");
    assert!(
        gpus.iter().any(|g| g.backend == "Vulkan" && g.description.contains("llvmpipe")),
        "no lavapipe device: install mesa-vulkan-drivers (scripts/setup does); llama.cpp saw {gpus:?}"
    );
    guard
}

fn parts() -> Parts {
    Parts::find(None).unwrap_or_else(|missing| panic!("{missing}"))
}

fn options(offload: Offload) -> ModelOptions {
    ModelOptions { threads: 2, offload, context_len: 512, sequences: 1, ..ModelOptions::default() }
}

const PROMPT: &str = "Write one sentence about the sea.";

fn greedy(model: &ChatModel) -> String {
    let prompt = model.format_chat(&[("user", PROMPT)]).unwrap();
    model.generate(&prompt, &GenerateOptions::greedy(24), &mut |_| true).unwrap().text
}

#[test]
fn offloaded_layers_make_the_same_greedy_tokens_as_the_cpu() {
    let _device = lavapipe();
    let path = parts().chat_model().unwrap();
    let all = model_layers(&path).unwrap();
    let cpu = ChatModel::load(&path, options(Offload::CPU)).unwrap();
    assert_eq!(cpu.offload().layers, 0);
    let on_cpu = greedy(&cpu);
    drop(cpu);
    let gpu = ChatModel::load(&path, options(Offload::Layers { layers: all })).unwrap();
    assert_eq!(gpu.offload().layers, all, "{}", gpu.offload().why);
    let on_gpu = greedy(&gpu);
    assert!(!on_cpu.is_empty());
    assert_eq!(on_gpu, on_cpu, "the same model, greedy, on Vulkan and on the CPU");
}

#[test]
fn the_fit_takes_every_layer_when_they_fit_and_fewer_under_a_cap() {
    let _device = lavapipe();
    let path = parts().chat_model().unwrap();
    let all = model_layers(&path).unwrap();
    // lavapipe offers 2 GiB; the 0.5B model with a 512-token context needs far less.
    let free = ChatModel::load(&path, options(Offload::Fit { cap_mib: None })).unwrap();
    assert_eq!(free.offload().layers, all, "{}", free.offload().why);
    assert!(free.offload().why.starts_with(&format!("all {all} layers on Vulkan0")), "{}", free.offload().why);
    drop(free);
    // A 200 MiB cap: the weights alone are ~380 MiB, so only some layers fit (17 of 25 when measured).
    let capped = ChatModel::load(&path, options(Offload::Fit { cap_mib: Some(200) })).unwrap();
    let layers = capped.offload().layers;
    assert!(layers > 0 && layers < all, "a 200 MiB cap: some layers, not all ({})", capped.offload().why);
    assert!(capped.offload().why.contains("your cap 200 MiB"), "{}", capped.offload().why);
    let answer = greedy(&capped);
    assert!(!answer.is_empty(), "split between the device and the CPU, it still answers");
}

#[test]
fn the_gpu_pause_reloads_the_model_on_the_cpu_and_the_next_task_completes() {
    let _device = lavapipe();
    let chat = LocalChat::new(parts().chat_model().unwrap(), options(Offload::Fit { cap_mib: None })).unwrap();
    let signals = at_ten();
    let giving = decide(&DonationPolicy::default(), &signals, 2);
    chat.set_resources(giving.threads, giving.offload);
    assert!(ask(&chat).contains('5'));
    assert!(chat.offload().unwrap().layers > 0, "{:?}", chat.offload());

    let paused = decide(&DonationPolicy { gpu_paused: true, ..Default::default() }, &signals, 2);
    assert!(paused.give, "a GPU pause still gives, on the CPU: {paused:?}");
    chat.set_resources(paused.threads, paused.offload);
    assert!(ask(&chat).contains('5'), "the next task completes on the CPU");
    let choice = chat.offload().unwrap();
    assert_eq!(choice.layers, 0, "{}", choice.why);
}

/// The machine's signals at 10:00, nobody at it, on mains power.
fn at_ten() -> Signals {
    Signals {
        minute_of_day: 600,
        idle: None,
        on_battery: false,
        temperatures: vec![],
        too_hot: None,
        processes: vec![],
        exclusive: None,
    }
}

/// A task's question to the limb's chat model.
fn ask(chat: &LocalChat) -> String {
    let messages = [Message::new("user", "What is 2 + 3? Answer with the number only.")];
    futures::executor::block_on(limb_core::agent::Model::chat(chat, &messages, 8)).unwrap()
}

#[test]
fn only_the_gpus_the_donor_gave_take_layers_and_one_not_here_leaves_the_cpu() {
    let _device = lavapipe();
    let device = gpus().unwrap().into_iter().find(|g| g.description.contains("llvmpipe")).unwrap();
    let chat = LocalChat::new(parts().chat_model().unwrap(), options(Offload::Fit { cap_mib: None })).unwrap();
    // Named as a donor names it: by PCI id where the driver gives one (lavapipe has none), else its description.
    let name = device.pci_id.clone().unwrap_or_else(|| device.description.to_uppercase());
    // One layer on it: enough to show where layers go, and quick on a software device.
    let one_layer = DonationPolicy { gpu_layers: Some(1), ..Default::default() };
    let given = decide(&DonationPolicy { gpus: vec![name], ..one_layer.clone() }, &at_ten(), 2);
    chat.follow(&given);
    assert!(ask(&chat).contains('5'));
    let choice = chat.offload().unwrap();
    assert!(
        choice.layers == 1 && choice.why == format!("1 of {} layers on {}, as set", choice.model_layers, device.name),
        "{choice:?}"
    );

    let elsewhere = DonationPolicy { gpus: vec!["NVIDIA GeForce RTX 4090".into()], ..one_layer };
    chat.follow(&decide(&elsewhere, &at_ten(), 2));
    assert!(ask(&chat).contains('5'), "the task completes on the CPU");
    let choice = chat.offload().unwrap();
    assert_eq!(choice.layers, 0, "{choice:?}");
    assert!(choice.why.starts_with("CPU only: none of the GPUs you gave is here (found: llvmpipe"), "{}", choice.why);
}

/// The process's resident memory, MiB: lavapipe's "device memory" is this
/// process's memory (it has no VK_EXT_memory_budget, so the free memory it
/// reports never moves; a real GPU's shows in `heiwa gpu list`).
fn resident_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / (1024 * 1024)
}

#[test]
fn the_keep_alive_gives_the_model_back_and_the_next_task_loads_it_again() {
    let _device = lavapipe();
    let path = parts().chat_model().unwrap();
    let all = model_layers(&path).unwrap();
    let before = resident_mib();
    let chat = LocalChat::new(path, options(Offload::Layers { layers: all })).unwrap();
    chat.set_keep_alive(Some(Duration::from_secs(1)));
    ask(&chat);
    let loaded = resident_mib();
    assert!(chat.is_loaded());
    assert!(!chat.unload_if_idle(), "not idle for its keep-alive yet");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(chat.unload_if_idle(), "idle past its keep-alive: unloaded");
    let unloaded = resident_mib();
    assert!(!chat.is_loaded());
    assert!(
        loaded - unloaded > (loaded - before) / 2 && loaded - before > 200,
        "the model's memory went back: {before} MiB before, {loaded} loaded, {unloaded} after"
    );
    ask(&chat);
    assert!(chat.is_loaded(), "the next task loads it again");
}
