//! `set-not-null-scan`: SET NOT NULL scans a populated table under ACCESS
//! EXCLUSIVE unless a validated CHECK constraint already proves the column.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::patch::statement::Validation;
use crate::patch::Fact;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::SetNotNullScan,
    severity: Severity::Cold,
    why: "ALTER COLUMN … SET NOT NULL takes ACCESS EXCLUSIVE and scans the whole table to prove there is no NULL, unless the column is already NOT NULL or (PostgreSQL 12+) a validated CHECK (col IS NOT NULL) constraint proves it, in which case the scan is skipped. downtime checks for such a constraint and counts the pages read.",
    summary: "SET NOT NULL scans a populated table under ACCESS EXCLUSIVE",
    recipe: "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in a separate transaction, then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the check",
    measured: Measured::Stalls,
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    for fact in &cx.statement.analysis.facts {
        let Fact::Validates {
            rel,
            validation: Validation::NotNull,
            name: Some(column),
        } = fact
        else {
            continue;
        };
        if cx.measured.pre.not_null_proven.get(column) == Some(&true) {
            continue;
        }
        let Some(scanned) = cx.scanned_under_blocking_lock(rel) else {
            continue;
        };
        let message = format!(
            "SET NOT NULL on {}.{column} scans {} while holding {}",
            scanned.named.name,
            scanned.describe(),
            cx.describe_lock(&scanned.lock)
        );
        out.push(scanned.reason(cx, &INFO, message));
    }
    out
}
