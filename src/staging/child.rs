//! Child processes of the local backend (initdb, cp) run to their end
//! without blocking the async runtime, and stopped when a run is cancelled.
//! The baseline cache copies its entries with them too.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::staging::cleanup;

/// How often a running child is looked at.
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Copy a directory tree, keeping owners and modes, copy-on-write where the
/// filesystem can (`cp -a --reflink=auto`). A fired `cancel` stops the copy.
pub async fn copy_tree(from: &Path, to: &Path, cancel: &Cancel) -> Result<()> {
    let mut cp = Command::new("cp");
    cp.args(["-a", "--reflink=auto"]).arg(from).arg(to);
    let (status, stderr) = run_child(cp, "cp", None, cancel).await?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Server(format!(
            "cannot copy {} to {}: {stderr}",
            from.display(),
            to.display()
        )))
    }
}

/// Run a child process to its end without blocking the runtime, its stderr
/// collected in a temporary file. It runs in its own process group (a
/// terminal's Ctrl-C reaches downtime, which decides), is registered for an
/// emergency exit with the cluster directory `cluster`, and a fired
/// `cancel` kills it with its whole group.
pub(super) async fn run_child(
    mut cmd: Command,
    what: &str,
    cluster: Option<&Path>,
    cancel: &Cancel,
) -> Result<(ExitStatus, String)> {
    let stderr = tempfile::tempfile()
        .map_err(|e| Error::Server(format!("cannot create a temporary file: {e}")))?;
    let mut read_back = stderr
        .try_clone()
        .map_err(|e| Error::Server(format!("cannot open a temporary file: {e}")))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Server(format!("cannot run {what}: {e}")))?;
    let pid = child.id() as i32;
    if let Some(dir) = cluster {
        cleanup::set_cluster_process(dir, Some(pid));
    }
    let waited = wait_child(&mut child, pid, what, cancel).await;
    if let Some(dir) = cluster {
        cleanup::set_cluster_process(dir, None);
    }
    let status = waited?;
    let mut text = String::new();
    {
        use std::io::{Read, Seek};
        let _ = read_back.rewind();
        let _ = read_back.read_to_string(&mut text);
    }
    Ok((status, text.trim().to_string()))
}

/// Poll a child until it exits; a fired `cancel` kills its process group.
async fn wait_child(
    child: &mut Child,
    pid: i32,
    what: &str,
    cancel: &Cancel,
) -> Result<ExitStatus> {
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Server(format!("{what}: {e}")))?
        {
            return Ok(status);
        }
        if let Some(a) = cancel.fired() {
            let _ = signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Aborted(a));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Kill a process and its process group, and reap it.
pub(super) fn kill_group(child: &mut Child) {
    let _ = signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}
