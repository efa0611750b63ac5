//! Relations as PostgreSQL's catalogue describes them: kind, storage, size
//! and, for an index, its table.

use std::collections::HashMap;

/// A relation that existed before the patch started.
#[derive(Debug, Clone)]
pub struct Relation {
    pub oid: u32,
    /// `schema.name`
    pub name: String,
    /// `pg_class.relkind`: r table, p partitioned table, m materialized view, i/I index.
    pub kind: char,
    pub filenode: u32,
    /// Estimated rows (`reltuples`; for a partitioned table, the sum over its partitions).
    pub rows: f64,
    /// Main-fork bytes (for a partitioned table, the sum over its partitions).
    pub bytes: i64,
    /// For an index: the table it belongs to.
    pub table: Option<u32>,
    /// For an index: `indisvalid`.
    pub valid: bool,
}

impl Relation {
    pub fn is_table(&self) -> bool {
        matches!(self.kind, 'r' | 'p' | 'm')
    }

    /// Whether the relation holds data, so work over it grows with it.
    pub fn populated(&self) -> bool {
        self.rows > 0.0 || self.bytes > 0
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            'r' => "table",
            'p' => "partitioned table",
            'm' => "materialized view",
            'i' | 'I' => "index",
            _ => "relation",
        }
    }
}

/// The relations that existed before a patch.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub relations: HashMap<u32, Relation>,
}

impl Snapshot {
    pub fn get(&self, oid: u32) -> Option<&Relation> {
        self.relations.get(&oid)
    }

    pub fn oids(&self) -> Vec<u32> {
        self.relations.keys().copied().collect()
    }

    /// Pre-existing table (not index) with rows.
    pub fn populated_table(&self, oid: u32) -> Option<&Relation> {
        self.get(oid).filter(|r| r.is_table() && r.populated())
    }
}
