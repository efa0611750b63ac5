//! sqlx's migration folder: the files of one folder whose name splits at the
//! first `_` into a version and a description ending in `.sql`. The version
//! must parse as a signed 64-bit integer, or sqlx refuses the whole folder;
//! files without `_` or not ending in `.sql`, and subfolders, it passes
//! over. `.up.sql`/`.down.sql` are a reversible pair (the down half is not
//! applied), anything else is a simple migration. Each runs in a
//! transaction with its `_sqlx_migrations` row, unless the file starts with
//! `-- no-transaction`.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{entries, file_name, own_file, Layout, Migration, Scan, SortKey, Transaction};
use crate::error::{Error, Result};

/// The file starts with sqlx's `-- no-transaction` marker. Only a regular
/// file is opened (without blocking); anything else is an input error.
pub(super) fn no_tx_file(path: &Path) -> Result<bool> {
    let (file, _) = crate::fsutil::open_regular(path)?;
    let mut head = Vec::with_capacity(17);
    file.take(17)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    Ok(head == b"-- no-transaction")
}

pub(super) fn scan(dir: &Path, exclude: &[PathBuf], out: &mut Scan) -> Result<()> {
    for entry in entries(dir, exclude)? {
        if entry.is_dir() {
            out.note(&entry, "sqlx does not read subfolders: not applied");
        } else if !own_file(&file_name(&entry)) {
            file(&entry, out)?;
        }
    }
    Ok(())
}

pub(super) fn file(path: &Path, out: &mut Scan) -> Result<()> {
    let name = file_name(path);
    let Some((version, rest)) = name.split_once('_').filter(|(_, r)| r.ends_with(".sql")) else {
        out.note(path, "not VERSION_DESCRIPTION.sql: sqlx passes it over");
        return Ok(());
    };
    let version: i64 = version.parse().map_err(|_| {
        Error::input(
            path,
            format!(
                "error parsing migration filename {name:?}; expected integer version prefix \
                 (e.g. `01_foo.sql`) (sqlx refuses the folder)"
            ),
        )
    })?;
    if rest.ends_with(".down.sql") {
        out.note(path, "down migration, not applied");
        return Ok(());
    }
    let suffix = if rest.ends_with(".up.sql") {
        ".up.sql"
    } else {
        ".sql"
    };
    let id = name.trim_end_matches(suffix).to_string();
    out.push(
        path.to_path_buf(),
        id,
        Layout::Sqlx,
        vec![u128::try_from(version).unwrap_or(0)],
        SortKey::Signed(i128::from(version)),
        Migration {
            version: Some(version.to_string()),
            description: rest.trim_end_matches(suffix).replace('_', " "),
            transaction: Transaction::Single,
            ..Migration::default()
        },
    );
    Ok(())
}
