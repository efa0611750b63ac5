//! Migration layouts as each tool lays them out and reads them: which files
//! are migrations, which ones the tool passes over, the version it records
//! and the order it applies them in. One file per tool; each follows the
//! tool's own rules (its source is the reference), not a common pattern.

mod diesel;
mod flyway;
mod golang_migrate;
mod launchpad;
mod numbered;
mod refinery;
mod sqlx;

use std::path::{Path, PathBuf};

pub use super::file::Layout;
use super::file::{Named, PatchFile, Position};
use crate::error::{Error, Result};

pub use flyway::{flyway_non_transactional, FLYWAY_HISTORY};

/// What kind of migration a file is, in its tool's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// Applied once, in version order.
    #[default]
    Versioned,
    /// Flyway `R__`: applied after the versioned ones, again whenever it changes.
    Repeatable,
    /// Flyway `B`: stands in for the versioned migrations up to its version
    /// on a database without history.
    Baseline,
    /// refinery `U`: applied when missing, even below the current version.
    Unversioned,
}

/// How the tool sends a migration to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transaction {
    /// downtime's own: one transaction, statements PostgreSQL forbids in a
    /// transaction block run outside it, in order.
    #[default]
    Split,
    /// The tool's own transaction around the whole file and its
    /// bookkeeping: a statement that cannot run in a transaction block fails
    /// there, as it does under the tool.
    Single,
    /// The whole file as one query: several statements form one implicit
    /// transaction (one statement runs on its own); bookkeeping after it.
    Implicit,
    /// Statement by statement, each on its own (Flyway's non-transactional
    /// migrations); bookkeeping after them.
    Autocommit,
    /// Flyway refuses a migration that mixes statements that need a
    /// transaction and statements that cannot have one: at this line.
    Mixed(usize),
}

/// What the tool knows of one migration besides its file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Migration {
    /// The version the tool records (None: a Flyway repeatable).
    pub version: Option<String>,
    /// The description the tool records (sqlx, Flyway, refinery).
    pub description: String,
    pub kind: Kind,
    pub transaction: Transaction,
    /// Flyway's `script`: the file's path below the migration folder.
    pub script: String,
}

/// The order a layout's tool applies migrations in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    /// Numeric parts left to right, trailing zero parts dropped (Flyway's 1 = 1.0).
    Numbers(Vec<u128>),
    /// A signed number (sqlx's i64 versions).
    Signed(i128),
    /// Text, byte by byte (diesel compares its versions as strings).
    Text(String),
    /// Flyway: version parts (trailing zeros dropped), then a baseline
    /// migration (0) before the versioned one (1) of the same version.
    Flyway(Vec<u128>, u8),
    /// After every versioned migration, by description (Flyway's repeatables).
    Repeatable(String),
}

impl SortKey {
    pub fn numbers(parts: Vec<u128>) -> SortKey {
        SortKey::Numbers(trimmed(parts))
    }
}

/// Version parts without trailing zero parts (one part at least).
pub(crate) fn trimmed(mut parts: Vec<u128>) -> Vec<u128> {
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    parts
}

/// One migration found on disk, with what its tool knows of it.
#[derive(Debug, Clone)]
pub struct Found {
    pub file: PatchFile,
    pub migration: Migration,
    pub key: SortKey,
}

/// What scanning folders found: migrations and notes on what was passed over.
#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    pub notes: Vec<String>,
}

impl Scan {
    fn note(&mut self, path: &Path, why: &str) {
        self.notes.push(format!("{}: {why}", path.display()));
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        path: PathBuf,
        id: String,
        layout: Layout,
        position: Vec<u128>,
        key: SortKey,
        migration: Migration,
    ) {
        self.found.push(Found {
            file: PatchFile {
                path,
                id,
                layout,
                position: Position(position),
            },
            migration,
            key,
        });
    }
}

/// A file's name as text.
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The entries of a folder, sorted, without hidden ones and without the
/// excluded files (the baseline).
pub(crate) fn entries(dir: &Path, exclude: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<_>>()?;
    out.retain(|p| !file_name(p).starts_with('.') && !is_excluded(p, exclude));
    out.sort();
    for p in &out {
        plain_name(p)?;
    }
    if let Some(dir) = out
        .iter()
        .find(|p| p.is_dir() && file_name(p).ends_with(".sql"))
    {
        return Err(named_like_a_patch(dir));
    }
    Ok(out)
}

/// A folder whose name ends in `.sql`: meant as a patch, but not a file.
pub(crate) fn named_like_a_patch(path: &Path) -> Error {
    Error::input(
        path,
        "is a directory, but its name ends in .sql like a patch file; \
         a patch must be a regular file",
    )
}

/// A name with a control character (a line break, a carriage return, an
/// escape, a line or paragraph separator, a bidirectional override) is
/// refused: shown in a report or a CI log it could forge lines there.
fn plain_name(path: &Path) -> Result<()> {
    match crate::escape::first_hidden(&file_name(path)) {
        None => Ok(()),
        Some(c) => Err(Error::input(
            path,
            format!(
                "the file name holds a control character ({}); rename it: \
                 names are shown in reports and CI logs, where it could forge lines",
                crate::escape::code(c)
            ),
        )),
    }
}

/// What a named root is; a folder named like a patch file is refused, and
/// a name with a control character.
fn root_meta(root: &Path) -> Result<std::fs::Metadata> {
    plain_name(root)?;
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if meta.is_dir() && file_name(root).ends_with(".sql") {
        return Err(named_like_a_patch(root));
    }
    Ok(meta)
}

fn is_excluded(p: &Path, exclude: &[PathBuf]) -> bool {
    std::fs::canonicalize(p).is_ok_and(|c| exclude.contains(&c))
}

/// Files downtime itself keeps among patches: not noted when a tool passes them over.
fn own_file(name: &str) -> bool {
    matches!(name, "signoffs.toml" | "downtime.toml" | "baseline.sql")
}

/// Digits only, as a number.
pub(crate) fn digits(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The families of names that decide a folder's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Family {
    /// Folders holding `up.sql`.
    Diesel,
    /// `NNN_name.up.sql` / `.down.sql`.
    UpDown,
    /// `V…__`, `U…__`, `R__`, `B…__`.
    Versioned,
    /// `patch-N-N-N.sql`.
    Launchpad,
    /// `NNN-name.sql`, `NNN_name.sql`.
    Numbered,
}

/// The family a file name belongs to, if any.
pub(crate) fn family_of(name: &str) -> Option<Family> {
    if golang_migrate::parse(name).is_some() && name.ends_with(".sql") {
        return Some(Family::UpDown);
    }
    if launchpad::loose(name).is_some() {
        return Some(Family::Launchpad);
    }
    if flyway::prefix_kind(name).is_some() {
        return Some(Family::Versioned);
    }
    if numbered::parse(name).is_some() {
        return Some(Family::Numbered);
    }
    None
}

/// How one file name is understood by the layout its name suggests.
pub(crate) fn classify(name: &str) -> Named {
    let stem = name.strip_suffix(".sql").unwrap_or(name).to_string();
    match family_of(name) {
        Some(Family::UpDown) => match golang_migrate::parse(name) {
            Some((v, _, golang_migrate::Direction::Up)) => Named::Patch {
                id: stem.trim_end_matches(".up").to_string(),
                layout: Layout::GolangMigrate,
                position: Position(vec![u128::from(v)]),
            },
            _ => Named::Skip(format!("{name}: down migration, not applied")),
        },
        Some(Family::Launchpad) => match launchpad::loose(name) {
            Some(parts) => Named::Patch {
                id: stem,
                layout: Layout::Launchpad,
                position: Position(parts.to_vec()),
            },
            None => Named::Unknown,
        },
        Some(Family::Versioned) => flyway::classify(name, stem),
        Some(Family::Numbered) => match numbered::parse(name) {
            Some((n, _)) => Named::Patch {
                id: stem,
                layout: Layout::Numbered,
                position: Position(vec![n]),
            },
            None => Named::Unknown,
        },
        Some(Family::Diesel) | None => Named::Unknown,
    }
}

/// The layout the given folders and files are in, as decided from their
/// names (and sqlx's `-- no-transaction` marker), with the other layouts the
/// same names fit.
pub(crate) fn detect(paths: &[PathBuf], exclude: &[PathBuf]) -> Result<Option<(Layout, String)>> {
    let mut seen: Vec<(Family, PathBuf)> = Vec::new();
    let mut no_tx = false;
    let mut unknown_sql = false;
    let mut add = |family: Family, path: &Path| {
        if !seen.iter().any(|(f, _)| *f == family) {
            seen.push((family, path.to_path_buf()));
        }
    };
    for root in paths {
        let meta = root_meta(root)?;
        let files = if meta.is_dir() {
            entries(root, exclude)?
        } else {
            vec![root.clone()]
        };
        if meta.is_dir() && root.join("up.sql").exists() {
            add(Family::Diesel, root);
            continue;
        }
        for f in files {
            if f.is_dir() {
                if f.join("up.sql").exists() {
                    add(Family::Diesel, &f);
                }
                continue;
            }
            let name = file_name(&f);
            if name == "up.sql" && !meta.is_dir() {
                add(Family::Diesel, &f);
                continue;
            }
            if let Some(family) = family_of(&name) {
                add(family, &f);
                no_tx |=
                    matches!(family, Family::UpDown | Family::Numbered) && sqlx::no_tx_file(&f)?;
            } else if name.ends_with(".sql") && !own_file(&name) {
                unknown_sql = true;
            }
        }
    }
    seen.sort();
    let families: Vec<Family> = seen.iter().map(|(f, _)| *f).collect();
    let layout = match families.as_slice() {
        // Names that fit no layout: downtime's own says which and why.
        [] if unknown_sql => (Layout::Numbered, "no layout's names"),
        [] => return Ok(None),
        [Family::Diesel, ..] => (Layout::Diesel, "folders holding up.sql"),
        [Family::UpDown] if no_tx => (Layout::Sqlx, "sqlx's -- no-transaction marker"),
        [Family::UpDown] => (Layout::GolangMigrate, "NNN_name.up.sql names"),
        [Family::UpDown, Family::Numbered] => (
            Layout::Sqlx,
            "simple and reversible sqlx migrations side by side",
        ),
        [Family::Versioned] => (Layout::Flyway, "V…__name.sql names"),
        [Family::Launchpad] => (Layout::Launchpad, "patch-N-N-N.sql names"),
        [Family::Numbered] if no_tx => (Layout::Sqlx, "sqlx's -- no-transaction marker"),
        [Family::Numbered] => (Layout::Numbered, "NNN-name.sql names"),
        [a, b, ..] => {
            let (pa, pb) = (&seen[0].1, &seen[1].1);
            return Err(Error::input(
                pb,
                format!(
                    "names of two layouts: {} is {:?}, {} is {:?}; keep one layout per run, \
                     or choose one with --layout",
                    pa.display(),
                    a,
                    pb.display(),
                    b
                ),
            ));
        }
    };
    Ok(Some((layout.0, layout.1.to_string())))
}

/// The other layouts the chosen one's names also fit, when the layout was
/// not chosen by hand: the baseline's bookkeeping table may tell them apart.
pub(crate) fn alternatives(layout: Layout) -> &'static [Layout] {
    match layout {
        Layout::Numbered | Layout::GolangMigrate => &[Layout::Sqlx],
        Layout::Sqlx => &[Layout::GolangMigrate, Layout::Numbered],
        Layout::Flyway => &[Layout::Refinery],
        Layout::Refinery => &[Layout::Flyway],
        Layout::Launchpad | Layout::Diesel => &[],
    }
}

/// Scan the given folders and files as `layout`'s tool reads them.
pub(crate) fn scan(layout: Layout, paths: &[PathBuf], exclude: &[PathBuf]) -> Result<Scan> {
    let mut out = Scan::default();
    for root in paths {
        let meta = root_meta(root)?;
        if meta.is_dir() {
            match layout {
                Layout::Launchpad => launchpad::scan(root, exclude, &mut out)?,
                Layout::Numbered => numbered::scan(root, exclude, &mut out)?,
                Layout::Flyway => flyway::scan(root, exclude, &mut out)?,
                Layout::Refinery => refinery::scan(root, exclude, &mut out)?,
                Layout::GolangMigrate => golang_migrate::scan(root, exclude, &mut out)?,
                Layout::Sqlx => sqlx::scan(root, exclude, &mut out)?,
                Layout::Diesel => diesel::scan(root, exclude, &mut out)?,
            }
        } else if !is_excluded(root, exclude) {
            let before = (out.found.len(), out.notes.len());
            match layout {
                Layout::Launchpad => launchpad::file(root, &mut out),
                Layout::Numbered => numbered::file(root, &mut out)?,
                Layout::Flyway => flyway::file(root, root.parent(), &mut out)?,
                Layout::Refinery => refinery::file(root, &mut out)?,
                Layout::GolangMigrate => golang_migrate::file(root, &mut out),
                Layout::Sqlx => sqlx::file(root, &mut out)?,
                Layout::Diesel => diesel::file(root, &mut out)?,
            }
            if (out.found.len(), out.notes.len()) == before {
                return Err(Error::input(
                    root,
                    format!("not a {} migration", layout.name()),
                ));
            }
        }
    }
    Ok(out)
}

/// What the tool refuses when two migrations claim one version.
pub(crate) fn duplicate(layout: Layout, first: &Found, second: &Found) -> Error {
    let (a, b) = (&first.file.path, &second.file.path);
    let version = second
        .migration
        .version
        .clone()
        .unwrap_or_else(|| second.migration.description.clone());
    let message = match layout {
        Layout::GolangMigrate => format!(
            "duplicate migration file: {} (golang-migrate refuses two files for version {version}; the other is {})",
            file_name(b),
            a.display()
        ),
        Layout::Refinery => format!(
            "migration {} is repeated, migration versions must be unique (refinery; the other is {})",
            second.file.id,
            a.display()
        ),
        Layout::Flyway if second.migration.kind == Kind::Repeatable => format!(
            "Found more than one repeatable migration with description {version} (Flyway; the other is {})",
            a.display()
        ),
        Layout::Flyway => format!(
            "Found more than one migration with version {version} (Flyway; the other is {})",
            a.display()
        ),
        Layout::Diesel => format!(
            "version {version} again: {} has it too (diesel would run only one of them)",
            a.display()
        ),
        Layout::Sqlx => format!(
            "migration {version} again: {} has it too (sqlx would fail recording the second)",
            a.display()
        ),
        Layout::Launchpad | Layout::Numbered => format!(
            "claims position {} which {} already has",
            second.file.position,
            a.display()
        ),
    };
    Error::input(b, message)
}

/// Settle a migration's transaction once its text and statements are known
/// (sqlx's `-- no-transaction`, Flyway's transactional statements).
pub fn settle(layout: Layout, m: &mut Migration, text: &str, statements: &[(usize, &str)]) {
    match layout {
        Layout::Sqlx if text.starts_with("-- no-transaction") => {
            m.transaction = Transaction::Implicit;
        }
        Layout::Flyway if m.transaction == Transaction::Single => {
            m.transaction = flyway::transaction(statements);
        }
        _ => {}
    }
}
