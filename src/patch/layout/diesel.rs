//! diesel's migration folder as diesel_migrations reads it: every
//! non-hidden, non-empty subfolder is a migration and must hold `up.sql`
//! (diesel refuses the folder otherwise); files beside the subfolders and
//! empty subfolders are passed over. The version is the folder name up to
//! its first `_` with the dashes removed, so `2019-02-26-002946_x`,
//! `20190226002946_x`, `2019-02-26-002946-0000_x` and
//! `00000000000000_diesel_initial_setup` are all versions, compared as
//! text. `metadata.toml` with `run_in_transaction = false` runs the
//! migration without diesel's transaction (and so does a `metadata.toml`
//! without the key: diesel reads a missing key as false).

use std::path::{Path, PathBuf};

use super::{entries, file_name, Layout, Migration, Scan, SortKey, Transaction};
use crate::error::{Error, Result};

/// diesel's version of a migration folder name.
pub(super) fn version(folder: &str) -> String {
    folder.split('_').next().unwrap_or("").replace('-', "")
}

/// Whether diesel runs the migration in a transaction, from its metadata.toml.
/// The file is read as every user file is (regular, within its cap, UTF-8):
/// one that is not is an input error naming it.
fn run_in_transaction(folder: &Path) -> Result<bool> {
    let path = folder.join("metadata.toml");
    let Some(text) = crate::fsutil::read_text_if_exists(&path, crate::fsutil::MIGRATION_SETTINGS)?
    else {
        return Ok(true);
    };
    Ok(match text.parse::<toml::Table>() {
        Ok(table) => table
            .get("run_in_transaction")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false),
        // TOML diesel cannot parse falls back to diesel's default.
        Err(_) => true,
    })
}

pub(super) fn scan(dir: &Path, exclude: &[PathBuf], out: &mut Scan) -> Result<()> {
    if dir.join("up.sql").exists() {
        // One migration folder, named itself.
        return folder(dir, dir.join("up.sql"), out);
    }
    for entry in entries(dir, exclude)? {
        if !entry.is_dir() {
            out.note(
                &entry,
                "a file beside diesel's migration folders: diesel passes it over",
            );
            continue;
        }
        let inner = entries(&entry, &[])?;
        if inner.is_empty() {
            out.note(&entry, "empty folder: diesel passes it over");
            continue;
        }
        let up = entry.join("up.sql");
        // There but not a regular file: refused when read, saying what it is.
        if !up.exists() {
            return Err(Error::input(
                &entry,
                "diesel migration folder has no up.sql: diesel refuses the migrations folder (\"Invalid \
                 migration directory: the directory's name should be <timestamp>_<name_of_migration>, \
                 and it should contain up.sql and optionally down.sql.\"); add up.sql, or move the \
                 folder out",
            ));
        }
        folder(&entry, up, out)?;
    }
    Ok(())
}

fn folder(dir: &Path, up: PathBuf, out: &mut Scan) -> Result<()> {
    let name = file_name(dir);
    let version = version(&name);
    let position = super::digits(&version).map_or_else(Vec::new, |n| vec![n]);
    if dir.join("down.sql").is_file() {
        out.note(&dir.join("down.sql"), "down migration, not applied");
    }
    out.push(
        up,
        name.clone(),
        Layout::Diesel,
        position,
        SortKey::Text(version.clone()),
        Migration {
            version: Some(version),
            description: name,
            transaction: if run_in_transaction(dir)? {
                Transaction::Single
            } else {
                Transaction::Implicit
            },
            ..Migration::default()
        },
    );
    Ok(())
}

/// A migration named by its `up.sql`, or its folder.
pub(super) fn file(path: &Path, out: &mut Scan) -> Result<()> {
    match path.parent() {
        Some(dir) if file_name(path) == "up.sql" => folder(dir, path.to_path_buf(), out),
        _ => Err(Error::input(
            path,
            "a diesel migration is a folder holding up.sql; name the folder or its up.sql",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_format_diesel_reads() {
        assert_eq!(version("2019-02-26-002946_create_users"), "20190226002946");
        assert_eq!(version("20190226002946_create_users"), "20190226002946");
        assert_eq!(
            version("2025-11-19-091444-0000_add_x"),
            "202511190914440000"
        );
        assert_eq!(
            version("00000000000000_diesel_initial_setup"),
            "00000000000000"
        );
        // Compared as text: diesel 2's longer versions sort among the others by their digits.
        let mut v = vec![
            version("2025-11-19-091444-0000_a"),
            version("20260101000000_b"),
            version("00000000000000_diesel_initial_setup"),
            version("2019-02-26-002946_c"),
        ];
        v.sort();
        assert_eq!(
            v,
            [
                "00000000000000",
                "20190226002946",
                "202511190914440000",
                "20260101000000"
            ]
        );
    }
}
