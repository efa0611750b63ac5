//! Applying a patch to a staging copy: one transaction (or the patch's own
//! transactions), statement by statement, each timed with a monotonic clock
//! and followed by a trace of locks, rewrites and new indexes.

mod apply;
pub mod calibrate;
mod clock;
mod exec;
mod identity;
mod precheck;
pub mod probe;
mod session;
pub mod stats;
mod tool;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cancel::{Abort, Ended};
use crate::pg::locks::LockMode;
pub use crate::pg::trace::Reads;
pub use crate::pg::{Relation, Snapshot};
pub use apply::{apply, apply_with};
pub use exec::{own_work, GRACE};
pub use session::{CopyWatch, OwnSessions, Session, Watch};

/// How patches are applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// No statement may run longer than this; it is cancelled on the server.
    pub statement_cap: Duration,
}

/// A lock first seen after a statement, on a relation that existed before the patch.
#[derive(Debug, Clone, Serialize)]
pub struct LockHeld {
    #[serde(skip)]
    pub oid: u32,
    pub relation: String,
    pub mode: LockMode,
    /// From when it was granted (the start of the statement that took it,
    /// unless the probe saw that statement wait for it) to the end of its
    /// transaction.
    pub held_seconds: f64,
    /// How long the statement that took it waited for it first: measured
    /// only when the probe's long reader held it (`--probe-long-query`).
    #[serde(skip_serializing_if = "crate::measure::is_zero")]
    pub waited_seconds: f64,
}

/// For `skip_serializing_if`: a duration that was not measured.
pub fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// A relation whose storage was replaced by a statement.
#[derive(Debug, Clone, Serialize)]
pub struct Rewrite {
    #[serde(skip)]
    pub oid: u32,
    pub relation: String,
    pub kind: &'static str,
    /// Rows before the statement (planner estimate).
    pub rows: i64,
    /// Bytes before the statement.
    pub bytes: i64,
}

/// Catalogue facts read just before a statement that needs them.
#[derive(Debug, Clone, Default)]
pub struct PreCheck {
    /// Static relation names resolved to oids (`None` when not found).
    pub resolved: HashMap<String, Option<u32>>,
    /// SET NOT NULL on a column already NOT NULL or proven by a valid CHECK.
    pub not_null_proven: HashMap<String, bool>,
    /// VALIDATE CONSTRAINT: (already validated, contype).
    pub constraint: HashMap<String, (bool, String)>,
    /// What the transaction had read before the statement of each table it
    /// validates (and their leaf partitions) and of each pre-existing table
    /// held under a lock that blocks the application.
    pub blocks_before: HashMap<u32, Reads>,
    /// The leaf partitions of each partitioned table it validates.
    pub partitions: HashMap<u32, Vec<u32>>,
    /// The unique keys (column names) of the tables it writes by a WHERE
    /// clause comparing columns to constants, while its transaction holds
    /// a lock that blocks the application.
    pub unique_keys: HashMap<u32, Vec<Vec<String>>>,
}

/// One statement as it ran.
#[derive(Debug, Clone)]
pub struct StatementRun {
    /// Index into the patch's statements.
    pub index: usize,
    pub seconds: f64,
    /// Rows reported by the command tag (UPDATE 42 → 42).
    pub rows_affected: Option<u64>,
    /// Ran in autocommit mode, outside any transaction block.
    pub outside_transaction: bool,
    /// Locks on pre-existing relations held when the statement finished,
    /// including those taken by earlier statements of the same transaction.
    pub held: Vec<(u32, LockMode)>,
    /// Locks this statement took, with hold times.
    pub locks: Vec<LockHeld>,
    pub rewrites: Vec<Rewrite>,
    /// New indexes on pre-existing tables: (table oid, index name).
    pub new_indexes: Vec<(u32, String)>,
    /// `lock_timeout` in effect when the statement started.
    pub lock_timeout: String,
    pub pre: PreCheck,
    /// What the statement read of each table in `pre.blocks_before` (known
    /// only inside a transaction).
    pub scanned_blocks: HashMap<u32, Reads>,
    /// The statement's execution time by the server's clock, when known.
    pub server_seconds: Option<f64>,
    /// When it was sent, by the monotonic clock (to place what the probe
    /// saw while it ran).
    pub started: Option<Instant>,
}

/// Where a patch failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchError {
    pub message: String,
    pub sqlstate: Option<String>,
    /// The line the error points at (the server's error position mapped into the file).
    pub line: usize,
    /// The first line of the failing statement.
    pub statement_line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Earlier transactions of this patch were committed before it failed.
    #[serde(default)]
    pub partially_applied: bool,
    /// downtime stopped the statement (past its cap, or on an abort): the
    /// step of the escalation that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<Ended>,
}

/// The run cannot go on past this patch: aborted while it ran, or the
/// staging server (or downtime's connection to it) did not survive it.
#[derive(Debug, Clone)]
pub struct Halt {
    pub reason: Abort,
    /// The statement it happened at (index into the patch's statements).
    pub index: usize,
    /// How a statement downtime stopped was ended.
    pub ended_by: Option<Ended>,
    /// What happened, for a broken server or an infrastructure failure.
    pub message: Option<String>,
}

/// Everything measured while applying one patch.
#[derive(Debug, Clone, Default)]
pub struct PatchRun {
    pub statements: Vec<StatementRun>,
    /// Time spent in COMMITs issued by downtime.
    pub commit_seconds: f64,
    /// Time spent keeping the tool's books (its table): not the patch's time.
    pub bookkeeping_seconds: f64,
    pub error: Option<PatchError>,
    pub snapshot: Snapshot,
    /// Indexes left INVALID by this patch.
    pub invalid_indexes: Vec<String>,
    /// The run stops at this patch (aborted, or the server unfit to go on).
    pub halt: Option<Halt>,
    /// The session applying the patch is gone (the copy is no longer
    /// reachable on it): later patches cannot run on it.
    pub connection_lost: bool,
    /// What simulated application traffic suffered while it applied
    /// (`--probe`).
    pub probe: Option<probe::PatchProbe>,
}

impl PatchRun {
    /// Statement time plus commits: the patch's apply time.
    pub fn seconds(&self) -> f64 {
        self.statements.iter().map(|s| s.seconds).sum::<f64>() + self.commit_seconds
    }

    /// The patch failed: a statement failed, or it left an INVALID index
    /// behind (which fails the patch whatever else happened).
    pub fn failed(&self) -> bool {
        self.error.is_some() || !self.invalid_indexes.is_empty()
    }

    /// The server's time for the whole patch, when it recorded every statement.
    pub fn server_seconds(&self) -> Option<f64> {
        self.statements.iter().map(|s| s.server_seconds).sum()
    }
}
