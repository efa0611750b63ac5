//! What a migration tool does differently from downtime when it sends a
//! migration: the failures it produces itself, and what to change when its
//! transaction refuses a statement.

use super::PatchError;
use crate::patch::{Layout, Patch};

/// Flyway refuses a migration mixing statements that need a transaction
/// with statements that cannot have one.
pub(super) fn mixed(patch: &Patch, line: usize) -> PatchError {
    let sql = patch
        .statements
        .iter()
        .find(|s| s.line == line)
        .map_or("", |s| s.sql.as_str());
    PatchError {
        message: format!(
            "Detected both transactional and non-transactional statements within the same migration \
             (even though mixed is false). Offending statement found at line {line}: {sql} (Flyway refuses the migration)"
        ),
        sqlstate: None,
        line,
        statement_line: line,
        detail: None,
        hint: Some(
            "put the statement that cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM, …) \
             in a migration of its own, or set Flyway's mixed = true"
                .into(),
        ),
        partially_applied: false,
        ended_by: None,
    }
}

/// What to change when the tool's transaction refuses a statement.
pub(super) fn no_transaction_hint(layout: Layout) -> Option<&'static str> {
    match layout {
        Layout::Diesel => Some("diesel runs this migration in a transaction: add metadata.toml with `run_in_transaction = false` beside its up.sql (and keep the statement alone in its file)"),
        Layout::Sqlx => Some("sqlx runs this migration in a transaction: start the file with `-- no-transaction` (and keep the statement alone in its file)"),
        Layout::GolangMigrate => Some("golang-migrate sends the file as one query, an implicit transaction when it holds several statements: keep the statement alone in its file"),
        Layout::Flyway => Some("Flyway runs this statement in the migration's transaction: only the statements its parser knows (CREATE/DROP INDEX CONCURRENTLY, VACUUM, …) run outside one"),
        Layout::Refinery => Some("refinery runs every migration in a transaction: this statement cannot be in a refinery migration"),
        Layout::Launchpad | Layout::Numbered => None,
    }
}
