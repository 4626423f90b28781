//! The donation governor: when this machine gives work to the mesh and how
//! much of it. A pure [`decide`] turns the owner's [`DonationPolicy`] and a
//! [`Signals`] snapshot (clock, idle time, battery) into a [`Decision`]; the
//! [`Governor`] samples real signals on a timer and publishes decisions on a
//! watch channel that the claim loop and the model follow.
//!
//! Invariant: while a decision says "do not give", the limb makes no new
//! claims. What happens to a task already running is the owner's choice
//! ([`OnPause`]): it finishes, or it goes back to the hub for another limb.

pub mod exclusive;
pub mod thermal;

use heiwa_inference::Offload;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// When to give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum When {
    Always,
    /// Only after the person at the machine has not touched it for `minutes`.
    Idle {
        minutes: u32,
    },
    /// Only inside one of these daily windows, in local time.
    Windows {
        windows: Vec<Window>,
    },
}

/// A daily window, "HH:MM" to "HH:MM" local time; an end before the start
/// crosses midnight (22:00–06:00 is the night).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// What happens to a running task when giving stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum OnPause {
    /// It runs to the end and its result is sent.
    #[default]
    Finish,
    /// It goes back to the hub at once; another limb may take it.
    Release,
}

/// The owner's donation settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct DonationPolicy {
    pub when: When,
    pub not_on_battery: bool,
    /// CPU threads for inference; 0 means every core.
    pub cpu_threads: u32,
    /// Model layers offloaded to the GPU: `None` as many as fit (under
    /// `gpu_memory_cap_mib`), a number exactly that many (0: CPU only).
    pub gpu_layers: Option<u32>,
    /// The most GPU memory the model may take, MiB; 0 means no cap but the
    /// memory that is free.
    pub gpu_memory_cap_mib: u32,
    /// The GPUs given, each by its PCI id or its description as `heiwa gpu
    /// list` shows them (not by index: the order may change at a reboot);
    /// none: every GPU. A named GPU that is not here gives nothing.
    pub gpus: Vec<String>,
    /// Minutes a loaded model may sit idle before its memory (GPU memory
    /// included) is given back; it loads again for the next task. 0: never.
    pub keep_alive_minutes: u32,
    /// Stop giving while a GPU is hotter than this (°C; 0: no limit).
    pub max_gpu_celsius: u32,
    /// Stop giving while the CPU is hotter than this (°C; 0: no limit).
    pub max_cpu_celsius: u32,
    pub max_concurrent: u32,
    /// The most disk (MiB) the tenant's catalogue models fetched here may take
    /// together; a model that does not fit is never fetched nor assigned here.
    /// 0: no cap but the disk's. Read when the limb starts.
    pub models_disk_cap_mib: u32,
    /// The most MiB a second those downloads may take from the link; 0: no cap.
    pub models_download_mib_per_s: u32,
    /// Daily windows (local time) those downloads may run in; none: any time.
    /// A download under way when its window ends stops, and goes on in the next.
    pub models_download_hours: Vec<Window>,
    /// Hours a model the catalogue dropped stays on this disk (a task may
    /// still come for it, or the owner may add it back), then it is deleted,
    /// unless the donor pinned it or chats with it. 0: deleted at once.
    pub models_keep_dropped_hours: u32,
    /// Programs (as `ps` names them, or their file names, any case) while any
    /// of which runs, the GPU is not given (BOINC's exclusive applications).
    pub exclusive_programs: Vec<String>,
    /// While one runs, nothing is given at all, not only the GPU.
    pub exclusive_stops_all: bool,
    /// Minutes after the last of them exits before giving resumes.
    pub exclusive_resume_minutes: u32,
    /// Paused by the owner (the tray's pause): nothing is given.
    pub paused: bool,
    /// GPU work paused on its own: tasks still run, on the CPU only.
    pub gpu_paused: bool,
    pub on_pause: OnPause,
}

impl Default for DonationPolicy {
    fn default() -> Self {
        DonationPolicy {
            when: When::Always,
            not_on_battery: true,
            cpu_threads: 0,
            gpu_layers: None,
            gpu_memory_cap_mib: 0,
            gpus: Vec::new(),
            keep_alive_minutes: 5,
            max_gpu_celsius: 0,
            max_cpu_celsius: 0,
            max_concurrent: 1,
            models_disk_cap_mib: 0,
            models_download_mib_per_s: 0,
            models_download_hours: Vec::new(),
            models_keep_dropped_hours: 24,
            exclusive_programs: Vec::new(),
            exclusive_stops_all: false,
            exclusive_resume_minutes: 1,
            paused: false,
            gpu_paused: false,
            on_pause: OnPause::Finish,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("\"{0}\" is not a time of day: write it as HH:MM, from 00:00 to 23:59")]
    Time(String),
    #[error("a window from {0} to {0} is empty: give different start and end times")]
    EmptyWindow(String),
    #[error("time windows were chosen but none is given: add one, or choose another mode")]
    NoWindows,
    #[error("idle minutes must be between 1 and 1440")]
    IdleMinutes,
    #[error("at most {0} tasks at once (and at least 1)")]
    MaxConcurrent(u32),
    #[error("at most {0} CPU threads (0 means every core)")]
    CpuThreads(u32),
    #[error("at most {0} GPU layers")]
    GpuLayers(u32),
    #[error("a temperature limit is between {MIN_CELSIUS} and {MAX_CELSIUS} °C (0: no limit)")]
    Celsius,
    #[error("keep a model loaded at most {0} idle minutes (0: always)")]
    KeepAlive(u32),
    #[error("keep a dropped model at most {0} hours")]
    KeepDropped(u32),
    #[error("at most {MAX_EXCLUSIVE} exclusive programs, each a name of 1 to 255 printable characters")]
    ExclusivePrograms,
    #[error("resume at most {0} minutes after an exclusive program exits")]
    ExclusiveResume(u32),
    #[error(
        "at most {MAX_GIVEN_GPUS} GPUs given, each named by its PCI id or description (1 to 255 printable characters)"
    )]
    Gpus,
}

/// More concurrent tasks than this only queue behind one model.
pub const MAX_CONCURRENT: u32 = 16;
const MAX_THREADS: u32 = 1024;
const MAX_GPU_LAYERS: u32 = 1000;
/// llama.cpp's own most devices.
const MAX_GIVEN_GPUS: usize = 16;
const MIN_CELSIUS: u32 = 40;
const MAX_CELSIUS: u32 = 110;
const MAX_KEEP_ALIVE_MINUTES: u32 = 7 * 24 * 60;
const MAX_KEEP_DROPPED_HOURS: u32 = 365 * 24;
const MAX_EXCLUSIVE: usize = 64;

/// Minutes after midnight for "HH:MM".
pub fn parse_time_of_day(text: &str) -> Result<u16, PolicyError> {
    let bad = || PolicyError::Time(text.to_string());
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(bad)?;
    let (hours, minutes): (u16, u16) = (hours.parse().map_err(|_| bad())?, minutes.parse().map_err(|_| bad())?);
    if hours > 23 || minutes > 59 || text.trim().len() != 5 {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

impl DonationPolicy {
    /// The disk cap for fetched models in bytes (`None`: no cap).
    pub fn models_cap_bytes(&self) -> Option<u64> {
        (self.models_disk_cap_mib > 0).then(|| u64::from(self.models_disk_cap_mib) << 20)
    }

    /// How long a model the catalogue dropped stays on disk.
    pub fn models_keep_dropped(&self) -> Duration {
        Duration::from_secs(u64::from(self.models_keep_dropped_hours) * 3600)
    }

    /// The bandwidth cap for fetched models in bytes a second (`None`: no cap).
    pub fn models_download_bytes_per_sec(&self) -> Option<u64> {
        (self.models_download_mib_per_s > 0).then(|| u64::from(self.models_download_mib_per_s) << 20)
    }

    /// Every rule a saved policy must follow; the UI shows the message.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match &self.when {
            When::Always => {}
            When::Idle { minutes } => {
                if !(1..=1440).contains(minutes) {
                    return Err(PolicyError::IdleMinutes);
                }
            }
            When::Windows { windows } => {
                if windows.is_empty() {
                    return Err(PolicyError::NoWindows);
                }
                check_windows(windows)?;
            }
        }
        check_windows(&self.models_download_hours)?;
        if self.models_keep_dropped_hours > MAX_KEEP_DROPPED_HOURS {
            return Err(PolicyError::KeepDropped(MAX_KEEP_DROPPED_HOURS));
        }
        let bad_name =
            |name: &String| name.trim().is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control);
        if self.exclusive_programs.len() > MAX_EXCLUSIVE || self.exclusive_programs.iter().any(bad_name) {
            return Err(PolicyError::ExclusivePrograms);
        }
        if self.gpus.len() > MAX_GIVEN_GPUS || self.gpus.iter().any(bad_name) {
            return Err(PolicyError::Gpus);
        }
        if self.exclusive_resume_minutes > 1440 {
            return Err(PolicyError::ExclusiveResume(1440));
        }
        if !(1..=MAX_CONCURRENT).contains(&self.max_concurrent) {
            return Err(PolicyError::MaxConcurrent(MAX_CONCURRENT));
        }
        if self.cpu_threads > MAX_THREADS {
            return Err(PolicyError::CpuThreads(MAX_THREADS));
        }
        if self.gpu_layers.is_some_and(|layers| layers > MAX_GPU_LAYERS) {
            return Err(PolicyError::GpuLayers(MAX_GPU_LAYERS));
        }
        if [self.max_gpu_celsius, self.max_cpu_celsius]
            .iter()
            .any(|&limit| limit != 0 && !(MIN_CELSIUS..=MAX_CELSIUS).contains(&limit))
        {
            return Err(PolicyError::Celsius);
        }
        if self.keep_alive_minutes > MAX_KEEP_ALIVE_MINUTES {
            return Err(PolicyError::KeepAlive(MAX_KEEP_ALIVE_MINUTES));
        }
        Ok(())
    }
}

/// What the governor knows about the machine at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Signals {
    /// Local time, minutes after midnight.
    pub minute_of_day: u16,
    /// Time since the last keyboard or mouse input; `None` when it cannot be
    /// known (no display to ask).
    pub idle: Option<Duration>,
    pub on_battery: bool,
    /// The machine's temperature sensors now (empty when it has none to read).
    pub temperatures: Vec<thermal::Reading>,
    /// Set by the governor from the readings and its memory of them
    /// (hysteresis): why it is too hot to give, if it is.
    pub too_hot: Option<String>,
    /// The processes running (`exclusive::process_names`).
    pub processes: Vec<String>,
    /// Set by the governor from `processes` and its memory of them: which
    /// exclusive program holds giving back, if one does.
    pub exclusive: Option<String>,
}

/// The governor's answer: whether to give, why, and how much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Decision {
    pub give: bool,
    /// One sentence for the owner: why the machine is (not) giving now.
    pub reason: String,
    pub max_in_flight: usize,
    pub threads: i32,
    /// Where the chat model's layers go.
    pub offload: Offload,
    /// On which GPUs (the policy's names; none: every GPU).
    pub gpus: Vec<String>,
    /// Idle minutes before the model is unloaded (0: never).
    pub keep_alive_minutes: u32,
    /// Running tasks go back to the hub now (only when not giving).
    pub release_running: bool,
}

fn check_windows(windows: &[Window]) -> Result<(), PolicyError> {
    for window in windows {
        if parse_time_of_day(&window.start)? == parse_time_of_day(&window.end)? {
            return Err(PolicyError::EmptyWindow(window.start.clone()));
        }
    }
    Ok(())
}

/// Whether `minute` (after midnight) is inside one of `windows`; unreadable
/// windows hold nothing (a saved policy was validated).
pub fn in_windows(windows: &[Window], minute: u16) -> bool {
    windows.iter().any(|w| match (parse_time_of_day(&w.start), parse_time_of_day(&w.end)) {
        (Ok(start), Ok(end)) => in_window(minute, start, end),
        _ => false,
    })
}

/// `windows` as the owner reads them: "01:00–06:00, 22:00–23:00".
pub fn windows_text(windows: &[Window]) -> String {
    windows.iter().map(|w| format!("{}–{}", w.start, w.end)).collect::<Vec<_>>().join(", ")
}

/// The local time now, minutes after midnight.
pub fn local_minute_of_day() -> u16 {
    use chrono::Timelike;
    let now = chrono::Local::now();
    (now.hour() * 60 + now.minute()) as u16
}

fn in_window(minute: u16, start: u16, end: u16) -> bool {
    if start < end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    }
}

pub fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Why giving is off right now, or `None` when it is on.
fn withheld_because(policy: &DonationPolicy, signals: &Signals) -> Option<String> {
    if policy.paused {
        return Some("paused by you".into());
    }
    if policy.not_on_battery && signals.on_battery {
        return Some("on battery".into());
    }
    if let Some(hot) = &signals.too_hot {
        return Some(hot.clone());
    }
    if let Some(program) = signals.exclusive.as_ref().filter(|_| policy.exclusive_stops_all) {
        return Some(format!("{program}: nothing is given while it runs"));
    }
    match &policy.when {
        When::Always => None,
        When::Idle { minutes } => {
            let wanted = Duration::from_secs(u64::from(*minutes) * 60);
            match signals.idle {
                None => Some(
                    "cannot tell whether you are at the machine (no display to ask): choose \"always\" or time windows"
                        .into(),
                ),
                Some(idle) if idle < wanted => {
                    Some(format!("you are using the machine (gives after {minutes} idle minutes)"))
                }
                Some(_) => None,
            }
        }
        When::Windows { windows } => (!in_windows(windows, signals.minute_of_day)).then(|| {
            format!("outside the donation hours ({}; now {})", windows_text(windows), hhmm(signals.minute_of_day))
        }),
    }
}

/// The decision for `policy` given `signals`, on a machine with `cores` cores.
pub fn decide(policy: &DonationPolicy, signals: &Signals, cores: i32) -> Decision {
    let withheld = withheld_because(policy, signals);
    // An exclusive program that stops only the GPU pauses it as the owner's GPU pause does.
    let gpu_held = signals.exclusive.as_ref().filter(|_| !policy.exclusive_stops_all);
    let offload = match (policy.gpu_paused || gpu_held.is_some(), policy.gpu_layers) {
        (true, _) => Offload::CPU,
        (false, Some(layers)) => Offload::Layers { layers },
        (false, None) => Offload::Fit { cap_mib: (policy.gpu_memory_cap_mib > 0).then_some(policy.gpu_memory_cap_mib) },
    };
    let threads = match policy.cpu_threads {
        0 => cores.max(1),
        n => (n as i32).min(cores.max(1)),
    };
    let give = withheld.is_none();
    let reason = match withheld {
        Some(reason) => reason,
        None => {
            let why = match &policy.when {
                When::Always => "always on".to_string(),
                When::Idle { minutes } => format!("you have been away for {minutes}+ minutes"),
                When::Windows { .. } => format!("inside the donation hours (now {})", hhmm(signals.minute_of_day)),
            };
            match gpu_held {
                Some(program) if policy.gpu_layers != Some(0) => {
                    format!("{why}; GPU not given ({program}), tasks run on the CPU")
                }
                _ if policy.gpu_paused && policy.gpu_layers != Some(0) => {
                    format!("{why}; GPU paused, tasks run on the CPU")
                }
                _ => why,
            }
        }
    };
    Decision {
        give,
        reason,
        max_in_flight: policy.max_concurrent.clamp(1, MAX_CONCURRENT) as usize,
        threads,
        offload,
        gpus: policy.gpus.clone(),
        keep_alive_minutes: policy.keep_alive_minutes,
        release_running: !give && policy.on_pause == OnPause::Release,
    }
}

/// Where the governor's signals come from.
pub trait SignalSource: Send + Sync + 'static {
    fn sample(&self) -> Signals;
}

/// The machine's own signals: the local clock, the X server's idle time,
/// and the kernel's power supplies.
pub struct SystemSignals {
    power_supply: PathBuf,
    /// Kept open: an X server with no client left resets itself, and with it
    /// the idle counter (seen with a bare Xvfb), and one connection is cheaper.
    x11: Mutex<Option<(x11rb::rust_connection::RustConnection, u32)>>,
    sensors: thermal::Sensors,
}

impl Default for SystemSignals {
    fn default() -> Self {
        SystemSignals {
            power_supply: PathBuf::from("/sys/class/power_supply"),
            x11: Mutex::new(None),
            sensors: thermal::Sensors::system(),
        }
    }
}

impl SignalSource for SystemSignals {
    fn sample(&self) -> Signals {
        Signals {
            minute_of_day: local_minute_of_day(),
            idle: self.x11_idle(),
            on_battery: on_battery(&self.power_supply),
            temperatures: self.sensors.read(),
            too_hot: None,
            processes: exclusive::process_names(Path::new("/proc")),
            exclusive: None,
        }
    }
}

impl SystemSignals {
    /// Time since the last input, from the X server's screen-saver extension
    /// (which XWayland serves too). `None` without a display.
    fn x11_idle(&self) -> Option<Duration> {
        use x11rb::connection::Connection;
        use x11rb::protocol::screensaver::ConnectionExt;
        let mut x11 = self.x11.lock().unwrap_or_else(|p| p.into_inner());
        if x11.is_none() {
            let (conn, screen) = x11rb::connect(None).ok()?;
            let root = conn.setup().roots.get(screen)?.root;
            *x11 = Some((conn, root));
        }
        let (conn, root) = x11.as_ref()?;
        match conn.screensaver_query_info(*root).ok().and_then(|cookie| cookie.reply().ok()) {
            Some(info) => Some(Duration::from_millis(u64::from(info.ms_since_user_input))),
            None => {
                *x11 = None; // the display went away: connect again next time
                None
            }
        }
    }
}

/// True when a battery is discharging. Desktops have no battery and are
/// never "on battery".
pub fn on_battery(power_supply: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(power_supply) else { return false };
    let read = |path: PathBuf| std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default();
    entries
        .flatten()
        .any(|entry| read(entry.path().join("type")) == "Battery" && read(entry.path().join("status")) == "Discharging")
}

/// `signals` with what the governor's memory makes of them: too hot (with
/// hysteresis), an exclusive program (with its resume delay).
fn judged(
    mut signals: Signals,
    policy: &DonationPolicy,
    heat: &Mutex<thermal::Heat>,
    exclusive: &Mutex<exclusive::Watch>,
) -> Signals {
    let heat = &mut heat.lock().unwrap_or_else(|p| p.into_inner());
    signals.too_hot = heat.update(&signals.temperatures, &thermal::Limits::of(policy));
    let resume = Duration::from_secs(u64::from(policy.exclusive_resume_minutes) * 60);
    let watch = &mut exclusive.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    signals.exclusive = watch.update(&signals.processes, &policy.exclusive_programs, resume, now);
    signals
}

/// Samples signals, decides, and publishes each new decision.
pub struct Governor {
    policy: Mutex<DonationPolicy>,
    source: Box<dyn SignalSource>,
    cores: i32,
    /// Which limits were passed, remembered so that giving resumes only
    /// some degrees below them.
    heat: Mutex<thermal::Heat>,
    /// The exclusive program last seen, for the resume delay.
    exclusive: Mutex<exclusive::Watch>,
    decisions: watch::Sender<Decision>,
}

impl Governor {
    pub fn new(policy: DonationPolicy, source: impl SignalSource, cores: i32) -> Arc<Self> {
        let (heat, exclusive) = (Mutex::default(), Mutex::default());
        let signals = judged(source.sample(), &policy, &heat, &exclusive);
        let (decisions, _) = watch::channel(decide(&policy, &signals, cores));
        let policy = Mutex::new(policy);
        Arc::new(Governor { policy, source: Box::new(source), cores, heat, exclusive, decisions })
    }

    pub fn subscribe(&self) -> watch::Receiver<Decision> {
        self.decisions.subscribe()
    }

    pub fn decision(&self) -> Decision {
        self.decisions.borrow().clone()
    }

    pub fn policy(&self) -> DonationPolicy {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the policy (after validating it) and decide again at once.
    pub fn set_policy(&self, policy: DonationPolicy) -> Result<Decision, PolicyError> {
        policy.validate()?;
        *self.policy.lock().unwrap_or_else(|p| p.into_inner()) = policy;
        Ok(self.refresh())
    }

    /// Decide from fresh signals; subscribers hear only of changes.
    pub fn refresh(&self) -> Decision {
        let policy = self.policy();
        let signals = judged(self.source.sample(), &policy, &self.heat, &self.exclusive);
        let decision = decide(&policy, &signals, self.cores);
        self.decisions.send_if_modified(|current| {
            let changed = *current != decision;
            *current = decision.clone();
            changed
        });
        decision
    }

    /// Refresh every `period` (idle time and the clock move on their own)
    /// until the governor is dropped everywhere else.
    pub fn spawn_ticker(self: &Arc<Self>, period: Duration) {
        let governor = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                match governor.upgrade() {
                    Some(governor) => governor.refresh(),
                    None => return,
                };
            }
        });
    }
}

#[cfg(test)]
mod tests;
