//! Launchpad's schema patches as `database/schema/upgrade.py` reads them:
//! the files matching `patch-????-??-?.sql` in the schema folder, in name
//! order (the fixed widths make it the (major, minor, patch) order). Other
//! files there (`comments.sql`, `trusted.sql`, …) are not patches; it skips
//! a patch whose (major, minor, patch) is in `LaunchpadDatabaseRevision`,
//! and each patch inserts its own row there.

use std::path::{Path, PathBuf};

use super::{entries, file_name, own_file, Layout, Migration, Scan, SortKey};
use crate::error::Result;
use crate::patch::POST_DEPLOY_FOLDERS;

/// `patch-MAJOR-MINOR-PATCH.sql` with any number of digits.
pub(super) fn loose(name: &str) -> Option<[u128; 3]> {
    let rest = name.strip_prefix("patch-")?.strip_suffix(".sql")?;
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        [a, b, c] => Some([super::digits(a)?, super::digits(b)?, super::digits(c)?]),
        _ => None,
    }
}

/// The names upgrade.py applies: four, two and one digit.
fn strict(name: &str) -> Option<[u128; 3]> {
    let rest = name.strip_prefix("patch-")?.strip_suffix(".sql")?;
    let widths: Vec<usize> = rest.split('-').map(str::len).collect();
    (widths == [4, 2, 1]).then(|| loose(name)).flatten()
}

pub(super) fn scan(dir: &Path, exclude: &[PathBuf], out: &mut Scan) -> Result<()> {
    for entry in entries(dir, exclude)? {
        let name = file_name(&entry);
        if entry.is_dir() {
            if POST_DEPLOY_FOLDERS.contains(&name.as_str()) {
                scan(&entry, exclude, out)?;
            } else {
                out.note(&entry, "folder is not a patch layout, not read");
            }
        } else if name.ends_with(".sql") && !own_file(&name) {
            file(&entry, out);
        }
    }
    Ok(())
}

pub(super) fn file(path: &Path, out: &mut Scan) {
    let name = file_name(path);
    match (strict(&name), loose(&name)) {
        (Some([a, b, c]), _) => out.push(
            path.to_path_buf(),
            name.trim_end_matches(".sql").to_string(),
            Layout::Launchpad,
            vec![a, b, c],
            SortKey::numbers(vec![a, b, c]),
            Migration {
                version: Some(format!("{a}-{b:02}-{c}")),
                ..Migration::default()
            },
        ),
        (None, Some(_)) => out.note(
            path,
            "upgrade.py applies only patch-????-??-?.sql (4, 2 and 1 digits): not applied",
        ),
        (None, None) => out.note(path, "not a Launchpad patch name: not applied"),
    }
}
