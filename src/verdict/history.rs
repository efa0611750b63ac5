//! Timing history: every run appends one line per patch to
//! `reports/history.jsonl`, with how the patch did; `--compare-history`
//! flags a patch that got slower than its last *passing* run with the same
//! server settings. A run that failed, regressed or went over its budget is
//! recorded as such and is never compared with, so a retry cannot make a
//! slow run the point it is measured against.
//!
//! Appending takes the file's lock, reads it again and replaces it whole
//! (a new file, synced, renamed into place): concurrent runs each keep
//! their lines, and a full disk leaves the file as it was. A last line
//! that was cut short (a kill, a full disk, by an earlier version that
//! appended in place) is passed over with a note, and dropped at the next
//! append; a broken line anywhere else is an error at its line.

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
    /// How the patch did in this run; lines of earlier versions, without
    /// it, count as passed.
    #[serde(default)]
    pub verdict: Standing,
    /// What failed it: `failed` (an error), `over-budget` (without a valid
    /// sign-off), `regressed`, `rules` (anything else the policy failed it
    /// for), `run` (the run failed, by other patches or a total).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub because: Vec<String>,
}

/// Whether an entry's run passed: only passing entries are compared with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    #[default]
    Pass,
    Fail,
}

impl Entry {
    /// Whether later runs may be compared with this one.
    pub fn passed(&self) -> bool {
        self.verdict == Standing::Pass
    }
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
/// cannot be read, or whose times are impossible, is an error naming it,
/// except the last line when the file does not end with a newline: a write
/// cut short, passed over with a note.
pub fn load(path: &Path) -> Result<Vec<Entry>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(Vec::new());
    }
    let bytes = crate::fsutil::read_regular(path, crate::fsutil::HISTORY)?;
    let (entries, torn) = parse(path, bytes)?;
    if let Some(line) = torn {
        crate::ui::note(&format!(
            "{}:{line}: the last line is incomplete (a write cut short: a full disk, a kill); \
             passed over, and dropped when this run's lines are appended",
            path.display()
        ));
    }
    Ok(entries)
}

/// The entries of a history file's bytes, and the line of a torn last
/// line passed over.
fn parse(path: &Path, mut bytes: Vec<u8>) -> Result<(Vec<Entry>, Option<usize>)> {
    let tail = tail_start(&bytes);
    let last = bytes.split_off(tail);
    let text = crate::fsutil::text(path, bytes)?;
    let mut entries = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|message| Error::InputAt {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            })
        })
        .collect::<Result<Vec<Entry>>>()?;
    let line = 1 + text.matches('\n').count();
    match std::str::from_utf8(&last).map(str::trim) {
        Ok("") => Ok((entries, None)),
        Ok(l) => match parse_line(l) {
            Ok(e) => {
                entries.push(e);
                Ok((entries, None))
            }
            Err(_) => Ok((entries, Some(line))),
        },
        Err(_) => Ok((entries, Some(line))),
    }
}

/// Where the part of a file after its last newline starts.
fn tail_start(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// One history line, its times checked.
fn parse_line(l: &str) -> std::result::Result<Entry, String> {
    let e: Entry = serde_json::from_str(l).map_err(|e| format!("not a history entry: {e}"))?;
    for (name, v) in [
        ("seconds", e.seconds),
        ("ci_low", e.ci_low),
        ("ci_high", e.ci_high),
    ] {
        if !crate::limits::MEASURED_SECONDS.contains(v) {
            return Err(format!(
                "{name} is {}: not a time a run can take",
                crate::limits::show(v)
            ));
        }
    }
    Ok(e)
}

/// The entries this run adds: one per patch that ran, as passed (the
/// verdict, once made, marks those it failed: [`Entry::verdict`]).
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
        .filter(|(_, r)| r.run().is_some())
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
                verdict: if r.ok() {
                    Standing::Pass
                } else {
                    Standing::Fail
                },
                because: if r.ok() {
                    Vec::new()
                } else {
                    vec!["failed".into()]
                },
            }
        })
        .collect()
}

/// Whether the history file can be appended to (see [`append`]): found
/// before a run starts.
pub fn check_writable(path: &Path) -> Result<()> {
    crate::fsutil::check_links(&crate::fsutil::lock_path(path), "history file")?;
    crate::fsutil::check_writable(path, "history file")
}

/// Append this run's entries: under the file's lock, read it again, drop
/// a torn last line, add the new lines and replace the file whole.
pub fn append(path: &Path, new: &[Entry]) -> Result<()> {
    let _lock = crate::fsutil::lock_beside(path, "history file")?;
    let mut bytes = if std::fs::symlink_metadata(path).is_ok() {
        crate::fsutil::check_links(path, "history file")?;
        crate::fsutil::read_regular(path, crate::fsutil::HISTORY)?
    } else {
        Vec::new()
    };
    let tail = tail_start(&bytes);
    if tail < bytes.len() {
        let whole = std::str::from_utf8(&bytes[tail..])
            .ok()
            .is_some_and(|l| parse_line(l.trim()).is_ok());
        if whole {
            bytes.push(b'\n');
        } else {
            bytes.truncate(tail);
        }
    }
    for e in new {
        let line =
            serde_json::to_string(e).map_err(|err| Error::write("history file", path, err))?;
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    crate::fsutil::replace(path, "history file", &bytes)
}

/// A patch's recent series and, when asked for, its comparison with its
/// last recorded run.
#[derive(Debug, Clone, Default)]
pub struct Compared {
    pub history: Vec<HistoryPoint>,
    pub regression: Option<Regression>,
}

/// Compare each patch with its last passing entry of the same fingerprint
/// and cache mode, and give its recent passing series for the trend chart;
/// one per patch.
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
                    e.passed()
                        && e.patch == p.file.id
                        && e.fingerprint == now.fingerprint
                        && e.cache == now.cache
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seconds: f64, verdict: &str) -> String {
        format!(
            r#"{{"patch":"0001-a","path":"p/0001-a.sql","sha256":"x","commit":null,"at":"2026-01-01T00:00:00Z","statistic":"single","seconds":{seconds},"ci_low":{seconds},"ci_high":{seconds},"runs":1,"cache":"warm","fingerprint":"f"{verdict}}}"#
        )
    }

    #[test]
    fn a_torn_last_line_is_passed_over_and_one_elsewhere_is_an_error() {
        let p = Path::new("h.jsonl");
        let whole = line(0.1, "");
        let torn = &whole[..whole.len() / 2];
        let (e, t) = parse(p, format!("{whole}\n{whole}\n{torn}").into_bytes()).unwrap();
        assert_eq!((e.len(), t), (2, Some(3)));
        // Cut inside a multi-byte character, or NUL-filled by a crash.
        let (e, t) = parse(
            p,
            format!("{whole}\n{{\"patch\":\"\u{e9}").into_bytes()[..].to_vec(),
        )
        .map(|(e, t)| (e.len(), t))
        .unwrap();
        assert_eq!((e, t), (1, Some(2)));
        let mut bytes = format!("{whole}\n").into_bytes();
        bytes.extend([0u8; 16]);
        assert_eq!(parse(p, bytes).unwrap().1, Some(2));
        let mut cut = format!("{whole}\n").into_bytes();
        cut.extend_from_slice(&"{\"patch\":\"\u{e9}".as_bytes()[..11]);
        assert_eq!(parse(p, cut).unwrap().1, Some(2));
        // A whole last line without its newline is read.
        let (e, t) = parse(p, format!("{whole}\n{whole}").into_bytes()).unwrap();
        assert_eq!((e.len(), t), (2, None));
        let e = parse(p, format!("{whole}\n{torn}\n{whole}\n").into_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("h.jsonl:2: not a history entry"), "{e}");
    }

    #[test]
    fn failing_runs_are_read_as_such_and_older_lines_as_passed() {
        let p = Path::new("h.jsonl");
        let text = format!(
            "{}\n{}\n",
            line(0.1, ""),
            line(0.3, r#","verdict":"fail","because":["regressed"]"#)
        );
        let (e, _) = parse(p, text.into_bytes()).unwrap();
        assert!(e[0].passed());
        assert!(!e[1].passed());
        assert_eq!(e[1].because, ["regressed"]);
    }

    #[test]
    fn appending_keeps_the_file_whole_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("history.jsonl");
        let whole = line(0.1, "");
        std::fs::write(&f, format!("{whole}\n{}", &whole[..20])).unwrap();
        let e: Entry = serde_json::from_str(&whole).unwrap();
        append(&f, &[e.clone(), e]).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.ends_with('\n'));
        assert_eq!(load(&f).unwrap().len(), 3);
        // No lock or temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
