//! `table-rewrite`: a statement rewrote a populated table while holding a lock
//! that blocks the application.

use super::{bytes, Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::estimate::WorkKind;
use crate::patch::Fact;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::TableRewrite,
    severity: Severity::Cold,
    why: "Forms that change how rows are stored write a new copy of the table and all its indexes while holding ACCESS EXCLUSIVE: a type change that is not binary-coercible (int to bigint), ADD COLUMN with a volatile default (gen_random_uuid(), clock_timestamp(), a serial) or a stored generated column, SET LOGGED/UNLOGGED, SET TABLESPACE, SET ACCESS METHOD, VACUUM FULL and CLUSTER. Since PostgreSQL 11 a constant default is stored in the catalogue and does not rewrite. downtime sees the rewrite as a new relfilenode; TRUNCATE also gives every table it empties (those named, their partitions, those CASCADE reaches) a new relfilenode, but copies nothing, and is not a rewrite.",
    summary: "rewrites a populated table (type change, volatile default, SET LOGGED, VACUUM FULL, CLUSTER…) under a lock that blocks the application",
    recipe: "avoid the rewrite: add a new nullable column (or one with a constant default), backfill it in batches, then switch over",
    measured: Measured::Stalls,
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    // New storage from TRUNCATE starts empty, for every table it reaches.
    let truncates = cx
        .statement
        .analysis
        .facts
        .iter()
        .any(|f| matches!(f, Fact::Truncates { .. }));
    if truncates {
        return Vec::new();
    }
    let mut out = Vec::new();
    for rw in &cx.measured.rewrites {
        let Some((rel, size)) = cx.populated_table(rw.oid) else {
            continue;
        };
        let Some(lock) = cx.blocking_lock_for(rel.oid) else {
            continue;
        };
        out.push(
            INFO.reason(
                Some(cx.statement.line),
                Some(&rel.name),
                Some(lock.mode),
                format!(
                    "rewrites {} {} ({}, {} here) while holding {} for the whole rewrite",
                    rel.kind_name(),
                    rel.name,
                    size.describe(),
                    bytes(rw.bytes),
                    cx.describe_lock(&lock)
                ),
            )
            .sized_work(
                &size,
                cx.predict(&size, WorkKind::Rewrite),
                cx.measured.seconds,
            ),
        );
    }
    out
}
