//! The probe's workload: derived from the copy's schema (a reader and a
//! writer for each table with rows) and the application's own scripts.

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::script::Step;
use super::{ProbeInfo, ProbeOptions, QueryInfo};
use crate::error::Result;

/// What a probe query does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Read,
    Write,
    /// The application's own script (from `--probe-sql`).
    Script,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Script => "script",
        }
    }
}

/// One query of the workload, ready to send.
#[derive(Debug, Clone)]
pub struct ProbeQuery {
    pub label: String,
    pub kind: Kind,
    /// The table it targets, when derived.
    pub relation: Option<String>,
    pub rate: f64,
    /// Statements sent in order, inside a transaction that is rolled back.
    pub steps: Vec<Step>,
    /// Send inside `begin … rollback` (writes and scripts).
    pub rolled_back: bool,
}

/// A table the probe can query: its name (quoted) and how to find a row.
struct Table {
    name: String,
    /// As reports name relations (`schema.table`, unquoted).
    shown: String,
    rows: f64,
    /// Primary-key columns (quoted) and sample values (as literals).
    key: Vec<String>,
    samples: Vec<Vec<String>>,
    /// A column `UPDATE … SET c = c` may name (quoted).
    column: Option<String>,
}

/// Tables that exist now, the ones the patches name first (`named` holds
/// their names as the patches write them), then by size.
const TABLES: &str = "/*downtime*/ with named as ( \
       select pg_catalog.to_regclass(n) as oid, o from pg_catalog.unnest($1::text[]) with ordinality as u(n, o)) \
     select pg_catalog.format('%I.%I', s.nspname, c.relname), greatest(c.reltuples, 0)::float8, \
       coalesce((select pg_catalog.array_agg(pg_catalog.quote_ident(a.attname) order by k.ord) \
         from pg_catalog.pg_index i, pg_catalog.unnest(i.indkey) with ordinality k(attnum, ord) \
         join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum \
         where i.indrelid = c.oid and i.indisprimary), '{}'), \
       (select pg_catalog.quote_ident(a.attname) from pg_catalog.pg_attribute a \
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
           and a.attgenerated = '' and a.attidentity = '' \
         order by (select count(*) from pg_catalog.pg_index i where i.indrelid = c.oid and a.attnum = any(i.indkey)), a.attnum desc limit 1), \
       s.nspname || '.' || c.relname \
     from pg_catalog.pg_class c join pg_catalog.pg_namespace s on s.oid = c.relnamespace \
     where c.relkind in ('r', 'p') and not c.relispartition \
       and s.nspname not in ('pg_catalog', 'information_schema') and s.nspname !~ '^pg_' \
     order by (select min(named.o) from named where named.oid = c.oid) nulls last, c.reltuples desc, 1";

/// How many key values each table's queries rotate through.
const SAMPLES: usize = 32;

/// Derive the workload on `client` (connected to the copy) and add the
/// scripts; `named` are the tables the patches name.
pub async fn derive(
    client: &Client,
    named: &[String],
    opts: &ProbeOptions,
) -> Result<(ProbeInfo, Vec<ProbeQuery>)> {
    let mut notes = Vec::new();
    let mut queries = Vec::new();
    if opts.derived {
        // Names as the server reads them (a cross-database name is an error
        // there, so it is left out).
        let mut names: Vec<&String> = Vec::new();
        for n in named.iter().filter(|n| n.split('.').count() <= 2) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let rows = client.query(TABLES, &[&names]).await?;
        let mut tables = Vec::new();
        for r in &rows {
            let t = Table {
                name: r.get(0),
                shown: r.get(4),
                rows: r.get(1),
                key: r.get(2),
                samples: Vec::new(),
                column: r.get(3),
            };
            if tables.len() == opts.max_tables {
                notes.push(format!(
                    "{} and later tables get no queries (at most {} tables; the ones the patches name come first)",
                    t.name, opts.max_tables
                ));
                break;
            }
            match with_samples(client, t).await? {
                Some(t) => tables.push(t),
                None => notes.push(format!("{}: no rows, not queried", r.get::<_, String>(0))),
            }
        }
        for t in &tables {
            queries.extend(table_queries(t, opts.rate));
        }
    }
    for s in &opts.scripts {
        queries.push(ProbeQuery {
            label: s.label.clone(),
            kind: Kind::Script,
            relation: None,
            rate: s.rate.unwrap_or(opts.rate),
            steps: s.steps.clone(),
            rolled_back: true,
        });
    }
    let info = ProbeInfo {
        sessions: opts.sessions,
        rate_per_query: opts.rate,
        threshold_seconds: opts.threshold.as_secs_f64(),
        idle_seconds: opts.idle.as_secs_f64(),
        long_query_seconds: opts.long_query.map(|d| d.as_secs_f64()),
        queries: queries
            .iter()
            .map(|q| QueryInfo {
                label: q.label.clone(),
                kind: q.kind,
                relation: q.relation.clone(),
                rate: q.rate,
                sql: q
                    .steps
                    .iter()
                    .map(Step::text)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect(),
        notes,
    };
    Ok((info, queries))
}

/// Read up to [`SAMPLES`] key values (or see that the table has a row):
/// `None` for an empty table.
async fn with_samples(client: &Client, mut t: Table) -> Result<Option<Table>> {
    let select = if t.key.is_empty() {
        "1".to_string()
    } else {
        t.key
            .iter()
            .map(|k| format!("{k}::text"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "/*downtime*/ select {select} from {} limit {SAMPLES}",
        t.name
    );
    let mut found = false;
    for m in client.simple_query(&sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            found = true;
            if !t.key.is_empty() {
                let values: Option<Vec<String>> =
                    (0..t.key.len()).map(|i| r.get(i).map(literal)).collect();
                t.samples.extend(values);
            }
        }
    }
    Ok(found.then_some(t))
}

/// A text value as an SQL literal (the column's type is inferred).
fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// A reader and, where a column can be written, a writer for `t`.
fn table_queries(t: &Table, rate: f64) -> Vec<ProbeQuery> {
    let rows = t.rows.round() as i64;
    let wheres: Vec<String> = if t.samples.is_empty() {
        Vec::new()
    } else {
        t.samples
            .iter()
            .map(|vals| {
                t.key
                    .iter()
                    .zip(vals)
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
            .collect()
    };
    let (read, read_label) = if wheres.is_empty() {
        (
            vec![Step::fixed(format!(
                "/*downtime*/ select * from {} limit 1",
                t.name
            ))],
            format!("read {} (bounded scan, ~{rows} rows)", t.shown),
        )
    } else {
        (
            wheres
                .iter()
                .map(|w| format!("/*downtime*/ select * from {} where {w}", t.name))
                .map(Step::fixed)
                .collect(),
            format!("read {} by primary key", t.shown),
        )
    };
    let mut out = vec![ProbeQuery {
        label: read_label,
        kind: Kind::Read,
        relation: Some(t.shown.clone()),
        rate,
        steps: vec![Step::rotating(read)],
        rolled_back: false,
    }];
    if let Some(col) = &t.column {
        let writes: Vec<Step> = if wheres.is_empty() {
            vec![Step::fixed(format!(
                "/*downtime*/ update {n} set {col} = {col} where ctid = (select ctid from {n} limit 1)",
                n = t.name
            ))]
        } else {
            wheres
                .iter()
                .map(|w| {
                    Step::fixed(format!(
                        "/*downtime*/ update {} set {col} = {col} where {w}",
                        t.name
                    ))
                })
                .collect()
        };
        out.push(ProbeQuery {
            label: format!("write one row of {} (rolled back)", t.shown),
            kind: Kind::Write,
            relation: Some(t.shown.clone()),
            rate,
            steps: vec![Step::rotating(writes)],
            rolled_back: true,
        });
    }
    out
}
