//! The limb: what it is, what it is doing, and the window's first paint.

use crate::error::CommandResult;
use crate::state::{AppState, Limb};
use heiwa_inference::gpu::Device;
use heiwa_inference::OffloadChoice;
use limb_core::agent::local::{AnswerPace, Slots};
use limb_core::governor::{Decision, DonationPolicy};
use limb_core::mesh::LimbStatus;
use limb_core::LimbInfo;
use serde::Serialize;
use tauri::State;
use ts_rs::TS;

/// The window has painted its first frame: logged once with the time since
/// start, and after each reopening with the time since it, for startup
/// diagnostics and `scripts/bench-desktop`.
#[tauri::command]
pub fn first_paint(state: State<'_, AppState>) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("heiwa: first paint {} ms after start", state.started.elapsed().as_millis()));
    if let Some(opened) = state.window_opened.lock().unwrap_or_else(|p| p.into_inner()).take() {
        eprintln!("heiwa: window painted {} ms after it was reopened", opened.elapsed().as_millis());
    }
}

/// The limb's version, data directory and parts, for the status view.
#[tauri::command]
pub fn limb_info(state: tauri::State<'_, crate::state::AppState>) -> LimbInfo {
    LimbInfo::gather(&state.data_dir)
}

#[derive(Serialize, TS)]
pub struct ModelState {
    pub path: String,
    /// In memory now (loaded for a task, kept for its keep-alive).
    pub loaded: bool,
    /// Where its last load put the layers, and why.
    pub offload: Option<OffloadChoice>,
    /// Answering a task now.
    pub generating: bool,
    /// Its slots: the tasks' agent turns it answers together, in use now.
    pub slots: Slots,
    /// Tokens its slots generated per second, together, since the view last
    /// looked (`None` at the first look).
    pub tokens_per_s: Option<f64>,
    /// How its last answer went.
    pub last_answer: Option<AnswerPace>,
}

#[derive(Serialize, TS)]
pub struct LimbView {
    pub limb: Option<LimbStatus>,
    pub policy: DonationPolicy,
    pub decision: Decision,
    pub model: Option<ModelState>,
    /// Why the run_python tool is unavailable (no container engine), if it is.
    pub tool_problem: Option<String>,
    /// Percent of the whole machine this app used since the last look.
    pub cpu_percent: Option<f64>,
    /// The GPUs llama.cpp can offload to.
    pub gpus: Vec<Device>,
    /// Why models run on the CPU only, when they do.
    pub cpu_only: Option<String>,
    /// Which CPU kernels llama.cpp runs: the build's level, and what this CPU has beyond it.
    pub cpu_kernels: String,
    pub ingesting: Option<String>,
    /// What this machine's verified work earned (`None`: nothing yet, or no hub).
    pub credit: Option<limb_core::mesh::MachineCredit>,
    /// What this machine's limb did (counted here): tasks, tokens, the model's time.
    pub given: Option<limb_core::given::Given>,
}

#[tauri::command]
pub async fn limb_status(state: State<'_, AppState>) -> CommandResult<LimbView> {
    let (limb, model, tool_problem, credit, given) = match &*state.limb.lock().await {
        Limb::Ready(running) => (
            Some(running.mesh.limb()),
            running.agent.local_model().map(|m| {
                let slots = m.slots();
                ModelState {
                    path: m.model_path().display().to_string(),
                    loaded: m.is_loaded(),
                    offload: m.offload(),
                    generating: m.is_generating(),
                    slots,
                    tokens_per_s: state.tokens.lock().unwrap_or_else(|p| p.into_inner()).sample(slots.generated_tokens),
                    last_answer: m.last_answer(),
                }
            }),
            running.agent.tool_problem().map(String::from),
            // The hub may be away or slow: the view shows the rest without it, at once.
            tokio::time::timeout(std::time::Duration::from_millis(500), running.mesh.credit())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten(),
            Some(running.agent.given()),
        ),
        _ => (None, None, None, None, None),
    };
    let (gpus, cpu_only) = match heiwa_inference::gpu::gpus() {
        Ok(gpus) => {
            let why = heiwa_inference::gpu::cpu_only_reason(&gpus);
            (gpus, why)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Ok(LimbView {
        limb,
        policy: state.governor.policy(),
        decision: state.governor.decision(),
        model,
        tool_problem,
        cpu_percent: state.cpu.lock().unwrap_or_else(|p| p.into_inner()).sample(),
        cpu_only,
        cpu_kernels: heiwa_inference::cpu_kernels(),
        gpus,
        ingesting: state.ingesting.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        credit,
        given,
    })
}

/// Why the sandbox's Python tool cannot run here (no container engine, or
/// its image cannot be had), or `None` when it can; asked before the limb runs.
#[tauri::command]
pub async fn tool_check(state: State<'_, AppState>) -> CommandResult<Option<String>> {
    let parts = limb_core::chosen_parts(&state.data_dir).map_err(crate::error::said)?;
    Ok(heiwa_sandbox::Sandbox::connect(&parts.sandbox_image, Default::default()).await.err().map(|e| e.to_string()))
}
