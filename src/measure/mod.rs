//! Applying a patch to a staging copy: one transaction (or the patch's own
//! transactions), statement by statement, each timed with a monotonic clock
//! and followed by a trace of locks, rewrites and new indexes.

pub mod stats;
pub mod trace;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::Serialize;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::cancel::{Abort, Cancel};
use crate::error::{Error, Result};
use crate::patch::statement::Validation;
use crate::patch::{Fact, Patch, TxControl};
use crate::verdict::locks::LockMode;
pub use trace::{Relation, Snapshot};

/// How patches are applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// No statement may run longer than this; it is cancelled on the server.
    pub statement_cap: Duration,
}

/// The server's own clock for statements: `pg_stat_statements`, read from a
/// second connection so the reading is not part of the patch's session.
pub struct ServerClock<'a> {
    pub admin: &'a Client,
    /// The copy's database oid.
    pub dbid: u32,
}

impl ServerClock<'_> {
    /// Milliseconds of execution the server has recorded in the copy for
    /// statements that are not downtime's own.
    async fn exec_ms(&self) -> Result<f64> {
        let row = self
            .admin
            .query_one(
                "select coalesce(sum(total_exec_time), 0)::float8 from pg_stat_statements \
                 where dbid = $1 and query not like '/*downtime*/%'",
                &[&self.dbid],
            )
            .await?;
        Ok(row.get(0))
    }
}

/// A lock first seen after a statement, on a relation that existed before the patch.
#[derive(Debug, Clone, Serialize)]
pub struct LockHeld {
    #[serde(skip)]
    pub oid: u32,
    pub relation: String,
    pub mode: LockMode,
    /// From the start of the statement that took it to the end of its transaction.
    pub held_seconds: f64,
}

/// A relation whose storage was replaced by a statement.
#[derive(Debug, Clone, Serialize)]
pub struct Rewrite {
    #[serde(skip)]
    pub oid: u32,
    pub relation: String,
    pub kind: &'static str,
    /// Rows before the statement (planner estimate).
    pub rows: i64,
    /// Bytes before the statement.
    pub bytes: i64,
}

/// Catalogue facts read just before a statement that needs them.
#[derive(Debug, Clone, Default)]
pub struct PreCheck {
    /// Static relation names resolved to oids (`None` when not found).
    pub resolved: HashMap<String, Option<u32>>,
    /// SET NOT NULL on a column already NOT NULL or proven by a valid CHECK.
    pub not_null_proven: HashMap<String, bool>,
    /// VALIDATE CONSTRAINT: (already validated, contype).
    pub constraint: HashMap<String, (bool, String)>,
    /// Pages of each validated table read by the transaction before the statement.
    pub blocks_before: HashMap<u32, i64>,
}

/// One statement as it ran.
#[derive(Debug, Clone)]
pub struct StatementRun {
    /// Index into the patch's statements.
    pub index: usize,
    pub seconds: f64,
    /// Rows reported by the command tag (UPDATE 42 → 42).
    pub rows_affected: Option<u64>,
    /// Ran in autocommit mode, outside any transaction block.
    pub outside_transaction: bool,
    /// Locks on pre-existing relations held when the statement finished,
    /// including those taken by earlier statements of the same transaction.
    pub held: Vec<(u32, LockMode)>,
    /// Locks this statement took, with hold times.
    pub locks: Vec<LockHeld>,
    pub rewrites: Vec<Rewrite>,
    /// New indexes on pre-existing tables: (table oid, index name).
    pub new_indexes: Vec<(u32, String)>,
    /// `lock_timeout` in effect when the statement started.
    pub lock_timeout: String,
    pub pre: PreCheck,
    /// Pages of each table the statement was to validate that it actually
    /// read (known only inside a transaction).
    pub scanned_blocks: HashMap<u32, i64>,
    /// The statement's execution time by the server's clock, when known.
    pub server_seconds: Option<f64>,
}

/// Where a patch failed.
#[derive(Debug, Clone, Serialize)]
pub struct PatchError {
    pub message: String,
    pub sqlstate: Option<String>,
    /// The line the error points at (the server's error position mapped into the file).
    pub line: usize,
    /// The first line of the failing statement.
    pub statement_line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Earlier transactions of this patch were committed before it failed.
    pub partially_applied: bool,
}

/// Everything measured while applying one patch.
#[derive(Debug, Clone, Default)]
pub struct PatchRun {
    pub statements: Vec<StatementRun>,
    /// Time spent in COMMITs issued by downtime.
    pub commit_seconds: f64,
    pub error: Option<PatchError>,
    pub snapshot: Snapshot,
    /// Indexes left INVALID by this patch.
    pub invalid_indexes: Vec<String>,
    /// The run was aborted while this patch was being applied.
    pub aborted: Option<Abort>,
    /// The patch ended its own session (the copy is no longer reachable on it).
    pub connection_lost: bool,
}

impl PatchRun {
    /// Statement time plus commits: the patch's apply time.
    pub fn seconds(&self) -> f64 {
        self.statements.iter().map(|s| s.seconds).sum::<f64>() + self.commit_seconds
    }
}

/// Turn a driver error into one line with the server's SQLSTATE where there is one.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

enum Outcome {
    Done(Option<u64>),
    Failed(tokio_postgres::Error),
    Aborted(Abort),
}

async fn cancel_on_server(client: &Client) -> Result<()> {
    client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .map_err(|e| Error::Server(format!("cannot cancel the running statement: {e}")))
}

/// Run one statement with the client-side cap as a backstop to the server's
/// statement_timeout: past the cap, or when the run is aborted, the query is
/// cancelled on the server.
async fn run_capped(client: &Client, sql: &str, cap: Duration, cancel: &Cancel) -> Result<Outcome> {
    let query = client.simple_query(sql).fuse();
    let timer = tokio::time::sleep(cap + Duration::from_secs(2)).fuse();
    let aborted = cancel.wait().fuse();
    futures_util::pin_mut!(query, timer, aborted);
    let result = futures_util::select! {
        r = query => r,
        _ = timer => {
            cancel_on_server(client).await?;
            query.await
        }
        a = aborted => {
            cancel_on_server(client).await?;
            // Wait for the server to stop it, so nothing runs on after us.
            let _ = query.await;
            return Ok(Outcome::Aborted(a));
        }
    };
    match result {
        Ok(messages) => Ok(Outcome::Done(messages.iter().rev().find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        }))),
        Err(e) if e.as_db_error().is_some() || e.is_closed() || client.is_closed() => {
            Ok(Outcome::Failed(e))
        }
        Err(e) => Err(Error::Database(format!(
            "the connection to the staging server failed: {e}"
        ))),
    }
}

/// Tracks locks that are still held and when they were taken.
struct OpenLocks {
    /// (oid, mode) → (statement index, position in its `locks`, patch time when taken)
    open: BTreeMap<(u32, LockMode), (usize, usize, f64)>,
}

impl OpenLocks {
    /// Close every open lock not in `still_held`, at patch time `now`.
    fn release_missing(
        &mut self,
        still_held: &std::collections::BTreeSet<(u32, LockMode)>,
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

/// Apply `patch` on `client`'s database. Statement failures are returned in
/// the run; `Err` means the staging server itself failed.
pub async fn apply(
    client: &Client,
    patch: &Patch,
    opts: &ApplyOptions,
    cancel: &Cancel,
    clock: Option<&ServerClock<'_>>,
) -> Result<PatchRun> {
    trace::analyse_unanalysed(client).await?;
    let snapshot = trace::snapshot(client).await?;
    let oids = snapshot.oids();
    let before_invalid: Vec<u32> = snapshot
        .relations
        .values()
        .filter(|r| !r.valid)
        .map(|r| r.oid)
        .collect();

    let mut run = PatchRun {
        snapshot,
        ..PatchRun::default()
    };
    let mut tool_tx = false;
    let mut own_tx_open: Option<usize> = None;
    let mut committed_any = false;
    let mut elapsed = 0.0f64;
    let mut filenodes: HashMap<u32, u32> = run
        .snapshot
        .relations
        .values()
        .map(|r| (r.oid, r.filenode))
        .collect();
    let mut known_indexes: std::collections::HashSet<u32> = run
        .snapshot
        .relations
        .values()
        .filter(|r| r.table.is_some())
        .map(|r| r.oid)
        .collect();
    let mut open = OpenLocks {
        open: BTreeMap::new(),
    };
    let mut lock_timeout = trace::trace(client, &[]).await?.lock_timeout;
    let mut connection_lost = false;

    for (index, st) in patch.statements.iter().enumerate() {
        let outside = st.analysis.outside_transaction;
        let opens_own = st.analysis.tx_control == Some(TxControl::Begin);
        // downtime wraps statements in a transaction of its own unless the
        // patch opened one; it never nests, and it commits before a
        // statement PostgreSQL forbids in a transaction block.
        if tool_tx && (outside || opens_own) {
            let t0 = Instant::now();
            client.batch_execute("/*downtime*/ commit").await?;
            let dt = t0.elapsed().as_secs_f64();
            run.commit_seconds += dt;
            elapsed += dt;
            tool_tx = false;
            committed_any = true;
            open.release_missing(&Default::default(), elapsed, &mut run.statements);
        } else if !tool_tx && own_tx_open.is_none() && !outside && st.analysis.tx_control.is_none()
        {
            client.batch_execute("/*downtime*/ begin").await?;
            tool_tx = true;
        }
        let autocommit = !tool_tx && own_tx_open.is_none();

        let pre = precheck(client, st).await?;
        let server_before = match clock {
            Some(c) => Some(c.exec_ms().await?),
            None => None,
        };
        let t0 = Instant::now();
        let outcome = run_capped(client, &st.sql, opts.statement_cap, cancel).await?;
        let seconds = t0.elapsed().as_secs_f64();
        elapsed += seconds;

        let failure = match outcome {
            Outcome::Done(rows) => Ok(rows),
            Outcome::Failed(e) => {
                let lost = e.is_closed()
                    || client.is_closed()
                    || e.code() == Some(&tokio_postgres::error::SqlState::ADMIN_SHUTDOWN);
                let mut error = patch_error(&e, st, committed_any);
                if lost {
                    connection_lost = true;
                    if e.as_db_error().is_none() {
                        error.message = "the session applying the patch was closed by this statement".into();
                    }
                }
                Err((error, None))
            }
            Outcome::Aborted(a) => Err((
                PatchError {
                    message: format!("aborted by {a} while this statement was running; it was cancelled on the server and the patch rolled back"),
                    sqlstate: Some("57014".into()),
                    line: st.line,
                    statement_line: st.line,
                    detail: None,
                    hint: None,
                    partially_applied: committed_any,
                },
                Some(a),
            )),
        };
        let rows_affected = match failure {
            Ok(rows) => rows,
            Err((error, aborted)) => {
                run.statements.push(StatementRun {
                    index,
                    seconds,
                    rows_affected: None,
                    outside_transaction: autocommit,
                    held: Vec::new(),
                    locks: Vec::new(),
                    rewrites: Vec::new(),
                    new_indexes: Vec::new(),
                    lock_timeout: lock_timeout.clone(),
                    pre,
                    scanned_blocks: HashMap::new(),
                    server_seconds: None,
                });
                open.release_missing(&Default::default(), elapsed, &mut run.statements);
                run.error = Some(error);
                run.aborted = aborted;
                if connection_lost || client.is_closed() {
                    run.connection_lost = true;
                    if let Some(e) = run.error.as_mut() {
                        e.hint.get_or_insert_with(|| {
                            "the statement ended the session applying the patch; later patches are not run".into()
                        });
                    }
                    return Ok(run);
                }
                if tool_tx || own_tx_open.is_some() {
                    client.batch_execute("/*downtime*/ rollback").await?;
                }
                run.invalid_indexes = new_invalid_indexes(client, &before_invalid).await?;
                return Ok(run);
            }
        };

        match st.analysis.tx_control {
            Some(TxControl::Begin) => own_tx_open = Some(st.line),
            Some(TxControl::Commit) => {
                own_tx_open = None;
                tool_tx = false;
                committed_any = true;
            }
            Some(TxControl::Rollback) => {
                own_tx_open = None;
                tool_tx = false;
            }
            _ => {}
        }

        let server_seconds = match (clock, server_before) {
            (Some(c), Some(before)) => Some(((c.exec_ms().await? - before) / 1000.0).max(0.0)),
            _ => None,
        };
        let t = trace::trace(client, &oids).await?;
        let mut scanned_blocks = HashMap::new();
        if !autocommit {
            for (&oid, &before) in &pre.blocks_before {
                scanned_blocks.insert(oid, trace::blocks_fetched(client, oid).await? - before);
            }
        }
        let mut sr = StatementRun {
            index,
            seconds,
            rows_affected,
            outside_transaction: autocommit,
            held: t.locks.iter().copied().collect(),
            locks: Vec::new(),
            rewrites: Vec::new(),
            new_indexes: Vec::new(),
            lock_timeout: std::mem::replace(&mut lock_timeout, t.lock_timeout.clone()),
            pre,
            scanned_blocks,
            server_seconds,
        };
        // Locks released by this statement (its own COMMIT) end here.
        open.release_missing(&t.locks, elapsed, &mut run.statements);
        for &(oid, mode) in &t.locks {
            if let std::collections::btree_map::Entry::Vacant(slot) = open.open.entry((oid, mode)) {
                let Some(rel) = run.snapshot.get(oid) else {
                    continue;
                };
                slot.insert((index, sr.locks.len(), elapsed - seconds));
                sr.locks.push(LockHeld {
                    oid,
                    relation: rel.name.clone(),
                    mode,
                    held_seconds: seconds,
                });
            }
        }
        // Locks PostgreSQL documents for statements that run outside a transaction.
        if sr.outside_transaction {
            for fact in &st.analysis.facts {
                if let Fact::HoldsWhileRunning { rel, mode } = fact {
                    if let Some(Some(oid)) = sr.pre.resolved.get(&rel.to_string()) {
                        if let Some(r) = run.snapshot.get(*oid) {
                            sr.locks.push(LockHeld {
                                oid: *oid,
                                relation: r.name.clone(),
                                mode: *mode,
                                held_seconds: seconds,
                            });
                        }
                    }
                }
            }
        }
        for (oid, node) in &t.filenodes {
            if let Some(prev) = filenodes.insert(*oid, *node) {
                if prev != *node {
                    if let Some(rel) = run.snapshot.get(*oid) {
                        sr.rewrites.push(Rewrite {
                            oid: *oid,
                            relation: rel.name.clone(),
                            kind: rel.kind_name(),
                            rows: rel.rows.round() as i64,
                            bytes: rel.bytes,
                        });
                    }
                }
            }
        }
        // VACUUM FULL and CLUSTER rewrite under ACCESS EXCLUSIVE (PostgreSQL
        // documents it); outside a transaction block the lock is gone by the
        // time it could be read, and without a table list no name is known
        // in advance.
        if sr.outside_transaction
            && matches!(st.analysis.kind.as_str(), "VacuumStmt" | "ClusterStmt")
        {
            for rw in &sr.rewrites {
                let is_table = run.snapshot.get(rw.oid).is_some_and(|r| r.is_table());
                let known = sr
                    .locks
                    .iter()
                    .any(|l| l.oid == rw.oid && l.mode == LockMode::AccessExclusive);
                if is_table && !known {
                    sr.locks.push(LockHeld {
                        oid: rw.oid,
                        relation: rw.relation.clone(),
                        mode: LockMode::AccessExclusive,
                        held_seconds: seconds,
                    });
                }
            }
        }
        for (idx, (table, name)) in &t.indexes {
            if known_indexes.insert(*idx) {
                sr.new_indexes.push((*table, name.clone()));
            }
        }
        run.statements.push(sr);
    }

    if let Some(line) = own_tx_open {
        client.batch_execute("/*downtime*/ rollback").await?;
        open.release_missing(&Default::default(), elapsed, &mut run.statements);
        let last = patch.statements.last().map_or(line, |s| s.line);
        run.error = Some(PatchError {
            message: format!(
                "the transaction opened at line {line} is never committed; add COMMIT at the end of the patch"
            ),
            sqlstate: None,
            line: last,
            statement_line: line,
            detail: None,
            hint: None,
            partially_applied: committed_any,
        });
        return Ok(run);
    }
    if tool_tx {
        let t0 = Instant::now();
        client.batch_execute("/*downtime*/ commit").await?;
        let dt = t0.elapsed().as_secs_f64();
        run.commit_seconds += dt;
        elapsed += dt;
    }
    open.release_missing(&Default::default(), elapsed, &mut run.statements);

    run.invalid_indexes = new_invalid_indexes(client, &before_invalid).await?;
    Ok(run)
}

/// Indexes that are INVALID now and were not before the patch.
async fn new_invalid_indexes(client: &Client, before: &[u32]) -> Result<Vec<String>> {
    Ok(trace::invalid_indexes(client)
        .await?
        .into_iter()
        .filter(|(oid, _)| !before.contains(oid))
        .map(|(_, name)| name)
        .collect())
}

/// Resolve the statement's relations and read the catalogue facts its
/// classification needs, before it runs.
async fn precheck(client: &Client, st: &crate::patch::Statement) -> Result<PreCheck> {
    let mut pre = PreCheck::default();
    for fact in &st.analysis.facts {
        let rel = match fact {
            Fact::Validates { rel, .. }
            | Fact::BuildsIndex { rel, .. }
            | Fact::Writes { rel, .. }
            | Fact::Truncates { rel }
            | Fact::AltersTable { rel }
            | Fact::CreatesTrigger { rel }
            | Fact::HoldsWhileRunning { rel, .. } => rel,
            Fact::NewTableReferences { referenced, .. } => referenced,
        };
        let key = rel.to_string();
        if !pre.resolved.contains_key(&key) {
            let oid = trace::resolve(client, &rel.regclass_text()).await?;
            pre.resolved.insert(key.clone(), oid);
        }
        let Some(Some(oid)) = pre.resolved.get(&key).copied() else {
            continue;
        };
        if let Fact::Validates { .. } = fact {
            if let std::collections::hash_map::Entry::Vacant(slot) = pre.blocks_before.entry(oid) {
                slot.insert(trace::blocks_fetched(client, oid).await?);
            }
        }
        if let Fact::Validates {
            validation,
            name: Some(name),
            ..
        } = fact
        {
            match validation {
                Validation::NotNull => {
                    let proven = trace::not_null_proven(client, oid, name).await?;
                    pre.not_null_proven.insert(name.clone(), proven);
                }
                Validation::Constraint => {
                    if let Some(state) = trace::constraint_state(client, oid, name).await? {
                        pre.constraint.insert(name.clone(), state);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(pre)
}

fn patch_error(
    e: &tokio_postgres::Error,
    st: &crate::patch::Statement,
    partially_applied: bool,
) -> PatchError {
    let db = e.as_db_error();
    let line = db
        .and_then(|d| d.position())
        .and_then(|p| match p {
            tokio_postgres::error::ErrorPosition::Original(pos) => Some(*pos as usize),
            tokio_postgres::error::ErrorPosition::Internal { .. } => None,
        })
        .map_or(st.line, |pos| st.line_of_position(pos));
    PatchError {
        message: db.map_or_else(|| e.to_string(), |d| d.message().to_string()),
        sqlstate: db.map(|d| d.code().code().to_string()),
        line,
        statement_line: st.line,
        detail: db.and_then(|d| d.detail()).map(str::to_string),
        hint: db.and_then(|d| d.hint()).map(str::to_string),
        partially_applied,
    }
}
