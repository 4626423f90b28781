//! This process's CPU use, from /proc: the share of the machine the limb (and
//! the model running inside it) is taking, and the model's tokens per second,
//! for the Limb view. Both are a counter's rise since the view last looked.

use std::time::Instant;

/// How fast a counter rose between two looks.
#[derive(Default)]
pub struct Rate {
    last: Option<(Instant, u64)>,
}

impl Rate {
    /// The counter's rise per second since the previous call (`None` the
    /// first time; a counter that started again counts from zero).
    pub fn sample(&mut self, count: u64) -> Option<f64> {
        self.sample_at(Instant::now(), count)
    }

    fn sample_at(&mut self, at: Instant, count: u64) -> Option<f64> {
        let now = (at, count);
        let previous = self.last.replace(now)?;
        let wall = now.0.duration_since(previous.0).as_secs_f64();
        let rise = if count >= previous.1 { count - previous.1 } else { count };
        (wall > 0.0).then(|| rise as f64 / wall)
    }
}

pub struct CpuUsage {
    ticks: Rate,
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
        CpuUsage { ticks: Rate::default(), ticks_per_second: ticks as u64, cores: heiwa_inference::all_cores() as f64 }
    }
}

impl CpuUsage {
    /// Percent of the whole machine used since the previous call (`None` the first time).
    pub fn sample(&mut self) -> Option<f64> {
        let ticks_per_s = self.ticks.sample(process_ticks()?)?;
        Some((100.0 * ticks_per_s / self.ticks_per_second as f64 / self.cores).min(100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_rate_is_the_counters_rise_per_second_between_looks() {
        let (mut rate, start) = (Rate::default(), Instant::now());
        assert_eq!(rate.sample_at(start, 500), None, "the first look has nothing to compare with");
        assert_eq!(rate.sample_at(start + Duration::from_secs(2), 560), Some(30.0));
        // The model was loaded again: its counter started from zero.
        assert_eq!(rate.sample_at(start + Duration::from_secs(4), 10), Some(5.0));
        assert_eq!(rate.sample_at(start + Duration::from_secs(4), 20), None, "no time passed");
    }
}
