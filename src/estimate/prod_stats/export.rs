//! `downtime stats export`: one query over catalogue and statistics views
//! (`pg_class`, `pg_index`, `pg_inherits`, `pg_partition_tree`, `pg_stats`,
//! `pg_stat_user_tables`, `pg_stat_database`), never a table's rows.

use tokio_postgres::Row;

use super::{ColumnStats, IndexStats, ProdStats, TableKind, TableStats, SCHEMA_VERSION};
use crate::error::{Error, Result};
use crate::staging::source::Source;

/// Every table, partition, inheritance child and materialized view of the
/// user schemas. `$1` (boolean): also the data values of `pg_stats` (most
/// common values and their frequencies, histogram bounds); when false they
/// are not selected, so they never leave the server.
///
/// `own` is each relation's own figures. Rows are unknown where
/// `reltuples` is -1 (never vacuumed or analysed, PostgreSQL 14+) or, before
/// 14 (where it was 0 then), 0 with no pages counted yet for a table that
/// has data. A partitioned table has no storage: its rows, sizes and
/// modification counts are its leaf partitions' sums (sub-partitions
/// included), its pages unknown. A partitioned index's bytes are its
/// partitions'. Column statistics are `pg_stats`' rows over the whole
/// hierarchy (`inherited`) for a partitioned table, the table's own
/// otherwise. Works on PostgreSQL 12 and later (`pg_partition_tree`,
/// `indnkeyatts`).
pub(super) const EXPORT_SQL: &str = r#"
with own as (
select c.oid, c.relkind,
       case when c.reltuples < 0 then null
            when pg_catalog.current_setting('server_version_num')::int < 140000
                 and c.reltuples = 0 and c.relpages = 0
                 and coalesce(pg_catalog.pg_relation_size(c.oid), 0) > 0 then null
            else c.reltuples::float8 end as rows,
       case when c.relkind = 'p' or c.relpages < 0 then null else c.relpages::int8 end as pages,
       coalesce(pg_catalog.pg_relation_size(c.oid), 0)::int8 as table_bytes,
       coalesce(pg_catalog.pg_total_relation_size(c.oid), 0)::int8 as total_bytes,
       case when c.reltoastrelid = 0 then 0
            else coalesce(pg_catalog.pg_total_relation_size(c.reltoastrelid), 0) end::int8 as toast_bytes,
       s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
       greatest(s.last_analyze, s.last_autoanalyze) as analysed
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  left join pg_catalog.pg_stat_user_tables s on s.relid = c.oid
 where c.relkind in ('r', 'p', 'm', 'f')
   and n.nspname not in ('pg_catalog', 'information_schema')
   and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp'
),
since as (
select coalesce((select d.stats_reset from pg_catalog.pg_stat_database d
                  where d.datname = pg_catalog.current_database()),
                pg_catalog.pg_postmaster_start_time()) as at
)
select n.nspname || '.' || c.relname as name,
       c.relkind::text as kind,
       (select pn.nspname || '.' || p.relname
          from pg_catalog.pg_inherits i
          join pg_catalog.pg_class p on p.oid = i.inhparent
          join pg_catalog.pg_namespace pn on pn.oid = p.relnamespace
         where i.inhrelid = c.oid
         order by i.inhseqno limit 1) as parent,
       case when o.relkind = 'p' then tree.rows else o.rows end as rows,
       o.pages,
       case when o.relkind = 'p' then coalesce(tree.total_bytes, 0) else o.total_bytes end as total_bytes,
       case when o.relkind = 'p' then coalesce(tree.table_bytes, 0) else o.table_bytes end as table_bytes,
       case when o.relkind = 'p' then coalesce(tree.toast_bytes, 0) else o.toast_bytes end as toast_bytes,
       case when o.relkind = 'p' then tree.inserts else o.n_tup_ins end as inserts,
       case when o.relkind = 'p' then tree.updates else o.n_tup_upd end as updates,
       case when o.relkind = 'p' then tree.deletes else o.n_tup_del end as deletes,
       since.at::text as stats_since,
       extract(epoch from pg_catalog.now() - since.at)::float8 as stats_seconds,
       pg_catalog.to_char(o.analysed at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as analysed_at,
       (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
                   'name', xn.nspname || '.' || xc.relname,
                   'bytes', case when xc.relkind = 'I'
                                 then (select coalesce(pg_catalog.sum(pg_catalog.pg_relation_size(t.relid)), 0)
                                         from pg_catalog.pg_partition_tree(xc.oid) t)
                                 else coalesce(pg_catalog.pg_relation_size(xc.oid), 0) end::int8,
                   'unique', x.indisunique or x.indisprimary,
                   'partial', x.indpred is not null,
                   'columns', case when x.indexprs is not null then '[]'::json
                                   else (select coalesce(pg_catalog.json_agg(a.attname order by k.ord), '[]'::json)
                                           from pg_catalog.unnest(x.indkey::int2[]) with ordinality k(attnum, ord)
                                           join pg_catalog.pg_attribute a
                                             on a.attrelid = c.oid and a.attnum = k.attnum
                                          where k.ord <= x.indnkeyatts) end)
                   order by xc.relname), '[]'::json)::text
          from pg_catalog.pg_index x
          join pg_catalog.pg_class xc on xc.oid = x.indexrelid
          join pg_catalog.pg_namespace xn on xn.oid = xc.relnamespace
         where x.indrelid = c.oid) as indexes,
       (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
                   'name', st.attname,
                   'null_frac', st.null_frac,
                   'n_distinct', st.n_distinct,
                   'avg_width', st.avg_width,
                   'correlation', case when st.correlation = 'NaN' then null else st.correlation end,
                   'most_common_vals', case when $1 then st.most_common_vals::text::text[] end,
                   'most_common_freqs', case when $1 then st.most_common_freqs end,
                   'histogram_bounds', case when $1 then st.histogram_bounds::text::text[] end)
                   order by a.attnum), '[]'::json)::text
          from pg_catalog.pg_stats st
          join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = st.attname
         where st.schemaname = n.nspname and st.tablename = c.relname
           and st.inherited = (c.relkind = 'p')) as columns
  from own o
  join pg_catalog.pg_class c on c.oid = o.oid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  cross join since
  left join lateral (
       select pg_catalog.sum(l.rows) as rows,
              pg_catalog.sum(l.total_bytes)::int8 as total_bytes,
              pg_catalog.sum(l.table_bytes)::int8 as table_bytes,
              pg_catalog.sum(l.toast_bytes)::int8 as toast_bytes,
              pg_catalog.sum(l.n_tup_ins)::int8 as inserts,
              pg_catalog.sum(l.n_tup_upd)::int8 as updates,
              pg_catalog.sum(l.n_tup_del)::int8 as deletes
         from pg_catalog.pg_partition_tree(o.oid) t
         join own l on l.oid = t.relid
        where o.relkind = 'p' and t.isleaf) tree on true
 where o.relkind in ('r', 'p', 'm')
 order by 1
"#;

/// Read the statistics of the source database (read-only transactions,
/// catalogue and statistics views only), connected to as libpq would
/// connect to it. `with_values`: also the most common values and histogram
/// bounds of every column, which are production data.
pub async fn export(source: &Source, with_values: bool) -> Result<ProdStats> {
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
        .query_one("select pg_catalog.current_setting('server_version')", &[])
        .await?
        .try_get(0)?;
    // The planner's estimate for the per-table subqueries, over thousands
    // of tables, would have JIT compile the query for longer than it runs.
    client
        .batch_execute("select pg_catalog.set_config('jit', 'off', false)")
        .await?;
    let rows = client.query(EXPORT_SQL, &[&with_values]).await?;
    let tables = rows
        .iter()
        .map(table_of)
        .collect::<Result<Vec<TableStats>>>()?;
    Ok(ProdStats {
        schema_version: SCHEMA_VERSION,
        exported_at: crate::time::now_rfc3339(),
        server_version: version,
        source: source.redacted(),
        with_values,
        tables,
    })
}

/// One row of [`EXPORT_SQL`].
fn table_of(r: &Row) -> Result<TableStats> {
    let name: String = r.try_get("name")?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Error::Server(format!("stats export: table {name}: {what}: {e}"))
    };
    let kind = match r.try_get::<_, String>("kind")?.as_str() {
        "r" => TableKind::Table,
        "p" => TableKind::Partitioned,
        "m" => TableKind::Matview,
        other => return Err(bad("relation kind", &other)),
    };
    let rows: Option<f64> = r.try_get("rows")?;
    let inserts: Option<i64> = r.try_get("inserts")?;
    let deletes: Option<i64> = r.try_get("deletes")?;
    let seconds: f64 = r.try_get("stats_seconds")?;
    let indexes: String = r.try_get("indexes")?;
    let indexes: Vec<IndexStats> =
        serde_json::from_str(&indexes).map_err(|e| bad("indexes", &e))?;
    let columns: String = r.try_get("columns")?;
    let columns: Vec<ColumnStats> =
        serde_json::from_str(&columns).map_err(|e| bad("column statistics", &e))?;
    Ok(TableStats {
        kind,
        parent: r.try_get("parent")?,
        rows,
        pages: r.try_get("pages")?,
        total_bytes: r.try_get("total_bytes")?,
        table_bytes: r.try_get("table_bytes")?,
        toast_bytes: r.try_get("toast_bytes")?,
        indexes,
        inserts,
        updates: r.try_get("updates")?,
        deletes,
        stats_since: r.try_get("stats_since")?,
        monthly_growth: monthly_growth(rows, inserts, deletes, seconds),
        analysed_at: r.try_get("analysed_at")?,
        columns,
        name,
    })
}

/// Net growth per month as a fraction of `rows`, from the rows inserted and
/// deleted over `seconds`; none before a day of statistics, or without rows.
fn monthly_growth(
    rows: Option<f64>,
    inserts: Option<i64>,
    deletes: Option<i64>,
    seconds: f64,
) -> Option<f64> {
    let months = seconds / (30.44 * 86_400.0);
    match (rows, inserts, deletes) {
        (Some(rows), Some(i), Some(d)) if rows > 0.0 && months >= 1.0 / 30.0 => {
            Some((i - d) as f64 / rows / months)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_needs_rows_and_a_day_of_statistics() {
        let month = 30.44 * 86_400.0;
        assert_eq!(
            monthly_growth(Some(100.0), Some(30), Some(10), month),
            Some(0.2)
        );
        assert_eq!(monthly_growth(None, Some(30), Some(10), month), None);
        assert_eq!(monthly_growth(Some(0.0), Some(30), Some(10), month), None);
        assert_eq!(monthly_growth(Some(100.0), None, Some(10), month), None);
        assert_eq!(
            monthly_growth(Some(100.0), Some(30), Some(10), 3600.0),
            None
        );
    }

    #[test]
    fn the_query_is_schema_qualified_and_reads_no_values_unless_asked() {
        // Every data value is behind `$1`.
        for column in ["most_common_vals", "most_common_freqs", "histogram_bounds"] {
            let uses: Vec<&str> = EXPORT_SQL
                .lines()
                .filter(|l| l.contains(&format!("st.{column}")))
                .collect();
            assert_eq!(uses.len(), 1, "{column}: {uses:?}");
            assert!(uses[0].contains("case when $1 then"), "{}", uses[0]);
        }
        for view in [
            "pg_class",
            "pg_stats",
            "pg_index",
            "pg_inherits",
            "pg_namespace",
        ] {
            assert!(!EXPORT_SQL.contains(&format!(" {view} ")), "{view}");
        }
    }
}
