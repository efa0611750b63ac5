//! `long-lock`: a lock that blocks the application is held on a pre-existing
//! table for longer than the live-lock threshold, whatever the work under it.
//! The hold time is measured, so the table's size does not matter here.

use std::collections::BTreeSet;

use super::{Measured, Reason, RuleInfo, Severity};
use crate::measure::PatchRun;
use crate::patch::Patch;
use crate::rule_id::RuleId;
use crate::verdict::ClassifyOptions;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::LongLock,
    severity: Severity::Cold,
    why: "Whatever the work, a lock that conflicts with the application's statements makes them wait for as long as it is held: until the end of the transaction that took it. An explicit LOCK TABLE followed by slow work, or a brief ALTER TABLE followed by a long data change in the same transaction, blocks the application for the whole transaction. The threshold is --live-lock-threshold (default 1 s on staging; production is usually slower).",
    summary: "holds a lock that blocks the application on an existing table for longer than the live-lock threshold (default 1 s) on staging",
    recipe: "keep blocking locks short: move slow work out of the transaction that holds the lock, or split the patch",
    measured: Measured::Stalls,
};

/// `explained` lists relations that already have a cold reason: the long
/// lock on them is that reason's cost, not news.
pub fn check(
    patch: &Patch,
    run: &PatchRun,
    options: &ClassifyOptions,
    explained: &[String],
) -> Vec<Reason> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for sr in &run.statements {
        // Strongest mode first, so one reason per relation names the worst lock.
        let mut locks: Vec<_> = sr.locks.iter().collect();
        locks.sort_by_key(|l| std::cmp::Reverse(l.mode));
        for lock in locks {
            if !lock.mode.blocks_application()
                || lock.held_seconds <= options.live_lock_threshold_seconds
                || !run.snapshot.get(lock.oid).is_some_and(|r| r.is_table())
                || explained.contains(&lock.relation)
                || !seen.insert(lock.oid)
            {
                continue;
            }
            out.push(INFO.reason(
                Some(patch.statements[sr.index].line),
                Some(&lock.relation),
                Some(lock.mode),
                format!(
                    "holds {} on {} for {:.2} s (threshold {:.2} s), which {} for that long",
                    lock.mode,
                    lock.relation,
                    lock.held_seconds,
                    options.live_lock_threshold_seconds,
                    lock.mode.effect()
                ),
            ));
        }
    }
    out
}
