//! `invalid-index`: the patch leaves an INVALID index behind (a failed or
//! interrupted concurrent build): it costs writes and is never used.

use super::{Measured, Reason, RuleInfo, Severity};
use crate::measure::PatchRun;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::InvalidIndex,
    severity: Severity::Error,
    why: "A CREATE INDEX CONCURRENTLY (or REINDEX CONCURRENTLY) that fails — a duplicate in a unique build, a deadlock, a cancel — leaves the index behind marked INVALID: it is maintained on every write but never used by queries, and a retry with the same name fails until it is dropped. An index created ON ONLY a partitioned table is invalid by design until an index of every partition is attached to it: it is not counted.",
    summary: "leaves an INVALID index behind (a failed CREATE INDEX CONCURRENTLY)",
    recipe: "drop the invalid index (DROP INDEX CONCURRENTLY) and build it again; check for duplicates before a unique build",
    measured: Measured::NotByItself("a failed concurrent build does not block the application; it leaves an index to drop"),
};

pub fn check(run: &PatchRun) -> Vec<Reason> {
    run.invalid_indexes
        .iter()
        .map(|name| {
            INFO.reason(
                None,
                Some(name),
                None,
                format!("index {name} is INVALID after the patch: it slows every write and is never used"),
            )
        })
        .collect()
}
