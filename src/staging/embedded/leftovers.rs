//! Cluster directories that runs killed outright left behind, for
//! `downtime clean`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::{POLL, QUIT_TIMEOUT};
use crate::error::{Error, Result};
use crate::staging::process_alive;

/// The file in a cluster's directory naming the downtime process that owns it.
pub const OWNER_FILE: &str = "owner.pid";
/// The prefix of the clusters' temporary directories.
pub const DIR_PREFIX: &str = "downtime-";

/// A cluster directory left in the temporary directory, as `downtime clean` sees it.
#[derive(Debug, Clone)]
pub struct LeftoverDir {
    pub path: PathBuf,
    /// The downtime process that made it, or its server, is still running.
    pub in_use: bool,
}

/// The process named on the first line of `pid_file`, if it still runs.
fn running_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        .filter(|pid| process_alive(*pid))
}

/// Remove a leftover cluster directory, stopping its server first if one
/// still runs there (immediate shutdown).
pub async fn remove_leftover(dir: &LeftoverDir) -> Result<()> {
    if let Some(pid) = running_pid(&dir.path.join("data").join("postmaster.pid")) {
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGQUIT);
        let deadline = Instant::now() + QUIT_TIMEOUT;
        while process_alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
    }
    std::fs::remove_dir_all(&dir.path).map_err(|e| Error::io(&dir.path, e))
}

/// Cluster directories of earlier runs under `tmp` (a run killed outright
/// cannot remove its own): `downtime-*` folders with a `socket` folder.
pub fn leftover_dirs(tmp: &Path) -> Vec<LeftoverDir> {
    let mut found: Vec<LeftoverDir> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(DIR_PREFIX))
                && e.path().join("socket").is_dir()
        })
        .map(|e| {
            let path = e.path();
            let in_use = running_pid(&path.join(OWNER_FILE)).is_some()
                || running_pid(&path.join("data").join("postmaster.pid")).is_some();
            LeftoverDir { path, in_use }
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}
