//! Child processes that never outlive their parent, and signals to them.
//!
//! Every process the master or the stack starts asks the kernel (PR_SET_PDEATHSIG) to send it
//! SIGTERM when its parent dies, so nothing survives even a SIGKILLed master. The death signal
//! is tied to the thread that forked: callers spawn from long-lived runtime threads only.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// A command whose process gets SIGTERM when this process dies.
pub fn tied_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command.stdin(Stdio::null());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command
}

/// Arguments that make this binary act as `chat-server` (empty for chat-server itself; the
/// load generator embeds the server and sets `["chat-server"]`).
static SELF_PREFIX: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Declares how this binary is re-invoked as `chat-server` (call once, at startup).
pub fn set_self_prefix(args: Vec<String>) {
    let _ = SELF_PREFIX.set(args);
}

/// A tied command that runs this same binary as `chat-server`, for the master's workers and
/// the stack's cluster.
pub fn self_command() -> Command {
    let mut command = tied_command(self_exe());
    command.args(self_prefix());
    command
}

/// [`self_command`] inside network namespace `netns`.
pub fn self_command_in_netns(netns: &str) -> Command {
    let mut command = tied_command_in_netns(netns, self_exe());
    command.args(self_prefix());
    command
}

/// A [`tied_command`] running `program` inside network namespace `netns` (`ip netns exec`,
/// which execs the program in its own place: the pid is the program's, for signals and the
/// death signal alike).
pub fn tied_command_in_netns(netns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = tied_command("ip");
    command.args(["netns", "exec", netns]).arg(program);
    command
}

fn self_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "chat-server".into())
}

fn self_prefix() -> &'static [String] {
    SELF_PREFIX.get().map(Vec::as_slice).unwrap_or_default()
}

/// Sends `signal` to `pid`; false if the process does not exist.
pub fn send_signal(pid: u32, signal: libc::c_int) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
}

/// Asks the child to stop (SIGTERM), then SIGKILLs it after `grace`. Returns when it is gone.
pub async fn stop_child(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        send_signal(pid, libc::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// Says which package provides a missing program.
pub fn require(program: &str, package: &str) -> anyhow::Result<std::path::PathBuf> {
    find_executable(program).with_context(|| {
        format!("`{program}` not found: install it with `apt-get install -y {package}`")
    })
}

/// Finds an executable in PATH or the sbin folders (nginx lives in /usr/sbin).
pub fn find_executable(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(Into::into))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(find_executable("sh").is_some());
        assert!(find_executable("no-such-binary-roomstorm").is_none());
    }
}
