//! Password files (`.pgpass` format): one written for a client program, so
//! the password never stands on its command line, and the lookup libpq
//! does in the user's own file when no password is given.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A 0600 password file holding one password for every server; removed
/// when dropped.
#[derive(Debug)]
pub struct PassFile {
    path: PathBuf,
}

impl PassFile {
    /// Write `password` to `dir/name`; `None` when a password file cannot
    /// hold it (a line break in it).
    pub fn write(dir: &Path, name: &str, password: &str) -> Result<Option<PassFile>> {
        if password.contains(['\n', '\r']) {
            return Ok(None);
        }
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let me = PassFile { path };
        file.write_all(format!("*:*:*:*:{}\n", escape(password)).as_bytes())
            .map_err(|e| Error::io(&me.path, e))?;
        Ok(Some(me))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PassFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `\` and `:` escaped with a backslash, as a password file field.
fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == '\\' || c == ':' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The rest of `line` after a field matching `value` (`*` matches
/// anything), or `None`.
fn match_field<'a>(line: &'a str, value: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut want = value.chars();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        let c = match c {
            ':' => return want.next().is_none().then(|| &line[i + 1..]),
            '\\' => match chars.next() {
                Some((_, next)) => next,
                None => return None,
            },
            c => c,
        };
        if want.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The password libpq would take from the password file `file` for this
/// host, port, database and user. libpq ignores a file that group or
/// others can read, and so does this.
pub fn lookup(file: &Path, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = crate::fsutil::read_text(file, crate::fsutil::CONNECTION_FILES).ok()?;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rest = [host, port, dbname, user]
            .iter()
            .try_fold(line, |rest, want| match_field(rest, want));
        if let Some(pw) = rest {
            let mut out = String::new();
            let mut chars = pw.chars();
            while let Some(c) = chars.next() {
                match c {
                    ':' => break,
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let pw = r"a:b\c d'e";
        let f = PassFile::write(dir.path(), "pgpass", pw).unwrap().unwrap();
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(lookup(f.path(), "h", "1", "d", "u").as_deref(), Some(pw));
        let path = f.path().to_path_buf();
        drop(f);
        assert!(!path.exists());
        assert!(PassFile::write(dir.path(), "x", "a\nb").unwrap().is_none());
    }

    #[test]
    fn lookup_matches_fields_as_libpq_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\ndb\\:x:5432:shop:app:first\ndb\\:x:*:*:*:second\n*:*:*:*:last\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            lookup(&file, "db:x", "5432", "shop", "app").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(&file, "db:x", "1", "x", "y").as_deref(),
            Some("second")
        );
        assert_eq!(
            lookup(&file, "else", "1", "x", "y").as_deref(),
            Some("last")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&file, "else", "1", "x", "y"), None);
    }
}
