//! The machine's compute devices as llama.cpp sees them, and how many of a
//! model's layers go to them. The fit is llama.cpp's own (`common_fit_params`,
//! what `llama-server --fit` runs): it measures a no-alloc load of the model
//! and its context per device rather than trusting an estimate of ours.

use crate::runtime::{backend, context_params, InferenceError, ModelOptions};
pub use crate::runtime::{DeviceSet, Offload};
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::{list_llama_ggml_backend_devices, LlamaBackendDeviceType};
use serde::Serialize;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;

const MIB: u64 = 1024 * 1024;

/// What kind of device llama.cpp found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Cpu,
    Gpu,
    IntegratedGpu,
    Accelerator,
    Unknown,
}

/// One device: "Vulkan0", "NVIDIA GeForce RTX 3060", "Vulkan", 12,288 MiB, ….
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Device {
    /// llama.cpp's index for it in this process (the order may change at the next start).
    #[ts(type = "number")]
    pub index: usize,
    /// Its PCI bus id ("0000:01:00.0"), where the backend knows it: what
    /// tells two cards of one model apart, whatever their order.
    pub pci_id: Option<String>,
    pub name: String,
    pub description: String,
    pub backend: String,
    pub kind: DeviceKind,
    #[ts(type = "number")]
    pub total_mib: u64,
    #[ts(type = "number")]
    pub free_mib: u64,
}

impl Device {
    pub fn is_gpu(&self) -> bool {
        matches!(self.kind, DeviceKind::Gpu | DeviceKind::IntegratedGpu)
    }
}

/// The GPU backends compiled into this build.
pub fn gpu_backends_built() -> Vec<&'static str> {
    let mut built = Vec::new();
    if cfg!(feature = "vulkan") {
        built.push("Vulkan");
    }
    if cfg!(feature = "cuda") {
        built.push("CUDA");
    }
    built
}

/// Every device llama.cpp can use here, the CPU included.
pub fn devices() -> Result<Vec<Device>, InferenceError> {
    backend()?;
    Ok(list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| Device {
            index: d.index,
            pci_id: pci_id(d.index),
            name: d.name,
            description: d.description,
            backend: d.backend,
            kind: match d.device_type {
                LlamaBackendDeviceType::Cpu => DeviceKind::Cpu,
                LlamaBackendDeviceType::Gpu => DeviceKind::Gpu,
                LlamaBackendDeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
                LlamaBackendDeviceType::Accelerator => DeviceKind::Accelerator,
                LlamaBackendDeviceType::Unknown => DeviceKind::Unknown,
            },
            total_mib: d.memory_total as u64 / MIB,
            free_mib: d.memory_free as u64 / MIB,
        })
        .collect())
}

/// The PCI bus id the backend reports for device `index`, if any.
fn pci_id(index: usize) -> Option<String> {
    // SAFETY: `index` is below ggml's device count (it came from its list); the
    // props are plain values and a pointer to a string the device owns, copied
    // out before returning.
    unsafe {
        let device = llama_cpp_sys_2::ggml_backend_dev_get(index);
        if device.is_null() {
            return None;
        }
        let mut props: llama_cpp_sys_2::ggml_backend_dev_props = std::mem::zeroed();
        llama_cpp_sys_2::ggml_backend_dev_get_props(device, &mut props);
        (!props.device_id.is_null()).then(|| std::ffi::CStr::from_ptr(props.device_id).to_string_lossy().into_owned())
    }
}

/// The GPUs the donor gave, found among `gpus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuChoice {
    pub devices: DeviceSet,
    /// Names given that match no GPU here (a card taken out, a driver missing).
    pub missing: Vec<String>,
}

/// Which of `gpus` the donor gave: each name in `given` is a PCI id or a
/// description (any case; `heiwa gpu list` shows both), and matches every
/// GPU it names — two cards of one model are told apart by PCI id. None
/// given: every GPU.
pub fn choose(gpus: &[Device], given: &[String]) -> GpuChoice {
    if given.is_empty() {
        return GpuChoice { devices: DeviceSet::ALL, missing: Vec::new() };
    }
    let names = |gpu: &Device, name: &str| {
        let name = name.trim();
        gpu.pci_id.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(name))
            || gpu.description.eq_ignore_ascii_case(name)
    };
    GpuChoice {
        devices: DeviceSet::of(
            gpus.iter().filter(|gpu| given.iter().any(|name| names(gpu, name))).map(|gpu| gpu.index),
        ),
        missing: given.iter().filter(|name| !gpus.iter().any(|gpu| names(gpu, name))).cloned().collect(),
    }
}

/// The GPUs a model can be offloaded to (in llama.cpp's device order).
pub fn gpus() -> Result<Vec<Device>, InferenceError> {
    Ok(devices()?.into_iter().filter(Device::is_gpu).collect())
}

/// Why everything runs on the CPU with these `gpus` (from [`gpus`]), or
/// `None` when there is one to use.
pub fn cpu_only_reason(gpus: &[Device]) -> Option<String> {
    if gpu_backends_built().is_empty() {
        return Some("this build of llama.cpp has no GPU backend (build with the vulkan or cuda feature)".into());
    }
    gpus.is_empty().then(|| {
        format!(
            "no GPU found by {} (software renderers such as llvmpipe are not used): install your GPU's Vulkan driver",
            gpu_backends_built().join(" or ")
        )
    })
}

/// What was chosen for one load, and why, in a sentence for the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct OffloadChoice {
    /// Layers on the GPU, the output layer counted as one (llama.cpp's `n_gpu_layers`).
    pub layers: u32,
    /// The model's repeating layers plus its output layer.
    pub model_layers: u32,
    pub why: String,
}

/// Memory llama.cpp's fit leaves free on every device unless told otherwise
/// (its `--fit-target` default): room for the desktop and other programs.
pub const DEFAULT_MARGIN_MIB: u64 = 1024;

/// Bytes to leave free on a device with `free_mib` free so that the model
/// takes at most `cap_mib`, and never less than the default margin.
pub fn margin_bytes(free_mib: u64, cap_mib: Option<u32>) -> u64 {
    let for_cap = cap_mib.map_or(0, |cap| free_mib.saturating_sub(u64::from(cap)));
    for_cap.max(DEFAULT_MARGIN_MIB) * MIB
}

/// The sentence shown for a fitted choice.
pub fn describe_fit(layers: u32, model_layers: u32, gpus: &[Device], cap_mib: Option<u32>) -> String {
    let names: Vec<String> = gpus.iter().map(|g| format!("{} ({})", g.name, g.description)).collect();
    let free: u64 = gpus.iter().map(|g| g.free_mib).sum();
    // The fit leaves max(free - cap, default margin) free: say whichever binds.
    let room = match cap_mib {
        Some(cap) if free.saturating_sub(u64::from(cap)) > DEFAULT_MARGIN_MIB => {
            format!("{free} MiB free, your cap {cap} MiB")
        }
        _ => format!("{free} MiB free, {DEFAULT_MARGIN_MIB} MiB kept free"),
    };
    match layers {
        0 => format!("CPU only: not one layer fits on {} ({room})", names.join(", ")),
        n if n >= model_layers => format!("all {model_layers} layers on {} ({room})", names.join(", ")),
        n => format!("{n} of {model_layers} layers on {}, as many as fit ({room})", names.join(", ")),
    }
}

/// The model's repeating layers plus its output layer, from its GGUF header.
pub fn model_layers(path: &Path) -> Result<u32, InferenceError> {
    use llama_cpp_2::gguf::GgufContext;
    backend()?; // its logs (a bad header's, say) go where llama.cpp's others go
    let bad = |reason: &str| InferenceError::Load { path: path.into(), reason: reason.into() };
    let gguf = GgufContext::from_file(path).ok_or_else(|| bad("not a readable GGUF file"))?;
    let arch = match gguf.find_key("general.architecture") {
        -1 => return Err(bad("no general.architecture in its header")),
        at => gguf.val_str(at).ok_or_else(|| bad("general.architecture is not text"))?.to_string(),
    };
    match gguf.find_key(&format!("{arch}.block_count")) {
        -1 => Err(bad("no block_count in its header")),
        at if gguf.kv_type(at) == llama_cpp_sys_2::GGUF_TYPE_UINT32 => Ok(gguf.val_u32(at) + 1),
        _ => Err(bad("block_count is not a u32")),
    }
}

/// llama.cpp's fit changes the global logger: one at a time.
static FITTING: Mutex<()> = Mutex::new(());

/// The model parameters for loading `path` with `options`, and what they offload.
pub(crate) fn model_params(
    path: &Path,
    options: &ModelOptions,
) -> Result<(Pin<Box<LlamaModelParams>>, OffloadChoice), InferenceError> {
    let model_layers = model_layers(path)?;
    let cpu_only = |why: String| -> Result<_, InferenceError> {
        // No devices at all: a GPU in the machine gets neither weights, nor
        // KV cache, nor the large-batch matmuls llama.cpp would otherwise offload.
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(0)
            .with_devices(&[])
            .map_err(|e| InferenceError::Backend(e.to_string()))?;
        Ok((Box::pin(params), OffloadChoice { layers: 0, model_layers, why }))
    };
    let found = gpus()?;
    if found.is_empty() {
        return cpu_only(cpu_only_reason(&found).unwrap_or_default());
    }
    let gpus: Vec<Device> = found.iter().filter(|gpu| options.devices.contains(gpu.index)).cloned().collect();
    if gpus.is_empty() {
        return cpu_only(format!(
            "CPU only: none of the GPUs you gave is here (found: {})",
            found.iter().map(|gpu| gpu.description.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    // Only the given GPUs, when the donor chose (by default llama.cpp takes every GPU it found).
    let on_given = |params: LlamaModelParams| -> Result<LlamaModelParams, InferenceError> {
        if options.devices.is_all() {
            return Ok(params);
        }
        let indices: Vec<usize> = gpus.iter().map(|gpu| gpu.index).collect();
        params.with_devices(&indices).map_err(|e| InferenceError::Backend(e.to_string()))
    };
    match options.offload {
        Offload::Layers { layers: 0 } => cpu_only("CPU only, as set".into()),
        Offload::Layers { layers } => {
            let layers = layers.min(model_layers);
            let params = on_given(LlamaModelParams::default().with_n_gpu_layers(layers))?;
            let names: Vec<&str> = gpus.iter().map(|gpu| gpu.name.as_str()).collect();
            let why = format!("{layers} of {model_layers} layers on {}, as set", names.join(", "));
            Ok((Box::pin(params), OffloadChoice { layers, model_layers, why }))
        }
        Offload::Fit { cap_mib } => {
            let mut params = Box::pin(on_given(LlamaModelParams::default())?);
            // The whole KV cache the model will hold: every sequence's context.
            let sequences = options.sequences.max(1);
            let whole = options.context_len.saturating_mul(sequences);
            let mut cparams =
                context_params(&ModelOptions { context_len: whole, ..*options }).with_n_seq_max(sequences);
            let mut margins = vec![DEFAULT_MARGIN_MIB as usize * MIB as usize; llama_cpp_2::max_devices().max(1)];
            for (margin, gpu) in margins.iter_mut().zip(&gpus) {
                *margin = margin_bytes(gpu.free_mib, cap_mib) as usize;
            }
            let path_c = std::ffi::CString::new(path.to_string_lossy().as_bytes())
                .map_err(|_| InferenceError::Load { path: path.into(), reason: "a NUL in its path".into() })?;
            let fitted = {
                let _one = FITTING.lock().unwrap_or_else(|p| p.into_inner());
                params.as_mut().fit_params(
                    &path_c,
                    &mut cparams,
                    &mut margins,
                    whole,
                    llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
                )
            };
            match fitted {
                Ok(_) => {
                    // -1 (llama.cpp's default, left alone when everything fits) is every layer.
                    let layers = u32::try_from(params.n_gpu_layers()).unwrap_or(model_layers).min(model_layers);
                    let why = describe_fit(layers, model_layers, &gpus, cap_mib);
                    Ok((params, OffloadChoice { layers, model_layers, why }))
                }
                Err(llama_cpp_2::model::params::FitError::Failure) => {
                    cpu_only(describe_fit(0, model_layers, &gpus, cap_mib))
                }
                Err(e) => {
                    Err(InferenceError::Load { path: path.into(), reason: format!("fitting it to the GPU: {e}") })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_keeps_the_model_under_the_cap_and_never_below_the_default() {
        assert_eq!(margin_bytes(8192, None), DEFAULT_MARGIN_MIB * MIB);
        assert_eq!(margin_bytes(8192, Some(2048)), 6144 * MIB, "8 GiB free, 2 GiB cap: leave 6 GiB");
        assert_eq!(
            margin_bytes(1500, Some(2048)),
            DEFAULT_MARGIN_MIB * MIB,
            "a cap above the free memory changes nothing"
        );
    }

    fn gpu(free_mib: u64) -> Device {
        Device {
            index: 1,
            pci_id: None,
            name: "Vulkan0".into(),
            description: "Radeon".into(),
            backend: "Vulkan".into(),
            kind: DeviceKind::Gpu,
            total_mib: 8192,
            free_mib,
        }
    }

    #[test]
    fn the_choice_says_how_many_layers_where_and_why() {
        let why = describe_fit(12, 25, &[gpu(4096)], Some(3500));
        assert_eq!(why, "12 of 25 layers on Vulkan0 (Radeon), as many as fit (4096 MiB free, 1024 MiB kept free)");
        let capped = describe_fit(6, 25, &[gpu(4096)], Some(2000));
        assert_eq!(capped, "6 of 25 layers on Vulkan0 (Radeon), as many as fit (4096 MiB free, your cap 2000 MiB)");
        assert!(describe_fit(25, 25, &[gpu(4096)], None).starts_with("all 25 layers on Vulkan0"));
        assert!(describe_fit(0, 25, &[gpu(100)], None).starts_with("CPU only: not one layer fits"));
    }

    #[test]
    fn the_donor_names_gpus_by_pci_id_or_description_whatever_their_order() {
        let card = |index: usize, pci: &str, description: &str| Device {
            index,
            pci_id: Some(pci.into()),
            description: description.into(),
            name: format!("Vulkan{}", index - 1),
            ..gpu(8192)
        };
        let gpus =
            [card(1, "0000:01:00.0", "NVIDIA GeForce RTX 3060"), card(2, "0000:02:00.0", "NVIDIA GeForce RTX 3060")];
        assert_eq!(choose(&gpus, &[]), GpuChoice { devices: DeviceSet::ALL, missing: vec![] }, "none named: all");
        let second = choose(&gpus, &["0000:02:00.0".into()]);
        assert!(!second.devices.contains(1) && second.devices.contains(2), "{second:?}");
        // After a reboot the cards swapped places: the same card is chosen, at its new index.
        let swapped =
            [card(1, "0000:02:00.0", "NVIDIA GeForce RTX 3060"), card(2, "0000:01:00.0", "NVIDIA GeForce RTX 3060")];
        assert_eq!(choose(&swapped, &["0000:02:00.0".into()]).devices, DeviceSet::of([1]));
        let both = choose(&gpus, &[" nvidia geforce rtx 3060 ".into()]);
        assert_eq!(both.devices, DeviceSet::of([1, 2]), "a description names every card of that model");
        let gone = choose(&gpus, &["AMD Radeon RX 7900".into(), "0000:01:00.0".into()]);
        assert_eq!((gone.devices, gone.missing), (DeviceSet::of([1]), vec!["AMD Radeon RX 7900".to_string()]));
        assert_eq!(
            choose(&gpus, &["Vulkan0".into()]).devices,
            DeviceSet::of([]),
            "not by llama.cpp's name: it is an index"
        );
        assert!(DeviceSet::ALL.contains(63) && !DeviceSet::of([70]).contains(70));
    }

    #[test]
    fn the_cpu_is_explained_only_when_no_gpu_is_there() {
        assert_eq!(cpu_only_reason(&[gpu(4096)]), None);
        let why = cpu_only_reason(&[]).expect("a reason");
        assert!(why.starts_with("no GPU found by Vulkan"), "{why}");
    }

    #[test]
    fn offload_settings_read_as_written() {
        let fit: Offload = serde_json::from_str(r#"{"mode":"fit","cap_mib":2048}"#).unwrap();
        assert_eq!(fit, Offload::Fit { cap_mib: Some(2048) });
        let layers: Offload = serde_json::from_str(r#"{"mode":"layers","layers":0}"#).unwrap();
        assert_eq!(layers, Offload::CPU);
    }
}
