//! downtime's own layout: `0001-name.sql` or `0001_name.sql`, ordered by the
//! number. No tool keeps books for it, so a `.sql` file that fits no layout
//! is an error rather than passed over: a misnamed patch would otherwise
//! silently not run. Post-deployment folders (`post_migrate`, …) are read too.

use std::path::Path;

use super::{entries, family_of, file_name, Family, Layout, Migration, Scan, SortKey};
use crate::error::{Error, Result};
use crate::patch::file::ACCEPTED_PATTERNS;
use crate::patch::POST_DEPLOY_FOLDERS;

/// `0001-name.sql` / `0001_name.sql`: the number and the name.
pub(super) fn parse(name: &str) -> Option<(u128, &str)> {
    let stem = name.strip_suffix(".sql")?;
    let end = stem
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(stem.len());
    let (num, rest) = stem.split_at(end);
    let mut chars = rest.chars();
    let sep = chars.next()?;
    if !matches!(sep, '-' | '_') || chars.as_str().is_empty() {
        return None;
    }
    Some((super::digits(num)?, chars.as_str()))
}

pub(super) fn scan(dir: &Path, exclude: &[std::path::PathBuf], out: &mut Scan) -> Result<()> {
    for entry in entries(dir, exclude)? {
        let name = file_name(&entry);
        if entry.is_dir() {
            if POST_DEPLOY_FOLDERS.contains(&name.as_str()) {
                scan(&entry, exclude, out)?;
            } else {
                out.note(&entry, "folder is not a patch layout, not read");
            }
            continue;
        }
        if name.ends_with(".sql") {
            file(&entry, out)?;
        }
    }
    Ok(())
}

pub(super) fn file(path: &Path, out: &mut Scan) -> Result<()> {
    let name = file_name(path);
    match (parse(&name), family_of(&name)) {
        (Some((n, rest)), Some(Family::Numbered)) => {
            let stem = name.trim_end_matches(".sql").to_string();
            out.push(
                path.to_path_buf(),
                stem,
                Layout::Numbered,
                vec![n],
                SortKey::numbers(vec![n]),
                Migration {
                    version: Some(n.to_string()),
                    description: rest.to_string(),
                    ..Migration::default()
                },
            );
        }
        (_, Some(family)) => out.note(
            path,
            &format!("a {family:?} name, not a numbered patch: not applied"),
        ),
        (_, None) if name == "baseline.sql" => {}
        (_, None) => {
            return Err(Error::input(
                path,
                format!("file name matches no patch layout; accepted: {ACCEPTED_PATTERNS}"),
            ))
        }
    }
    Ok(())
}
