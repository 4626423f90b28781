//! Ctrl-C for a child process as at a terminal.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Let `command`'s child take SIGINT as a program at a terminal does. A run
/// started in the background by a script inherits SIGINT ignored (POSIX
/// shells do that to `&` jobs), and heiwa, like any program, keeps an
/// ignored signal ignored: a test or benchmark that sends it Ctrl-C would
/// otherwise see it finish its work instead of stopping.
pub fn interruptible(command: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe work between fork and exec (one sigaction).
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, nix::sys::signal::SigHandler::SigDfl)
                .map(drop)
                .map_err(std::io::Error::from)
        })
    }
}
