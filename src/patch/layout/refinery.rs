//! refinery's migration folder: every file below it (folders are walked)
//! named `[U|V]{version}__{name}.sql`, the version a 32-bit integer and the
//! name word characters only. `V` is versioned; `U` is *unversioned*, not
//! undo: it is applied whenever it is missing from the history, even below
//! the current version. Other files are passed over with a warning. Each
//! migration runs in its own transaction with its `refinery_schema_history`
//! row.

use std::path::{Path, PathBuf};

use super::{entries, file_name, own_file, Kind, Layout, Migration, Scan, SortKey, Transaction};
use crate::error::{Error, Result};

/// (prefix, version text, name) of a name matching refinery's pattern.
fn parse(name: &str) -> Option<(char, &str, &str)> {
    let stem = name.strip_suffix(".sql")?;
    let mut chars = stem.chars();
    let prefix = chars.next().filter(|c| matches!(c, 'U' | 'V'))?;
    let rest = chars.as_str();
    let (version, migration) = rest.split_once("__")?;
    let mut parts = version.splitn(2, '.');
    let whole = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || parts.next().is_some_and(|f| !digits(f)) {
        return None;
    }
    if migration.is_empty() || !migration.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some((prefix, version, migration))
}

pub(super) fn scan(dir: &Path, exclude: &[PathBuf], out: &mut Scan) -> Result<()> {
    for entry in entries(dir, exclude)? {
        if entry.is_dir() {
            scan(&entry, exclude, out)?;
        } else if !own_file(&file_name(&entry)) {
            file(&entry, out)?;
        }
    }
    Ok(())
}

pub(super) fn file(path: &Path, out: &mut Scan) -> Result<()> {
    let name = file_name(path);
    let Some((prefix, version, migration)) = parse(&name) else {
        out.note(
            path,
            "does not follow refinery's [U|V]{1}__{2}.sql naming: refinery passes it over",
        );
        return Ok(());
    };
    let version: i32 = version.parse().map_err(|_| {
        Error::input(
            path,
            "migration version must be a valid integer (refinery refuses the folder)",
        )
    })?;
    out.push(
        path.to_path_buf(),
        name.trim_end_matches(".sql").to_string(),
        Layout::Refinery,
        vec![u128::try_from(version).unwrap_or(0)],
        SortKey::Signed(i128::from(version)),
        Migration {
            version: Some(version.to_string()),
            description: migration.to_string(),
            kind: if prefix == 'U' {
                Kind::Unversioned
            } else {
                Kind::Versioned
            },
            transaction: Transaction::Single,
            script: name.clone(),
        },
    );
    Ok(())
}
