//! PostgreSQL's table-level lock modes and the conflicts between them.
//!
//! Source: PostgreSQL documentation, "Explicit Locking", table
//! "Conflicting Lock Modes". The application's own statements take
//! ACCESS SHARE (SELECT), ROW SHARE (SELECT … FOR UPDATE/SHARE) and
//! ROW EXCLUSIVE (INSERT, UPDATE, DELETE, MERGE).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The eight table-level lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

use LockMode::*;

impl LockMode {
    pub const ALL: [LockMode; 8] = [
        AccessShare,
        RowShare,
        RowExclusive,
        ShareUpdateExclusive,
        Share,
        ShareRowExclusive,
        Exclusive,
        AccessExclusive,
    ];

    /// The name `pg_locks.mode` uses (`AccessExclusiveLock`).
    pub fn from_pg_locks(mode: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.pg_locks_name() == mode)
    }

    pub fn pg_locks_name(self) -> &'static str {
        match self {
            AccessShare => "AccessShareLock",
            RowShare => "RowShareLock",
            RowExclusive => "RowExclusiveLock",
            ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            Share => "ShareLock",
            ShareRowExclusive => "ShareRowExclusiveLock",
            Exclusive => "ExclusiveLock",
            AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The SQL name (`ACCESS EXCLUSIVE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            AccessShare => "ACCESS SHARE",
            RowShare => "ROW SHARE",
            RowExclusive => "ROW EXCLUSIVE",
            ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Share => "SHARE",
            ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Exclusive => "EXCLUSIVE",
            AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// Whether a lock in `self` mode and one in `other` mode can not be held
    /// at the same time by two transactions.
    pub fn conflicts_with(self, other: LockMode) -> bool {
        let (a, b) = if self <= other {
            (self, other)
        } else {
            (other, self)
        };
        match a {
            AccessShare => b == AccessExclusive,
            RowShare => b >= Exclusive,
            RowExclusive => b >= Share,
            ShareUpdateExclusive => b >= ShareUpdateExclusive,
            Share => b == RowExclusive || b >= ShareUpdateExclusive && b != Share,
            ShareRowExclusive => b >= ShareUpdateExclusive,
            Exclusive => b >= RowShare,
            AccessExclusive => true,
        }
    }

    /// Blocks the application's SELECTs.
    pub fn blocks_reads(self) -> bool {
        self.conflicts_with(AccessShare)
    }

    /// Blocks the application's INSERT / UPDATE / DELETE.
    pub fn blocks_writes(self) -> bool {
        self.conflicts_with(RowExclusive)
    }

    /// Blocks the application at all.
    pub fn blocks_application(self) -> bool {
        self.blocks_reads() || self.blocks_writes() || self.conflicts_with(RowShare)
    }

    /// What the application notices, in words.
    pub fn effect(self) -> &'static str {
        if self.blocks_reads() {
            "blocks reads and writes"
        } else if self.blocks_writes() {
            "blocks writes"
        } else if self.conflicts_with(RowShare) {
            "blocks SELECT FOR UPDATE"
        } else {
            "does not block the application"
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented matrix, row by row: X marks a conflict.
    const MATRIX: [&str; 8] = [
        ".......X", // ACCESS SHARE
        "......XX", // ROW SHARE
        "....XXXX", // ROW EXCLUSIVE
        "...XXXXX", // SHARE UPDATE EXCLUSIVE
        "..XX.XXX", // SHARE
        "..XXXXXX", // SHARE ROW EXCLUSIVE
        ".XXXXXXX", // EXCLUSIVE
        "XXXXXXXX", // ACCESS EXCLUSIVE
    ];

    #[test]
    fn conflict_table_matches_the_documentation() {
        for (i, row) in MATRIX.iter().enumerate() {
            for (j, c) in row.chars().enumerate() {
                let (a, b) = (LockMode::ALL[i], LockMode::ALL[j]);
                assert_eq!(a.conflicts_with(b), c == 'X', "{a} vs {b}");
            }
        }
    }

    #[test]
    fn application_effects() {
        assert!(!ShareUpdateExclusive.blocks_application());
        assert!(Share.blocks_writes() && !Share.blocks_reads());
        assert!(ShareRowExclusive.blocks_writes());
        assert!(AccessExclusive.blocks_reads());
        assert!(!RowExclusive.blocks_application());
        assert_eq!(
            LockMode::from_pg_locks("ShareRowExclusiveLock"),
            Some(ShareRowExclusive)
        );
    }
}
