//! The provisioner's commands, run with `sh -c` and `DOWNTIME_CLONE` in
//! their environment: to their end without blocking the async runtime,
//! their output in anonymous temporary files (a URL with a password in it
//! is on no disk once they end), stopped with their process group when a
//! run is cancelled.

use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::cancel::Cancel;
use crate::error::{Error, Result};

/// The variable naming the clone a command is run for.
pub const CLONE_VAR: &str = "DOWNTIME_CLONE";
/// How often a running command is looked at.
const POLL: Duration = Duration::from_millis(20);

/// What a command printed, and how it ended.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The last `n` non-empty lines of its error output.
    pub fn stderr_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// `sh -c script` for `clone`, in a process group of its own.
pub fn command(script: &str, clone: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .env(CLONE_VAR, clone)
        .stdin(Stdio::null())
        .process_group(0);
    cmd
}

/// Run `script` for `clone` to its end; a fired `cancel` kills its whole
/// process group and is `Error::Aborted`. `what` names it in messages.
pub async fn run(script: &str, clone: &str, what: &str, cancel: &Cancel) -> Result<Ran> {
    let file = || {
        tempfile::tempfile()
            .map_err(|e| Error::Server(format!("cannot create a temporary file: {e}")))
    };
    let (mut out, mut err) = (file()?, file()?);
    let mut cmd = command(script, clone);
    cmd.stdout(clone_file(&out)?).stderr(clone_file(&err)?);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Server(format!("cannot run {what} (sh -c): {e}")))?;
    let pid = Pid::from_raw(child.id() as i32);
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Server(format!("{what}: {e}")))?
        {
            break status;
        }
        if let Some(a) = cancel.fired() {
            let _ = signal::killpg(pid, Signal::SIGTERM);
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Aborted(a));
        }
        tokio::time::sleep(POLL).await;
    };
    Ok(Ran {
        status,
        stdout: read_back(&mut out),
        stderr: read_back(&mut err),
    })
}

/// Run `script` for `clone` to its end, blocking, for at most `within`
/// (then it is left running): for `Drop` and an emergency exit.
pub fn run_blocking(script: &str, clone: &str, within: Duration) -> Option<ExitStatus> {
    let mut child = command(script, clone)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(POLL),
            Err(_) => return None,
        }
    }
    None
}

/// Another handle on a temporary file, for a child's output.
fn clone_file(f: &std::fs::File) -> Result<std::fs::File> {
    f.try_clone()
        .map_err(|e| Error::Server(format!("cannot open a temporary file: {e}")))
}

/// What was written to a temporary file.
fn read_back(f: &mut std::fs::File) -> String {
    let mut text = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut text);
    text
}
