//! `long-lock`: a lock that blocks the application is held on a pre-existing
//! table for longer than the live-lock threshold, whatever the work under it.
//! The hold time is measured, so the table's size does not matter here.

use std::collections::BTreeSet;

use super::{seconds_text, Measured, Reason, RuleInfo, Severity};
use crate::measure::PatchRun;
use crate::patch::{Fact, Patch};
use crate::rule_id::RuleId;
use crate::verdict::ClassifyOptions;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::LongLock,
    severity: Severity::Cold,
    why: "Whatever the work, a lock that conflicts with the application's statements makes them wait for as long as it is held: until the end of the transaction that took it. An explicit LOCK TABLE followed by slow work, or a brief ALTER TABLE followed by a long data change in the same transaction, blocks the application for the whole transaction. The threshold is --live-lock-threshold (default 1 s). With --prod-stats the statements inside the lock's span are also judged at production's sizes: a lock held 0.2 s here around a backfill that grows to 4 s at production's rows is long.",
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
    let threshold = options.live_lock_threshold_seconds;
    for (position, sr) in run.statements.iter().enumerate() {
        // Strongest mode first, so one reason per relation names the worst lock.
        let mut locks: Vec<_> = sr.locks.iter().collect();
        locks.sort_by_key(|l| std::cmp::Reverse(l.mode));
        for lock in locks {
            let Some(rel) = run.snapshot.get(lock.oid).filter(|r| r.is_table()) else {
                continue;
            };
            if !lock.mode.blocks_application()
                || explained.contains(&lock.relation)
                || seen.contains(&lock.oid)
            {
                continue;
            }
            let size = options.sizes.of(rel, &patch.small_tables);
            if !size.has_rows() && lock.held_seconds <= threshold {
                continue;
            }
            // The work inside the lock's span, at production's sizes.
            let extra = grown_work(patch, run, options, position, (lock.oid, lock.mode));
            let predicted = lock.held_seconds + extra;
            if lock.held_seconds <= threshold && predicted <= threshold {
                continue;
            }
            seen.insert(lock.oid);
            let production = if lock.held_seconds <= threshold {
                format!(
                    "for about {} at production's size ({:.2} s here, threshold {threshold:.2} s)",
                    seconds_text(predicted),
                    lock.held_seconds
                )
            } else {
                format!(
                    "for {:.2} s (threshold {threshold:.2} s)",
                    lock.held_seconds
                )
            };
            out.push(INFO.reason(
                Some(patch.statements[sr.index].line),
                Some(&lock.relation),
                Some(lock.mode),
                format!(
                    "holds {} on {} from this statement to the end of its transaction {production}, which {} for that long",
                    lock.mode,
                    lock.relation,
                    lock.mode.effect()
                ),
            ));
        }
    }
    out.extend(row_locks(patch, run, options, explained, &seen));
    out
}

/// On a copy without a table's rows, an UPDATE or DELETE locks none: what
/// it would lock in production stays locked until its transaction ends.
/// Held past the threshold, writers to those rows wait that long.
fn row_locks(
    patch: &Patch,
    run: &PatchRun,
    options: &ClassifyOptions,
    explained: &[String],
    seen: &BTreeSet<u32>,
) -> Vec<Reason> {
    let threshold = options.live_lock_threshold_seconds;
    let mut out = Vec::new();
    for sr in &run.statements {
        let st = &patch.statements[sr.index];
        for fact in &st.analysis.facts {
            let Fact::Writes { rel, verb, .. } = fact else {
                continue;
            };
            let Some(oid) = sr.pre.resolved.get(&rel.to_string()).copied().flatten() else {
                continue;
            };
            let Some(table) = run.snapshot.get(oid).filter(|r| r.is_table()) else {
                continue;
            };
            let size = options.sizes.of(table, &patch.small_tables);
            // Where staging holds rows, what they show (and the probe
            // measures) stands.
            if size.staging_rows >= 1.0 || !size.has_rows() || seen.contains(&oid) {
                continue;
            }
            let held = sr
                .locks
                .iter()
                .filter(|l| l.oid == oid)
                .map(|l| l.held_seconds);
            let Some(held) = held.reduce(f64::max).filter(|h| *h > threshold) else {
                continue;
            };
            if explained.contains(&table.name) {
                continue;
            }
            out.push(
                INFO.reason(
                    Some(st.line),
                    Some(&table.name),
                    None,
                    format!(
                        "{verb} at line {} writes rows of {} ({}) that stay locked for {held:.2} s, until its transaction ends (threshold {threshold:.2} s): writers to them wait that long",
                        st.line,
                        table.name,
                        size.describe()
                    ),
                )
                .sized(&size),
            );
        }
    }
    out
}

/// The seconds the statements from `from` on, while `lock` is still held,
/// would take beyond what they took here, at production's sizes of the
/// tables their work grows with.
fn grown_work(
    patch: &Patch,
    run: &PatchRun,
    options: &ClassifyOptions,
    from: usize,
    lock: (u32, crate::pg::LockMode),
) -> f64 {
    let rest = run.statements[from + 1..]
        .iter()
        .take_while(|s| !run.statements[from].outside_transaction && s.held.contains(&lock));
    std::iter::once(&run.statements[from])
        .chain(rest)
        // A write by a WHERE clause on a table staging holds no rows of
        // touches an unknown part of it: not counted as the whole table.
        .filter(|s| !filtered_write_on_empty(patch, run, s))
        .filter_map(|s| {
            let work = crate::estimate::work::work_of(patch, run, s)?;
            let rel = run
                .snapshot
                .relations
                .values()
                .find(|r| r.name == work.relation)?;
            let size = options.sizes.of(rel, &patch.small_tables);
            let kind = work.kind?;
            Some(options.sizes.predict(&size, kind, s.seconds)?.seconds - s.seconds)
        })
        .map(|extra| extra.max(0.0))
        .sum()
}

/// `s` is an UPDATE or DELETE with a WHERE clause of a table staging holds
/// no rows of.
fn filtered_write_on_empty(
    patch: &Patch,
    run: &PatchRun,
    s: &crate::measure::StatementRun,
) -> bool {
    patch.statements[s.index]
        .analysis
        .facts
        .iter()
        .any(|f| match f {
            Fact::Writes {
                rel,
                whole_table: false,
                ..
            } => s
                .pre
                .resolved
                .get(&rel.to_string())
                .copied()
                .flatten()
                .and_then(|oid| run.snapshot.get(oid))
                .is_some_and(|r| !r.populated()),
            _ => false,
        })
}
