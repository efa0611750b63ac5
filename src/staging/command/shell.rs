//! The provisioner's commands, run with `sh -c` and `DOWNTIME_CLONE` in
//! their environment: to their end without blocking the async runtime,
//! their output in anonymous temporary files (a URL with a password in it
//! is on no disk once they end), stopped with their process group when a
//! run is cancelled or when they outlive their time limit. Their output is
//! read as bytes: a line that is not UTF-8 (a progress bar, a locale's
//! message) is shown with replacement characters, and only the line that
//! must be a URL has to be text.

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

/// How long a command's process group has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// What a command printed, and how it ended.
pub struct Ran {
    pub status: ExitStatus,
    /// Its standard output, as written.
    pub stdout: Vec<u8>,
    /// Its error output, lossily as text (it is only shown).
    pub stderr: String,
}

/// The last non-empty line of a command's output, trimmed.
#[derive(Debug, PartialEq, Eq)]
pub enum LastLine<'a> {
    None,
    Text(&'a str),
    /// Not UTF-8: it cannot be a URL.
    NotText,
}

impl Ran {
    /// The last non-empty line of standard output (lines before it may
    /// hold any bytes).
    pub fn last_line(&self) -> LastLine<'_> {
        let last = self
            .stdout
            .split(|b| *b == b'\n')
            .map(|l| l.trim_ascii())
            .rfind(|l| !l.is_empty());
        match last {
            None => LastLine::None,
            Some(bytes) => std::str::from_utf8(bytes).map_or(LastLine::NotText, LastLine::Text),
        }
    }

    /// The last `n` non-empty lines of its error output.
    pub fn stderr_tail(&self, n: usize) -> String {
        tail(&self.stderr, n)
    }
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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

/// Run `script` for `clone` to its end, for at most `limit`; a fired
/// `cancel` kills its whole process group and is `Error::Aborted`, and so
/// does the limit, with an error saying so. `what` names it in messages.
pub async fn run(
    script: &str,
    clone: &str,
    what: &str,
    limit: Duration,
    cancel: &Cancel,
) -> Result<Ran> {
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
    let deadline = Instant::now() + limit;
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
        if Instant::now() >= deadline {
            kill_group(pid, &mut child).await;
            let stderr = String::from_utf8_lossy(&read_back(&mut err)).into_owned();
            return Err(Error::Server(format!(
                "{what} for clone {clone} was still running after {} s, the limit \
                 ([staging.command] timeout-seconds): its process group was killed; the last \
                 lines it wrote on stderr:\n{}",
                limit.as_secs_f64(),
                tail(&stderr, 8)
            )));
        }
        tokio::time::sleep(POLL).await;
    };
    Ok(Ran {
        status,
        stdout: read_back(&mut out),
        stderr: String::from_utf8_lossy(&read_back(&mut err)).into_owned(),
    })
}

/// End the process group `pid` leads: SIGTERM, then SIGKILL to whatever
/// of it is left after [`KILL_GRACE`] (the group outlives its leader while
/// a member lives).
async fn kill_group(pid: Pid, child: &mut std::process::Child) {
    let _ = signal::killpg(pid, Signal::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline {
        let leader_done = matches!(child.try_wait(), Ok(Some(_)));
        // Signal 0: is any member of the group still there?
        if leader_done && signal::killpg(pid, None).is_err() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = signal::killpg(pid, Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
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

/// What was written to a temporary file, as bytes.
fn read_back(f: &mut std::fs::File) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = f.rewind();
    let _ = f.read_to_end(&mut bytes);
    bytes
}
