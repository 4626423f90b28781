//! `heiwa gpu list`, and the GPU options every command that loads a chat model takes.

use clap::{Args, Subcommand};
use heiwa_inference::gpu::{cpu_only_reason, devices};
use heiwa_inference::Offload;

#[derive(Subcommand)]
pub enum GpuCommand {
    /// The devices llama.cpp can use here: name, backend, total and free memory,
    /// and the PCI id or description a donation policy's `gpus` names a GPU by.
    List {
        /// One JSON object per device instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Where the chat model's layers go. By default as many as fit the free GPU memory.
#[derive(Args, Clone, Copy, Debug)]
pub struct GpuArgs {
    /// Offload exactly this many layers to the GPU (0: CPU only).
    #[arg(long)]
    pub gpu_layers: Option<u32>,
    /// The most GPU memory the model may take, in MiB (when the layers are fitted).
    #[arg(long, value_name = "MIB", conflicts_with = "gpu_layers")]
    pub gpu_memory_cap: Option<u32>,
}

impl GpuArgs {
    pub fn offload(&self) -> Offload {
        match self.gpu_layers {
            Some(layers) => Offload::Layers { layers },
            None => Offload::Fit { cap_mib: self.gpu_memory_cap },
        }
    }
}

pub fn gpu(command: GpuCommand) -> anyhow::Result<()> {
    let GpuCommand::List { json } = command;
    let devices = devices()?;
    for device in &devices {
        if json {
            println!("{}", serde_json::to_string(device)?);
        } else {
            println!(
                "{:<10} {:<8} {:<15} {:>9} MiB total {:>9} MiB free  {:<12}  {}",
                device.name,
                device.backend,
                format!("{:?}", device.kind).to_lowercase(),
                device.total_mib,
                device.free_mib,
                device.pci_id.as_deref().unwrap_or("-"),
                device.description
            );
        }
    }
    let gpus: Vec<_> = devices.iter().filter(|d| d.is_gpu()).cloned().collect();
    if let (false, Some(why)) = (json, cpu_only_reason(&gpus)) {
        println!("models run on the CPU: {why}");
    }
    if !json {
        println!("CPU kernels: {}", heiwa_inference::cpu_kernels());
    }
    Ok(())
}
