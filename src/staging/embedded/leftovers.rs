//! What runs killed outright left in the temporary directory, for
//! `downtime clean`: cluster directories, baseline load directories (with a
//! source's dump), and the dump files older versions wrote beside them.

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
/// The prefix of the dump files earlier versions left in the temporary
/// directory itself (`downtime-dump-XXXXXX.dump`).
pub const DUMP_FILE_PREFIX: &str = "downtime-dump-";

/// A directory or file left in the temporary directory, as `downtime clean` sees it.
#[derive(Debug, Clone)]
pub struct LeftoverDir {
    pub path: PathBuf,
    /// The downtime process that made it, or its server, is still running
    /// (for a dump file: a process holds it open).
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
    if !dir.path.is_dir() {
        return std::fs::remove_file(&dir.path).map_err(|e| Error::io(&dir.path, e));
    }
    if let Some(pid) = running_pid(&dir.path.join("data").join("postmaster.pid")) {
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGQUIT);
        let deadline = Instant::now() + QUIT_TIMEOUT;
        while process_alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
    }
    std::fs::remove_dir_all(&dir.path).map_err(|e| Error::io(&dir.path, e))
}

/// What earlier runs left under `tmp` (a run killed outright cannot remove
/// its own): `downtime-*` folders with a `socket` folder (a cluster) or an
/// owner file (a cluster or a load directory), and `downtime-dump-*` files.
pub fn leftover_dirs(tmp: &Path) -> Vec<LeftoverDir> {
    let entries: Vec<PathBuf> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(DIR_PREFIX))
        })
        .map(|e| e.path())
        .collect();
    let dump_files: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(DUMP_FILE_PREFIX))
        })
        .collect();
    let open = if dump_files.is_empty() {
        Vec::new()
    } else {
        files_held_open()
    };
    let mut found: Vec<LeftoverDir> = entries
        .iter()
        .filter_map(|path| {
            if dump_files.contains(&path) {
                let in_use = std::fs::canonicalize(path).is_ok_and(|p| open.contains(&p));
                return Some(LeftoverDir {
                    path: path.clone(),
                    in_use,
                });
            }
            let ours = path.join("socket").is_dir() || path.join(OWNER_FILE).is_file();
            ours.then(|| LeftoverDir {
                path: path.clone(),
                in_use: running_pid(&path.join(OWNER_FILE)).is_some()
                    || running_pid(&path.join("data").join("postmaster.pid")).is_some(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Every file some process (that this one may look at) holds open.
fn files_held_open() -> Vec<PathBuf> {
    let mut open = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                open.push(target);
            }
        }
    }
    open
}
