//! Launchpad's written rules for live patches (profile `launchpad`): no
//! ALTER TABLE of any kind, no table triggers, no new table that references an
//! existing table.

use super::{Measured, Reason, RuleInfo, Severity, StatementContext};
use crate::patch::Fact;
use crate::rule_id::RuleId;

pub const ALTER_TABLE: RuleInfo = RuleInfo {
    id: RuleId::LaunchpadAlterTable,
    severity: Severity::Cold,
    why: "Launchpad's written policy for live patches: any ALTER TABLE of an existing table goes into the fast-downtime window, whatever its lock, because a busy table's queries must not queue behind it.",
    summary: "profile launchpad: a live patch may not ALTER an existing table",
    recipe: "apply the ALTER TABLE as a cold patch in the fast-downtime window",
    measured: Measured::NotByItself("a project policy: the statement is catalogue-only and does not block the application for long"),
};

pub const TRIGGER: RuleInfo = RuleInfo {
    id: RuleId::LaunchpadTrigger,
    severity: Severity::Cold,
    why: "Launchpad's written policy for live patches: a trigger on an existing table changes what every write to it does and takes SHARE ROW EXCLUSIVE to be created, so it goes into a cold patch.",
    summary: "profile launchpad: a live patch may not create a trigger on an existing table",
    recipe: "create the trigger in a cold patch",
    measured: Measured::NotByItself("a project policy: creating the trigger takes its lock only briefly"),
};

pub const REFERENCES: RuleInfo = RuleInfo {
    id: RuleId::LaunchpadReferences,
    severity: Severity::Cold,
    why: "Launchpad's written policy for live patches: a foreign key from a new table to an existing busy table takes SHARE ROW EXCLUSIVE on the busy table, blocking its writers while it waits and while it is held.",
    summary: "profile launchpad: a live patch may not create a table that references an existing (busy) table",
    recipe: "create the table without the foreign key live, and add the key NOT VALID in a cold patch",
    measured: Measured::NotByItself("a project policy: the new table takes its lock on the referenced table only briefly"),
};

pub fn check(cx: &StatementContext<'_>) -> Vec<Reason> {
    let line = Some(cx.statement.line);
    let mut out = Vec::new();
    for fact in &cx.statement.analysis.facts {
        match fact {
            Fact::AltersTable { rel } => {
                if let Some(r) = cx.resolved(rel).filter(|r| r.is_table()) {
                    out.push(ALTER_TABLE.reason(
                        line,
                        Some(&r.name),
                        None,
                        format!("ALTER TABLE {} in a live patch", r.name),
                    ));
                }
            }
            Fact::CreatesTrigger { rel } => {
                if let Some(r) = cx.resolved(rel).filter(|r| r.is_table()) {
                    out.push(TRIGGER.reason(
                        line,
                        Some(&r.name),
                        None,
                        format!("creates a trigger on {} in a live patch", r.name),
                    ));
                }
            }
            Fact::NewTableReferences { table, referenced } => {
                if let Some(r) = cx.resolved(referenced).filter(|r| r.is_table()) {
                    out.push(REFERENCES.reason(
                        line,
                        Some(&r.name),
                        None,
                        format!("new table {table} references existing table {}", r.name),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}
