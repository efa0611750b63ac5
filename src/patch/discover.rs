//! Finding patch files and putting them in the order their layout defines.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The naming convention a patch file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `patch-MAJOR-MINOR-LEVEL.sql`
    Launchpad,
    /// `0001-name.sql`, `20240101120000_name.sql`
    Numbered,
    /// `V2__name.sql`, `V2_1__name.sql`
    Flyway,
    /// `000002_name.up.sql` (golang-migrate, sqlx)
    UpDown,
    /// `2019-02-26-002946_name/up.sql`
    Diesel,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Launchpad => "Launchpad (patch-MAJOR-MINOR-LEVEL.sql)",
            Layout::Numbered => "numbered (0001-name.sql)",
            Layout::Flyway => "Flyway (V2__name.sql)",
            Layout::UpDown => "golang-migrate/sqlx (000002_name.up.sql)",
            Layout::Diesel => "diesel (2019-02-26-002946_name/up.sql)",
        })
    }
}

/// The accepted patterns, for error messages and `--help`.
pub const ACCEPTED_PATTERNS: &str = "patch-MAJOR-MINOR-LEVEL.sql (Launchpad), \
NNNN-name.sql or NNNN_name.sql (numbered), V1__name.sql or V1_2__name.sql (Flyway), \
NNNN_name.up.sql (golang-migrate, sqlx), YYYY-MM-DD-HHMMSS_name/up.sql (diesel)";

/// A patch's position: numeric parts compared left to right; trailing zero
/// parts do not count (Flyway's 2 and 2.0 are the same version).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Position(pub Vec<u128>);

impl PartialEq for Position {
    fn eq(&self, other: &Self) -> bool {
        self.trimmed() == other.trimmed()
    }
}

impl Eq for Position {}

impl Position {
    fn trimmed(&self) -> &[u128] {
        let mut end = self.0.len();
        while end > 1 && self.0[end - 1] == 0 {
            end -= 1;
        }
        &self.0[..end]
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        self.trimmed().cmp(other.trimmed())
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u128::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// A patch file found on disk, not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFile {
    pub path: PathBuf,
    /// Short, stable name: the file stem, or diesel's folder name.
    pub id: String,
    pub layout: Layout,
    pub position: Position,
}

/// What discovery found: the ordered patches and notes about files passed over.
#[derive(Debug, Default)]
pub struct Discovery {
    pub patches: Vec<PatchFile>,
    pub notes: Vec<String>,
}

/// How one file name was understood.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    Patch {
        id: String,
        layout: Layout,
        position: Position,
    },
    /// A file that belongs to a layout but is not applied (down or undo scripts).
    Skip(String),
    /// Matches no layout.
    Unknown,
}

fn digits(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Understand a file name (not a path) as one of the supported layouts.
pub fn classify_name(name: &str) -> Named {
    let Some(stem) = name.strip_suffix(".sql") else {
        return Named::Unknown;
    };
    // golang-migrate / sqlx up and down files.
    if let Some(base) = stem.strip_suffix(".down") {
        if numbered_prefix(base, &['_']).is_some() {
            return Named::Skip(format!("{name}: down migration, not applied"));
        }
    }
    if let Some(base) = stem.strip_suffix(".up") {
        if let Some(n) = numbered_prefix(base, &['_']) {
            return Named::Patch {
                id: base.to_string(),
                layout: Layout::UpDown,
                position: Position(vec![n]),
            };
        }
    }
    // Launchpad.
    if let Some(rest) = stem.strip_prefix("patch-") {
        let parts: Vec<&str> = rest.split('-').collect();
        if parts.len() == 3 {
            if let (Some(a), Some(b), Some(c)) =
                (digits(parts[0]), digits(parts[1]), digits(parts[2]))
            {
                return Named::Patch {
                    id: stem.to_string(),
                    layout: Layout::Launchpad,
                    position: Position(vec![a, b, c]),
                };
            }
        }
    }
    // Flyway: versioned, undo and repeatable.
    if let Some((head, desc)) = stem.split_once("__") {
        if !desc.is_empty() {
            if head == "R" {
                return Named::Skip(format!(
                    "{name}: Flyway repeatable script, not applied by downtime"
                ));
            }
            let (kind, version) = head.split_at(head.len().min(1));
            if (kind == "V" || kind == "U") && !version.is_empty() {
                let parts: Option<Vec<u128>> = version.split(['.', '_']).map(digits).collect();
                if let Some(parts) = parts {
                    if kind == "U" {
                        return Named::Skip(format!("{name}: Flyway undo script, not applied"));
                    }
                    return Named::Patch {
                        id: stem.to_string(),
                        layout: Layout::Flyway,
                        position: Position(parts),
                    };
                }
            }
        }
    }
    // Plain numbered.
    if let Some(n) = numbered_prefix(stem, &['_', '-']) {
        return Named::Patch {
            id: stem.to_string(),
            layout: Layout::Numbered,
            position: Position(vec![n]),
        };
    }
    Named::Unknown
}

/// `0001-name` or `0001_name`: the number, when a non-empty name follows.
fn numbered_prefix(stem: &str, separators: &[char]) -> Option<u128> {
    let end = stem
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(stem.len());
    let (num, rest) = stem.split_at(end);
    let mut chars = rest.chars();
    let sep = chars.next()?;
    if !separators.contains(&sep) || chars.as_str().is_empty() {
        return None;
    }
    digits(num)
}

/// Diesel folder `2019-02-26-002946_name`: the timestamp as one number.
fn diesel_position(folder: &str) -> Option<Position> {
    let (stamp, name) = folder.split_once('_')?;
    if name.is_empty() {
        return None;
    }
    let parts: Vec<&str> = stamp.split('-').collect();
    let widths = [4, 2, 2, 6];
    if parts.len() != 4 || parts.iter().zip(widths).any(|(p, w)| p.len() != w) {
        return None;
    }
    let joined: String = parts.concat();
    digits(&joined).map(|n| Position(vec![n]))
}

/// Discover patches under the given files and folders.
///
/// `exclude` names files that are not patches even though they sit among them
/// (the baseline). Folders are read one level deep, plus diesel's
/// `TIMESTAMP_name/up.sql` folders.
pub fn discover(paths: &[PathBuf], exclude: &[PathBuf]) -> Result<Discovery> {
    let mut out = Discovery::default();
    let excluded: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let is_excluded = |p: &Path| {
        std::fs::canonicalize(p)
            .map(|c| excluded.contains(&c))
            .unwrap_or(false)
    };

    for root in paths {
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        if meta.is_dir() && file_name(root).ends_with(".sql") {
            return Err(named_like_a_patch(root));
        }
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
                .map_err(|e| Error::io(root, e))?
                .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(root, err)))
                .collect::<Result<_>>()?;
            entries.sort();
            for entry in entries {
                if is_excluded(&entry) {
                    continue;
                }
                let name = file_name(&entry);
                if entry.is_dir() {
                    if name.starts_with('.') {
                        continue;
                    }
                    if name.ends_with(".sql") {
                        return Err(named_like_a_patch(&entry));
                    }
                    match diesel_position(&name) {
                        Some(position) => {
                            let up = entry.join("up.sql");
                            if up.is_file() {
                                if entry.join("down.sql").is_file() {
                                    out.notes.push(format!(
                                        "{}: down migration, not applied",
                                        entry.join("down.sql").display()
                                    ));
                                }
                                out.patches.push(PatchFile {
                                    path: up,
                                    id: name,
                                    layout: Layout::Diesel,
                                    position,
                                });
                            } else {
                                return Err(Error::input(
                                    &entry,
                                    "diesel migration folder has no up.sql",
                                ));
                            }
                        }
                        None if super::POST_DEPLOY_FOLDERS.contains(&name.as_str()) => {
                            let inner = discover(std::slice::from_ref(&entry), exclude)?;
                            out.patches.extend(inner.patches);
                            out.notes.extend(inner.notes);
                        }
                        None => out.notes.push(format!(
                            "{}: folder is not a patch layout, not read",
                            entry.display()
                        )),
                    }
                    continue;
                }
                if !name.ends_with(".sql") {
                    continue;
                }
                add_file(&mut out, &entry)?;
            }
        } else {
            if is_excluded(root) {
                continue;
            }
            // A diesel up.sql named directly.
            let name = file_name(root);
            if name == "up.sql" {
                if let Some(folder) = root.parent() {
                    let folder_name = file_name(folder);
                    if let Some(position) = diesel_position(&folder_name) {
                        out.patches.push(PatchFile {
                            path: root.clone(),
                            id: folder_name,
                            layout: Layout::Diesel,
                            position,
                        });
                        continue;
                    }
                }
            }
            add_file(&mut out, root)?;
        }
    }
    order(&mut out.patches)?;
    Ok(out)
}

/// A folder whose name ends in `.sql`: meant as a patch, but not a file.
fn named_like_a_patch(path: &Path) -> Error {
    Error::input(
        path,
        "is a directory, but its name ends in .sql like a patch file; \
         a patch must be a regular file",
    )
}

/// Whether two paths name the same file (by their canonical form when both exist).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn add_file(out: &mut Discovery, path: &Path) -> Result<()> {
    match classify_name(&file_name(path)) {
        Named::Patch {
            id,
            layout,
            position,
        } => out.patches.push(PatchFile {
            path: path.to_path_buf(),
            id,
            layout,
            position,
        }),
        Named::Skip(note) => out.notes.push(format!(
            "{}: {}",
            path.parent().unwrap_or(Path::new("")).display(),
            note
        )),
        Named::Unknown => {
            return Err(Error::input(
                path,
                format!("file name matches no patch layout; accepted: {ACCEPTED_PATTERNS}"),
            ))
        }
    }
    Ok(())
}

/// Sort patches by position; refuse mixed layouts and duplicate positions.
pub fn order(patches: &mut [PatchFile]) -> Result<()> {
    if let Some(first) = patches.first() {
        if let Some(other) = patches.iter().find(|p| p.layout != first.layout) {
            return Err(Error::input(
                &other.path,
                format!(
                    "layout {} differs from {} ({}); use one layout per run so the order is defined",
                    other.layout,
                    first.layout,
                    first.path.display()
                ),
            ));
        }
    }
    patches.sort_by(|a, b| a.position.cmp(&b.position).then(a.path.cmp(&b.path)));
    let mut seen: BTreeMap<Vec<u128>, &Path> = BTreeMap::new();
    for p in patches.iter() {
        if let Some(prev) = seen.insert(p.position.trimmed().to_vec(), &p.path) {
            if prev == p.path {
                return Err(Error::input(&p.path, "the same patch is named twice"));
            }
            return Err(Error::input(
                &p.path,
                format!(
                    "claims position {} which {} already has",
                    p.position,
                    prev.display()
                ),
            ));
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
        assert!(matches!(classify_name("R__views.sql"), Named::Skip(_)));
        assert_eq!(classify_name("baseline.sql"), Named::Unknown);
        assert_eq!(classify_name("patch-1-2.sql"), Named::Unknown);
        assert_eq!(classify_name("0001.sql"), Named::Unknown);
        assert_eq!(classify_name("V__x.sql"), Named::Unknown);
        assert_eq!(
            diesel_position("2019-02-26-002946_create_users"),
            Some(Position(vec![20190226002946]))
        );
        assert_eq!(diesel_position("2019-02-26_x"), None);
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
