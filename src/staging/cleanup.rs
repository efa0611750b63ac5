//! What this process has started and must remove if it has to stop at once
//! (a second Ctrl-C): local clusters (a process and its directory),
//! containers, and jobs that remove what lives elsewhere (a run's databases
//! on a server it does not own, a provisioner's clone). Backends register
//! what they start and forget it once they have removed it themselves.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Something to remove at an emergency exit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A cluster directory, and the process working in it (initdb, a copy,
    /// or the server), if one runs.
    Cluster { dir: PathBuf, pid: Option<i32> },
    /// A container, by id.
    Container(String),
}

static LIVE: Mutex<Vec<Item>> = Mutex::new(Vec::new());

/// Work that removes something at an emergency exit, on a thread of its own.
type Job = Box<dyn FnOnce() + Send>;

/// The jobs registered, by number.
static JOBS: Mutex<Vec<(u64, Job)>> = Mutex::new(Vec::new());
static NEXT_JOB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How long an emergency exit waits for the jobs.
const JOB_TIMEOUT: Duration = Duration::from_secs(5);

/// Run `job` at an emergency exit (unless forgotten first); returns its number.
pub fn add_job(job: impl FnOnce() + Send + 'static) -> u64 {
    let id = NEXT_JOB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut jobs = match JOBS.lock() {
        Ok(j) => j,
        Err(poisoned) => poisoned.into_inner(),
    };
    jobs.push((id, Box::new(job)));
    id
}

/// The job's work is done: nothing to do for it any more.
pub fn forget_job(id: u64) {
    let mut jobs = match JOBS.lock() {
        Ok(j) => j,
        Err(poisoned) => poisoned.into_inner(),
    };
    jobs.retain(|(j, _)| *j != id);
}

/// Run every registered job, each on its own thread, and wait for them
/// (at most [`JOB_TIMEOUT`] in all).
fn run_jobs() {
    let jobs = {
        let mut jobs = match JOBS.lock() {
            Ok(j) => j,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::take(&mut *jobs)
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let n = jobs.len();
    for (_, job) in jobs {
        let done = done_tx.clone();
        std::thread::spawn(move || {
            job();
            let _ = done.send(());
        });
    }
    let deadline = Instant::now() + JOB_TIMEOUT;
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
}

fn with_live(f: impl FnOnce(&mut Vec<Item>)) {
    let mut live = match LIVE.lock() {
        Ok(l) => l,
        Err(poisoned) => poisoned.into_inner(),
    };
    f(&mut live);
}

/// A cluster directory to remove.
pub fn add_cluster(dir: &Path) {
    with_live(|live| {
        live.push(Item::Cluster {
            dir: dir.to_path_buf(),
            pid: None,
        })
    });
}

/// The process now working in the cluster directory `dir` (`None`: none).
pub fn set_cluster_process(dir: &Path, process: Option<i32>) {
    with_live(|live| {
        for item in live.iter_mut() {
            if let Item::Cluster { dir: d, pid } = item {
                if d == dir {
                    *pid = process;
                }
            }
        }
    });
}

/// The cluster directory is gone: nothing to do for it any more.
pub fn forget_cluster(dir: &Path) {
    with_live(|live| live.retain(|i| !matches!(i, Item::Cluster { dir: d, .. } if d == dir)));
}

/// A container to remove.
pub fn add_container(id: &str) {
    with_live(|live| live.push(Item::Container(id.to_string())));
}

/// The container is gone: nothing to do for it any more.
pub fn forget_container(id: &str) {
    with_live(|live| live.retain(|i| !matches!(i, Item::Container(c) if c == id)));
}

/// Remove everything registered, at once: stop the clusters' processes
/// (immediate shutdown, then SIGKILL after 3 s) and remove their
/// directories, and force-remove the containers meanwhile.
pub fn run() {
    let mut live = Vec::new();
    with_live(|l| live = std::mem::take(l));
    let mut clusters = Vec::new();
    let mut containers = Vec::new();
    for item in live {
        match item {
            Item::Cluster { dir, pid } => clusters.push((dir, pid.filter(|p| *p > 0))),
            Item::Container(id) => containers.push(id),
        }
    }
    for (_, pid) in &clusters {
        if let Some(pid) = pid {
            // Immediate shutdown: a postmaster stops its children itself.
            let _ = signal::kill(Pid::from_raw(*pid), Signal::SIGQUIT);
        }
    }
    let removing = (!containers.is_empty())
        .then(|| std::thread::spawn(move || super::docker::remove_at_once(&containers)));
    let jobs = std::thread::spawn(run_jobs);
    remove_clusters(&clusters);
    if let Some(worker) = removing {
        let _ = worker.join();
    }
    let _ = jobs.join();
}

/// Wait for the clusters' processes (3 s in all), kill what is left, and
/// remove the directories.
fn remove_clusters(clusters: &[(PathBuf, Option<i32>)]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    for (dir, pid) in clusters {
        if let Some(pid) = pid {
            let pid = Pid::from_raw(*pid);
            while Instant::now() < deadline && signal::kill(pid, None).is_ok() {
                // Reap it if it is our child; otherwise just wait for it to go.
                let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = signal::kill(pid, Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Vec<Item> {
        let mut copy = Vec::new();
        with_live(|l| copy = l.clone());
        copy
    }

    #[test]
    fn clusters_and_containers_are_registered_and_forgotten() {
        let dir = PathBuf::from("/nonexistent/downtime-registry-test");
        add_cluster(&dir);
        set_cluster_process(&dir, Some(12345));
        add_container("registry-test-container");
        let live = snapshot();
        assert!(live.contains(&Item::Cluster {
            dir: dir.clone(),
            pid: Some(12345)
        }));
        assert!(live.contains(&Item::Container("registry-test-container".into())));
        forget_cluster(&dir);
        forget_container("registry-test-container");
        let live = snapshot();
        assert!(!live
            .iter()
            .any(|i| matches!(i, Item::Cluster { dir: d, .. } if *d == dir)));
        assert!(!live.contains(&Item::Container("registry-test-container".into())));
    }

    #[test]
    fn jobs_run_once_unless_forgotten() {
        let (tx, rx) = std::sync::mpsc::channel();
        let ran = tx.clone();
        let kept = add_job(move || ran.send("kept").unwrap());
        let gone = add_job(move || tx.send("forgotten").unwrap());
        forget_job(gone);
        run_jobs();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec!["kept"]);
        forget_job(kept);
        run_jobs();
        assert!(rx.try_recv().is_err());
    }
}
