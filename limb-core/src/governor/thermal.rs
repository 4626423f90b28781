//! Temperatures: read from the kernel's hwmon sysfs (every vendor's driver
//! publishes there: coretemp and k10temp for CPUs, amdgpu, i915, xe and
//! nouveau for GPUs) and from NVML for NVIDIA's own driver, which does not;
//! judged against the owner's limits with hysteresis, so a sensor hovering at
//! the limit does not switch giving on and off every few seconds.

use super::DonationPolicy;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Giving resumes only this far below the limit that stopped it.
pub const HYSTERESIS_CELSIUS: f32 = 5.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    Cpu,
    Gpu,
}

/// One sensor's temperature now.
#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
pub struct Reading {
    /// Which device: "amdgpu (hwmon3)", "NVIDIA GeForce RTX 3060 (NVML 0)".
    pub sensor: String,
    pub kind: SensorKind,
    pub celsius: f32,
}

/// The owner's limits, `None` where there is none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub gpu: Option<f32>,
    pub cpu: Option<f32>,
}

impl Limits {
    pub fn of(policy: &DonationPolicy) -> Self {
        let limit = |celsius: u32| (celsius > 0).then_some(celsius as f32);
        Limits { gpu: limit(policy.max_gpu_celsius), cpu: limit(policy.max_cpu_celsius) }
    }

    fn for_kind(&self, kind: SensorKind) -> Option<f32> {
        match kind {
            SensorKind::Cpu => self.cpu,
            SensorKind::Gpu => self.gpu,
        }
    }
}

/// The sensors that passed their limit and have not cooled down since.
#[derive(Debug, Default)]
pub struct Heat {
    hot: BTreeMap<String, f32>,
}

impl Heat {
    /// Take new readings; returns why it is too hot to give, or `None`.
    /// A sensor is hot from above its limit until it is
    /// [`HYSTERESIS_CELSIUS`] below it; a sensor that is gone no longer counts.
    pub fn update(&mut self, readings: &[Reading], limits: &Limits) -> Option<String> {
        let mut why = None;
        let mut still_hot = BTreeMap::new();
        for reading in readings {
            let Some(limit) = limits.for_kind(reading.kind) else { continue };
            let was_hot = self.hot.contains_key(&reading.sensor);
            let hot = if was_hot { reading.celsius > limit - HYSTERESIS_CELSIUS } else { reading.celsius > limit };
            if hot {
                still_hot.insert(reading.sensor.clone(), limit);
                why.get_or_insert_with(|| {
                    format!(
                        "too hot: {} at {:.0} °C (your limit {limit:.0} °C); gives again below {:.0} °C",
                        reading.sensor,
                        reading.celsius,
                        limit - HYSTERESIS_CELSIUS
                    )
                });
            }
        }
        self.hot = still_hot;
        why
    }
}

/// Where the readings come from.
pub struct Sensors {
    hwmon: PathBuf,
    /// NVIDIA's management library, when its driver is installed (loaded at
    /// run time: machines without it lose nothing).
    nvml: Option<nvml_wrapper::Nvml>,
}

impl Sensors {
    pub fn system() -> Self {
        Sensors { hwmon: PathBuf::from("/sys/class/hwmon"), nvml: nvml_wrapper::Nvml::init().ok() }
    }

    pub fn read(&self) -> Vec<Reading> {
        let mut readings = hwmon_readings(&self.hwmon);
        if let Some(nvml) = &self.nvml {
            readings.extend(nvml_readings(nvml));
        }
        readings
    }
}

/// What a hwmon driver's name says it measures; others (disks, boards, Wi-Fi) are not ours.
fn hwmon_kind(name: &str) -> Option<SensorKind> {
    match name {
        "coretemp" | "k10temp" | "k8temp" | "zenpower" | "cpu_thermal" | "x86_pkg_temp" => Some(SensorKind::Cpu),
        "amdgpu" | "radeon" | "nouveau" | "i915" | "xe" => Some(SensorKind::Gpu),
        _ => None,
    }
}

/// The hottest `temp*_input` of each CPU or GPU device under a hwmon root
/// (`/sys/class/hwmon` or a tree shaped like it).
pub fn hwmon_readings(root: &Path) -> Vec<Reading> {
    let read = |path: PathBuf| std::fs::read_to_string(path).map(|s| s.trim().to_string()).ok();
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut readings: Vec<Reading> = entries
        .flatten()
        .filter_map(|entry| {
            let dir = entry.path();
            let name = read(dir.join("name"))?;
            let kind = hwmon_kind(&name)?;
            let hottest = std::fs::read_dir(&dir)
                .ok()?
                .flatten()
                .filter(|f| {
                    let file = f.file_name();
                    let file = file.to_string_lossy();
                    file.starts_with("temp") && file.ends_with("_input")
                })
                .filter_map(|f| read(f.path())?.parse::<i64>().ok())
                .max()?;
            let sensor = format!("{name} ({})", entry.file_name().to_string_lossy());
            Some(Reading { sensor, kind, celsius: hottest as f32 / 1000.0 })
        })
        .collect();
    readings.sort_by(|a, b| a.sensor.cmp(&b.sensor));
    readings
}

fn nvml_readings(nvml: &nvml_wrapper::Nvml) -> Vec<Reading> {
    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|index| {
            let device = nvml.device_by_index(index).ok()?;
            let celsius = device.temperature(TemperatureSensor::Gpu).ok()?;
            let name = device.name().unwrap_or_else(|_| "NVIDIA GPU".into());
            Some(Reading { sensor: format!("{name} (NVML {index})"), kind: SensorKind::Gpu, celsius: celsius as f32 })
        })
        .collect()
}
