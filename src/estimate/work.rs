//! The table a statement's work grows with: what it rewrote, indexed,
//! validated, updated or vacuumed, and how its time grows with the rows.

use super::{Work, WorkKind};
use crate::measure::{PatchRun, StatementRun};
use crate::patch::{Fact, Patch};
use crate::pg::Relation;

/// The table `sr`'s work grows with, with its rows before the statement;
/// None for catalogue-only work.
pub fn work_of(p: &Patch, run: &PatchRun, sr: &StatementRun) -> Option<Work> {
    let snap = &run.snapshot;
    let table_of = |oid: u32| {
        let rel = snap.get(oid)?;
        match rel.table {
            Some(t) => snap.get(t),
            None => Some(rel),
        }
    };
    let from_evidence = sr
        .rewrites
        .iter()
        .find_map(|rw| table_of(rw.oid).map(|t| (t, WorkKind::Rewrite)))
        .or_else(|| {
            sr.new_indexes
                .iter()
                .find_map(|(t, _)| snap.get(*t).map(|t| (t, WorkKind::IndexBuild)))
        });
    let from_facts = || {
        p.statements[sr.index].analysis.facts.iter().find_map(|f| {
            let (rel, kind) = match f {
                Fact::Validates { rel, .. } => (rel, WorkKind::Scan),
                Fact::Writes { rel, verb, .. } if *verb == "UPDATE" => (rel, WorkKind::Update),
                Fact::Writes { rel, .. } => (rel, WorkKind::Write),
                Fact::BuildsIndex { rel, .. } => (rel, WorkKind::IndexBuild),
                Fact::HoldsWhileRunning { rel, .. } => (rel, WorkKind::Scan),
                _ => return None,
            };
            let oid = (*sr.pre.resolved.get(&rel.to_string())?)?;
            table_of(oid).map(|t| (t, kind))
        })
    };
    // An update inserts each new row version into every index of its table
    // (a B-tree descent per row); without indexes it is a pass over the rows.
    let indexed = |t: &Relation| {
        snap.relations
            .values()
            .any(|i| i.table == Some(t.oid) && matches!(i.kind, 'i' | 'I'))
    };
    from_evidence
        .or_else(from_facts)
        .map(|(r, kind)| match kind {
            WorkKind::Update if !indexed(r) => (r, WorkKind::Write),
            _ => (r, kind),
        })
        .map(|(r, kind)| Work {
            relation: r.name.clone(),
            rows: r.rows,
            kind: Some(kind),
        })
}

/// Seconds work of `kind` over a table of `rows` rows and `bytes` bytes
/// takes at this server's measured `costs`.
pub fn at_costs(
    costs: &crate::measure::calibrate::Costs,
    kind: WorkKind,
    rows: f64,
    bytes: f64,
) -> f64 {
    match kind {
        WorkKind::Rewrite => costs.rewrite_per_byte * bytes,
        WorkKind::Scan => costs.scan_per_byte * bytes,
        WorkKind::Write | WorkKind::Update => costs.write_per_byte * bytes,
        WorkKind::IndexBuild if rows >= 2.0 => costs.index_per_row_log * rows * rows.log2(),
        WorkKind::IndexBuild => 0.0,
    }
}
