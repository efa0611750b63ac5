//! `validation-scan`: a foreign key or CHECK constraint is validated against a
//! populated table while a lock that blocks the application is held.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::patch::statement::Validation;
use crate::patch::Fact;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::ValidationScan,
    severity: Severity::Cold,
    why: "ADD CONSTRAINT … FOREIGN KEY takes SHARE ROW EXCLUSIVE on both tables and, unless NOT VALID, scans the referencing table to check every row; ADD CONSTRAINT … CHECK does the same under ACCESS EXCLUSIVE. VALIDATE CONSTRAINT on its own takes only SHARE UPDATE EXCLUSIVE (and ROW SHARE on the referenced table), but locks last until the transaction ends: validating in the same transaction as the ADD scans while the ADD's lock is still held. downtime counts the pages the statement read from the table.",
    summary: "validates a FOREIGN KEY or CHECK constraint over a populated table under a lock that blocks the application",
    recipe: "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a separate transaction (its own patch): validation alone takes SHARE UPDATE EXCLUSIVE",
    measured: Measured::Stalls,
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    for fact in &cx.statement.analysis.facts {
        let Fact::Validates {
            rel,
            validation,
            name,
        } = fact
        else {
            continue;
        };
        let what = match validation {
            Validation::ForeignKey => "foreign key",
            Validation::Check => "check constraint",
            Validation::Constraint => {
                match name
                    .as_ref()
                    .and_then(|n| cx.measured.pre.constraint.get(n))
                {
                    // Already valid: PostgreSQL does nothing.
                    Some((true, _)) => continue,
                    Some((false, kind)) if kind == "f" => "foreign key",
                    Some((false, kind)) if kind == "c" => "check constraint",
                    _ => "constraint",
                }
            }
            _ => continue,
        };
        let Some(scanned) = cx.scanned_under_blocking_lock(rel) else {
            continue;
        };
        let named = name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
        let message = format!(
            "validating {what}{named} scans {} while holding {}",
            scanned.describe(),
            cx.describe_lock(&scanned.lock)
        );
        out.push(scanned.reason(cx, &INFO, message));
    }
    out
}
