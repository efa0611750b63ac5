//! Production statistics: row counts, sizes and modification rates per table,
//! read from catalogue and statistics views only, on a read-only connection.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::staging::source::Source;

pub const SCHEMA_VERSION: u32 = 1;

/// One table as production sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// `schema.table`
    pub name: String,
    /// Planner estimate (`pg_class.reltuples`).
    pub rows: f64,
    pub pages: i64,
    /// Table, indexes and TOAST (`pg_total_relation_size`).
    pub total_bytes: i64,
    /// The table's main fork (`pg_relation_size`).
    pub table_bytes: i64,
    /// Rows inserted, updated and deleted since `stats_since`, when known.
    pub inserts: Option<i64>,
    pub updates: Option<i64>,
    pub deletes: Option<i64>,
    pub stats_since: Option<String>,
    /// Net growth per month as a fraction of the rows ((inserts - deletes) /
    /// rows / months since `stats_since`), when it can be told.
    pub monthly_growth: Option<f64>,
}

/// A `downtime stats export` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProdStats {
    pub schema_version: u32,
    pub exported_at: String,
    pub server_version: String,
    /// The source, password redacted.
    pub source: String,
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

    pub fn load(path: &std::path::Path) -> Result<ProdStats> {
        let text = crate::fsutil::read_text(path, crate::fsutil::STATS)?;
        let s: ProdStats = serde_json::from_str(&text).map_err(|e| Error::InputAt {
            path: path.to_path_buf(),
            line: e.line(),
            message: format!("not a downtime stats file: {e}"),
        })?;
        if s.schema_version != SCHEMA_VERSION {
            return Err(Error::input(
                path,
                format!("stats schema version {} is not supported", s.schema_version),
            ));
        }
        for t in &s.tables {
            t.check()
                .map_err(|m| Error::input(path, format!("table {}: {m}", t.name)))?;
        }
        Ok(s)
    }
}

impl TableStats {
    /// Numbers a database can report: rows in range, nothing negative, a
    /// finite growth.
    fn check(&self) -> std::result::Result<(), String> {
        crate::limits::ROWS
            .check(self.rows)
            .map_err(|e| format!("rows: {e}"))?;
        let counts = [
            ("pages", Some(self.pages)),
            ("total_bytes", Some(self.total_bytes)),
            ("table_bytes", Some(self.table_bytes)),
            ("inserts", self.inserts),
            ("updates", self.updates),
            ("deletes", self.deletes),
        ];
        if let Some((name, Some(v))) = counts.iter().find(|(_, v)| v.is_some_and(|v| v < 0)) {
            return Err(format!("{name} is {v}: a count cannot be negative"));
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

const EXPORT_SQL: &str = "\
select n.nspname || '.' || c.relname,
       greatest(c.reltuples, 0)::float8,
       c.relpages::int8,
       pg_total_relation_size(c.oid),
       pg_relation_size(c.oid),
       s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
       coalesce((select stats_reset from pg_stat_database where datname = current_database()),
                pg_postmaster_start_time())::text,
       extract(epoch from now() - coalesce(
           (select stats_reset from pg_stat_database where datname = current_database()),
           pg_postmaster_start_time()))::float8
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  left join pg_stat_user_tables s on s.relid = c.oid
 where c.relkind in ('r', 'p', 'm')
   and n.nspname not in ('pg_catalog', 'information_schema')
   and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp'
 order by 1";

/// Read the statistics of the source database (read-only transactions,
/// catalogue and statistics views only), connected to as libpq would
/// connect to it.
pub async fn export(source: &Source) -> Result<ProdStats> {
    let config = source.connect_config("downtime stats export (read-only)")?;
    let (client, connection) = config.connect(source.tls()?).await.map_err(|e| {
        Error::Server(source.scrub(&format!(
            "cannot connect to {}: {}",
            source.redacted(),
            crate::error::describe_pg_error(&e)
        )))
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let version: String = client
        .query_one("select current_setting('server_version')", &[])
        .await?
        .get(0);
    let rows = client.query(EXPORT_SQL, &[]).await?;
    let tables = rows
        .iter()
        .map(|r| {
            let rows: f64 = r.get(1);
            let inserts: Option<i64> = r.get(5);
            let deletes: Option<i64> = r.get(7);
            let seconds: f64 = r.get(9);
            let months = seconds / (30.44 * 86_400.0);
            let monthly_growth = match (inserts, deletes) {
                (Some(i), Some(d)) if rows > 0.0 && months >= 1.0 / 30.0 => {
                    Some((i - d) as f64 / rows / months)
                }
                _ => None,
            };
            TableStats {
                name: r.get(0),
                rows,
                pages: r.get(2),
                total_bytes: r.get(3),
                table_bytes: r.get(4),
                inserts,
                updates: r.get(6),
                deletes,
                stats_since: r.get(8),
                monthly_growth,
            }
        })
        .collect();
    Ok(ProdStats {
        schema_version: SCHEMA_VERSION,
        exported_at: crate::time::now_rfc3339(),
        server_version: version,
        source: source.redacted(),
        tables,
    })
}
