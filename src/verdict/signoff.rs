//! Reviewer sign-offs for slow patches, bound to the patch's path and to
//! its content by its sha256: an edit of one byte makes a sign-off stale,
//! and a copy of a signed patch under another name is not signed. A renamed
//! patch keeps its sign-off only while its old path is gone, from the run
//! and from the disk, and no other patch of the run has its content.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One sign-off as stored in the sign-off file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signoff {
    /// The patch's path, relative to the sign-off file's base directory.
    /// Empty for a sign-off that names no patch (a hand-written or older
    /// file without `patch`): it covers nothing, and must be signed again.
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    #[serde(default)]
    patch: Option<String>,
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
            patch: s.patch.unwrap_or_default(),
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
    /// The `--config` the check was given, for the command its hint prints.
    pub config: Option<PathBuf>,
}

/// A patch of the run, as sign-offs see it: its path and content.
#[derive(Debug, Clone, Copy)]
pub struct RunPatch<'a> {
    pub path: &'a Path,
    pub sha256: &'a str,
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
            config: None,
        })
    }

    /// Write the file: replaced whole (a new file beside it, synced, renamed
    /// into place), never through a link. Called under [`record`]'s lock.
    fn save(&self) -> Result<()> {
        let file = SignoffFile {
            signoff: self.entries.clone(),
        };
        let text = format!(
            "# Reviewer sign-offs for patches over budget, written by `downtime signoff`.\n\
             # Each names its patch's path and sha256: editing the patch makes it stale.\n\n{}",
            toml::to_string_pretty(&file).map_err(|e| Error::write(
                "sign-off file",
                &self.path,
                e
            ))?
        );
        crate::fsutil::replace(&self.path, "sign-off file", text.as_bytes())
    }

    /// The path to record for a patch: relative to the base when inside it.
    /// Its folders are resolved, the file itself is not (a link to a signed
    /// patch is another patch).
    pub fn key_for(&self, patch: &Path) -> String {
        let abs = resolve_folder(patch);
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

    /// The sign-off for a patch of the run: the one naming its path; else,
    /// for a renamed patch, one for its content whose path is gone from the
    /// run and from the disk, when no other patch of the run has that
    /// content. A sign-off that names no patch covers none.
    pub fn find(&self, patch: &Path, sha256: &str, run: &[RunPatch<'_>]) -> Option<&Signoff> {
        let named = || self.entries.iter().filter(|s| !s.patch.is_empty());
        if let Some(s) = named().find(|s| same_path(&self.resolve(&s.patch), patch)) {
            return Some(s);
        }
        if run.iter().filter(|p| p.sha256 == sha256).count() != 1 {
            return None;
        }
        named().find(|s| {
            let old = self.resolve(&s.patch);
            s.sha256 == sha256
                && !run.iter().any(|p| same_path(p.path, &old))
                && std::fs::symlink_metadata(&old).is_err()
        })
    }

    /// A sign-off for this content that names no patch: it has to be
    /// signed again.
    pub fn unnamed(&self, sha256: &str) -> Option<&Signoff> {
        self.entries
            .iter()
            .find(|s| s.patch.is_empty() && s.sha256 == sha256)
    }

    /// The command that signs `patch` off in the file this check reads,
    /// runnable as printed (NAME and WHY are the reviewer's to fill in).
    pub fn command_for(&self, patch: &Path, max_seconds: f64) -> String {
        let mut words = vec![
            "downtime".to_string(),
            "signoff".into(),
            shell_word(&patch.display().to_string()),
            "--signoff-file".into(),
            shell_word(&self.path.display().to_string()),
        ];
        if let Some(c) = &self.config {
            words.extend(["--config".into(), shell_word(&c.display().to_string())]);
        }
        words.extend([
            "--max-seconds".into(),
            format!("{max_seconds}"),
            "--by".into(),
            "NAME".into(),
            "--reason".into(),
            "WHY".into(),
        ]);
        words.join(" ")
    }

    /// Add or replace the sign-off for `s.patch`.
    pub fn upsert(&mut self, s: Signoff) {
        let target = self.resolve(&s.patch);
        let base = &self.base;
        let sha = &s.sha256;
        self.entries.retain(|e| {
            let unnamed_same = e.patch.is_empty() && e.sha256 == *sha;
            !unnamed_same && e.patch != s.patch && !same_path(&resolve_in(base, &e.patch), &target)
        });
        self.entries.push(s);
        self.entries.sort_by(|a, b| a.patch.cmp(&b.patch));
    }
}

/// Record a sign-off in the file at `path`: under the file's lock, the file
/// is read again, the sign-off added (replacing one for the same patch) and
/// the file replaced whole, so concurrent `downtime signoff` runs each keep
/// their record.
pub fn record(path: &Path, base: &Path, s: Signoff) -> Result<Signoffs> {
    let _lock = crate::fsutil::lock_beside(path, "sign-off file")?;
    let mut now = Signoffs::load(path, base)?;
    now.upsert(s);
    now.save()?;
    Ok(now)
}

/// A path with its folders resolved and its last component as written.
fn resolve_folder(p: &Path) -> PathBuf {
    let folder = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(folder), p.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => p.to_path_buf(),
    }
}

/// Two paths name the same directory entry (a link to a file is not the file).
fn same_path(a: &Path, b: &Path) -> bool {
    resolve_folder(a) == resolve_folder(b)
}

/// A word as a POSIX shell reads it back: quoted when it needs to be.
fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Whether [`record`] can write the file at `path`: no link on the way to
/// it or to its lock file, a regular file or absent, in a directory that
/// takes new files (the file is replaced by a rename). Checked before
/// `downtime signoff` measures anything.
pub fn check_writable(path: &Path) -> Result<()> {
    crate::fsutil::check_links(path, "sign-off file")?;
    crate::fsutil::check_links(&crate::fsutil::lock_path(path), "sign-off file")?;
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

    fn signed(patch: &str, sha: &str) -> Signoff {
        Signoff {
            patch: patch.into(),
            sha256: sha.into(),
            by: "Ada".into(),
            at: "2026-01-01T00:00:00Z".into(),
            reason: "r".into(),
            max_seconds: 20.0,
        }
    }

    #[test]
    fn a_signoff_covers_its_path_and_a_rename_only_when_the_old_path_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let a = base.join("a.sql");
        let b = base.join("b.sql");
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "x").unwrap();
        let s = Signoffs {
            path: base.join("signoffs.toml"),
            base: base.to_path_buf(),
            entries: vec![signed("a.sql", "X"), signed("", "Y")],
            config: None,
        };
        let both = [
            RunPatch {
                path: &a,
                sha256: "X",
            },
            RunPatch {
                path: &b,
                sha256: "X",
            },
        ];
        assert!(s.find(&a, "X", &both).is_some(), "its own path");
        assert!(
            s.find(&b, "X", &both).is_none(),
            "a copy under another name"
        );
        let only_b = [RunPatch {
            path: &b,
            sha256: "X",
        }];
        assert!(
            s.find(&b, "X", &only_b).is_none(),
            "the old path is still on disk"
        );
        std::fs::remove_file(&a).unwrap();
        assert!(s.find(&b, "X", &only_b).is_some(), "renamed");
        assert!(
            s.find(&b, "Y", &only_b).is_none(),
            "an unnamed one covers none"
        );
        assert!(s.unnamed("Y").is_some());
        // A link to a signed patch is another patch.
        std::fs::write(&a, "x").unwrap();
        let link = base.join("c.sql");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let linked = [
            RunPatch {
                path: &a,
                sha256: "X",
            },
            RunPatch {
                path: &link,
                sha256: "X",
            },
        ];
        assert!(s.find(&link, "X", &linked).is_none());
    }

    #[test]
    fn the_command_is_quoted_for_the_shell() {
        let s = Signoffs {
            path: PathBuf::from("db/my sign-offs.toml"),
            base: PathBuf::from("."),
            entries: Vec::new(),
            config: Some(PathBuf::from("it's.toml")),
        };
        assert_eq!(
            s.command_for(Path::new("db/0001-a.sql"), 2.0),
            "downtime signoff db/0001-a.sql --signoff-file 'db/my sign-offs.toml' \
             --config 'it'\\''s.toml' --max-seconds 2 --by NAME --reason WHY"
        );
    }
}
