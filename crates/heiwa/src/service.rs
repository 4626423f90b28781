//! `heiwa service`: a headless donor's limb as a systemd user service —
//! started at login (or boot, with lingering), restarted on failure, its
//! output in the journal, stopped with SIGTERM (it releases what it holds).
//! The invite travels in a 0600 environment file, never in the unit or argv.

use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "heiwa-limb.service";

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Write the unit for `heiwa limb run ARGS…` and start it (HEIWA_INVITE, if set, is kept for its first join).
    Install {
        /// Write the unit only; print how to start it.
        #[arg(long)]
        no_start: bool,
        /// What `heiwa limb run` gets: --hub, --database, --name, --donation, … (after `--`).
        #[arg(last = true)]
        limb_args: Vec<String>,
    },
    /// What systemd says about it (and its last log lines).
    Status,
    /// Stop it and remove the unit and its environment file.
    Remove,
}

fn config_home() -> anyhow::Result<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => Ok(dir.into()),
        None => Ok(PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config")),
    }
}

fn unit_path(config: &Path) -> PathBuf {
    config.join("systemd/user").join(UNIT)
}

fn env_path(config: &Path) -> PathBuf {
    config.join("heiwa/limb.env")
}

/// One word of a unit's command line, quoted as systemd reads it.
fn quoted(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c)) {
        return word.to_string();
    }
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$"))
}

/// The unit for `exe limb run args…`.
pub fn unit(exe: &Path, args: &[String], env_file: &Path) -> String {
    let mut command = vec![quoted(&exe.display().to_string()), "limb".into(), "run".into()];
    command.extend(args.iter().map(|a| quoted(a)));
    format!(
        "[Unit]\n\
         Description=Heiwa limb: answers a hub's tasks with this machine, within its donation policy\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={}\n\
         # The invite for the first join (0600); the identity is kept in the data directory after it.\n\
         EnvironmentFile=-{}\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         # SIGTERM: the limb releases the tasks it holds and keeps its unsent results for the next start.\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=60\n\
         # Below the owner's own work.\n\
         Nice=10\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        command.join(" "),
        quoted(&env_file.display().to_string())
    )
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("systemctl").arg("--user").args(args).status().context("running systemctl --user")?;
    anyhow::ensure!(status.success(), "systemctl --user {} failed ({status})", args.join(" "));
    Ok(())
}

pub fn service(command: ServiceCommand) -> anyhow::Result<()> {
    let config = config_home()?;
    let (unit_file, env_file) = (unit_path(&config), env_path(&config));
    match command {
        ServiceCommand::Install { no_start, limb_args } => {
            anyhow::ensure!(
                !limb_args.iter().any(|a| a == "--invite" || a.starts_with("--invite=")),
                "give the invite through HEIWA_INVITE, not --invite: the unit's command line is readable by anyone"
            );
            let exe = std::env::current_exe().context("finding this heiwa binary")?;
            if let Some(invite) = std::env::var("HEIWA_INVITE").ok().filter(|i| !i.trim().is_empty()) {
                heiwa_config::write_secret(&env_file, &format!("HEIWA_INVITE={}\n", invite.trim()))
                    .with_context(|| format!("writing {}", env_file.display()))?;
            }
            let dir = unit_file.parent().expect("the unit has a directory");
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(&unit_file, unit(&exe, &limb_args, &env_file))
                .with_context(|| format!("writing {}", unit_file.display()))?;
            println!("wrote {}", unit_file.display());
            if no_start {
                println!("start it with: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}");
            } else {
                systemctl(&["daemon-reload"])?;
                systemctl(&["enable", "--now", UNIT])?;
                println!("started; its log: journalctl --user -u {UNIT} -f");
            }
            println!("to keep it running when you are logged out: loginctl enable-linger $USER");
        }
        ServiceCommand::Status => {
            anyhow::ensure!(unit_file.exists(), "no Heiwa service here: heiwa service install -- --hub URL …");
            // `status` exits non-zero for a stopped unit; what it prints is the answer.
            let _ = Command::new("systemctl").args(["--user", "status", "--no-pager", UNIT]).status();
        }
        ServiceCommand::Remove => {
            if unit_file.exists() {
                if let Err(error) = systemctl(&["disable", "--now", UNIT]) {
                    eprintln!("warning: {error}; removing the unit anyway");
                }
                std::fs::remove_file(&unit_file).with_context(|| format!("removing {}", unit_file.display()))?;
            }
            let _ = std::fs::remove_file(&env_file);
            let _ = systemctl(&["daemon-reload"]);
            println!("removed {UNIT}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_the_limb_with_its_arguments_quoted_and_no_secret() {
        let args: Vec<String> = ["--hub", "http://127.0.0.1:3000", "--name", "my desk", "--donation", "/a/b%c.json"]
            .map(String::from)
            .into();
        let text = unit(Path::new("/usr/bin/heiwa"), &args, Path::new("/home/p/.config/heiwa/limb.env"));
        assert!(text.contains(
            "\nExecStart=/usr/bin/heiwa limb run --hub http://127.0.0.1:3000 --name \"my desk\" --donation \"/a/b%%c.json\"\n"
        ), "{text}");
        assert!(text.contains("\nEnvironmentFile=-/home/p/.config/heiwa/limb.env\n"), "{text}");
        assert!(text.contains("\nRestart=on-failure\n") && text.contains("\nWantedBy=default.target\n"), "{text}");
    }
}
