//! PostgreSQL's vocabulary, on the ground floor of the code: lock modes and
//! their conflict table, relations and their kinds, and every catalogue
//! query downtime sends (the per-statement trace in [`trace`]). Nothing
//! here knows about patches, runs or verdicts.

pub mod catalog;
pub mod locks;
pub mod relation;
pub mod trace;
pub mod versions;

pub use locks::LockMode;
pub use relation::{Relation, Snapshot};

/// Quote an identifier for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
