//! Applying one patch: statement by statement, each timed with a monotonic
//! clock and followed by a trace of locks, rewrites and new indexes.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use tokio_postgres::error::{ErrorPosition, SqlState};
use tokio_postgres::Client;

use super::exec::{run_capped, Executed};
use super::precheck::precheck;
use super::tool::{mixed, no_transaction_hint};
use super::{
    ApplyOptions, LockHeld, PatchError, PatchRun, PreCheck, Rewrite, ServerClock, StatementRun,
};
use crate::cancel::{Abort, Cancel};
use crate::error::Result;
use crate::ledger::Plan as Books;
use crate::patch::{Fact, Layout, Patch, Statement, Transaction, TxControl};
use crate::pg::catalog::{self, Trace};
use crate::pg::locks::LockMode;

/// Which transaction the next statement runs in. downtime wraps statements
/// in a transaction of its own unless the patch opened one; it never nests,
/// and it commits before a statement PostgreSQL forbids in a transaction
/// block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// None: the statement runs in autocommit mode.
    Idle,
    /// downtime's own `BEGIN`.
    Tool,
    /// The patch's own `BEGIN`, at this line.
    Patch(usize),
}

/// Locks that are still held, and when they were taken.
#[derive(Default)]
struct OpenLocks {
    /// (oid, mode) → (statement index in the run, position in its `locks`,
    /// patch time when taken)
    open: BTreeMap<(u32, LockMode), (usize, usize, f64)>,
}

impl OpenLocks {
    /// Close every open lock not in `still_held`, at patch time `now`.
    fn release_missing(
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

/// The state of one patch being applied.
struct Tracer<'a> {
    client: &'a Client,
    opts: &'a ApplyOptions,
    cancel: &'a Cancel,
    clock: Option<&'a ServerClock<'a>>,
    run: PatchRun,
    /// Relations that existed before the patch.
    oids: Vec<u32>,
    /// Indexes that were INVALID before the patch.
    invalid_before: Vec<u32>,
    tx: TxState,
    /// A transaction of this patch was committed.
    committed_any: bool,
    /// Patch time so far: statements and downtime's commits.
    elapsed: f64,
    filenodes: HashMap<u32, u32>,
    known_indexes: HashSet<u32>,
    open: OpenLocks,
    lock_timeout: String,
    /// How the statements are sent: downtime's split, or as the tool sends them.
    mode: Transaction,
    /// The tool's transaction was opened (it is opened once per migration).
    opened: bool,
    /// The layout, for hints that name the tool.
    layout: Layout,
    /// The tool's books, and whether its record goes into the patch's transaction.
    books: Option<&'a Books>,
    record_inside: bool,
    /// The tool sends the file as one query: its own BEGIN opens the
    /// transaction (no tool BEGIN before it).
    implicit: bool,
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
    apply_with(client, patch, opts, cancel, clock, None).await
}

/// Apply `patch` as its layout's tool sends it, keeping the tool's books
/// (not timed: `bookkeeping_seconds`) when `books` is given.
pub async fn apply_with(
    client: &Client,
    patch: &Patch,
    opts: &ApplyOptions,
    cancel: &Cancel,
    clock: Option<&ServerClock<'_>>,
    books: Option<&Books>,
) -> Result<PatchRun> {
    // The tool's books before the patch come before its snapshot: what they
    // change (golang-migrate truncates its table) is not the patch's doing.
    let t0 = Instant::now();
    if let Some(b) = books.filter(|_| !matches!(patch.tool.transaction, Transaction::Mixed(_))) {
        b.before(client, patch).await?;
    }
    let before_seconds = t0.elapsed().as_secs_f64();
    let mut tracer = Tracer::start(client, opts, cancel, clock).await?;
    tracer.run.bookkeeping_seconds = if books.is_some() { before_seconds } else { 0.0 };
    tracer.layout = patch.file.layout;
    tracer.record_inside = matches!(
        patch.tool.transaction,
        Transaction::Single | Transaction::Split
    );
    tracer.mode = match patch.tool.transaction {
        Transaction::Implicit if patch.statements.len() <= 1 => Transaction::Split,
        Transaction::Implicit => Transaction::Single,
        m => m,
    };
    tracer.books = books;
    tracer.implicit = patch.tool.transaction == Transaction::Implicit;
    if let Transaction::Mixed(line) = patch.tool.transaction {
        tracer.run.error = Some(mixed(patch, line));
        return Ok(tracer.run);
    }
    for (index, st) in patch.statements.iter().enumerate() {
        if tracer.statement(index, st).await? {
            return Ok(tracer.run);
        }
    }
    tracer.finish(patch).await
}

impl<'a> Tracer<'a> {
    async fn start(
        client: &'a Client,
        opts: &'a ApplyOptions,
        cancel: &'a Cancel,
        clock: Option<&'a ServerClock<'a>>,
    ) -> Result<Tracer<'a>> {
        catalog::analyse_unanalysed(client).await?;
        let snapshot = catalog::snapshot(client).await?;
        let relations = snapshot.relations.values();
        let invalid_before = relations.clone().filter(|r| !r.valid).map(|r| r.oid);
        let filenodes = relations.clone().map(|r| (r.oid, r.filenode)).collect();
        let known_indexes = relations
            .clone()
            .filter(|r| r.table.is_some())
            .map(|r| r.oid)
            .collect();
        let lock_timeout = catalog::trace(client, &[]).await?.lock_timeout;
        Ok(Tracer {
            client,
            opts,
            cancel,
            clock,
            oids: snapshot.oids(),
            invalid_before: invalid_before.collect(),
            filenodes,
            known_indexes,
            run: PatchRun {
                snapshot,
                ..PatchRun::default()
            },
            tx: TxState::Idle,
            committed_any: false,
            elapsed: 0.0,
            open: OpenLocks::default(),
            lock_timeout,
            mode: Transaction::Split,
            opened: false,
            layout: Layout::Numbered,
            books: None,
            record_inside: true,
            implicit: false,
        })
    }

    /// Run and trace one statement; `true` when the patch ends here (it failed).
    async fn statement(&mut self, index: usize, st: &Statement) -> Result<bool> {
        self.enter(st).await?;
        let autocommit = self.tx == TxState::Idle;
        let pre = precheck(self.client, st).await?;
        let server_before = match self.clock {
            Some(c) => Some(c.exec_ms().await?),
            None => None,
        };
        let t0 = Instant::now();
        let executed =
            run_capped(self.client, &st.sql, self.opts.statement_cap, self.cancel).await?;
        let seconds = t0.elapsed().as_secs_f64();
        self.elapsed += seconds;
        let rows = match executed {
            Executed::Done(rows) => rows,
            Executed::Failed(e) => {
                let (error, lost) = self.failure(&e, st);
                self.fail(index, seconds, autocommit, pre, error, None, lost)
                    .await?;
                return Ok(true);
            }
            Executed::Aborted(a) => {
                let error = PatchError {
                    message: format!("aborted by {a} while this statement was running; it was cancelled on the server and the patch rolled back"),
                    sqlstate: Some("57014".into()),
                    line: st.line,
                    statement_line: st.line,
                    detail: None,
                    hint: None,
                    partially_applied: self.committed_any,
                };
                self.fail(index, seconds, autocommit, pre, error, Some(a), false)
                    .await?;
                return Ok(true);
            }
        };
        self.left(st);
        let server_seconds = match (self.clock, server_before) {
            (Some(c), Some(before)) => Some(((c.exec_ms().await? - before) / 1000.0).max(0.0)),
            _ => None,
        };
        let trace = catalog::trace(self.client, &self.oids).await?;
        let mut scanned_blocks = HashMap::new();
        if !autocommit {
            for (&oid, &before) in &pre.blocks_before {
                let now = catalog::blocks_fetched(self.client, oid).await?;
                scanned_blocks.insert(oid, now - before);
            }
        }
        let mut sr = StatementRun {
            index,
            seconds,
            rows_affected: rows,
            outside_transaction: autocommit,
            held: trace.locks.iter().copied().collect(),
            locks: Vec::new(),
            rewrites: Vec::new(),
            new_indexes: Vec::new(),
            lock_timeout: std::mem::replace(&mut self.lock_timeout, trace.lock_timeout.clone()),
            pre,
            scanned_blocks,
            server_seconds,
        };
        self.record(&mut sr, st, &trace);
        self.run.statements.push(sr);
        Ok(false)
    }

    /// Open or close downtime's own transaction before `st`, as it needs.
    async fn enter(&mut self, st: &Statement) -> Result<()> {
        match self.mode {
            Transaction::Single => {
                // The tool's one transaction, opened once; what cannot run in
                // it fails there, as under the tool.
                if !self.opened && self.tx == TxState::Idle {
                    self.opened = true;
                    if self.implicit && st.analysis.tx_control == Some(TxControl::Begin) {
                        return Ok(());
                    }
                    self.client.batch_execute("/*downtime*/ begin").await?;
                    self.tx = TxState::Tool;
                }
                return Ok(());
            }
            Transaction::Autocommit | Transaction::Mixed(_) => return Ok(()),
            Transaction::Split | Transaction::Implicit => {}
        }
        let outside = st.analysis.outside_transaction;
        let opens_own = st.analysis.tx_control == Some(TxControl::Begin);
        if self.tx == TxState::Tool && (outside || opens_own) {
            self.commit_own().await?;
            self.committed_any = true;
            let elapsed = self.elapsed;
            self.open
                .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
        } else if self.tx == TxState::Idle && !outside && st.analysis.tx_control.is_none() {
            self.client.batch_execute("/*downtime*/ begin").await?;
            self.tx = TxState::Tool;
        }
        Ok(())
    }

    /// Follow the patch's own transaction control after `st` succeeded.
    fn left(&mut self, st: &Statement) {
        match st.analysis.tx_control {
            // Inside the tool's transaction a BEGIN changes nothing.
            Some(TxControl::Begin) if self.tx == TxState::Tool => {}
            Some(TxControl::Begin) => self.tx = TxState::Patch(st.line),
            Some(TxControl::Commit) => {
                self.tx = TxState::Idle;
                self.committed_any = true;
            }
            Some(TxControl::Rollback) => self.tx = TxState::Idle,
            _ => {}
        }
    }

    /// downtime's COMMIT, timed as part of the patch.
    async fn commit_own(&mut self) -> Result<()> {
        let t0 = Instant::now();
        self.client.batch_execute("/*downtime*/ commit").await?;
        let dt = t0.elapsed().as_secs_f64();
        self.run.commit_seconds += dt;
        self.elapsed += dt;
        self.tx = TxState::Idle;
        Ok(())
    }

    /// The patch error for a failed statement, and whether the statement
    /// ended the session applying the patch.
    fn failure(&self, e: &tokio_postgres::Error, st: &Statement) -> (PatchError, bool) {
        let lost =
            e.is_closed() || self.client.is_closed() || e.code() == Some(&SqlState::ADMIN_SHUTDOWN);
        let mut error = patch_error(e, st, self.committed_any);
        if lost && e.as_db_error().is_none() {
            error.message = "the session applying the patch was closed by this statement".into();
        }
        if e.code() == Some(&SqlState::ACTIVE_SQL_TRANSACTION) && self.mode != Transaction::Split {
            if let Some(h) = no_transaction_hint(self.layout) {
                error.hint.get_or_insert_with(|| h.to_string());
            }
        }
        (error, lost)
    }

    /// End the patch at a failed statement: roll back what is open and
    /// record the error.
    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &mut self,
        index: usize,
        seconds: f64,
        autocommit: bool,
        pre: PreCheck,
        error: PatchError,
        aborted: Option<Abort>,
        lost: bool,
    ) -> Result<()> {
        self.run.statements.push(StatementRun {
            index,
            seconds,
            rows_affected: None,
            outside_transaction: autocommit,
            held: Vec::new(),
            locks: Vec::new(),
            rewrites: Vec::new(),
            new_indexes: Vec::new(),
            lock_timeout: self.lock_timeout.clone(),
            pre,
            scanned_blocks: HashMap::new(),
            server_seconds: None,
        });
        let elapsed = self.elapsed;
        self.open
            .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
        self.run.error = Some(error);
        self.run.aborted = aborted;
        if lost || self.client.is_closed() {
            self.run.connection_lost = true;
            if let Some(e) = self.run.error.as_mut() {
                e.hint.get_or_insert_with(|| {
                    "the statement ended the session applying the patch; later patches are not run"
                        .into()
                });
            }
            return Ok(());
        }
        if self.tx != TxState::Idle {
            self.client.batch_execute("/*downtime*/ rollback").await?;
        }
        self.run.invalid_indexes = self.new_invalid_indexes().await?;
        Ok(())
    }

    /// After the last statement: commit downtime's transaction, or refuse a
    /// transaction the patch opened and never closed.
    async fn finish(mut self, patch: &Patch) -> Result<PatchRun> {
        if let TxState::Patch(line) = self.tx {
            self.client.batch_execute("/*downtime*/ rollback").await?;
            let elapsed = self.elapsed;
            self.open
                .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
            let last = patch.statements.last().map_or(line, |s| s.line);
            self.run.error = Some(PatchError {
                message: format!(
                    "the transaction opened at line {line} is never committed; add COMMIT at the end of the patch"
                ),
                sqlstate: None,
                line: last,
                statement_line: line,
                detail: None,
                hint: None,
                partially_applied: self.committed_any,
            });
            return Ok(self.run);
        }
        let mut inside_done = false;
        if self.tx == TxState::Tool {
            if let Some(b) = self.books.filter(|_| self.record_inside) {
                let t0 = Instant::now();
                let refused = b.inside(self.client, patch, self.elapsed).await?;
                self.run.bookkeeping_seconds += t0.elapsed().as_secs_f64();
                inside_done = true;
                if let Some(why) = refused {
                    self.client.batch_execute("/*downtime*/ rollback").await?;
                    self.tx = TxState::Idle;
                    return Ok(self.refused_by_tool(patch, why));
                }
            }
            self.commit_own().await?;
        }
        let elapsed = self.elapsed;
        self.open
            .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
        if let Some(b) = self.books {
            let t0 = Instant::now();
            let refused = b
                .after(self.client, patch, self.elapsed, inside_done)
                .await?;
            self.run.bookkeeping_seconds += t0.elapsed().as_secs_f64();
            if let Some(why) = refused {
                self.committed_any = true;
                return Ok(self.refused_by_tool(patch, why));
            }
        }
        self.run.invalid_indexes = self.new_invalid_indexes().await?;
        Ok(self.run)
    }

    /// The patch fails where the tool fails it: at its bookkeeping.
    fn refused_by_tool(mut self, patch: &Patch, why: String) -> PatchRun {
        let elapsed = self.elapsed;
        self.open
            .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
        let line = patch.statements.last().map_or(1, |s| s.line);
        self.run.error = Some(PatchError {
            message: why,
            sqlstate: None,
            line,
            statement_line: line,
            detail: None,
            hint: None,
            partially_applied: self.committed_any,
        });
        self.run
    }

    /// Indexes that are INVALID now and were not before the patch.
    async fn new_invalid_indexes(&self) -> Result<Vec<String>> {
        Ok(catalog::invalid_indexes(self.client)
            .await?
            .into_iter()
            .filter(|(oid, _)| !self.invalid_before.contains(oid))
            .map(|(_, name)| name)
            .collect())
    }

    /// What the trace after a statement says it did: locks it took,
    /// relations it rewrote, indexes it built.
    fn record(&mut self, sr: &mut StatementRun, st: &Statement, trace: &Trace) {
        let seconds = sr.seconds;
        // Locks released by this statement (its own COMMIT) end here.
        let elapsed = self.elapsed;
        self.open
            .release_missing(&trace.locks, elapsed, &mut self.run.statements);
        for &(oid, mode) in &trace.locks {
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
                });
            }
        }
        if sr.outside_transaction {
            self.documented_locks(sr, st);
        }
        for (oid, node) in &trace.filenodes {
            let Some(prev) = self.filenodes.insert(*oid, *node) else {
                continue;
            };
            if prev == *node {
                continue;
            }
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
        for (idx, (table, name)) in &trace.indexes {
            if self.known_indexes.insert(*idx) {
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
                });
            }
        }
        sr.locks.extend(extra);
    }
}

fn patch_error(e: &tokio_postgres::Error, st: &Statement, partially_applied: bool) -> PatchError {
    let db = e.as_db_error();
    let line = db
        .and_then(|d| d.position())
        .and_then(|p| match p {
            ErrorPosition::Original(pos) => Some(*pos as usize),
            ErrorPosition::Internal { .. } => None,
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
