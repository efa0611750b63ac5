//! What a traced statement is recorded as: the locks it took on relations
//! that existed before the patch (with how long each is held), the
//! relations it rewrote, and the indexes it built.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::storage::Changes;
use super::Tracer;
use crate::measure::{LockHeld, Rewrite, StatementRun};
use crate::patch::{Fact, Statement};
use crate::pg::locks::LockMode;

/// Locks that are still held, and when they were taken.
#[derive(Default)]
pub(super) struct OpenLocks {
    /// (oid, mode) → (statement index in the run, position in its `locks`,
    /// patch time when taken)
    open: BTreeMap<(u32, LockMode), (usize, usize, f64)>,
}

impl OpenLocks {
    /// Close every open lock not in `still_held`, at patch time `now`.
    pub fn release_missing(
        &mut self,
        still_held: &BTreeSet<(u32, LockMode)>,
        now: f64,
        runs: &mut [StatementRun],
    ) {
        let gone: Vec<_> = self
            .open
            .keys()
            .filter(|k| !still_held.contains(k))
            .copied()
            .collect();
        for k in gone {
            if let Some((si, li, start)) = self.open.remove(&k) {
                runs[si].locks[li].held_seconds = now - start;
            }
        }
    }
}

impl Tracer<'_> {
    /// Record what the trace after a statement says it did: the locks it
    /// took (`held`: the locks on pre-existing relations held now), the
    /// relations it rewrote and the indexes it built (`changes`, with the
    /// built indexes' names in `names`).
    pub(super) fn record(
        &mut self,
        sr: &mut StatementRun,
        st: &Statement,
        held: &BTreeSet<(u32, LockMode)>,
        changes: &Changes,
        names: &HashMap<u32, String>,
    ) {
        let seconds = sr.seconds;
        // Locks released by this statement (its own COMMIT) end here.
        let elapsed = self.elapsed;
        self.open
            .release_missing(held, elapsed, &mut self.run.statements);
        for &(oid, mode) in held {
            if let Entry::Vacant(slot) = self.open.open.entry((oid, mode)) {
                let Some(rel) = self.run.snapshot.get(oid) else {
                    continue;
                };
                slot.insert((self.run.statements.len(), sr.locks.len(), elapsed - seconds));
                sr.locks.push(LockHeld {
                    oid,
                    relation: rel.name.clone(),
                    mode,
                    held_seconds: seconds,
                    waited_seconds: 0.0,
                });
            }
        }
        if sr.outside_transaction {
            self.documented_locks(sr, st);
        }
        for oid in &changes.rewritten {
            if let Some(rel) = self.run.snapshot.get(*oid) {
                sr.rewrites.push(Rewrite {
                    oid: *oid,
                    relation: rel.name.clone(),
                    kind: rel.kind_name(),
                    rows: rel.rows.round() as i64,
                    bytes: rel.bytes,
                });
            }
        }
        if sr.outside_transaction
            && matches!(st.analysis.kind.as_str(), "VacuumStmt" | "ClusterStmt")
        {
            self.rewrite_locks(sr);
        }
        for (index, table) in &changes.built {
            if let Some(name) = names.get(index) {
                sr.new_indexes.push((*table, name.clone()));
            }
        }
    }

    /// Locks PostgreSQL documents for statements that run outside a
    /// transaction: gone by the time they could be read.
    fn documented_locks(&self, sr: &mut StatementRun, st: &Statement) {
        for fact in &st.analysis.facts {
            let Fact::HoldsWhileRunning { rel, mode } = fact else {
                continue;
            };
            let Some(Some(oid)) = sr.pre.resolved.get(&rel.to_string()) else {
                continue;
            };
            if let Some(r) = self.run.snapshot.get(*oid) {
                sr.locks.push(LockHeld {
                    oid: *oid,
                    relation: r.name.clone(),
                    mode: *mode,
                    held_seconds: sr.seconds,
                    waited_seconds: 0.0,
                });
            }
        }
    }

    /// VACUUM FULL and CLUSTER rewrite under ACCESS EXCLUSIVE (PostgreSQL
    /// documents it); outside a transaction block the lock is gone by the
    /// time it could be read, and without a table list no name is known in
    /// advance.
    fn rewrite_locks(&self, sr: &mut StatementRun) {
        let mut extra = Vec::new();
        for rw in &sr.rewrites {
            let is_table = self.run.snapshot.get(rw.oid).is_some_and(|r| r.is_table());
            let known = sr
                .locks
                .iter()
                .chain(&extra)
                .any(|l| l.oid == rw.oid && l.mode == LockMode::AccessExclusive);
            if is_table && !known {
                extra.push(LockHeld {
                    oid: rw.oid,
                    relation: rw.relation.clone(),
                    mode: LockMode::AccessExclusive,
                    held_seconds: sr.seconds,
                    waited_seconds: 0.0,
                });
            }
        }
        sr.locks.extend(extra);
    }
}
