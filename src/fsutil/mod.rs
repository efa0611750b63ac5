//! Reading the files a user names — patches, downtime.toml, --pg-conf,
//! sign-offs, the history, prod stats, saved reports, baselines — the one
//! way: only regular files (after following links), opened without blocking
//! (a named pipe cannot hang the run), the size checked on the opened
//! handle, and never more than the cap read (a file growing meanwhile
//! cannot pass it). Writing ([`write`]): never through a link, found
//! writable before a run starts, replaced atomically, under a lock where
//! several writers meet.

mod write;

pub use write::{
    check_dir, check_links, check_own_dir, check_writable, lock_beside, lock_path, replace,
    replace_private, replace_with, Lock,
};

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// How much of a kind of file downtime reads, and what to say past it.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub max_bytes: u64,
    /// The kind, plural, for the message: "patches over 100 MiB are refused".
    pub files: &'static str,
    /// What to do instead, if there is advice.
    pub hint: &'static str,
}

/// Patch files (and a patch being signed off).
pub const PATCHES: Cap = Cap {
    max_bytes: 100 * 1024 * 1024,
    files: "patches",
    hint: " (load bulk data in the baseline)",
};
/// `downtime.toml`.
pub const CONNECTION_FILES: Cap = Cap {
    max_bytes: 1024 * 1024,
    files: "service and password files",
    hint: "",
};

/// TLS root certificates (a system bundle is some hundred KiB),
/// client certificates and keys.
pub const CERTIFICATES: Cap = Cap {
    max_bytes: 16 * 1024 * 1024,
    files: "certificate and key files",
    hint: "",
};

pub const CONFIG: Cap = Cap {
    max_bytes: 1024 * 1024,
    files: "config files",
    hint: "",
};
/// A migration tool's settings beside a migration (diesel's
/// `metadata.toml`, Flyway's `V1__x.sql.conf`).
pub const MIGRATION_SETTINGS: Cap = Cap {
    max_bytes: 1024 * 1024,
    files: "migration settings files",
    hint: "",
};
/// `--pg-conf`.
/// `--probe-sql`: the application's queries.
pub const PROBE_SCRIPTS: Cap = Cap {
    max_bytes: 1024 * 1024,
    files: "probe scripts",
    hint: "",
};

pub const PG_CONF: Cap = Cap {
    max_bytes: 1024 * 1024,
    files: "server settings files",
    hint: "",
};
/// The sign-off file.
pub const SIGNOFFS: Cap = Cap {
    max_bytes: 16 * 1024 * 1024,
    files: "sign-off files",
    hint: "",
};
/// The history file (about 400 bytes per patch and run).
pub const HISTORY: Cap = Cap {
    max_bytes: 256 * 1024 * 1024,
    files: "history files",
    hint: " (start a new one with --history FILE)",
};
/// A `stats export` file.
pub const STATS: Cap = Cap {
    max_bytes: 256 * 1024 * 1024,
    files: "stats files",
    hint: "",
};
/// A saved JSON report.
pub const REPORTS: Cap = Cap {
    max_bytes: 256 * 1024 * 1024,
    files: "reports",
    hint: "",
};

/// What a path that is not a regular file is, in words.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "neither a file nor a directory"
    }
}

/// The error for a path that is not a regular file, naming what it is (and
/// where a link points).
fn not_regular(path: &Path, meta: &Metadata) -> Error {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let target = std::fs::canonicalize(path)
        .ok()
        .filter(|_| is_link)
        .map(|t| format!(" (a link to {})", t.display()))
        .unwrap_or_default();
    Error::input(
        path,
        format!(
            "is {}{target}, not a regular file; downtime reads only regular files",
            kind(meta)
        ),
    )
}

/// Whether `path` is, after following links, a regular file; the error
/// names what it is instead. Nothing is opened.
pub fn check_regular(path: &Path) -> Result<Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(not_regular(path, &meta))
    }
}

/// Open a regular file for reading. The open does not block (a FIFO put
/// in the file's place meanwhile is found on the handle, not waited on).
pub fn open_regular(path: &Path) -> Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok((file, meta))
}

/// Sizes in messages: KiB or MiB.
fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// A regular file's bytes, no more than its cap allows.
pub fn read_regular(path: &Path, cap: Cap) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path)?;
    let max = cap.max_bytes;
    let too_big = |len: u64| {
        Error::input(
            path,
            format!(
                "the file is {}; {} over {} are refused{}",
                size(len),
                cap.files,
                size(max),
                cap.hint
            ),
        )
    };
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        // It grew while being read.
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The 1-based line of byte offset `at`.
pub fn line_at(bytes: &[u8], at: usize) -> usize {
    1 + bytes[..at.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Bytes as UTF-8 text without NUL; the error is at the line of the first
/// offending byte.
pub fn text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    let nul = bytes.iter().position(|&b| b == 0);
    let bad_utf8 = std::str::from_utf8(&bytes).err().map(|e| e.valid_up_to());
    match (nul, bad_utf8) {
        (Some(at), utf8) if utf8.is_none_or(|u| at < u) => {
            let line = line_at(&bytes, at);
            Err(Error::InputAt {
                path: path.to_path_buf(),
                line,
                message: format!("NUL byte at line {line}: PostgreSQL text cannot contain NUL"),
            })
        }
        (_, Some(at)) => Err(Error::InputAt {
            path: path.to_path_buf(),
            line: line_at(&bytes, at),
            message: "the file is not valid UTF-8; save it as UTF-8".into(),
        }),
        // Checked just above: valid UTF-8.
        _ => Ok(String::from_utf8(bytes).unwrap_or_default()),
    }
}

/// A regular text file within its cap, UTF-8 without NUL.
pub fn read_text(path: &Path, cap: Cap) -> Result<String> {
    text(path, read_regular(path, cap)?)
}

/// Like [`read_text`], but a missing file is `None`.
pub fn read_text_if_exists(path: &Path, cap: Cap) -> Result<Option<String>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_text(path, cap).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Cap = Cap {
        max_bytes: 10,
        files: "patches",
        hint: " (hint)",
    };

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.sql");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_regular(&fifo, TEN).unwrap_err().to_string();
        assert!(e.contains("pipe.sql") && e.contains("named pipe"), "{e}");
        let zero = dir.path().join("zero.sql");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_regular(&zero, TEN).unwrap_err().to_string();
        assert!(
            e.contains("character device") && e.contains("/dev/zero"),
            "{e}"
        );
        let e = read_regular(dir.path(), TEN).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        let big = dir.path().join("big.sql");
        std::fs::write(&big, "x".repeat(11)).unwrap();
        let e = read_regular(&big, TEN).unwrap_err().to_string();
        assert!(e.ends_with("patches over 1 KiB are refused (hint)"), "{e}");
        std::fs::write(&big, "x".repeat(10)).unwrap();
        assert_eq!(read_regular(&big, TEN).unwrap().len(), 10);
    }

    #[test]
    fn text_errors_are_at_their_line() {
        let p = Path::new("a.sql");
        let e = text(p, b"select 1;\nselect '\0';\n".to_vec())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.sql:2: NUL byte at line 2: PostgreSQL text cannot contain NUL"
        );
        let e = text(p, b"\n\n\xff".to_vec()).unwrap_err().to_string();
        assert!(e.starts_with("a.sql:3:"), "{e}");
    }
}
