//! golang-migrate's file source: the files of one folder named
//! `VERSION_TITLE.up.EXT` / `.down.EXT` (its pattern
//! `^([0-9]+)_(.*)\.(down|up)\.(.*)$`, the version an unsigned 64-bit
//! number). Anything else, and subfolders, it passes over; two files for
//! one version and direction are an error. Up files apply in version order,
//! each as one query (several statements are one implicit transaction).

use std::path::{Path, PathBuf};

use super::{entries, file_name, own_file, Layout, Migration, Scan, SortKey, Transaction};
use crate::error::Result;

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Up,
    Down,
}

/// The version, title and direction of a name golang-migrate accepts.
pub(super) fn parse(name: &str) -> Option<(u64, &str, Direction)> {
    let end = name.find(|c: char| !c.is_ascii_digit())?;
    let (num, rest) = name.split_at(end);
    let rest = rest.strip_prefix('_')?;
    // The title is greedy: the last `.up.` or `.down.` decides.
    let up = rest.rfind(".up.").map(|i| (i, Direction::Up, 4));
    let down = rest.rfind(".down.").map(|i| (i, Direction::Down, 6));
    let (at, direction, _) = match (up, down) {
        (Some(u), Some(d)) => {
            if u.0 > d.0 {
                u
            } else {
                d
            }
        }
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return None,
    };
    let version: u64 = num.parse().ok()?;
    Some((version, &rest[..at], direction))
}

pub(super) fn scan(dir: &Path, exclude: &[PathBuf], out: &mut Scan) -> Result<()> {
    for entry in entries(dir, exclude)? {
        if entry.is_dir() {
            out.note(
                &entry,
                "golang-migrate does not read subfolders: not applied",
            );
        } else if !own_file(&file_name(&entry)) {
            file(&entry, out);
        }
    }
    Ok(())
}

pub(super) fn file(path: &Path, out: &mut Scan) {
    let name = file_name(path);
    match parse(&name) {
        Some((version, title, Direction::Up)) => out.push(
            path.to_path_buf(),
            name.strip_suffix(".sql")
                .and_then(|s| s.strip_suffix(".up"))
                .unwrap_or(&name)
                .to_string(),
            Layout::GolangMigrate,
            vec![u128::from(version)],
            SortKey::numbers(vec![u128::from(version)]),
            Migration {
                version: Some(version.to_string()),
                description: title.to_string(),
                transaction: Transaction::Implicit,
                ..Migration::default()
            },
        ),
        Some((_, _, Direction::Down)) => out.note(path, "down migration, not applied"),
        None => out.note(
            path,
            "not a golang-migrate name (VERSION_TITLE.up.sql): golang-migrate passes it over",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_golang_migrate_accepts() {
        assert_eq!(parse("1_init.up.sql"), Some((1, "init", Direction::Up)));
        assert_eq!(
            parse("000002_a.b.down.sql"),
            Some((2, "a.b", Direction::Down))
        );
        assert_eq!(parse("3_.up.sql"), Some((3, "", Direction::Up)));
        assert_eq!(parse("4_x.up.psql"), Some((4, "x", Direction::Up)));
        assert_eq!(parse("x_1.up.sql"), None);
        assert_eq!(parse("1-init.up.sql"), None);
        assert_eq!(parse("1_init.sql"), None);
        assert_eq!(parse("99999999999999999999_x.up.sql"), None);
    }
}
