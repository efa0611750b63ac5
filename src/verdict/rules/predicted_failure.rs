//! `predicted-failure`: production's statistics prove that a statement which
//! succeeded on staging fails on production's rows.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::estimate::prod_stats::TableStats;
use crate::patch::statement::Requirement;
use crate::patch::Fact;
use crate::rule_id::RuleId;
use crate::verdict::size::{rows_text, Basis};

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::PredictedFailure,
    severity: Severity::Error,
    why: "A staging copy without production's rows accepts what production refuses: a unique index over a column with duplicates (the build fails; CONCURRENTLY leaves an INVALID index behind), SET NOT NULL or a primary key over a column with NULLs, ADD COLUMN … NOT NULL without a default on a table with rows. With --prod-stats downtime reads production's planner statistics: ANALYZE sets n_distinct to minus (1 - null_frac) when its sample of real rows held no duplicate, so fewer distinct values than non-NULL rows means its sample held one; null_frac above 0 means it sampled a NULL. A failure that cannot be told without data values (a cast some rows do not survive) is not predicted.",
    summary: "production's statistics prove the statement fails on production's rows (duplicates under a unique index, NULLs under NOT NULL, a NOT NULL column without a default)",
    recipe: "fix the data first (remove duplicates, fill NULLs, in batches), or give the new column a default; then apply the patch",
    measured: Measured::NotByItself("it fails on production's rows, not on staging's, so nothing blocks on staging"),
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    for fact in &cx.statement.analysis.facts {
        let Fact::Requires { rel, requirement } = fact else {
            continue;
        };
        let Some(table) = cx.resolved(rel).filter(|r| r.is_table()) else {
            continue;
        };
        let size = cx.size(table);
        if let Requirement::Converts { column } = requirement {
            out.extend(unknowable(cx, table, &size, column));
            continue;
        }
        if size.basis != Basis::Production {
            continue;
        }
        let Some(stats) = cx
            .options
            .sizes
            .production
            .as_ref()
            .and_then(|p| p.table(&table.name))
        else {
            continue;
        };
        let Some(why) = proof(stats, requirement) else {
            continue;
        };
        out.push(
            INFO.reason(
                Some(cx.statement.line),
                Some(&table.name),
                None,
                format!("predicted to fail in production: {why}"),
            )
            .sized(&size),
        );
    }
    out
}

/// What in production's statistics proves `requirement` fails, if anything.
fn proof(t: &TableStats, requirement: &Requirement) -> Option<String> {
    let rows = t.rows?;
    if rows < 1.0 {
        return None;
    }
    match requirement {
        Requirement::NewNotNull { column } => Some(format!(
            "the new column {column} is NOT NULL without a default, and {} holds about {} rows, \
             each of which would get NULL",
            t.name,
            rows_text(rows)
        )),
        Requirement::NotNull { column } => {
            let c = t.column(column)?;
            (c.null_frac > 0.0).then(|| {
                format!(
                    "{}.{column} has NULLs (null_frac {:.4}: about {} of {} rows)",
                    t.name,
                    c.null_frac,
                    rows_text((c.null_frac * rows).max(1.0)),
                    rows_text(rows)
                )
            })
        }
        Requirement::Converts { .. } => None,
        Requirement::Unique { columns } => {
            let [column] = &columns[..] else {
                return None;
            };
            let c = t.column(column)?;
            let non_null = c.non_null_rows(rows);
            let distinct = c.distinct_values(rows);
            // ANALYZE writes -(1 - null_frac) exactly when its sample held no
            // duplicate; anything less is a duplicate it saw.
            let unique = -(1.0 - c.null_frac);
            let seen_duplicate = if c.n_distinct < 0.0 {
                c.n_distinct > unique + 1e-6
            } else {
                distinct < non_null * (1.0 - 1e-6)
            };
            (seen_duplicate && non_null >= 2.0).then(|| {
                format!(
                    "{}.{column} has duplicates (n_distinct {}: about {} distinct values in {} non-NULL rows), \
                     so a unique index over it cannot be built",
                    t.name,
                    c.n_distinct,
                    rows_text(distinct),
                    rows_text(non_null)
                )
            })
        }
    }
}

/// A type change over rows staging does not hold: whether each converts
/// cannot be told from statistics, and is said so (a note), not passed
/// over in silence.
fn unknowable(
    cx: &StatementContext<'_>,
    table: &crate::pg::Relation,
    size: &crate::verdict::size::Size,
    column: &str,
) -> Option<Reason> {
    if size.staging_rows >= 1.0 || !size.has_rows() {
        return None;
    }
    let mut r = INFO.reason(
        Some(cx.statement.line),
        Some(&table.name),
        None,
        format!(
            "whether every value of {}.{column} converts to its new type cannot be told here: \
             staging holds none of its rows ({}), and statistics hold no values to try",
            table.name,
            size.describe()
        ),
    );
    r.severity = Severity::Note;
    r.size = Some(size.clone());
    Some(r)
}
