//! `attach-partition-scan`: ATTACH PARTITION scans the populated table being
//! attached to check the partition bound, under a lock that blocks it.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::patch::statement::Validation;
use crate::patch::Fact;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::AttachPartitionScan,
    severity: Severity::Cold,
    why: "ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on the parent and ACCESS EXCLUSIVE on the table being attached, and scans that table to check every row fits the partition bound, unless an existing validated CHECK constraint implies the bound. downtime counts the pages read from the attached table.",
    summary: "ATTACH PARTITION scans a populated table to check its rows fit the partition bound, under ACCESS EXCLUSIVE on it",
    recipe: "before attaching, add a CHECK constraint matching the partition bound NOT VALID and VALIDATE it; ATTACH PARTITION then skips the scan",
    measured: Measured::Stalls,
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    for fact in &cx.statement.analysis.facts {
        let Fact::Validates {
            rel,
            validation: Validation::PartitionBound,
            ..
        } = fact
        else {
            continue;
        };
        let Some(scanned) = cx.scanned_under_blocking_lock(rel) else {
            continue;
        };
        let message = format!(
                "attaching {} checks its rows against the partition bound, scanning {}, while holding {}",
                scanned.named.name,
                scanned.describe(),
                cx.describe_lock(&scanned.lock)
            );
        out.push(scanned.reason(cx, &INFO, message));
    }
    out
}
