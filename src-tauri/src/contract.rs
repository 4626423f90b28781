//! The window's contract: every Rust type it receives (command results, event
//! payloads, errors), as TypeScript in `ui/src/lib/generated/contract.ts`. The file is
//! generated from these types and committed; this test fails when it drifts.
//! `HEIWA_BLESS=1 cargo test --workspace --lib -- contract` writes it anew.

use ts_rs::TS;

/// Each type the window sees, and each type those refer to.
fn declarations() -> Vec<String> {
    macro_rules! decls {
        ($($ty:ty),* $(,)?) => { vec![$(format!("export {}", <$ty as TS>::decl())),*] };
    }
    decls![
        crate::error::CommandError,
        crate::commands::tasks::TasksView,
        crate::commands::tasks::LimbPhase,
        heiwa_hub::TaskView,
        hub_rules::TaskState,
        heiwa_hub::Summary,
        heiwa_hub::SummaryCitation,
        heiwa_hub::SummaryPlace,
        crate::commands::limb::LimbView,
        crate::commands::limb::ModelState,
        limb_core::agent::local::AnswerPace,
        limb_core::agent::local::Slots,
        limb_core::LimbInfo,
        limb_core::PartInfo,
        limb_core::PartState,
        limb_core::mesh::LimbStatus,
        limb_core::mesh::MachineCredit,
        limb_core::given::Given,
        limb_core::given::Work,
        limb_core::claim::ModelCopy,
        limb_core::claim::FetchedModel,
        limb_core::mesh::RemoteHub,
        limb_core::mesh::DashboardInvite,
        crate::commands::dashboard::BrowserView,
        limb_core::governor::DonationPolicy,
        limb_core::governor::When,
        limb_core::governor::Window,
        limb_core::governor::OnPause,
        limb_core::governor::Decision,
        heiwa_inference::Offload,
        heiwa_inference::OffloadChoice,
        heiwa_inference::gpu::Device,
        heiwa_inference::gpu::DeviceKind,
        crate::commands::memory::IngestEvent,
        crate::commands::memory::LeftOutEntry,
        heiwa_memory::LeftOut,
        heiwa_memory::WalkOptions,
        heiwa_memory::Progress,
        heiwa_memory::Outcome,
        heiwa_memory::DocumentInfo,
        heiwa_memory::Citation,
        heiwa_memory::Place,
        crate::commands::models::ModelsView,
        heiwa_inference::models::ModelInfo,
        limb_core::models::CatalogueEntry,
        crate::commands::models::PullProgress,
        crate::commands::settings::SettingsView,
        crate::settings::Settings,
        crate::settings::UpdateSettings,
        crate::commands::updates::UpdateCheck,
    ]
}

fn contract() -> String {
    let mut text = String::from(
        "// Generated from the Rust types by src-tauri/src/contract.rs: do not edit.\n\
         // HEIWA_BLESS=1 cargo test --workspace --lib -- contract writes it anew.\n\n",
    );
    for declaration in declarations() {
        text.push_str(&declaration);
        text.push_str("\n\n");
    }
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
}

#[test]
fn the_windows_typescript_contract_matches_the_rust_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/generated/contract.ts");
    let generated = contract();
    if std::env::var_os("HEIWA_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing the contract");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what the Rust types say: run `HEIWA_BLESS=1 cargo test --workspace --lib -- contract` and commit it",
        path.display()
    );
}
