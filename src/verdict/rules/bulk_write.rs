//! `bulk-write`: one transaction updates or deletes a large part of a table,
//! row-locking every row it touches until the patch commits.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::patch::Fact;
use crate::rule_id::RuleId;
use crate::verdict::size::{rows_text, Basis};

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::BulkWrite,
    severity: Severity::Cold,
    why: "An UPDATE or DELETE takes only ROW EXCLUSIVE on the table, which does not block other writers as such, but it locks every row it touches until the transaction commits: application writes to any of those rows wait for the whole patch. It also writes a new version of every row (table bloat, WAL volume, replication lag). The threshold is --bulk-write-fraction (default 10 % of the table's rows) or no WHERE clause at all, and at least --bulk-write-rows rows (default 1000) touched where the patch will run: with --prod-stats, the measured fraction of production's rows; a one-row fix of a small lookup table is not a bulk write.",
    summary: "UPDATE or DELETE of a large part of a populated table in one transaction (every touched row stays locked until commit)",
    recipe: "backfill in batches of a few thousand rows, each in its own transaction, outside the schema patch",
    measured: Measured::Stalls,
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    let affected = cx.measured.rows_affected.unwrap_or(0) as f64;
    for fact in &cx.statement.analysis.facts {
        let Fact::Writes {
            rel,
            verb,
            whole_table,
            ..
        } = fact
        else {
            continue;
        };
        let Some(table) = cx.resolved(rel).filter(|r| r.is_table()) else {
            continue;
        };
        let size = cx.size(table);
        if !size.has_rows() {
            continue;
        }
        let here = size.staging_rows;
        let no_where = if *whole_table {
            ", with no WHERE clause"
        } else {
            ""
        };
        if super::held_lock_work::pinned_by_key(cx, table.oid) {
            // One row by its unique key, whatever the table's size.
            continue;
        }
        let Some(fraction) = fraction(affected, here, *whole_table) else {
            // Staging has none of its rows: how many the WHERE clause
            // touches where it will run cannot be told from here.
            let mut r = INFO.reason(
                Some(cx.statement.line),
                Some(&table.name),
                None,
                format!(
                    "{verb} on {} ({}): staging has none of its rows, so how many the WHERE clause \
                     touches in production cannot be measured here; it is a bulk write if that is \
                     {:.0} % of the rows or more",
                    table.name,
                    size.describe(),
                    cx.options.bulk_write_fraction * 100.0
                ),
            );
            r.severity = Severity::Note;
            r.size = Some(size);
            out.push(r);
            continue;
        };
        // The rows it touches where the patch will run.
        let touched = match size.basis {
            Basis::Production => fraction * size.rows(),
            Basis::Unknown => f64::INFINITY,
            _ => affected,
        };
        let large = (*whole_table || fraction >= cx.options.bulk_write_fraction)
            && touched >= cx.options.bulk_write_rows
            && (affected > 0.0 || here <= 0.0);
        if !large {
            continue;
        }
        let scale = match size.basis {
            Basis::Production => format!(", about {} rows in production", rows_text(touched)),
            _ => String::new(),
        };
        let what = if here <= 0.0 {
            format!(
                "{verb}{no_where} touches every row of {} ({})",
                table.name,
                size.describe()
            )
        } else {
            format!(
                "{verb} touches {} of {} of {} ({:.0} %){scale}{no_where}",
                rows_text(affected),
                size.describe(),
                table.name,
                (fraction * 100.0).min(100.0),
            )
        };
        out.push(
            INFO.reason(
                Some(cx.statement.line),
                Some(&table.name),
                None,
                format!(
                    "{what} in one transaction; writers to those rows wait until the patch commits"
                ),
            )
            .sized(&size),
        );
    }
    out
}

/// The fraction of the table's rows the statement touched: measured when
/// staging holds rows, all of them without a WHERE clause, else unknown.
fn fraction(affected: f64, rows_here: f64, whole_table: bool) -> Option<f64> {
    if whole_table {
        Some(1.0)
    } else if rows_here > 0.0 {
        Some((affected / rows_here).min(1.0))
    } else {
        None
    }
}
