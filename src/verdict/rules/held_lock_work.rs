//! `held-lock-work`: a statement does work that grows with a populated table
//! while its transaction still holds, from an earlier statement, a lock on
//! that table that blocks the application.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::estimate::WorkKind;
use crate::patch::Fact;
use crate::rule_id::RuleId;
use crate::verdict::size::rows_text;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::HeldLockWork,
    severity: Severity::Cold,
    why: "A lock is held until the transaction that took it ends, not until the statement that took it ends. ALTER TABLE takes ACCESS EXCLUSIVE (ADD COLUMN, ADD CONSTRAINT … NOT VALID), LOCK TABLE and CREATE INDEX take SHARE or stronger: any later statement of the same transaction that reads or writes a large part of that table — a backfill UPDATE after ADD COLUMN, a DELETE, an INSERT … SELECT, a count — runs while every application query on the table waits, however brief the statement that took the lock was. downtime counts what each statement read of every pre-existing table its transaction holds such a lock on (sequential scans started, rows read and written).",
    summary: "work that grows with a populated table (a backfill, a purge, a scan) under a blocking lock an earlier statement of the same transaction took on it",
    recipe: "commit the schema change first: run the backfill in its own transactions (batches of a few thousand rows) after the ALTER is committed, in a later patch",
    measured: Measured::Stalls,
};

/// A statement's rows read or written below this fraction of a table is a
/// lookup, not work that grows with it.
const PASS_FRACTION: f64 = 0.5;

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    let affected = cx.measured.rows_affected.unwrap_or(0) as f64;
    let mut oids: Vec<u32> = cx.measured.scanned_blocks.keys().copied().collect();
    oids.sort_unstable();
    for oid in oids {
        let Some(held) = cx.blocking_lock_for(oid).filter(|h| h.relation.oid == oid) else {
            continue;
        };
        // A lock this statement took itself is judged by the rules of the
        // work it does (rewrite, build, validation) and by long-lock.
        if held.taken_at == cx.statement.line {
            continue;
        }
        let Some((table, size)) = cx.populated_table(oid) else {
            continue;
        };
        let reads = cx.measured.scanned_blocks[&oid];
        let write = writes(cx, oid);
        if pinned_by_key(cx, oid) {
            continue;
        }
        let here = size.staging_rows;
        let grows = if here >= 1.0 {
            let pinned = write.is_some_and(|whole| !whole) && affected <= 1.0;
            let touched = (reads.tuples as f64).max(affected);
            !pinned
                && (reads.scans > 0
                    || touched >= PASS_FRACTION * here
                    || touched >= cx.options.bulk_write_fraction * here)
        } else {
            // Nothing to count on an empty copy: a write without a WHERE
            // clause, or a sequential scan started (which the plan keeps
            // where nothing but the whole table can answer the statement),
            // is a pass over whatever rows production has.
            write == Some(true) || reads.scans > 0
        };
        if !grows {
            continue;
        }
        let verb = cx
            .statement
            .analysis
            .facts
            .iter()
            .find_map(|f| match f {
                Fact::Writes { verb, .. } => Some(*verb),
                _ => None,
            })
            .unwrap_or("the statement");
        let kind = match write {
            Some(_) => WorkKind::Write,
            None => WorkKind::Scan,
        };
        let what = if reads.scans > 0 {
            format!("scans {}", table.name)
        } else {
            format!(
                "touches {} rows of {}",
                rows_text((reads.tuples as f64).max(affected)),
                table.name
            )
        };
        out.push(
            INFO.reason(
                Some(cx.statement.line),
                Some(&table.name),
                Some(held.mode),
                format!(
                    "{verb} at line {} {what} ({}) in {:.3} s while line {}'s {} on {} is still held: {} until the transaction ends",
                    cx.statement.line,
                    size.describe(),
                    cx.measured.seconds,
                    held.taken_at,
                    held.mode,
                    table.name,
                    held.mode.effect()
                ),
            )
            .sized_work(&size, cx.predict(&size, kind), cx.measured.seconds),
        );
    }
    out
}

/// The statement writes `oid` where its WHERE clause compares every column
/// of a unique key to a constant: one row, whatever the table's size (on
/// an empty copy the planner scans even then).
pub(super) fn pinned_by_key(cx: &StatementContext<'_>, oid: u32) -> bool {
    let Some(keys) = cx.measured.pre.unique_keys.get(&oid) else {
        return false;
    };
    cx.statement.analysis.facts.iter().any(|f| match f {
        Fact::Writes { rel, keyed, .. } if cx.resolved(rel).is_some_and(|r| r.oid == oid) => keys
            .iter()
            .any(|key| !key.is_empty() && key.iter().all(|c| keyed.contains(c))),
        _ => false,
    })
}

/// Whether the statement writes `oid` by name: `Some(whole table)`.
fn writes(cx: &StatementContext<'_>, oid: u32) -> Option<bool> {
    cx.statement.analysis.facts.iter().find_map(|f| match f {
        Fact::Writes {
            rel, whole_table, ..
        } if cx.resolved(rel).is_some_and(|r| r.oid == oid) => Some(*whole_table),
        _ => None,
    })
}
