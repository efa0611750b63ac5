//! Timing history: every run appends one line per patch to
//! `reports/history.jsonl`; `--compare-history` flags a patch that got
//! slower than its last run with the same server settings.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::outcome::{CacheMode, Outcome, Server};

/// The default history file, under the output directory.
pub const DEFAULT_FILE: &str = "reports/history.jsonl";

/// One patch in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub patch: String,
    pub path: String,
    pub sha256: String,
    /// `git rev-parse HEAD` where the run started, when in a git repository.
    pub commit: Option<String>,
    pub at: String,
    /// Which figure `seconds` is (median, upper-ci, max; `single` for one run).
    pub statistic: String,
    pub seconds: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub runs: usize,
    pub cache: CacheMode,
    /// Server version, backend and timing settings, hashed: only runs with the
    /// same fingerprint are compared.
    pub fingerprint: String,
}

/// A patch compared with its last recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    pub previous_seconds: f64,
    pub previous_at: String,
    pub previous_commit: Option<String>,
    /// Change in percent (positive: slower).
    pub change_percent: f64,
    /// Slower by more than the threshold, with non-overlapping confidence intervals.
    pub regressed: bool,
    pub threshold_percent: f64,
}

/// A short hash of what makes timings comparable.
pub fn fingerprint(server: &Server) -> String {
    let mut h = Sha256::new();
    h.update(server.version.as_bytes());
    h.update(server.backend.as_bytes());
    if let Some(i) = &server.image {
        h.update(i.id.as_bytes());
    }
    for (k, v) in &server.settings {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())[..16].to_string()
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Read a history file; a missing file is an empty history. A line that
/// cannot be read, or whose times are impossible, is an error naming it.
pub fn load(path: &Path) -> Result<Vec<Entry>> {
    let Some(text) = crate::fsutil::read_text_if_exists(path, crate::fsutil::HISTORY)? else {
        return Ok(Vec::new());
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let at = |message: String| Error::InputAt {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let e: Entry =
                serde_json::from_str(l).map_err(|e| at(format!("not a history entry: {e}")))?;
            for (name, v) in [
                ("seconds", e.seconds),
                ("ci_low", e.ci_low),
                ("ci_high", e.ci_high),
            ] {
                if !crate::limits::MEASURED_SECONDS.contains(v) {
                    return Err(at(format!(
                        "{name} is {}: not a time a run can take",
                        crate::limits::show(v)
                    )));
                }
            }
            Ok(e)
        })
        .collect()
}

/// The entries this run adds: one per patch that applied without failing.
pub fn entries(outcome: &Outcome) -> Vec<Entry> {
    let fp = fingerprint(&outcome.server);
    let commit = git_commit();
    let (statistic, cache) = match &outcome.timing {
        Some(t) => (
            t.statistic.to_string(),
            *t.cache.last().unwrap_or(&CacheMode::Warm),
        ),
        None => ("single".to_string(), CacheMode::Warm),
    };
    outcome
        .each()
        .filter(|(_, r)| r.ok())
        .map(|(p, r)| {
            let stats = r.timing.as_ref().and_then(|t| match cache {
                CacheMode::Cold => t.cold.clone(),
                CacheMode::Warm => t.warm.clone(),
            });
            Entry {
                patch: p.file.id.clone(),
                path: p.file.path.display().to_string(),
                sha256: p.sha256.clone(),
                commit: commit.clone(),
                at: outcome.started_at.clone(),
                statistic: statistic.clone(),
                seconds: r.seconds,
                ci_low: stats.as_ref().map_or(r.seconds, |s| s.ci_low),
                ci_high: stats.as_ref().map_or(r.seconds, |s| s.ci_high),
                runs: stats.as_ref().map_or(1, |s| s.runs),
                cache,
                fingerprint: fp.clone(),
            }
        })
        .collect()
}

/// Append this run's entries.
pub fn append(path: &Path, new: &[Entry]) -> Result<()> {
    let fail = |e: std::io::Error| Error::write("history file", path, e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    let mut text = String::new();
    for e in new {
        text.push_str(&serde_json::to_string(e).unwrap_or_default());
        text.push('\n');
    }
    f.write_all(text.as_bytes()).map_err(fail)
}

/// A patch's recent series and, when asked for, its comparison with its
/// last recorded run.
#[derive(Debug, Clone, Default)]
pub struct Compared {
    pub history: Vec<HistoryPoint>,
    pub regression: Option<Regression>,
}

/// Compare each patch with its last entry of the same fingerprint and cache
/// mode, and give its recent series for the trend chart; one per patch.
pub fn compare(
    outcome: &Outcome,
    history: &[Entry],
    threshold_percent: f64,
    flag: bool,
) -> Vec<Compared> {
    let current = entries(outcome);
    outcome
        .patches
        .iter()
        .map(|p| {
            let Some(now) = current.iter().find(|e| e.patch == p.file.id) else {
                return Compared::default();
            };
            let same: Vec<&Entry> = history
                .iter()
                .filter(|e| {
                    e.patch == p.file.id && e.fingerprint == now.fingerprint && e.cache == now.cache
                })
                .collect();
            let points = same
                .iter()
                .rev()
                .take(20)
                .rev()
                .map(|e| HistoryPoint {
                    at: e.at.clone(),
                    seconds: e.seconds,
                    commit: e.commit.clone(),
                })
                .collect();
            let regression = same.last().filter(|_| flag).map(|prev| {
                let change = if prev.seconds > 0.0 {
                    (now.seconds - prev.seconds) / prev.seconds * 100.0
                } else {
                    0.0
                };
                Regression {
                    previous_seconds: prev.seconds,
                    previous_at: prev.at.clone(),
                    previous_commit: prev.commit.clone(),
                    change_percent: change,
                    regressed: change > threshold_percent && now.ci_low > prev.ci_high,
                    threshold_percent,
                }
            });
            Compared {
                history: points,
                regression,
            }
        })
        .collect()
}

/// A point of a patch's timing history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub at: String,
    pub seconds: f64,
    pub commit: Option<String>,
}
