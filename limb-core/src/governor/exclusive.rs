//! Exclusive programs (BOINC's "exclusive applications"): while one of the
//! programs the donor listed runs (a game, a video editor), the limb gives
//! nothing on the GPU — or nothing at all, as the donor chose — and gives
//! again a set time after the last of them exits, so a game's loading
//! screens between levels do not bring the limb back. Processes are read from
//! /proc: each one's name as `ps` and `top` show it (`comm`, 15 characters)
//! and its program file's name (argv[0]), compared without case.

use std::path::Path;
use std::time::{Duration, Instant};

/// The names of the processes running now: each one's `comm` and argv[0]'s
/// file name, lowercased (a process that ends while it is read is skipped).
pub fn process_names(proc: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(proc) else { return Vec::new() };
    let mut names = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            names.push(comm.trim().to_lowercase());
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let argv0 = String::from_utf8_lossy(argv0);
            // A Windows game under Proton or Wine names itself with backslashes.
            if let Some(file) = argv0.rsplit(['/', '\\']).next().filter(|file| !file.is_empty()) {
                names.push(file.to_lowercase());
            }
        }
    }
    names
}

/// Whether `listed` (a donor's entry) is among `running` (from [`process_names`]).
fn is_running(listed: &str, running: &[String]) -> bool {
    let listed = listed.trim().to_lowercase();
    // `comm` keeps the first 15 bytes of a longer name.
    let comm: String = listed
        .chars()
        .scan(0, |bytes, c| {
            *bytes += c.len_utf8();
            (*bytes <= 15).then_some(c)
        })
        .collect();
    !listed.is_empty() && running.iter().any(|name| *name == listed || *name == comm)
}

/// The last listed program seen running, and when: giving resumes `resume`
/// after it was last seen.
#[derive(Debug, Default)]
pub struct Watch {
    seen: Option<(String, Instant)>,
}

impl Watch {
    /// Take the processes running at `now`; returns why giving is held back
    /// (a listed program runs, or exited less than `resume` ago), or `None`.
    pub fn update(&mut self, running: &[String], listed: &[String], resume: Duration, now: Instant) -> Option<String> {
        if let Some(program) = listed.iter().find(|program| is_running(program, running)) {
            self.seen = Some((program.trim().to_string(), now));
            return Some(format!("{} is running", program.trim()));
        }
        let (program, at) = self.seen.as_ref()?;
        let left = resume.saturating_sub(now.saturating_duration_since(*at));
        if left.is_zero() {
            self.seen = None;
            return None;
        }
        Some(format!(
            "{program} ran until {} s ago (giving again in {} s)",
            now.saturating_duration_since(*at).as_secs(),
            left.as_secs().max(1)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_program_holds_giving_back_until_the_resume_delay_after_it_exits() {
        let listed = vec!["Cyberpunk2077.exe".to_string(), "blender".to_string()];
        let resume = Duration::from_secs(60);
        let start = Instant::now();
        let mut watch = Watch::default();
        assert_eq!(watch.update(&["bash".into()], &listed, resume, start), None);
        let game = ["cyberpunk2077.e".to_string()]; // its comm: the first 15 bytes
        assert_eq!(watch.update(&game, &listed, resume, start).as_deref(), Some("Cyberpunk2077.exe is running"));
        let later = start + Duration::from_secs(20);
        assert_eq!(
            watch.update(&[], &listed, resume, later).as_deref(),
            Some("Cyberpunk2077.exe ran until 20 s ago (giving again in 40 s)")
        );
        assert_eq!(watch.update(&[], &listed, resume, start + Duration::from_secs(60)), None, "the delay is over");
        assert_eq!(
            watch.update(&["blender".into()], &listed, Duration::ZERO, later).as_deref(),
            Some("blender is running")
        );
        assert_eq!(watch.update(&[], &listed, Duration::ZERO, later), None, "no delay: at once");
        assert_eq!(watch.update(&["".into()], &["".into()], resume, later), None, "an empty entry matches nothing");
    }

    #[test]
    fn processes_are_read_from_proc_by_name_and_program_file() {
        let proc = tempfile::tempdir().unwrap();
        for (pid, comm, cmdline) in [
            ("1", "systemd\n", b"/sbin/init\0splash\0".as_slice()),
            ("4242", "GameThread\n", b"Z:\\games\\Witcher3.exe\0-dx12\0".as_slice()),
        ] {
            std::fs::create_dir(proc.path().join(pid)).unwrap();
            std::fs::write(proc.path().join(pid).join("comm"), comm).unwrap();
            std::fs::write(proc.path().join(pid).join("cmdline"), cmdline).unwrap();
        }
        std::fs::create_dir(proc.path().join("self-not-a-pid")).unwrap();
        let mut names = process_names(proc.path());
        names.sort();
        assert_eq!(names, ["gamethread", "init", "systemd", "witcher3.exe"]);
        assert!(is_running("Witcher3.exe", &names) && !is_running("witcher", &names));
    }
}
