//! Finding patch files and putting them in the order their layout defines.

use std::path::{Path, PathBuf};

use super::layout::{self, Found, Migration};
use crate::error::{Error, Result};

pub use super::layout::Layout;

pub use super::file::{Named, PatchFile, Position, ACCEPTED_PATTERNS};

/// What discovery found: the layout, the ordered patches with what their
/// tool knows of each, and notes about files passed over.
#[derive(Debug, Default)]
pub struct Discovery {
    /// None when nothing was found.
    pub layout: Option<Layout>,
    /// Why this layout: `--layout`, or what in the names decided it.
    pub reason: String,
    pub patches: Vec<PatchFile>,
    /// One per patch, in the same order.
    pub migrations: Vec<Migration>,
    pub notes: Vec<String>,
    /// Other layouts the same files fit, with what their tool knows of each
    /// patch (in the same order): the baseline's bookkeeping may choose one.
    pub alternatives: Vec<(Layout, Vec<Migration>)>,
}

/// Understand a file name (not a path) by the layout its name suggests.
pub fn classify_name(name: &str) -> Named {
    super::layout::classify(name)
}

/// Discover patches under the given files and folders, in the layout their
/// names show (see [`discover_with`]).
pub fn discover(paths: &[PathBuf], exclude: &[PathBuf]) -> Result<Discovery> {
    discover_with(paths, exclude, None)
}

/// Discover patches under the given files and folders as the tool of
/// `forced` (or of the layout their names show) reads them.
///
/// `exclude` names files that are not patches even though they sit among
/// them (the baseline).
pub fn discover_with(
    paths: &[PathBuf],
    exclude: &[PathBuf],
    forced: Option<Layout>,
) -> Result<Discovery> {
    let excluded: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let (layout, reason) = match forced {
        Some(l) => (l, "--layout".to_string()),
        None => match layout::detect(paths, &excluded)? {
            Some(found) => found,
            None => return Ok(Discovery::default()),
        },
    };
    let mut scan = layout::scan(layout, paths, &excluded)?;
    order(layout, &mut scan.found)?;
    let mut alternatives = Vec::new();
    if forced.is_none() {
        for &alt in layout::alternatives(layout) {
            let Ok(mut other) = layout::scan(alt, paths, &excluded) else {
                continue;
            };
            let same = other.found.len() == scan.found.len()
                && order(alt, &mut other.found).is_ok()
                && other
                    .found
                    .iter()
                    .zip(&scan.found)
                    .all(|(a, b)| a.file.path == b.file.path);
            if same {
                alternatives.push((alt, other.found.into_iter().map(|f| f.migration).collect()));
            }
        }
    }
    let (patches, migrations) = scan
        .found
        .into_iter()
        .map(|f| (f.file, f.migration))
        .unzip();
    Ok(Discovery {
        layout: Some(layout),
        reason,
        patches,
        migrations,
        notes: fold_down_notes(scan.notes),
        alternatives,
    })
}

/// Many down migrations make one note, not one each.
fn fold_down_notes(notes: Vec<String>) -> Vec<String> {
    const DOWN: &str = ": down migration, not applied";
    let (down, mut rest): (Vec<String>, Vec<String>) =
        notes.into_iter().partition(|n| n.ends_with(DOWN));
    if down.len() <= 3 {
        rest.extend(down);
        return rest;
    }
    rest.insert(
        0,
        format!(
            "{} down migrations, not applied ({} … {})",
            down.len(),
            down[0].trim_end_matches(DOWN),
            down[down.len() - 1].trim_end_matches(DOWN)
        ),
    );
    rest
}

/// Whether two paths name the same file (by their canonical form when both exist).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Sort migrations in their tool's order; refuse two at one version.
fn order(layout: Layout, found: &mut [Found]) -> Result<()> {
    found.sort_by(|a, b| a.key.cmp(&b.key).then(a.file.path.cmp(&b.file.path)));
    for pair in found.windows(2) {
        if pair[0].file.path == pair[1].file.path {
            return Err(Error::input(
                &pair[1].file.path,
                "the same patch is named twice",
            ));
        }
        if pair[0].key == pair[1].key {
            return Err(layout::duplicate(layout, &pair[0], &pair[1]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(name: &str) -> Vec<u128> {
        match classify_name(name) {
            Named::Patch { position, .. } => position.0,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn names_of_each_layout() {
        assert_eq!(pos("patch-2209-03-1.sql"), vec![2209, 3, 1]);
        assert_eq!(pos("0001-name.sql"), vec![1]);
        assert_eq!(pos("20240101120000_name.sql"), vec![20240101120000]);
        assert_eq!(pos("V2__name.sql"), vec![2]);
        assert_eq!(pos("V2_1__name.sql"), vec![2, 1]);
        assert_eq!(pos("V2.1.3__name.sql"), vec![2, 1, 3]);
        assert_eq!(pos("000002_name.up.sql"), vec![2]);
        assert!(matches!(
            classify_name("000002_name.down.sql"),
            Named::Skip(_)
        ));
        assert!(matches!(classify_name("U2__undo.sql"), Named::Skip(_)));
        assert!(matches!(
            classify_name("R__views.sql"),
            Named::Repeatable { .. }
        ));
        assert_eq!(classify_name("baseline.sql"), Named::Unknown);
        assert_eq!(classify_name("patch-1-2.sql"), Named::Unknown);
        assert_eq!(classify_name("0001.sql"), Named::Unknown);
        assert_eq!(classify_name("V__x.sql"), Named::Unknown);
    }

    #[test]
    fn flyway_versions_compare_numerically() {
        let a = Position(vec![2]);
        let b = Position(vec![2, 1]);
        let c = Position(vec![10]);
        assert!(a < b && b < c);
        assert_eq!(Position(vec![2, 0]), Position(vec![2]));
    }
}
