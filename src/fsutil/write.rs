//! Writing the files downtime makes — reports, charts, the history, the
//! sign-off file, `stats export` files, the baseline cache — the one way:
//!
//! * never through a link: neither the file itself nor a folder on the way
//!   to it below the working directory may be a symbolic link (a pull
//!   request can commit `reports/report.md -> ~/.bashrc`). Links above the
//!   working directory, on the part of an absolute path it shares with the
//!   working directory, are the machine's and followed;
//! * found writable before a run starts ([`check_writable`], [`check_dir`]);
//! * replaced atomically ([`replace`]): written to a new file in the same
//!   folder (opened `O_EXCL | O_NOFOLLOW`), synced, renamed over the old
//!   one — a rename replaces a link planted meanwhile instead of following
//!   it, and a full disk leaves the old file whole;
//! * under a lock beside the file ([`lock_beside`]) where several writers
//!   read, change and write one file (the history, the sign-offs).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg, OFlag};

use super::kind;
use crate::error::{Error, Result};

/// The flags every file downtime writes is opened with.
fn no_follow() -> i32 {
    (OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).bits()
}

/// The first symbolic link on the way to `path` (the path itself
/// included), below what it shares with the working directory.
fn link_on_the_way(path: &Path) -> Option<PathBuf> {
    let shared = if path.is_absolute() {
        let cwd = std::env::current_dir().unwrap_or_default();
        path.components()
            .zip(cwd.components())
            .take_while(|(a, b)| a == b)
            .count()
    } else {
        0
    };
    let mut so_far = PathBuf::new();
    for (i, c) in path.components().enumerate() {
        so_far.push(c);
        if i < shared || !matches!(c, Component::Normal(_)) {
            continue;
        }
        match std::fs::symlink_metadata(&so_far) {
            Ok(m) if m.file_type().is_symlink() => return Some(so_far),
            Ok(_) => {}
            // Nothing below a missing folder exists yet.
            Err(_) => return None,
        }
    }
    None
}

/// Refuse `path` when it, or a folder on the way to it, is a symbolic link:
/// "cannot write report reports/report.md: it is a symbolic link (to …)".
pub fn check_links(path: &Path, what: &'static str) -> Result<()> {
    match link_on_the_way(path) {
        None => Ok(()),
        Some(link) => Err(through_link(path, &link, what)),
    }
}

/// The error for a write to `path` that `link` (it, or a folder on the
/// way) would send elsewhere.
fn through_link(path: &Path, link: &Path, what: &'static str) -> Error {
    let to = std::fs::read_link(link)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    let which = if link.components().eq(path.components()) {
        "it".to_string()
    } else {
        link.display().to_string()
    };
    Error::write(
        what,
        path,
        format!(
            "{which} is a symbolic link{to}; downtime never writes through a link: \
             remove it, or name the real path"
        ),
    )
}

/// The folder a file is made in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether `path` can be written as a file (created, appended to or
/// replaced) without writing it: no link on the way, and a regular file
/// that opens for writing, or absent with a writable directory to be made
/// in. The error reads "cannot write {what} {path}: …".
pub fn check_writable(path: &Path, what: &'static str) -> Result<()> {
    check_links(path, what)?;
    let fail = |why: String| Error::write(what, path, why);
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => OpenOptions::new()
            .append(true)
            .custom_flags(no_follow())
            .open(path)
            .map(drop)
            .map_err(|e| fail(e.to_string())),
        Ok(meta) => Err(fail(format!("it is {}", kind(&meta)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            check_dir_writable(parent_of(path)).map_err(fail)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Whether files can be made in `dir` (which is made later, with its
/// parents, when absent), with no link on the way to it.
pub fn check_dir(dir: &Path, what: &'static str) -> Result<()> {
    check_links(dir, what)?;
    check_dir_writable(dir).map_err(|why| Error::write(what, dir, why))
}

/// The nearest existing ancestor of `dir` must be a directory files can be
/// made in; what does not exist yet is created later, by the writer.
fn check_dir_writable(dir: &Path) -> std::result::Result<(), String> {
    let mut existing = dir;
    let meta = loop {
        match std::fs::metadata(existing) {
            Ok(m) => break m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && existing != Path::new(".") => {
                existing = parent_of(existing);
            }
            Err(e) => return Err(format!("{}: {e}", existing.display())),
        }
    };
    if !meta.is_dir() {
        return Err(if existing == dir {
            format!("it is {}", kind(&meta))
        } else {
            format!("{} is {}", existing.display(), kind(&meta))
        });
    }
    // Permission bits do not tell (root, ACLs, read-only mounts): try, with
    // a name no one else uses, and remove it again.
    let probe = existing.join(format!(".downtime-write-check-{}", unique()));
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(no_follow())
        .open(&probe)
    {
        Ok(f) => {
            drop(f);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if existing == dir => Err(e.to_string()),
        Err(e) => Err(format!("{}: {e}", existing.display())),
    }
}

/// A name part no other write of this process, nor another process, uses.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Replace `path` with what `write` puts in a new file beside it (given
/// open, and by its path for writers that open it themselves): synced,
/// then renamed over `path`. On any failure `path` is as it was and the
/// new file is gone. A file that was there keeps its permission bits.
pub fn replace_with(
    path: &Path,
    what: &'static str,
    write: impl FnOnce(&mut File, &Path) -> std::result::Result<(), String>,
) -> Result<()> {
    check_links(path, what)?;
    replace_unchecked(path, what, write)
}

/// Replace a file in a folder [`check_own_dir`] checked (the baseline
/// cache): the file itself is never followed (it is renamed over), the
/// folders on the way are not checked again (a home's `.cache` may be a
/// link of the user's own).
pub fn replace_private(path: &Path, what: &'static str, bytes: &[u8]) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(through_link(path, path, what));
    }
    replace_unchecked(path, what, |f, _| {
        f.write_all(bytes).map_err(|e| e.to_string())
    })
}

fn replace_unchecked(
    path: &Path,
    what: &'static str,
    write: impl FnOnce(&mut File, &Path) -> std::result::Result<(), String>,
) -> Result<()> {
    let fail = |why: String| Error::write(what, path, why);
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let name = path
        .file_name()
        .ok_or_else(|| fail("the path names no file".into()))?;
    // The name keeps its extension (the PNG encoder goes by it).
    let tmp = dir.join(format!(".downtime-{}-{}", unique(), name.to_string_lossy()));
    let mode = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0o666, |m| m.permissions().mode() & 0o7777);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(no_follow())
        .open(&tmp)
        .map_err(|e| fail(e.to_string()))?;
    let done = write(&mut file, &tmp)
        .and_then(|()| file.sync_all().map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    if let Err(why) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(why));
    }
    // The rename itself is durable once the folder is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replace `path` with `bytes` (see [`replace_with`]).
pub fn replace(path: &Path, what: &'static str, bytes: &[u8]) -> Result<()> {
    replace_with(path, what, |f, _| {
        f.write_all(bytes).map_err(|e| e.to_string())
    })
}

/// An exclusive lock on `<file>.lock` beside a file, held until dropped;
/// the lock file is removed when it is released.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    _file: Flock<File>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held: a writer waiting on this file finds it
        // gone once it has the lock, and takes the next one (below).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of `path`: `<path>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// Wait for the exclusive lock of `path` (a `flock` on `<path>.lock`,
/// opened without following a link, made when absent).
pub fn lock_beside(path: &Path, what: &'static str) -> Result<Lock> {
    let lock = lock_path(path);
    check_links(&lock, what)?;
    let fail = |why: String| Error::write(what, &lock, why);
    std::fs::create_dir_all(parent_of(&lock)).map_err(|e| fail(e.to_string()))?;
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(no_follow())
            .open(&lock)
            .map_err(|e| fail(e.to_string()))?;
        let held = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| fail(format!("cannot lock it: {e}")))?;
        let current = std::fs::symlink_metadata(&lock).ok();
        let mine = held.metadata().ok();
        if let (Some(a), Some(b)) = (current, mine) {
            if a.dev() == b.dev() && a.ino() == b.ino() {
                return Ok(Lock {
                    path: lock,
                    _file: held,
                });
            }
        }
        // The holder before removed the file this one waited on: again.
    }
}

/// Make `dir` (mode 0700, with its parents) when it is absent, and check
/// that it is this user's own: a directory, not a link, owned by the
/// effective user and writable by no one else. What lives in it (a cached
/// cluster) is started as this user's own.
pub fn check_own_dir(dir: &Path, what: &'static str) -> Result<()> {
    let fail = |why: String| Error::write(what, dir, why);
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::create_dir_all(parent_of(dir)).map_err(|e| fail(e.to_string()))?;
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| fail(e.to_string()))?;
    if meta.file_type().is_symlink() {
        let to = std::fs::read_link(dir).unwrap_or_default();
        return Err(fail(format!(
            "it is a symbolic link (to {}); name the folder itself",
            to.display()
        )));
    }
    if !meta.is_dir() {
        return Err(fail(format!("it is {}", kind(&meta))));
    }
    let me = nix::unistd::geteuid();
    let why = "another user could hand this run a cluster of their own making";
    if meta.uid() != me.as_raw() {
        let owner = nix::unistd::User::from_uid(meta.uid().into())
            .ok()
            .flatten()
            .map_or_else(String::new, |u| format!("{} ", u.name));
        return Err(fail(format!(
            "it belongs to {owner}(uid {}), not to this user (uid {me}): {why}; \
             set XDG_CACHE_HOME to a folder of yours, or pass --no-cache",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(fail(format!(
            "others can write to it (mode {:o}): {why}; remove it (or `chmod go-w` it \
             if no one else can have written to it), or pass --no-cache",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writability_is_found_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(check_writable(&dir.path().join("new/deeper/x.json"), "report").is_ok());
        let e = check_writable(&file.join("x.json"), "report")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot write report "), "{e}");
        let e = check_writable(dir.path(), "history file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a directory"), "{e}");
        assert!(check_dir(&file, "output directory").is_err());
        assert!(check_dir(&dir.path().join("reports"), "output directory").is_ok());
        // Nothing was left behind by the checks.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn links_are_refused_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        let out = dir.path().join("reports");
        std::fs::create_dir(&out).unwrap();
        let link = out.join("report.md");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let e = check_writable(&link, "report").unwrap_err().to_string();
        assert!(e.contains("it is a symbolic link (to "), "{e}");
        let e = replace(&link, "report", b"x").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // A folder on the way that is a link.
        let via = dir.path().join("via");
        std::os::unix::fs::symlink(&out, &via).unwrap();
        let e = check_dir(&via, "output directory").unwrap_err().to_string();
        assert!(e.contains("it is a symbolic link"), "{e}");
        let e = check_writable(&via.join("x.json"), "report")
            .unwrap_err()
            .to_string();
        assert!(e.contains("via is a symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        // A plain file is replaced whole, keeping its mode, with nothing left over.
        let plain = out.join("report.json");
        std::fs::write(&plain, "old").unwrap();
        std::fs::set_permissions(&plain, PermissionsExt::from_mode(0o640)).unwrap();
        replace(&plain, "report", b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "new");
        let mode = std::fs::metadata(&plain).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    }

    #[test]
    fn a_lock_is_exclusive_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signoffs.toml");
        let held = lock_beside(&file, "sign-off file").unwrap();
        assert!(dir.path().join("signoffs.toml.lock").is_file());
        let (tx, rx) = std::sync::mpsc::channel();
        let f = file.clone();
        let waiter = std::thread::spawn(move || {
            let l = lock_beside(&f, "sign-off file").unwrap();
            tx.send(()).unwrap();
            drop(l);
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_own_dir_is_made_private_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/downtime");
        check_own_dir(&cache, "baseline cache").unwrap();
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&cache, PermissionsExt::from_mode(0o777)).unwrap();
        let e = check_own_dir(&cache, "baseline cache")
            .unwrap_err()
            .to_string();
        assert!(e.contains("others can write to it (mode 777)"), "{e}");
    }
}
