//! The baseline cache: a loaded, vacuumed and checkpointed data directory,
//! kept by the baseline's content, the server version and the settings, so
//! the next run starts from a copy of it instead of loading the baseline.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::child::copy_tree;
use super::Baseline;
use crate::cancel::Cancel;
use crate::error::{Error, Result};

/// How many cached baselines are kept (the least recently stored go first).
pub const KEEP: usize = 5;

/// The file in an entry listing every file of its data directory with its
/// size, so a copy can be checked for completeness.
pub const MANIFEST: &str = "manifest";

/// The cache directory: `$XDG_CACHE_HOME/downtime`, else
/// `~/.cache/downtime`; without either (HOME unset), this user's own
/// `downtime-<uid>` in the temporary directory, never a shared one.
pub fn default_root() -> PathBuf {
    let home = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        });
    match home {
        Some(dir) => dir.join("downtime"),
        None => std::env::temp_dir().join(format!("downtime-{}", nix::unistd::geteuid())),
    }
}

/// The cache directory a run uses, made (0700) when absent and checked:
/// a directory of this user's that no one else can write, else an error
/// naming it (a cached cluster is started as it is found). Without a home
/// directory, a note says where it is.
pub fn root() -> Result<PathBuf> {
    let root = default_root();
    crate::fsutil::check_own_dir(&root, "baseline cache")?;
    let no_home = std::env::var_os("XDG_CACHE_HOME").is_none_or(|v| v.is_empty())
        && std::env::var_os("HOME").is_none_or(|v| v.is_empty());
    if no_home {
        crate::ui::note(&format!(
            "HOME is not set: the baseline cache is {}, this user's own (mode 0700)",
            root.display()
        ));
    }
    Ok(root)
}

/// Hash a regular file's bytes, as many as it had when opened.
fn hash_file(h: &mut Sha256, path: &Path) -> Result<()> {
    use std::io::Read;
    let (f, meta) = crate::fsutil::open_regular(path)?;
    std::io::copy(&mut f.take(meta.len()), h).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// The cache key of a baseline under a server identity; `None` for a
/// baseline that is not a file (an empty database, or a live source that may
/// change at any time).
pub fn key(baseline: &Baseline, server_identity: &str) -> Result<Option<String>> {
    let mut h = Sha256::new();
    // 2: entries carry a manifest.
    h.update(b"downtime baseline cache 2\n");
    h.update(server_identity.as_bytes());
    match baseline {
        Baseline::Empty | Baseline::Url(_) => return Ok(None),
        Baseline::Script(p) => hash_file(&mut h, p)?,
        Baseline::Archive(p) if p.is_dir() => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for f in files {
                h.update(
                    f.file_name()
                        .map(|n| n.as_encoded_bytes())
                        .unwrap_or_default(),
                );
                hash_file(&mut h, &f)?;
            }
        }
        Baseline::Archive(p) => hash_file(&mut h, p)?,
    }
    Ok(Some(hex::encode(h.finalize())[..24].to_string()))
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    /// The cached data directory for `key`, if a complete one is there.
    /// It may still vanish before it is copied: [`restore`] checks.
    pub fn lookup(&self, key: &str) -> Option<PathBuf> {
        let entry = self.root.join(key);
        (entry.join("complete").is_file() && entry.join(MANIFEST).is_file())
            .then(|| entry.join("data"))
    }

    /// Where to write a new entry; `commit` makes it visible.
    pub fn staging_dir(&self, key: &str) -> Result<PathBuf> {
        let dir = self.root.join(format!(".{key}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    /// Publish an entry written under `staging` (its `data` folder), then
    /// drop the oldest entries beyond [`KEEP`].
    pub fn commit(&self, key: &str, staging: &Path) -> Result<()> {
        let manifest = manifest(&staging.join("data"))?;
        crate::fsutil::replace_private(
            &staging.join(MANIFEST),
            "baseline cache",
            manifest.as_bytes(),
        )?;
        crate::fsutil::replace_private(&staging.join("complete"), "baseline cache", b"")?;
        let entry = self.root.join(key);
        if entry.exists() {
            // Another run stored it meanwhile.
            let _ = std::fs::remove_dir_all(staging);
        } else {
            std::fs::rename(staging, &entry).map_err(|e| Error::io(&entry, e))?;
        }
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.root)
            .map_err(|e| Error::io(&self.root, e))?
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        entries.sort();
        while entries.len() > KEEP {
            let (_, old) = entries.remove(0);
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(())
    }

    /// Remove every entry; returns how many there were. An entry another
    /// process removes or renames meanwhile is not an error.
    pub fn clear(&self) -> Result<usize> {
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in rd.flatten() {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => n += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::io(e.path(), err)),
            }
        }
        Ok(n)
    }
}

/// Every regular file under `data`, as `size<TAB>relative path` lines, sorted.
fn manifest(data: &Path) -> Result<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            if meta.is_dir() {
                walk(&path, root, out)?;
            } else if meta.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(format!("{}\t{}", meta.len(), rel.display()));
            }
        }
        Ok(())
    }
    let mut lines = Vec::new();
    walk(data, data, &mut lines)?;
    lines.sort();
    Ok(lines.join("\n") + "\n")
}

/// How [`restore`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The copy has every file of the entry's manifest, at its size.
    Copied,
    /// The entry is gone or was incomplete (a `downtime cache clear` while
    /// it was being copied, say), and why; nothing is left at the
    /// destination, and the baseline is to be loaded instead.
    Unusable(String),
}

/// Copy a cached data directory (`data`, an entry's `data` folder) to
/// `dest` and check the copy against the entry's manifest. An entry that
/// vanishes or is incomplete before or while it is copied is
/// [`Restored::Unusable`], never an error; only an abort is. An entry that
/// is itself incomplete is removed, so the next run stores a whole one.
pub async fn restore(data: &Path, dest: &Path, cancel: &Cancel) -> Result<Restored> {
    let entry = data.parent().unwrap_or(data);
    let unusable = |why: String, listed: Option<&str>| {
        let _ = std::fs::remove_dir_all(dest);
        let damaged = listed.is_none_or(|l| missing_from(data, l).is_some());
        if damaged && entry.join("complete").exists() {
            let _ = std::fs::remove_dir_all(entry);
        }
        Ok(Restored::Unusable(why))
    };
    // Read before copying: an entry removed meanwhile still has a list to
    // be checked against.
    let manifest_path = data.with_file_name(MANIFEST);
    let listed = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) => return unusable(format!("{}: {e}", manifest_path.display()), None),
    };
    match copy_tree(data, dest, cancel).await {
        Ok(()) => {}
        Err(Error::Aborted(a)) => {
            let _ = std::fs::remove_dir_all(dest);
            return Err(Error::Aborted(a));
        }
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            return unusable(first, Some(&listed));
        }
    }
    match missing_from(dest, &listed) {
        Some(why) => unusable(why, Some(&listed)),
        None => Ok(Restored::Copied),
    }
}

/// The first file of the manifest `listed` that `root` lacks or has at
/// another size, if any.
fn missing_from(root: &Path, listed: &str) -> Option<String> {
    for line in listed.lines().filter(|l| !l.is_empty()) {
        let Some((size, rel)) = line.split_once('\t') else {
            return Some(format!("a malformed manifest line: {line}"));
        };
        match std::fs::symlink_metadata(root.join(rel)) {
            Ok(m) if m.is_file() && m.len().to_string() == size => {}
            Ok(_) => return Some(format!("{rel} is not as the cache entry lists it")),
            Err(_) => return Some(format!("{rel} is missing")),
        }
    }
    None
}
