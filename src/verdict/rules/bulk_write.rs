//! `bulk-write`: one transaction updates or deletes a large part of a table,
//! row-locking every row it touches until the patch commits.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::patch::Fact;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::BulkWrite,
    severity: Severity::Cold,
    why: "An UPDATE or DELETE takes only ROW EXCLUSIVE on the table, which does not block other writers as such, but it locks every row it touches until the transaction commits: application writes to any of those rows wait for the whole patch. It also writes a new version of every row (table bloat, WAL volume, replication lag). The threshold is --bulk-write-fraction (default 10 % of the table's rows) or no WHERE clause at all.",
    summary: "UPDATE or DELETE of a large part of a populated table in one transaction (every touched row stays locked until commit)",
    recipe: "backfill in batches of a few thousand rows, each in its own transaction, outside the schema patch",
    measured: Measured::Stalls,
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    let affected = cx.measured.rows_affected.unwrap_or(0);
    for fact in &cx.statement.analysis.facts {
        let Fact::Writes {
            rel,
            verb,
            whole_table,
        } = fact
        else {
            continue;
        };
        let Some(table) = cx.resolved(rel).filter(|r| r.is_table() && r.populated()) else {
            continue;
        };
        let fraction = if table.rows > 0.0 {
            affected as f64 / table.rows
        } else {
            1.0
        };
        let large = affected > 0 && (*whole_table || fraction >= cx.options.bulk_write_fraction);
        if !large {
            continue;
        }
        out.push(INFO.reason(
            Some(cx.statement.line),
            Some(&table.name),
            None,
            format!(
                "{verb} touches {affected} of about {:.0} rows of {} ({:.0} %){} in one transaction; \
                 writers to those rows wait until the patch commits",
                table.rows,
                table.name,
                (fraction * 100.0).min(100.0),
                if *whole_table { ", with no WHERE clause" } else { "" },
            ),
        ));
    }
    out
}
