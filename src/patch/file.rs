//! A patch file before it is read: its path, id, layout and position, and
//! how a file name alone is understood.

use std::cmp::Ordering;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Flyway's schema history table.
pub const FLYWAY_HISTORY: &str = "flyway_schema_history";

/// The accepted patterns, for error messages and `--help`.
pub const ACCEPTED_PATTERNS: &str = "patch-MAJOR-MINOR-LEVEL.sql (Launchpad), \
NNNN-name.sql or NNNN_name.sql (numbered, sqlx), V1__name.sql or V1_2__name.sql (Flyway, \
refinery), NNNN_name.up.sql (golang-migrate, sqlx), VERSION_name/up.sql (diesel); \
--layout chooses one where names fit several";

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

/// How one file name was understood, by the layout its name suggests.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    Patch {
        id: String,
        layout: Layout,
        position: Position,
    },
    /// A Flyway repeatable migration: no version, ordered by description.
    Repeatable { id: String, description: String },
    /// A file that belongs to a layout but is not applied (down or undo scripts).
    Skip(String),
    /// Matches no layout.
    Unknown,
}

/// The naming convention of a migration folder, and the tool that reads it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Launchpad's `patch-MAJOR-MINOR-LEVEL.sql` (upgrade.py)
    Launchpad,
    /// downtime's own: `0001-name.sql`, `0001_name.sql`; no bookkeeping
    Numbered,
    /// Flyway: `V1__name.sql`, `V1_1__name.sql`, `R__name.sql`, `B5__name.sql`
    Flyway,
    /// refinery: `V1__name.sql`, `U2__name.sql` (U is unversioned, not undo)
    Refinery,
    /// golang-migrate: `000001_name.up.sql`
    GolangMigrate,
    /// sqlx: `20210101120000_name.sql`, `1_name.up.sql`
    Sqlx,
    /// diesel: `2019-02-26-002946_name/up.sql` and diesel's other version formats
    Diesel,
}

impl Layout {
    /// The name used by `--layout` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Launchpad => "launchpad",
            Layout::Numbered => "numbered",
            Layout::Flyway => "flyway",
            Layout::Refinery => "refinery",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Sqlx => "sqlx",
            Layout::Diesel => "diesel",
        }
    }

    /// The table the tool records applied migrations in (none for downtime's own layout).
    pub fn table(self) -> Option<&'static str> {
        match self {
            Layout::Launchpad => Some("LaunchpadDatabaseRevision"),
            Layout::Numbered => None,
            Layout::Flyway => Some(FLYWAY_HISTORY),
            Layout::Refinery => Some("refinery_schema_history"),
            Layout::GolangMigrate => Some("schema_migrations"),
            Layout::Sqlx => Some("_sqlx_migrations"),
            Layout::Diesel => Some("__diesel_schema_migrations"),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Launchpad => "Launchpad (patch-MAJOR-MINOR-LEVEL.sql)",
            Layout::Numbered => "numbered (0001-name.sql)",
            Layout::Flyway => "Flyway (V2__name.sql)",
            Layout::Refinery => "refinery (V2__name.sql)",
            Layout::GolangMigrate => "golang-migrate (000002_name.up.sql)",
            Layout::Sqlx => "sqlx (20210101120000_name.sql)",
            Layout::Diesel => "diesel (2019-02-26-002946_name/up.sql)",
        })
    }
}
