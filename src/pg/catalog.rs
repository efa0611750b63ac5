//! The catalogue queries downtime sends to a staging copy while it applies
//! patches, in one place. Each is tagged `/*downtime*/`, so the server-side
//! clock (`pg_stat_statements`) leaves them out of a patch's time.
//!
//! They run on the patch's own session (its locks and transaction-local
//! counters are only visible there), whose search path the patch may have
//! set to put its own objects first (`set search_path = public,
//! pg_catalog` with a `public.pg_class` table, a `public.pg_locks` view, a
//! `public.pg_relation_size` function, an `=` operator on oids). So each
//! runs [`pinned`]: with `pg_catalog` first and `pg_temp` last for the
//! length of the query, the patch's path restored afterwards; and every
//! function is schema-qualified besides.

use std::collections::HashMap;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use super::relation::{Relation, Snapshot};
use super::trace::Reads;
use crate::error::Result;

/// The search path of downtime's own connections (the admin connection):
/// the catalogue first, the session's temporary schema last (not first, as
/// it is when left out).
pub const PINNED_SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// The search path the patch's session had before [`pin`], to put back.
#[must_use = "release() puts the patch's search path back"]
pub struct Pinned {
    saved: String,
    /// The session was not in a transaction block: [`pin`] opened one.
    opened: bool,
}

/// Pin the search path of the patch's session `client` for downtime's
/// catalogue queries: `pg_catalog` first, then the patch's own path (so
/// relation names print as the patch would write them), then `pg_temp`.
/// Inside a transaction block the setting is local to it and put back by
/// [`Pinned::release`]; outside one, a transaction of its own holds it and
/// its end discards it.
pub async fn pin(client: &Client, in_transaction: bool) -> Result<Pinned> {
    let mut saved = String::new();
    for m in client.simple_query("/*downtime*/ show search_path").await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            saved = r.get(0).unwrap_or_default().to_string();
        }
    }
    let path = match saved.trim() {
        "" | "\"\"" => PINNED_SEARCH_PATH.to_string(),
        own => format!("pg_catalog, {own}, pg_temp"),
    };
    if !in_transaction {
        client.batch_execute("/*downtime*/ begin").await?;
    }
    client
        .query(
            "/*downtime*/ select pg_catalog.set_config('search_path', $1, true)",
            &[&path],
        )
        .await?;
    Ok(Pinned {
        saved,
        opened: !in_transaction,
    })
}

impl Pinned {
    /// Put the patch's search path back (or end the transaction [`pin`]
    /// opened, which does the same).
    pub async fn release(self, client: &Client) -> Result<()> {
        if self.opened {
            client.batch_execute("/*downtime*/ commit").await?;
        } else {
            client
                .query(
                    "/*downtime*/ select pg_catalog.set_config('search_path', $1, true)",
                    &[&self.saved],
                )
                .await?;
        }
        Ok(())
    }
}

/// Run `query` on `client` with the search path [`pin`]ned, and put it back
/// whatever the query's result.
pub async fn pinned<T, F>(client: &Client, in_transaction: bool, query: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let pin = pin(client, in_transaction).await?;
    let result = query.await;
    let released = pin.release(client).await;
    let value = result?;
    released?;
    Ok(value)
}

const USER_RELATIONS: &str = "\
    n.nspname not in ('pg_catalog', 'information_schema') \
    and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp'";

/// A relation's main-fork bytes as the snapshot takes them, for `x` (a
/// `pg_class` row): measured (`pg_relation_size`, which opens the file) for
/// a table or materialized view without a row estimate, where the file's
/// size is what says whether it holds rows; the catalogue's page count
/// (`relpages`, as of the last VACUUM, ANALYZE or index build) otherwise;
/// nothing for relations without storage.
const BYTES: &str = "case when x.relkind in ('r', 'm') and x.reltuples <= 0 \
                       then pg_catalog.pg_relation_size(x.oid) \
                     when x.relkind in ('r', 'm', 'i') \
                       then x.relpages::int8 * pg_catalog.current_setting('block_size')::int8 \
                     else 0 end";

/// Record the relations that exist now, and name the tables that have data
/// but no statistics yet (created and filled by an earlier patch),
/// schema-qualified, to be analysed so row estimates exist. Only the
/// catalogue is read, and the files of tables without a row estimate: the
/// cost follows the tables without statistics, not the whole schema. Run
/// it [`pinned`] outside the patch's transaction: it turns JIT compilation
/// off for that transaction (the planner's estimate for the partitioned
/// tables' sums, once per relation, would compile it, for longer than the
/// query runs).
pub async fn snapshot(client: &Client) -> Result<(Snapshot, Vec<String>)> {
    client
        .batch_execute("/*downtime*/ select pg_catalog.set_config('jit', 'off', true)")
        .await?;
    let leaf_bytes = BYTES.replace("x.", "k.");
    let own_bytes = BYTES.replace("x.", "c.");
    let rows = client
        .query(
            &format!(
                "/*downtime*/ select c.oid, n.nspname || '.' || c.relname, c.relkind::text, c.relfilenode, \
                   case when c.relkind = 'p' then \
                     (select coalesce(pg_catalog.sum(greatest(k.reltuples, 0)), 0)::float8 from pg_catalog.pg_partition_tree(c.oid) t join pg_catalog.pg_class k on k.oid = t.relid where t.isleaf) \
                   else greatest(c.reltuples, 0)::float8 end, \
                   case when c.relkind = 'p' then \
                     (select coalesce(pg_catalog.sum({leaf_bytes}), 0)::int8 from pg_catalog.pg_partition_tree(c.oid) t join pg_catalog.pg_class k on k.oid = t.relid where t.isleaf) \
                   else {own_bytes} end, \
                   i.indrelid, coalesce(i.indisvalid, true), \
                   case when c.relkind in ('r', 'm') and c.reltuples < 0 \
                     then pg_catalog.format('%I.%I', n.nspname, c.relname) end \
                 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
                 left join pg_catalog.pg_index i on i.indexrelid = c.oid \
                 where c.relkind in ('r', 'p', 'm', 'i', 'I') and {USER_RELATIONS}"
            ),
            &[],
        )
        .await?;
    let mut unanalysed = Vec::new();
    let relations = rows
        .iter()
        .map(|r| {
            let kind: String = r.get(2);
            let rel = Relation {
                oid: r.get(0),
                name: r.get(1),
                kind: kind.chars().next().unwrap_or('r'),
                filenode: r.get(3),
                rows: r.get(4),
                bytes: r.get(5),
                table: r.get(6),
                valid: r.get(7),
            };
            if let (Some(name), true) = (r.get::<_, Option<String>>(8), rel.bytes > 0) {
                unanalysed.push(name);
            }
            (rel.oid, rel)
        })
        .collect();
    Ok((Snapshot { relations }, unanalysed))
}

/// Resolve a relation name as the session would: with the patch's own
/// search path, so not [`pinned`]; the function and the type are qualified.
pub async fn resolve(client: &Client, regclass_text: &str) -> Result<Option<u32>> {
    let rows = client
        .query_typed(
            "/*downtime*/ select pg_catalog.to_regclass($1::pg_catalog.text)::pg_catalog.oid",
            &[(&regclass_text, Type::TEXT)],
        )
        .await?;
    Ok(rows.first().and_then(|r| r.get(0)))
}

/// Whether column `column` of `table` is already NOT NULL, or a validated
/// CHECK constraint proves it (PostgreSQL 12+ then skips the scan). Run it
/// [`pinned`].
pub async fn not_null_proven(client: &Client, table: u32, column: &str) -> Result<bool> {
    let rows = client
        .query(
            "/*downtime*/ select a.attnotnull, coalesce(pg_catalog.array_agg(pg_catalog.pg_get_constraintdef(k.oid)) filter (where k.oid is not null), '{}') \
             from pg_catalog.pg_attribute a \
             left join pg_catalog.pg_constraint k on k.conrelid = a.attrelid and k.contype = 'c' and k.convalidated \
             where a.attrelid = $1 and a.attname = $2 group by a.attnotnull",
            &[&table, &column],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(false);
    };
    let already: bool = row.get(0);
    let defs: Vec<String> = row.get(1);
    let quoted = format!("\"{}\"", column.replace('"', "\"\""));
    let plain_ok = column
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let proves = |def: &String| {
        def.contains(&format!("({quoted} IS NOT NULL)"))
            || (plain_ok && def.contains(&format!("({column} IS NOT NULL)")))
    };
    Ok(already || defs.iter().any(proves))
}

/// For `VALIDATE CONSTRAINT`: whether the constraint is already validated
/// (then nothing is scanned), and its kind. Run it [`pinned`].
pub async fn constraint_state(
    client: &Client,
    table: u32,
    name: &str,
) -> Result<Option<(bool, String)>> {
    let row = client
        .query_opt(
            "/*downtime*/ select convalidated, contype::text from pg_catalog.pg_constraint where conrelid = $1 and conname = $2",
            &[&table, &name],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Indexes that are not valid now, by oid and name, and the role the
/// session runs as (`current_user`). An index on a partitioned table has
/// no storage and is invalid by design until an index of every partition
/// is attached to it (`CREATE INDEX … ON ONLY`): it is left out. Run it
/// [`pinned`].
pub async fn invalid_indexes(client: &Client) -> Result<(Vec<(u32, String)>, String)> {
    let row = client
        .query_one(
            "/*downtime*/ select current_user::text, \
               coalesce(pg_catalog.array_agg(i.indexrelid order by i.indexrelid), '{}'), \
               coalesce(pg_catalog.array_agg(i.indexrelid::regclass::text order by i.indexrelid), '{}') \
             from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid \
             where not i.indisvalid and c.relkind <> 'I'",
            &[],
        )
        .await?;
    let oids: Vec<u32> = row.get(1);
    let names: Vec<String> = row.get(2);
    Ok((oids.into_iter().zip(names).collect(), row.get(0)))
}

/// The unique keys of each table in `oids` (unique indexes over plain
/// columns, not partial): their column names, in order. Schema-qualified:
/// needs no pinned search path.
pub async fn unique_keys(client: &Client, oids: &[u32]) -> Result<HashMap<u32, Vec<Vec<String>>>> {
    let rows = client
        .query(
            "/*downtime*/ select i.indrelid, array(select a.attname::pg_catalog.text \
               from pg_catalog.unnest(i.indkey::pg_catalog.int2[]) with ordinality k(n, o) \
               join pg_catalog.pg_attribute a on a.attrelid OPERATOR(pg_catalog.=) i.indrelid \
                and a.attnum OPERATOR(pg_catalog.=) k.n order by k.o) \
             from pg_catalog.pg_index i \
             where i.indrelid OPERATOR(pg_catalog.=) any ($1::pg_catalog.oid[]) and i.indisunique \
               and i.indpred is null and i.indexprs is null",
            &[&oids],
        )
        .await?;
    let mut out: HashMap<u32, Vec<Vec<String>>> = HashMap::new();
    for r in &rows {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(out)
}

/// What the session's transaction has read so far of each table in
/// `oids` (PostgreSQL's pending, transaction-local statistics), and the
/// leaf partitions of those that are partitioned (a validation of a
/// partitioned table scans its leaves). Schema-qualified: needs no pinned
/// search path.
pub async fn reads(
    client: &Client,
    oids: &[u32],
) -> Result<(HashMap<u32, Reads>, HashMap<u32, Vec<u32>>)> {
    let leaves = client
        .query(
            "/*downtime*/ select r.oid, p.relid::pg_catalog.oid from pg_catalog.unnest($1::pg_catalog.oid[]) r(oid), \
               pg_catalog.pg_partition_tree(r.oid::pg_catalog.regclass) p \
             where p.isleaf and p.relid OPERATOR(pg_catalog.<>) r.oid",
            &[&oids],
        )
        .await?;
    let mut partitions: HashMap<u32, Vec<u32>> = HashMap::new();
    for row in &leaves {
        let leaf: u32 = row.get(1);
        partitions.entry(row.get(0)).or_default().push(leaf);
    }
    let mut all: Vec<u32> = oids.to_vec();
    all.extend(partitions.values().flatten().copied());
    let rows = client
        .query(
            "/*downtime*/ select r.oid, pg_catalog.pg_stat_get_xact_blocks_fetched(r.oid), \
               pg_catalog.pg_stat_get_xact_numscans(r.oid), \
               pg_catalog.pg_stat_get_xact_tuples_returned(r.oid) \
                 OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_fetched(r.oid) \
             from pg_catalog.unnest($1::pg_catalog.oid[]) r(oid)",
            &[&all],
        )
        .await?;
    let reads = rows
        .iter()
        .map(|r| {
            let reads = Reads {
                blocks: r.get(1),
                scans: r.get(2),
                tuples: r.get(3),
            };
            (r.get(0), reads)
        })
        .collect();
    Ok((reads, partitions))
}

/// Prepare, on the admin connection (where downtime created
/// `pg_stat_statements` in `public`), the query of [`statements_exec_ms`].
pub async fn prepare_statements_exec_ms(client: &Client) -> Result<Statement> {
    Ok(client
        .prepare_typed(
            "select coalesce(pg_catalog.sum(total_exec_time), 0)::float8 from public.pg_stat_statements \
             where dbid = $1 and query not like '/*downtime*/%'",
            &[Type::OID],
        )
        .await?)
}

/// Milliseconds of execution `pg_stat_statements` has recorded in database
/// `dbid` for statements that are not downtime's own, read with `prepared`
/// ([`prepare_statements_exec_ms`]).
pub async fn statements_exec_ms(client: &Client, prepared: &Statement, dbid: u32) -> Result<f64> {
    let row = client.query_one(prepared, &[&dbid]).await?;
    Ok(row.get(0))
}

/// Forget what `pg_stat_statements` recorded so far in database `dbid`
/// (the copy) only: reading it costs a row per statement it keeps (the
/// baseline's thousands of DDL statements among them), and downtime only
/// ever reads differences within one patch. The other databases' entries
/// are left alone: on a shared server they are someone else's statistics
/// (`pg_stat_statements_reset()` without arguments would wipe them all).
/// `false` when the server refuses (a role without the right, an
/// extension older than 1.7 without the three-argument form): the clock
/// then reads differences from a larger view.
pub async fn reset_statements(client: &Client, dbid: u32) -> bool {
    client
        .query("select public.pg_stat_statements_reset(0, $1, 0)", &[&dbid])
        .await
        .is_ok()
}

/// The oid of database `name`.
pub async fn database_oid(client: &Client, name: &str) -> Result<Option<u32>> {
    Ok(client
        .query_opt(
            "select oid from pg_catalog.pg_database where datname = $1",
            &[&name],
        )
        .await?
        .map(|r| r.get(0)))
}
