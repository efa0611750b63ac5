//! `blocking-index-build`: an index is built (or rebuilt) over a populated
//! table while a lock that blocks the application is held.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::estimate::WorkKind;
use crate::patch::Fact;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::BlockingIndexBuild,
    severity: Severity::Cold,
    why: "A plain CREATE INDEX holds SHARE on the table, which blocks INSERT, UPDATE and DELETE for the whole build; ADD PRIMARY KEY, ADD UNIQUE and ADD EXCLUDE build their index under ACCESS EXCLUSIVE; REINDEX holds SHARE on the table and ACCESS EXCLUSIVE on the index. CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY take SHARE UPDATE EXCLUSIVE instead, which does not block reads or writes, at the price of two table scans and running outside a transaction block. downtime counts a build where an index gets storage of its own: an index PostgreSQL re-creates on its old file (a column type change that needs no rebuild, such as varchar(10) to varchar(20)) and an index of a partitioned table (which has no storage; its partitions' indexes are the builds) build nothing.",
    summary: "builds an index on a populated table (CREATE INDEX, ADD PRIMARY KEY/UNIQUE, REINDEX) under a lock that blocks writes",
    recipe: "use CREATE INDEX CONCURRENTLY in a patch of its own; for a constraint, CREATE UNIQUE INDEX CONCURRENTLY then ADD CONSTRAINT … USING INDEX",
    measured: Measured::Stalls,
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let concurrently = cx.statement.analysis.facts.iter().any(|f| {
        matches!(
            f,
            Fact::BuildsIndex {
                concurrently: true,
                ..
            }
        )
    });
    if concurrently {
        return Vec::new();
    }
    let rewritten_tables: Vec<u32> = cx
        .measured
        .rewrites
        .iter()
        .filter(|r| cx.run.snapshot.get(r.oid).is_some_and(|r| r.is_table()))
        .map(|r| r.oid)
        .collect();
    // (table oid, index name, rebuilt rather than new)
    let mut builds: Vec<(u32, String, bool)> = cx
        .measured
        .new_indexes
        .iter()
        // A table rewrite re-creates the indexes of the changed columns.
        .filter(|(t, _)| !rewritten_tables.contains(t))
        .map(|(t, name)| (*t, name.clone(), false))
        .collect();
    for rw in &cx.measured.rewrites {
        if let Some(table) = cx.run.snapshot.get(rw.oid).and_then(|r| r.table) {
            // Indexes rebuilt as part of a table rewrite are that rewrite's cost.
            if !rewritten_tables.contains(&table) {
                builds.push((table, rw.relation.clone(), true));
            }
        }
    }
    let mut out = Vec::new();
    for (table, index, rebuilt) in builds {
        let Some((rel, size)) = cx.populated_table(table) else {
            continue;
        };
        let Some(lock) = cx.blocking_lock_for(table) else {
            continue;
        };
        out.push(
            INFO.reason(
                Some(cx.statement.line),
                Some(&rel.name),
                Some(lock.mode),
                format!(
                    "{} index {} over {} ({}) while holding {} until the build ends",
                    if rebuilt { "rebuilds" } else { "builds" },
                    index,
                    rel.name,
                    size.describe(),
                    cx.describe_lock(&lock)
                ),
            )
            .sized_work(
                &size,
                cx.predict(&size, WorkKind::IndexBuild),
                cx.measured.seconds,
            ),
        );
    }
    out
}
