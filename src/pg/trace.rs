//! What downtime reads on the patch's own session after each statement: the
//! locks its transaction holds, and, for the relations whose storage could
//! have changed, that storage.
//!
//! A statement can only rewrite, re-index or validate a relation it holds a
//! lock on, and PostgreSQL replaces a relation's storage (or creates an
//! index) only under ACCESS EXCLUSIVE on it. So the trace reads the
//! session's locks (one prepared query, sent right behind the statement),
//! and looks up storage only for relations held that strongly, and only
//! when the catalogue was written at all since the last trace. A statement
//! outside a transaction block has released its locks by then: what it
//! changed is found by the transaction ids of the catalogue rows written
//! since the last time the session was idle.
//!
//! Every name here is schema-qualified and every operator written
//! `OPERATOR(pg_catalog.…)`: the patch's search path (and what it put
//! first on it: a `public.pg_locks` view, an `=` operator on oids) cannot
//! change what these read, so they need no [`super::catalog::pinned`]
//! search path, which would cost round trips of its own.

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row, Statement};

use super::locks::LockMode;
use crate::error::Result;

/// The per-statement query. `$1`: the databases to name (the templates);
/// `$2`: the tables whose pages read so far are wanted; `$3`: the
/// session's `pg_class` writes at the last trace in this transaction block
/// (null when there was none): unless that count moved, the storage of
/// relations held under ACCESS EXCLUSIVE or EXCLUSIVE is not read.
const STATEMENT_TRACE: &str = "/*downtime*/ \
    with l as (select l.relation, l.mode from pg_catalog.pg_locks l \
        where l.locktype OPERATOR(pg_catalog.=) 'relation' and l.granted \
          and l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() \
          and l.relation OPERATOR(pg_catalog.>=) '16384'::pg_catalog.oid), \
      w as (select pg_catalog.pg_stat_get_xact_tuples_inserted('1259'::pg_catalog.oid) \
        OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated('1259'::pg_catalog.oid) as pending), \
      f as (select l.relation, \
          pg_catalog.pg_relation_filenode(l.relation::pg_catalog.regclass) as filenode from l, w \
        where l.mode OPERATOR(pg_catalog.=) any ('{ExclusiveLock,AccessExclusiveLock}'::pg_catalog.text[]) \
          and ($3::pg_catalog.int8 is null or w.pending OPERATOR(pg_catalog.<>) $3)), \
      d as (select d.oid, d.datname::pg_catalog.text as name from pg_catalog.pg_database d \
        where d.oid OPERATOR(pg_catalog.=) any ($1::pg_catalog.oid[])), \
      b as (select b.rel, pg_catalog.pg_stat_get_xact_blocks_fetched(b.rel) as blocks, \
          pg_catalog.pg_stat_get_xact_numscans(b.rel) as scans, \
          pg_catalog.pg_stat_get_xact_tuples_returned(b.rel) \
            OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_fetched(b.rel) as tuples \
        from pg_catalog.unnest($2::pg_catalog.oid[]) b(rel)) \
    select array(select l.relation from l), \
      array(select pg_catalog.array_position('{AccessShareLock,RowShareLock,RowExclusiveLock,\
ShareUpdateExclusiveLock,ShareLock,ShareRowExclusiveLock,ExclusiveLock,AccessExclusiveLock}'::pg_catalog.text[], \
        l.mode::pg_catalog.text) from l), \
      array(select f.relation from f), array(select f.filenode from f), \
      array(select d.oid from d), array(select d.name from d), \
      array(select b.rel from b), array(select b.blocks from b), \
      pg_catalog.current_setting('lock_timeout'), \
      pg_catalog.current_setting('idle_in_transaction_session_timeout', true), \
      pg_catalog.current_setting('idle_session_timeout', true), \
      pg_catalog.current_setting('transaction_timeout', true), \
      current_user::pg_catalog.text, \
      pg_catalog.current_setting('track_counts') OPERATOR(pg_catalog.=) 'on', w.pending, \
      pg_catalog.current_setting('server_version_num')::pg_catalog.int4, \
      pg_catalog.pg_stat_get_tuples_inserted('1259'::pg_catalog.oid) \
        OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_tuples_updated('1259'::pg_catalog.oid), \
      pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()), \
      array(select b.scans from b), array(select b.tuples from b) \
    from w";

/// Storage of relations by oid (`$1`).
const STORED: &str = "/*downtime*/ \
    select c.oid, c.relkind::pg_catalog.text, c.relfilenode, i.indrelid \
      from pg_catalog.pg_class c \
      left join pg_catalog.pg_index i on i.indexrelid OPERATOR(pg_catalog.=) c.oid \
      where c.oid OPERATOR(pg_catalog.=) any ($1::pg_catalog.oid[])";

/// Storage of every user relation whose catalogue row a transaction with
/// an id in `[$1, $2)` wrote: a sequential read of `pg_class`.
const WRITTEN: &str = "/*downtime*/ \
    select c.oid, c.relkind::pg_catalog.text, c.relfilenode, i.indrelid \
      from pg_catalog.pg_class c \
      left join pg_catalog.pg_index i on i.indexrelid OPERATOR(pg_catalog.=) c.oid \
      where c.oid OPERATOR(pg_catalog.>=) '16384'::pg_catalog.oid \
        and ((c.xmin::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.-) $1) \
               OPERATOR(pg_catalog.%) 4294967296 OPERATOR(pg_catalog.+) 4294967296) \
             OPERATOR(pg_catalog.%) 4294967296 \
           OPERATOR(pg_catalog.<) ($2::pg_catalog.int8 OPERATOR(pg_catalog.-) $1)";

/// What the session shows right after a statement.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Relation locks the session holds on user relations (oid ≥ 16384),
    /// whether they existed before the patch or not.
    pub locks: BTreeSet<(u32, LockMode)>,
    /// `lock_timeout` in effect now, as PostgreSQL shows it (`0` when off).
    pub lock_timeout: String,
    /// The role the session runs as (`current_user`).
    pub user: String,
    /// The session timeouts that end a session (idle in transaction,
    /// idle, transaction), by name, where the server has them.
    pub timeouts: HashMap<String, String>,
    /// The names of the watched databases (the templates copies are made
    /// from) that still exist, by oid, as this session sees them.
    pub databases: HashMap<u32, String>,
    /// What this transaction has read so far of the tables asked about.
    pub blocks: HashMap<u32, Reads>,
    /// The storage file of each relation held under ACCESS EXCLUSIVE or
    /// EXCLUSIVE, read only when the session wrote `pg_class` since the
    /// last trace in the transaction block.
    pub filenodes: HashMap<u32, u32>,
    /// How many rows of `pg_class` this session has inserted or updated,
    /// as the statistics system counts them; `None` with `track_counts`
    /// off. A relation's storage, and a new index, are rows written there.
    pub catalog_writes: Option<CatalogWrites>,
    /// The first transaction id not yet completed: whatever a transaction
    /// starting later writes carries an id at least this.
    pub next_xid: i64,
}

/// What a transaction read of one table so far, as PostgreSQL's pending,
/// transaction-local statistics count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// Pages requested (`pg_stat_get_xact_blocks_fetched`).
    pub blocks: i64,
    /// Sequential scans started (`pg_stat_get_xact_numscans`): counted when a
    /// scan starts, so a scan of an empty table counts too.
    pub scans: i64,
    /// Rows read by sequential scans and fetched through indexes.
    pub tuples: i64,
}

impl Reads {
    /// What was read after `before`.
    pub fn since(&self, before: &Reads) -> Reads {
        Reads {
            blocks: self.blocks - before.blocks,
            scans: self.scans - before.scans,
            tuples: self.tuples - before.tuples,
        }
    }

    /// A sequential scan started, or pages were read.
    pub fn scanned(&self) -> bool {
        self.blocks > 0 || self.scans > 0
    }
}

/// The `pg_class` rows this session wrote, counted two ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogWrites {
    /// Counted by this session and not yet reported to the server's
    /// statistics: only grows inside a transaction block.
    pub pending: i64,
    /// Reported to the server's statistics (by every session) plus
    /// `pending`. From PostgreSQL 15 the session reports its own counts
    /// into shared memory itself, so this never goes back; before, a
    /// separate process lags behind.
    pub total: i64,
    /// The server's version (`server_version_num`).
    pub server_version: i32,
}

impl CatalogWrites {
    /// Whether the catalogue may have been written between `before` and
    /// now. `same_transaction`: both were read inside one transaction block.
    pub fn changed_since(&self, before: &CatalogWrites, same_transaction: bool) -> bool {
        if same_transaction {
            self.pending != before.pending
        } else if self.server_version >= 150000 {
            self.total != before.total
        } else {
            true
        }
    }
}

/// Prepare the per-statement query on the patch's session (once per patch:
/// the session's `DISCARD ALL` after each patch deallocates it).
pub async fn prepare(client: &Client) -> Result<Statement> {
    Ok(client
        .prepare_typed(
            STATEMENT_TRACE,
            &[Type::OID_ARRAY, Type::OID_ARRAY, Type::INT8],
        )
        .await?)
}

/// What the per-statement query is asked.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The databases to name (the templates).
    pub databases: &'a [u32],
    /// The tables whose pages read so far are wanted.
    pub tables: &'a [u32],
    /// The session's `pending` catalogue writes at the last trace in this
    /// transaction block: storage is read only if they moved since.
    pub writes_before: Option<i64>,
}

/// Run the per-statement query `prepared`. The driver's error is kept as
/// it is: one that names a prepared statement the patch deallocated is
/// retried after preparing again.
pub async fn read(
    client: &Client,
    prepared: &Statement,
    ask: Ask<'_>,
) -> std::result::Result<Trace, tokio_postgres::Error> {
    let rows = client
        .query(prepared, &[&ask.databases, &ask.tables, &ask.writes_before])
        .await?;
    Ok(parse(&rows))
}

/// The timeouts that end a session, in the order the query reads them.
const TIMEOUTS: [&str; 3] = [
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_timeout",
];

fn parse(rows: &[Row]) -> Trace {
    let mut t = Trace::default();
    let Some(r) = rows.first() else {
        return t;
    };
    let relations: Vec<u32> = r.get(0);
    let modes: Vec<Option<i32>> = r.get(1);
    for (oid, mode) in relations.into_iter().zip(modes) {
        let mode = mode
            .and_then(|m| usize::try_from(m - 1).ok())
            .and_then(|m| LockMode::ALL.get(m));
        if let Some(mode) = mode {
            t.locks.insert((oid, *mode));
        }
    }
    let strong: Vec<u32> = r.get(2);
    let filenodes: Vec<Option<u32>> = r.get(3);
    for (oid, filenode) in strong.into_iter().zip(filenodes) {
        if let Some(f) = filenode {
            t.filenodes.insert(oid, f);
        }
    }
    let dbs: Vec<u32> = r.get(4);
    let names: Vec<String> = r.get(5);
    t.databases = dbs.into_iter().zip(names).collect();
    let tables: Vec<u32> = r.get(6);
    let blocks: Vec<i64> = r.get(7);
    let scans: Vec<i64> = r.get(18);
    let tuples: Vec<i64> = r.get(19);
    t.blocks = tables
        .into_iter()
        .enumerate()
        .map(|(i, oid)| {
            let at = |v: &[i64]| v.get(i).copied().unwrap_or(0);
            let reads = Reads {
                blocks: at(&blocks),
                scans: at(&scans),
                tuples: at(&tuples),
            };
            (oid, reads)
        })
        .collect();
    t.lock_timeout = r.get(8);
    for (i, name) in TIMEOUTS.iter().enumerate() {
        let value: Option<String> = r.get(9 + i);
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            t.timeouts.insert((*name).to_string(), v);
        }
    }
    t.user = r.get(12);
    let counting: bool = r.get(13);
    let pending: i64 = r.get(14);
    let reported: i64 = r.get(16);
    t.catalog_writes = counting.then_some(CatalogWrites {
        pending,
        total: reported + pending,
        server_version: r.get(15),
    });
    t.next_xid = r.get(17);
    t
}

/// A relation's storage as the catalogue has it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub oid: u32,
    /// `pg_class.relkind`.
    pub kind: char,
    pub filenode: u32,
    /// For an index: its table.
    pub table: Option<u32>,
}

/// The storage of the relations `oids`, and of every user relation whose
/// catalogue row was written by a transaction with an id in `written`
/// (`[first, end)`): a sequential read of `pg_class`, for what a statement
/// outside a transaction block changed.
pub async fn stored(
    client: &Client,
    oids: &[u32],
    written: Option<(i64, i64)>,
) -> Result<Vec<Stored>> {
    let mut rows = Vec::new();
    if !oids.is_empty() {
        rows = client
            .query_typed(STORED, &[(&oids, Type::OID_ARRAY)])
            .await?;
    }
    if let Some((first, end)) = written {
        rows.extend(
            client
                .query_typed(WRITTEN, &[(&first, Type::INT8), (&end, Type::INT8)])
                .await?,
        );
    }
    Ok(rows
        .iter()
        .map(|r| {
            let kind: String = r.get(1);
            Stored {
                oid: r.get(0),
                kind: kind.chars().next().unwrap_or('r'),
                filenode: r.get(2),
                table: r.get(3),
            }
        })
        .collect())
}

/// The names of relations `oids` as the session prints them (`regclass`),
/// by oid. Run it [`super::catalog::pinned`]: the name depends on the
/// search path.
pub async fn names(client: &Client, oids: &[u32]) -> Result<HashMap<u32, String>> {
    let rows = client
        .query_typed(
            "/*downtime*/ select o, o::pg_catalog.regclass::pg_catalog.text \
             from pg_catalog.unnest($1::pg_catalog.oid[]) o",
            &[(&oids, Type::OID_ARRAY)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// For `INSERT INTO rel VALUES (constants)` (`regclass_text`, resolved as
/// the session resolves it): the locks such a statement takes, when that
/// is all it can do. So it is for a plain table (no partitions, rules or
/// row security) whose INSERT triggers are foreign-key checks against
/// plain tables only, whose columns are of built-in (or enum) types, and
/// whose defaults, constraints and indexes use nothing user-defined
/// besides relations and each other (no function, operator, operator
/// class, type or collation of the user's;
/// none of the built-in functions that run a query, take locks on a
/// relation named to them or change a setting), while no cast between
/// built-in types is user-defined. Then the statement holds, when it ends,
/// ROW EXCLUSIVE on the table (its indexes' locks end with it) and ROW
/// SHARE on each referenced table and its indexes (the foreign-key checks'
/// `SELECT … FOR KEY SHARE`); it writes no catalogue row and changes no
/// setting. `None` otherwise, or when the name does not resolve.
pub async fn insert_locks(
    client: &Client,
    regclass_text: &str,
) -> Result<Option<Vec<(u32, LockMode)>>> {
    let row = client
        .query_typed(INSERT_LOCKS, &[(&regclass_text, Type::TEXT)])
        .await?;
    let Some(row) = row.first() else {
        return Ok(None);
    };
    if !row.get::<_, bool>(1) {
        return Ok(None);
    }
    let table: u32 = row.get(0);
    let referenced: Vec<u32> = row.get(2);
    let mut locks = vec![(table, LockMode::RowExclusive)];
    locks.extend(referenced.iter().map(|&t| (t, LockMode::RowShare)));
    Ok(Some(locks))
}

const INSERT_LOCKS: &str = "/*downtime*/ \
    with r as (select pg_catalog.to_regclass($1::pg_catalog.text)::pg_catalog.oid as oid) \
    select c.oid, \
      c.relkind OPERATOR(pg_catalog.=) 'r' and not c.relhasrules and not c.relrowsecurity \
      and not exists (select from pg_catalog.pg_cast k where k.oid OPERATOR(pg_catalog.>=) '16384'::pg_catalog.oid \
        and k.castsource OPERATOR(pg_catalog.<) '16384'::pg_catalog.oid and k.casttarget OPERATOR(pg_catalog.<) '16384'::pg_catalog.oid) \
      and not exists (select from pg_catalog.pg_trigger t \
        where t.tgrelid OPERATOR(pg_catalog.=) c.oid and t.tgenabled OPERATOR(pg_catalog.<>) 'D' \
          and (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 4) OPERATOR(pg_catalog.<>) 0 \
          and t.tgfoid OPERATOR(pg_catalog.<>) 'pg_catalog.\"RI_FKey_check_ins\"'::pg_catalog.regproc) \
      and not exists (select from pg_catalog.pg_constraint k join pg_catalog.pg_class p on p.oid OPERATOR(pg_catalog.=) k.confrelid \
        where k.conrelid OPERATOR(pg_catalog.=) c.oid and k.contype OPERATOR(pg_catalog.=) 'f' \
          and p.relkind OPERATOR(pg_catalog.<>) 'r') \
      and not exists (select from pg_catalog.pg_attribute a join pg_catalog.pg_type y on y.oid OPERATOR(pg_catalog.=) a.atttypid \
        where a.attrelid OPERATOR(pg_catalog.=) c.oid and a.attnum OPERATOR(pg_catalog.>) 0 and not a.attisdropped \
          and a.atttypid OPERATOR(pg_catalog.>=) '16384'::pg_catalog.oid and y.typtype OPERATOR(pg_catalog.<>) 'e') \
      and not exists (select from pg_catalog.pg_depend d \
        where ((d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass \
                and d.objid OPERATOR(pg_catalog.=) any (array(select f.oid from pg_catalog.pg_attrdef f where f.adrelid OPERATOR(pg_catalog.=) c.oid))) \
            or (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass \
                and d.objid OPERATOR(pg_catalog.=) any (array(select k.oid from pg_catalog.pg_constraint k where k.conrelid OPERATOR(pg_catalog.=) c.oid))) \
            or (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
                and d.objid OPERATOR(pg_catalog.=) any (array(select i.indexrelid from pg_catalog.pg_index i where i.indrelid OPERATOR(pg_catalog.=) c.oid)))) \
          and d.refclassid OPERATOR(pg_catalog.<>) all (array['pg_catalog.pg_class'::pg_catalog.regclass, \
            'pg_catalog.pg_constraint'::pg_catalog.regclass]::pg_catalog.oid[]) \
          and (d.refobjid OPERATOR(pg_catalog.>=) '16384'::pg_catalog.oid \
            or (d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass \
              and exists (select from pg_catalog.pg_proc f where f.oid OPERATOR(pg_catalog.=) d.refobjid \
                and (f.proname OPERATOR(pg_catalog.~) 'xml|^ts_stat$|^set_config$|^brin_|^gin_clean' \
                  or f.prolang OPERATOR(pg_catalog.<>) 12))))), \
      array(select k.confrelid from pg_catalog.pg_constraint k \
          where k.conrelid OPERATOR(pg_catalog.=) c.oid and k.contype OPERATOR(pg_catalog.=) 'f' \
        union select i.indexrelid from pg_catalog.pg_constraint k \
          join pg_catalog.pg_index i on i.indrelid OPERATOR(pg_catalog.=) k.confrelid \
          where k.conrelid OPERATOR(pg_catalog.=) c.oid and k.contype OPERATOR(pg_catalog.=) 'f') \
    from r join pg_catalog.pg_class c on c.oid OPERATOR(pg_catalog.=) r.oid";
