//! This process's CPU use, from /proc: the share of the machine the limb (and
//! the model running inside it) is taking, for the Limb view.

use std::time::Instant;

pub struct CpuUsage {
    last: Option<(Instant, u64)>,
    ticks_per_second: u64,
    cores: f64,
}

/// utime + stime of this process, in clock ticks (fields 14 and 15 of stat).
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields count from its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

impl Default for CpuUsage {
    fn default() -> Self {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
        CpuUsage { last: None, ticks_per_second: ticks as u64, cores: heiwa_inference::all_cores() as f64 }
    }
}

impl CpuUsage {
    /// Percent of the whole machine used since the previous call (`None` the first time).
    pub fn sample(&mut self) -> Option<f64> {
        let now = (Instant::now(), process_ticks()?);
        let previous = self.last.replace(now)?;
        let wall = now.0.duration_since(previous.0).as_secs_f64();
        let cpu = now.1.saturating_sub(previous.1) as f64 / self.ticks_per_second as f64;
        (wall > 0.0).then(|| (100.0 * cpu / wall / self.cores).min(100.0))
    }
}
