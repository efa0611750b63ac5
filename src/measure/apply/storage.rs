//! What a statement did to storage: the pre-existing relations whose
//! storage it replaced (a rewrite, a rebuilt index) and the indexes it
//! built on pre-existing tables.
//!
//! Inside a transaction block the trace's locks say where to look: storage
//! is replaced, and an index created, only under ACCESS EXCLUSIVE (or
//! EXCLUSIVE) on the relation, held to the end of the transaction; the
//! trace reads the storage of the relations held so, and only when the
//! session wrote `pg_class` since the last trace. A new relation (a new
//! index among them, locked by its creation) is looked at once. Outside a
//! transaction block the locks are gone: the `pg_class` rows written by
//! transactions that started after the session was last idle say what
//! changed.
//!
//! An index is a build when it has storage of its own: PostgreSQL re-creates
//! an index under a new oid and keeps its file when a column's type change
//! needs no rebuild (`varchar(10)` to `varchar(20)`), and an index on a
//! partitioned table has no storage at all.

use std::collections::{HashMap, HashSet};

use crate::pg::trace::{CatalogWrites, Stored, Trace};
use crate::pg::Snapshot;

/// What downtime knows of the copy's storage while a patch is applied.
pub(super) struct Storage {
    /// The storage file of each relation that existed before the patch, as
    /// last seen.
    filenodes: HashMap<u32, u32>,
    /// Indexes on pre-existing tables known so far: those before the patch
    /// and those found since.
    known_indexes: HashSet<u32>,
    /// The files of those indexes, with their table: a new index on one of
    /// them kept its file, and built nothing.
    index_files: HashSet<(u32, u32)>,
    /// The table of each pre-existing index.
    index_table: HashMap<u32, u32>,
    /// Relations the patch created that were already looked at.
    seen: HashSet<u32>,
    /// The last reading of the session's catalogue writes, with the
    /// transaction block it was taken in (`None`: outside one).
    writes: Option<(CatalogWrites, Option<u64>)>,
    /// The first transaction id not completed when the session was last
    /// idle: what a later transaction wrote carries an id at least this.
    idle_xid: i64,
    /// Pre-existing relations whose storage changed in the current
    /// transaction block, with the file they had before it (a rollback
    /// puts it back).
    changed_in_tx: HashMap<u32, u32>,
}

/// Where to look after a statement, besides the storage the trace read.
#[derive(Debug, Default)]
pub(super) struct Lookup {
    /// Relations to read by oid.
    pub oids: Vec<u32>,
    /// Transaction ids whose `pg_class` rows to read, `[first, end)`.
    pub window: Option<(i64, i64)>,
    /// Relations whose storage is read again without reporting a change
    /// (what a rollback put back).
    pub resync: Vec<u32>,
}

impl Lookup {
    pub fn is_empty(&self) -> bool {
        self.oids.is_empty() && self.window.is_none()
    }
}

/// What one statement did to storage.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Pre-existing relations whose storage it replaced.
    pub rewritten: Vec<u32>,
    /// Indexes it built on pre-existing tables: (index, table), in the
    /// order they were created.
    pub built: Vec<(u32, u32)>,
}

impl Storage {
    /// The storage before the patch, and the session's first trace.
    pub fn new(snapshot: &Snapshot, first: &Trace) -> Storage {
        let relations = snapshot.relations.values();
        Storage {
            filenodes: relations.clone().map(|r| (r.oid, r.filenode)).collect(),
            known_indexes: relations
                .clone()
                .filter(|r| r.table.is_some())
                .map(|r| r.oid)
                .collect(),
            index_files: relations
                .clone()
                .filter_map(|r| r.table.map(|t| (t, r.filenode)))
                .filter(|(_, f)| *f != 0)
                .collect(),
            index_table: relations
                .filter_map(|r| r.table.map(|t| (r.oid, t)))
                .collect(),
            seen: HashSet::new(),
            writes: first.catalog_writes.map(|w| (w, None)),
            idle_xid: first.next_xid,
            changed_in_tx: HashMap::new(),
        }
    }

    /// What the trace sent behind a statement that starts in transaction
    /// block `tx` (`None`: outside one) gives for its `pg_class` writes
    /// before it: the count at the last trace in that block.
    pub fn writes_before(&self, tx: Option<u64>) -> Option<i64> {
        match &self.writes {
            Some((w, Some(t))) if tx == Some(*t) => Some(w.pending),
            _ => None,
        }
    }

    /// Where to look after a statement that left the session with `trace`,
    /// inside transaction block `tx` (`None`: outside one). `rolled_back`:
    /// the statement rolled back (a transaction, or to a savepoint);
    /// `elsewhere`: it may have had another session write (through
    /// `dblink`), whose locks this session never holds.
    pub fn lookup(
        &self,
        trace: &Trace,
        tx: Option<u64>,
        rolled_back: bool,
        elsewhere: bool,
    ) -> Lookup {
        let mut look = Lookup::default();
        if elsewhere && trace.next_xid > self.idle_xid {
            look.window = Some((self.idle_xid, trace.next_xid));
        }
        if tx.is_some() {
            let mut oids = HashSet::new();
            for &(oid, _) in &trace.locks {
                let new = !self.filenodes.contains_key(&oid) && !self.seen.contains(&oid);
                if new && oids.insert(oid) {
                    look.oids.push(oid);
                }
            }
        } else {
            let written = match (&trace.catalog_writes, &self.writes) {
                (Some(now), Some((before, _))) => now.changed_since(before, false),
                _ => true,
            };
            if written && trace.next_xid > self.idle_xid {
                look.window = Some((self.idle_xid, trace.next_xid));
            }
        }
        if rolled_back {
            look.resync = self.changed_in_tx.keys().copied().collect();
            look.oids.extend(&look.resync);
        }
        look
    }

    /// Take in what `rows` (the answer to `look`) show, after a statement
    /// that left the session with `trace` in transaction block `tx`.
    pub fn record(
        &mut self,
        trace: &Trace,
        tx: Option<u64>,
        look: &Lookup,
        mut rows: Vec<Stored>,
    ) -> Changes {
        // The storage the trace read, of relations held strongly.
        rows.extend(
            trace
                .filenodes
                .iter()
                .filter(|(oid, _)| self.filenodes.contains_key(oid))
                .map(|(&oid, &filenode)| Stored {
                    oid,
                    kind: 'r',
                    filenode,
                    table: self.index_table.get(&oid).copied(),
                }),
        );
        rows.sort_by_key(|r| r.oid);
        rows.dedup_by_key(|r| r.oid);
        let mut changes = Changes::default();
        for row in rows {
            if let Some(known) = self.filenodes.get_mut(&row.oid) {
                if *known == row.filenode {
                    continue;
                }
                let before = std::mem::replace(known, row.filenode);
                if let Some(t) = row.table {
                    self.index_files.insert((t, row.filenode));
                }
                if look.resync.contains(&row.oid) {
                    continue;
                }
                changes.rewritten.push(row.oid);
                if tx.is_some() {
                    self.changed_in_tx.entry(row.oid).or_insert(before);
                }
                continue;
            }
            self.seen.insert(row.oid);
            let Some(table) = row.table.filter(|t| self.filenodes.contains_key(t)) else {
                continue;
            };
            if !matches!(row.kind, 'i' | 'I') || !self.known_indexes.insert(row.oid) {
                continue;
            }
            // No file of its own (an index on a partitioned table), or the
            // file of the index it replaces: nothing was built.
            let kept = row.filenode == 0 || !self.index_files.insert((table, row.filenode));
            if !kept {
                changes.built.push((row.oid, table));
            }
        }
        if tx.is_none() {
            self.changed_in_tx.clear();
        } else {
            // Rolled back to a savepoint: what is back where it was before
            // the transaction is no longer changed in it.
            let filenodes = &self.filenodes;
            self.changed_in_tx
                .retain(|oid, before| filenodes.get(oid) != Some(before));
        }
        // Without counts (`track_counts` off) nothing is compared again.
        self.writes = trace.catalog_writes.map(|w| (w, tx));
        if tx.is_none() {
            self.idle_xid = trace.next_xid;
        }
        changes
    }

    /// downtime committed the transaction block the session was in: what
    /// it changed stays.
    pub fn committed(&mut self) {
        self.changed_in_tx.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::{LockMode, Relation};

    const TABLE: u32 = 16_400;
    const INDEX: u32 = 16_401;
    const OTHER: u32 = 16_402;
    const NEW: u32 = 16_500;

    fn relation(oid: u32, kind: char, table: Option<u32>) -> Relation {
        Relation {
            oid,
            name: format!("public.r{oid}"),
            kind,
            filenode: oid,
            rows: 100.0,
            bytes: 8192,
            table,
            valid: true,
        }
    }

    fn storage() -> Storage {
        let snapshot = Snapshot {
            relations: [
                relation(TABLE, 'r', None),
                relation(INDEX, 'i', Some(TABLE)),
                relation(OTHER, 'r', None),
            ]
            .into_iter()
            .map(|r| (r.oid, r))
            .collect(),
        };
        Storage::new(&snapshot, &trace(&[], 0, 1000))
    }

    fn trace(locks: &[(u32, LockMode)], writes: i64, next_xid: i64) -> Trace {
        Trace {
            locks: locks.iter().copied().collect(),
            catalog_writes: Some(CatalogWrites {
                pending: writes,
                total: writes,
                server_version: 150000,
            }),
            next_xid,
            ..Trace::default()
        }
    }

    fn stored(oid: u32, kind: char, filenode: u32, table: Option<u32>) -> Stored {
        Stored {
            oid,
            kind,
            filenode,
            table,
        }
    }

    #[test]
    fn inside_a_transaction_the_trace_reads_strongly_held_storage() {
        let mut s = storage();
        // A write (ROW EXCLUSIVE), and ACCESS EXCLUSIVE with no storage
        // read (pg_class untouched): nothing to look at, nothing changed.
        let t = trace(
            &[
                (TABLE, LockMode::RowExclusive),
                (OTHER, LockMode::AccessExclusive),
            ],
            0,
            1000,
        );
        let look = s.lookup(&t, Some(0), false, false);
        assert!(look.is_empty(), "{look:?}");
        let changes = s.record(&t, Some(0), &look, Vec::new());
        assert!(changes.rewritten.is_empty());
        // The trace read new storage for TABLE; NEW is looked at once.
        let mut t = trace(
            &[
                (TABLE, LockMode::AccessExclusive),
                (NEW, LockMode::AccessExclusive),
            ],
            2,
            1000,
        );
        t.filenodes.insert(TABLE, 99_000);
        t.filenodes.insert(OTHER, OTHER);
        let look = s.lookup(&t, Some(0), false, false);
        assert_eq!(look.oids, vec![NEW]);
        assert!(look.window.is_none());
        let changes = s.record(&t, Some(0), &look, vec![stored(NEW, 'r', NEW, None)]);
        assert_eq!(changes.rewritten, vec![TABLE]);
        assert!(changes.built.is_empty());
        let t = trace(&[(NEW, LockMode::AccessExclusive)], 3, 1000);
        assert!(s.lookup(&t, Some(0), false, false).is_empty());
        // The writes count is asked about within the same block only.
        assert_eq!(s.writes_before(Some(0)), Some(2));
        assert_eq!(s.writes_before(Some(1)), None);
        assert_eq!(s.writes_before(None), None);
    }

    #[test]
    fn an_index_is_a_build_only_with_storage_of_its_own() {
        let mut s = storage();
        let t = trace(&[(TABLE, LockMode::AccessExclusive)], 1, 1000);
        let look = s.lookup(&t, Some(0), false, false);
        let changes = s.record(
            &t,
            Some(0),
            &look,
            vec![
                // Re-created on the old index's file.
                stored(NEW, 'i', INDEX, Some(TABLE)),
                // An index of a partitioned table: no file at all.
                stored(NEW + 1, 'I', 0, Some(TABLE)),
                // A new file: built.
                stored(NEW + 2, 'i', NEW + 2, Some(TABLE)),
                // On a table the patch created: not counted.
                stored(NEW + 3, 'i', NEW + 3, Some(NEW + 10)),
            ],
        );
        assert_eq!(changes.built, vec![(NEW + 2, TABLE)]);
        assert!(changes.rewritten.is_empty());
    }

    #[test]
    fn outside_a_transaction_the_rows_written_since_idle_are_read() {
        let mut s = storage();
        // No transaction completed: nothing to read.
        let t = trace(&[], 0, 1000);
        assert!(s.lookup(&t, None, false, false).is_empty());
        // Transactions ran, but pg_class was not written.
        let t = trace(&[], 0, 1005);
        assert!(s.lookup(&t, None, false, false).is_empty());
        s.record(&t, None, &Lookup::default(), Vec::new());
        let t = trace(&[], 4, 1010);
        let look = s.lookup(&t, None, false, false);
        assert_eq!(look.window, Some((1005, 1010)));
        let changes = s.record(
            &t,
            None,
            &look,
            vec![stored(INDEX, 'i', 77_000, Some(TABLE))],
        );
        assert_eq!(changes.rewritten, vec![INDEX]);
        // The next window starts where this one ended.
        let t = trace(&[], 9, 1020);
        assert_eq!(s.lookup(&t, None, false, false).window, Some((1010, 1020)));
    }

    #[test]
    fn a_rollback_puts_storage_back_without_a_rewrite() {
        let mut s = storage();
        let mut t = trace(&[(TABLE, LockMode::AccessExclusive)], 1, 1000);
        t.filenodes.insert(TABLE, 99_000);
        let look = s.lookup(&t, Some(0), false, false);
        let changes = s.record(&t, Some(0), &look, Vec::new());
        assert_eq!(changes.rewritten, vec![TABLE]);
        // ROLLBACK: the old file is back, and that is not a rewrite.
        let t = trace(&[], 1, 1001);
        let look = s.lookup(&t, None, true, false);
        assert_eq!(look.resync, vec![TABLE]);
        let changes = s.record(&t, None, &look, vec![stored(TABLE, 'r', TABLE, None)]);
        assert!(changes.rewritten.is_empty());
        // A later rewrite is one again.
        let mut t = trace(&[(TABLE, LockMode::AccessExclusive)], 2, 1002);
        t.filenodes.insert(TABLE, 98_000);
        let look = s.lookup(&t, Some(1), false, false);
        let changes = s.record(&t, Some(1), &look, Vec::new());
        assert_eq!(changes.rewritten, vec![TABLE]);
    }

    #[test]
    fn catalogue_writes_compare_within_a_transaction_or_from_postgresql_15() {
        let at = |pending, total, server_version| CatalogWrites {
            pending,
            total,
            server_version,
        };
        // Inside one transaction block the session's own count decides.
        assert!(!at(3, 10, 140000).changed_since(&at(3, 9, 140000), true));
        assert!(at(4, 10, 140000).changed_since(&at(3, 10, 140000), true));
        // Across transactions: the reported total from 15 on; before, the
        // statistics process may lag, so the catalogue is read.
        assert!(!at(0, 10, 150000).changed_since(&at(5, 10, 150000), false));
        assert!(at(0, 11, 150000).changed_since(&at(5, 10, 150000), false));
        assert!(at(0, 10, 140000).changed_since(&at(0, 10, 140000), false));
    }
}
