//! Production statistics: row counts, sizes and modification rates per table,
//! read from catalogue and statistics views only, on a read-only connection.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod export;
pub use export::export;

pub const SCHEMA_VERSION: u32 = 2;

/// The schema versions `load` reads: version 1 files (rows, sizes and
/// modification rates only) read as version 2 without column statistics.
pub const READS_VERSIONS: [u32; 2] = [1, 2];

/// What kind of relation a stats entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableKind {
    /// A plain table (also a partition or an inheritance child: see `parent`).
    #[default]
    Table,
    /// A partitioned table: no rows of its own; `rows` is its partitions' sum.
    Partitioned,
    /// A materialized view.
    Matview,
}

/// One index of a table as production has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexStats {
    /// `schema.index`
    pub name: String,
    pub bytes: i64,
    #[serde(default)]
    pub unique: bool,
    /// The indexed (key) columns, in order; empty when the index has an
    /// expression.
    #[serde(default)]
    pub columns: Vec<String>,
    /// A partial index (`WHERE …`): unique, if at all, only over its rows.
    #[serde(default)]
    pub partial: bool,
}

/// One column's planner statistics (`pg_stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    /// Fraction of rows that are NULL.
    pub null_frac: f64,
    /// Distinct non-NULL values: a count when positive, minus a fraction of
    /// the rows when negative (as `pg_stats.n_distinct`).
    pub n_distinct: f64,
    pub avg_width: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f64>,
    /// Data values: only with `stats export --with-values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub most_common_vals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub most_common_freqs: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_bounds: Option<Vec<String>>,
}

impl ColumnStats {
    /// Distinct non-NULL values in a table of `rows` rows.
    pub fn distinct_values(&self, rows: f64) -> f64 {
        if self.n_distinct < 0.0 {
            -self.n_distinct * rows
        } else {
            self.n_distinct
        }
    }

    /// Rows that are not NULL, of `rows`.
    pub fn non_null_rows(&self, rows: f64) -> f64 {
        rows * (1.0 - self.null_frac)
    }
}

/// One table as production sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// `schema.table`
    pub name: String,
    #[serde(default)]
    pub kind: TableKind,
    /// The partitioned table (or inheritance parent) this one belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Planner estimate (`pg_class.reltuples`); null when the table was never
    /// analysed or vacuumed (`-1`); for a partitioned table, the sum of its
    /// partitions' known rows.
    pub rows: Option<f64>,
    /// `pg_class.relpages`; null where the relation has none of its own.
    pub pages: Option<i64>,
    /// Table, indexes and TOAST (`pg_total_relation_size`).
    pub total_bytes: i64,
    /// The table's main fork (`pg_relation_size`).
    pub table_bytes: i64,
    /// Its TOAST table and TOAST index.
    #[serde(default)]
    pub toast_bytes: i64,
    #[serde(default)]
    pub indexes: Vec<IndexStats>,
    /// Rows inserted, updated and deleted since `stats_since`, when known.
    pub inserts: Option<i64>,
    pub updates: Option<i64>,
    pub deletes: Option<i64>,
    pub stats_since: Option<String>,
    /// Net growth per month as a fraction of the rows ((inserts - deletes) /
    /// rows / months since `stats_since`), when it can be told.
    pub monthly_growth: Option<f64>,
    /// When it was last analysed (manually or by autovacuum), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysed_at: Option<String>,
    #[serde(default)]
    pub columns: Vec<ColumnStats>,
}

impl TableStats {
    /// A column's statistics, by name.
    pub fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A `downtime stats export` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProdStats {
    pub schema_version: u32,
    pub exported_at: String,
    pub server_version: String,
    /// The source, password redacted.
    pub source: String,
    /// Data values were exported (`--with-values`): most common values and
    /// histogram bounds.
    #[serde(default)]
    pub with_values: bool,
    pub tables: Vec<TableStats>,
}

impl ProdStats {
    /// A table by `schema.table`, or by bare name when it is unique.
    pub fn table(&self, name: &str) -> Option<&TableStats> {
        if let Some(t) = self.tables.iter().find(|t| t.name == name) {
            return Some(t);
        }
        let bare = name.rsplit('.').next().unwrap_or(name);
        let mut matches = self
            .tables
            .iter()
            .filter(|t| t.name.rsplit('.').next() == Some(bare));
        let first = matches.next();
        if matches.next().is_some() {
            return None;
        }
        first
    }

    /// Read a stats file of a version [`READS_VERSIONS`] lists, refusing
    /// numbers no database reports (naming the file and the table).
    pub fn load(path: &std::path::Path) -> Result<ProdStats> {
        let text = crate::fsutil::read_text(path, crate::fsutil::STATS)?;
        let mut s: ProdStats = serde_json::from_str(&text).map_err(|e| Error::InputAt {
            path: path.to_path_buf(),
            line: e.line(),
            message: format!("not a downtime stats file: {e}"),
        })?;
        if !READS_VERSIONS.contains(&s.schema_version) {
            return Err(Error::input(
                path,
                format!(
                    "stats schema version {} is not supported (this downtime reads {})",
                    s.schema_version,
                    READS_VERSIONS.map(|v| v.to_string()).join(" and ")
                ),
            ));
        }
        if s.schema_version == 1 {
            s.tables.iter_mut().for_each(TableStats::upgrade_v1);
        }
        for t in &s.tables {
            t.check()
                .map_err(|m| Error::input(path, format!("table {}: {m}", t.name)))?;
        }
        Ok(s)
    }
}

impl TableStats {
    /// A version 1 entry as version 2 has it. Version 1 exports wrote a
    /// partitioned table's `relpages` as it was, -1 (PostgreSQL 14+), and
    /// its rows as 0: no pages and no rows known, as version 2 writes it.
    /// (A never-analysed table's 0 rows cannot be told from an empty one's.)
    fn upgrade_v1(&mut self) {
        if self.pages == Some(-1) {
            self.kind = TableKind::Partitioned;
            self.pages = None;
            if self.rows == Some(0.0) {
                self.rows = None;
            }
        }
    }

    /// Numbers a database can report: rows in range, nothing negative, a
    /// finite growth, column statistics within their ranges.
    fn check(&self) -> std::result::Result<(), String> {
        if let Some(rows) = self.rows {
            crate::limits::ROWS
                .check(rows)
                .map_err(|e| format!("rows: {e}"))?;
        }
        let counts = [
            ("pages", self.pages),
            ("total_bytes", Some(self.total_bytes)),
            ("table_bytes", Some(self.table_bytes)),
            ("toast_bytes", Some(self.toast_bytes)),
            ("inserts", self.inserts),
            ("updates", self.updates),
            ("deletes", self.deletes),
        ];
        if let Some((name, Some(v))) = counts.iter().find(|(_, v)| v.is_some_and(|v| v < 0)) {
            return Err(format!("{name} is {v}: a count cannot be negative"));
        }
        if let Some(i) = self.indexes.iter().find(|i| i.bytes < 0) {
            return Err(format!(
                "index {}: bytes is {}: a size cannot be negative",
                i.name, i.bytes
            ));
        }
        for c in &self.columns {
            c.check().map_err(|m| format!("column {}: {m}", c.name))?;
        }
        match self.monthly_growth {
            Some(g) if !(g.is_finite() && g > -1.0) => Err(format!(
                "monthly_growth is {}: not a growth rate",
                crate::limits::show(g)
            )),
            _ => Ok(()),
        }
    }
}

impl ColumnStats {
    /// Values `pg_stats` can hold: fractions within 0..1, `n_distinct` a
    /// count or at least minus every row, a width not negative.
    fn check(&self) -> std::result::Result<(), String> {
        let fraction = |v: f64| (0.0..=1.0).contains(&v);
        if !fraction(self.null_frac) {
            return Err(format!(
                "null_frac is {}: not a fraction",
                crate::limits::show(self.null_frac)
            ));
        }
        if !(self.n_distinct.is_finite() && self.n_distinct >= -1.0) {
            return Err(format!(
                "n_distinct is {}: neither a count nor minus a fraction of the rows",
                crate::limits::show(self.n_distinct)
            ));
        }
        if self.avg_width < 0 {
            return Err(format!(
                "avg_width is {}: a width cannot be negative",
                self.avg_width
            ));
        }
        if let Some(c) = self.correlation.filter(|c| !c.is_finite()) {
            return Err(format!(
                "correlation is {}: not a correlation",
                crate::limits::show(c)
            ));
        }
        match self
            .most_common_freqs
            .iter()
            .flatten()
            .find(|f| !fraction(**f))
        {
            Some(f) => Err(format!(
                "most_common_freqs holds {}: not a fraction",
                crate::limits::show(*f)
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
