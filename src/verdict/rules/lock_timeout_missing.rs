//! `lock-timeout-missing`: a live patch takes a lock that blocks the
//! application with no `lock_timeout`: queued behind a long transaction, it
//! blocks everyone queued behind it.

use std::collections::BTreeSet;

use super::{Measured, Reason, RuleInfo, Severity};
use crate::measure::PatchRun;
use crate::patch::Patch;
use crate::pg::locks::LockMode;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::LockTimeoutMissing,
    severity: Severity::Warning,
    why: "Even a lock held for milliseconds must first be granted: an ALTER TABLE queued behind a long-running query waits for it, and every application query that arrives meanwhile queues behind the ALTER TABLE. With lock_timeout set, the patch gives up after that long instead of stalling the application, and can be retried.",
    summary: "a live patch takes a lock that blocks the application without lock_timeout set",
    recipe: "start the patch with SET lock_timeout = '2s' (and retry on failure) so it gives up instead of queueing behind a long transaction",
    measured: Measured::NotByItself("the lock itself is brief: the stall needs a long-running query ahead of it, which --probe-long-query provides (see tests/probe.rs)"),
};

/// Holding `strong`, asking for `weak` on the same relation makes no one
/// wait that `strong` did not already: everything `weak` conflicts with,
/// `strong` conflicts with too.
fn covers(strong: LockMode, weak: LockMode) -> bool {
    LockMode::ALL
        .iter()
        .all(|&m| !weak.conflicts_with(m) || strong.conflicts_with(m))
}

pub fn check(patch: &Patch, run: &PatchRun) -> Vec<Reason> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for sr in &run.statements {
        let timeout_off = sr.lock_timeout.trim() == "0";
        for lock in &sr.locks {
            let is_table = run.snapshot.get(lock.oid).is_some_and(|r| r.is_table());
            // One warning per relation for the strongest lock: a weaker one
            // the same statement also holds (SHARE beside ACCESS EXCLUSIVE
            // for a unique constraint), or one a stronger lock warned about
            // already covers, queues behind nothing new.
            let covered = sr.locks.iter().any(|other| {
                other.oid == lock.oid && other.mode != lock.mode && covers(other.mode, lock.mode)
            }) || seen
                .iter()
                .any(|&(oid, mode)| oid == lock.oid && covers(mode, lock.mode));
            if !timeout_off || !is_table || !lock.mode.blocks_application() || covered {
                continue;
            }
            seen.insert((lock.oid, lock.mode));
            out.push(INFO.reason(
                Some(patch.statements[sr.index].line),
                Some(&lock.relation),
                Some(lock.mode),
                format!(
                    "takes {} on {} (briefly, {:.3} s on staging) with lock_timeout off: if it waits behind a long transaction, it {} for everyone meanwhile",
                    lock.mode,
                    lock.relation,
                    lock.held_seconds,
                    lock.mode.effect()
                ),
            ));
        }
    }
    out
}
