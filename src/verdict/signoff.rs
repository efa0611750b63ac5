//! Reviewer sign-offs for slow patches, bound to the patch's content by its
//! sha256: an edit of one byte makes a sign-off stale.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::patch::discover::same_file;

/// One sign-off as stored in the sign-off file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signoff {
    /// The patch's path, relative to the sign-off file's base directory.
    pub patch: String,
    /// sha256 of the patch's bytes when it was signed off.
    pub sha256: String,
    pub by: String,
    /// RFC 3339 UTC.
    pub at: String,
    pub reason: String,
    /// The longest the patch may take.
    pub max_seconds: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignoffFile {
    #[serde(default)]
    signoff: Vec<Signoff>,
}

/// A sign-off as read, with where its `max-seconds` is written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StoredSignoff {
    patch: String,
    sha256: String,
    by: String,
    at: String,
    reason: String,
    max_seconds: toml::Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredFile {
    #[serde(default)]
    signoff: Vec<StoredSignoff>,
}

impl From<StoredSignoff> for Signoff {
    fn from(s: StoredSignoff) -> Signoff {
        Signoff {
            patch: s.patch,
            sha256: s.sha256,
            by: s.by,
            at: s.at,
            reason: s.reason,
            max_seconds: s.max_seconds.into_inner(),
        }
    }
}

/// Each `max-seconds` in the range `--max-seconds` takes.
fn check_max_seconds(path: &Path, text: &str, file: &StoredFile) -> Result<()> {
    for s in &file.signoff {
        if let Err(why) = crate::limits::SECONDS.check(*s.max_seconds.get_ref()) {
            let start = s.max_seconds.span().start.min(text.len());
            return Err(Error::InputAt {
                path: path.to_path_buf(),
                line: 1 + text[..start].matches('\n').count(),
                message: format!("max-seconds = {why}"),
            });
        }
    }
    Ok(())
}

/// How a sign-off relates to the patch it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignoffState {
    /// Content unchanged and within the approved maximum.
    Valid,
    /// The patch changed since it was signed off.
    Stale,
    /// The patch now takes longer than approved.
    Exceeded,
    /// No such patch any more.
    Orphaned,
}

impl std::fmt::Display for SignoffState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignoffState::Valid => "valid",
            SignoffState::Stale => "stale",
            SignoffState::Exceeded => "exceeded",
            SignoffState::Orphaned => "orphaned",
        })
    }
}

/// A sign-off as a report shows it: who, when, why, up to how long, and
/// its state for the patch as it is now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignoffRecord {
    pub by: String,
    pub at: String,
    pub reason: String,
    pub max_seconds: f64,
    pub state: SignoffState,
}

impl SignoffRecord {
    pub fn of(s: &Signoff, state: SignoffState) -> SignoffRecord {
        SignoffRecord {
            by: s.by.clone(),
            at: s.at.clone(),
            reason: s.reason.clone(),
            max_seconds: s.max_seconds,
            state,
        }
    }
}

/// The sign-off file and the directory its patch paths are relative to.
#[derive(Debug, Clone)]
pub struct Signoffs {
    pub path: PathBuf,
    pub base: PathBuf,
    pub entries: Vec<Signoff>,
}

fn resolve_in(base: &Path, stored: &str) -> PathBuf {
    let p = Path::new(stored);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl Signoffs {
    /// Read the file; a missing file has no sign-offs. Each `max-seconds`
    /// is in the range of `--max-seconds`, else an error at its line.
    pub fn load(path: &Path, base: &Path) -> Result<Signoffs> {
        let text = crate::fsutil::read_text_if_exists(path, crate::fsutil::SIGNOFFS)?;
        let entries = match text {
            Some(text) => {
                let file: StoredFile =
                    toml::from_str(&text).map_err(|e| Error::toml(path, &text, &e))?;
                check_max_seconds(path, &text, &file)?;
                file.signoff.into_iter().map(Signoff::from).collect()
            }
            None => Vec::new(),
        };
        Ok(Signoffs {
            path: path.to_path_buf(),
            base: base.to_path_buf(),
            entries,
        })
    }

    /// Write the file (to a temporary file first, then renamed into place).
    pub fn save(&self) -> Result<()> {
        let file = SignoffFile {
            signoff: self.entries.clone(),
        };
        let text = format!(
            "# Reviewer sign-offs for patches over budget, written by `downtime signoff`.\n\
             # Each is bound to the patch's sha256: editing the patch makes it stale.\n\n{}",
            toml::to_string_pretty(&file)
                .map_err(|e| Error::Usage(format!("cannot write sign-offs: {e}")))?
        );
        let fail = |e: std::io::Error| Error::write("sign-off file", &self.path, e);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
    }

    /// The path to record for a patch: relative to the base when inside it.
    pub fn key_for(&self, patch: &Path) -> String {
        let abs = std::fs::canonicalize(patch).unwrap_or_else(|_| patch.to_path_buf());
        let base = std::fs::canonicalize(&self.base).unwrap_or_else(|_| self.base.clone());
        abs.strip_prefix(&base)
            .map(Path::to_path_buf)
            .unwrap_or(abs)
            .display()
            .to_string()
    }

    /// Where a stored patch path points.
    pub fn resolve(&self, stored: &str) -> PathBuf {
        resolve_in(&self.base, stored)
    }

    /// The sign-off for a patch file: by path, else by content (a renamed patch).
    pub fn find(&self, patch: &Path, sha256: &str) -> Option<&Signoff> {
        self.entries
            .iter()
            .find(|s| same_file(&self.resolve(&s.patch), patch))
            .or_else(|| self.entries.iter().find(|s| s.sha256 == sha256))
    }

    /// Add or replace the sign-off for `s.patch`.
    pub fn upsert(&mut self, s: Signoff) {
        let target = self.resolve(&s.patch);
        let base = &self.base;
        self.entries
            .retain(|e| !same_file(&resolve_in(base, &e.patch), &target) && e.patch != s.patch);
        self.entries.push(s);
        self.entries.sort_by(|a, b| a.patch.cmp(&b.patch));
    }
}

/// Whether [`Signoffs::save`] can write the file at `path`: a regular file
/// or absent, in a directory that takes new files (the file is replaced by
/// a rename). Checked before `downtime signoff` measures anything.
pub fn check_writable(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        crate::fsutil::check_writable(path, "sign-off file")?;
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::fsutil::check_dir(dir, "sign-off file's directory")
}

/// A sign-off's state for a patch with content `sha256` measured at `seconds`.
pub fn state(s: &Signoff, sha256: &str, seconds: Option<f64>) -> SignoffState {
    if s.sha256 != sha256 {
        SignoffState::Stale
    } else if seconds.is_some_and(|t| t > s.max_seconds) {
        SignoffState::Exceeded
    } else {
        SignoffState::Valid
    }
}

/// The default approved maximum: the measured time with 50 % headroom,
/// rounded up to a whole second.
pub fn default_max_seconds(measured: f64) -> f64 {
    (measured * 1.5).ceil().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_defaults() {
        let s = Signoff {
            patch: "patches/a.sql".into(),
            sha256: "abc".into(),
            by: "Ada".into(),
            at: "2026-01-01T00:00:00Z".into(),
            reason: "r".into(),
            max_seconds: 20.0,
        };
        assert_eq!(state(&s, "abc", Some(19.0)), SignoffState::Valid);
        assert_eq!(state(&s, "abd", Some(1.0)), SignoffState::Stale);
        assert_eq!(state(&s, "abc", Some(21.0)), SignoffState::Exceeded);
        assert_eq!(default_max_seconds(16.2), 25.0);
        assert_eq!(default_max_seconds(0.1), 1.0);
    }
}
