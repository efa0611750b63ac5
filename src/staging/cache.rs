//! The baseline cache: a loaded, vacuumed and checkpointed data directory,
//! kept by the baseline's content, the server version and the settings, so
//! the next run starts from a copy of it instead of loading the baseline.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Baseline;
use crate::error::{Error, Result};

/// How many cached baselines are kept (the least recently stored go first).
pub const KEEP: usize = 5;

/// The cache directory: `$XDG_CACHE_HOME/downtime`, else `~/.cache/downtime`.
pub fn default_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("downtime")
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
    h.update(b"downtime baseline cache 1\n");
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
    pub fn lookup(&self, key: &str) -> Option<PathBuf> {
        let entry = self.root.join(key);
        entry.join("complete").is_file().then(|| entry.join("data"))
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
        std::fs::write(staging.join("complete"), b"").map_err(|e| Error::io(staging, e))?;
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

    /// Remove every entry; returns how many there were.
    pub fn clear(&self) -> Result<usize> {
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in rd.flatten() {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
            n += 1;
        }
        Ok(n)
    }
}
