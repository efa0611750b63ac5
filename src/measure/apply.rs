//! Applying one patch: statement by statement, each timed with a monotonic
//! clock and followed by a trace of locks, rewrites and new indexes.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use tokio_postgres::Client;

use super::exec::{run_capped, Executed};
use super::session::{Session, Watch};
use super::{ApplyOptions, LockHeld, PatchError, PatchRun, PreCheck, Rewrite, StatementRun};
use crate::cancel::Cancel;
use crate::error::Result;
use crate::ledger::Plan as Books;
use crate::patch::{Fact, Patch, Statement, Transaction, TxControl};
use crate::pg::catalog::{self, Trace};
use crate::pg::locks::LockMode;

mod books;
mod failure;
mod own;

use failure::Stage;

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

/// A statement that has run, until its trace is recorded.
struct Ran {
    index: usize,
    started: Instant,
    seconds: f64,
    autocommit: bool,
    pre: PreCheck,
}

/// The state of one patch being applied.
struct Tracer<'a> {
    session: &'a Session,
    watch: &'a Watch<'a>,
    patch: &'a Patch,
    opts: &'a ApplyOptions,
    cancel: &'a Cancel,
    run: PatchRun,
    /// Relations that existed before the patch.
    oids: Vec<u32>,
    /// The template databases that must survive the patch.
    template_oids: Vec<u32>,
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
    /// The session timeouts (idle in transaction, idle, transaction) as
    /// last traced, each with the statement that set it (`None`: it was so
    /// before the patch), to name it when one ends the session.
    timeouts: HashMap<String, (String, Option<usize>)>,
    /// The statement that ran last, while it is being traced.
    ran: Option<Ran>,
    /// downtime's own role: its queries run as this role.
    me: String,
    /// Last seen running as `me`, no transaction ended since (which can restore a role).
    known_me: bool,
    /// How the statements are sent: downtime's split (`Split`), or as the
    /// tool sends them (one transaction, autocommit).
    mode: Transaction,
    /// The tool's one transaction was opened (once per migration).
    opened: bool,
    /// The tool's books, when it keeps them.
    books: Option<&'a Books>,
    /// The tool records the migration inside its transaction.
    record_inside: bool,
    /// The tool sends the file as one query (its own BEGIN opens the transaction).
    implicit: bool,
}

/// Apply `patch` on `session`'s database, as downtime sends it. Nothing
/// here is an `Err`: a failing statement, a connection or server lost, an
/// abort, each ends the patch with its error at the statement it happened
/// at, and with a [`super::Halt`] when the run cannot go on.
pub async fn apply(
    session: &Session,
    watch: &Watch<'_>,
    patch: &Patch,
    opts: &ApplyOptions,
    cancel: &Cancel,
) -> PatchRun {
    apply_with(session, watch, patch, opts, cancel, None).await
}

/// Apply `patch` as its layout's tool sends it (one transaction, statement
/// by statement, or without a transaction), keeping the tool's books when
/// `books` is given: their time is `bookkeeping_seconds`, not the
/// patch's. Everything sent, the books included, is capped like a
/// statement; nothing here is an `Err` (see [`apply`]).
pub async fn apply_with(
    session: &Session,
    watch: &Watch<'_>,
    patch: &Patch,
    opts: &ApplyOptions,
    cancel: &Cancel,
    books: Option<&Books>,
) -> PatchRun {
    let mut tracer = Tracer {
        session,
        watch,
        patch,
        opts,
        cancel,
        run: PatchRun::default(),
        oids: Vec::new(),
        template_oids: watch.templates.iter().map(|(oid, _)| *oid).collect(),
        invalid_before: Vec::new(),
        tx: TxState::Idle,
        committed_any: false,
        elapsed: 0.0,
        filenodes: HashMap::new(),
        known_indexes: HashSet::new(),
        open: OpenLocks::default(),
        lock_timeout: String::new(),
        timeouts: HashMap::new(),
        ran: None,
        me: String::new(),
        known_me: true,
        mode: match patch.tool.transaction {
            Transaction::Implicit if patch.statements.len() <= 1 => Transaction::Split,
            Transaction::Implicit => Transaction::Single,
            m => m,
        },
        opened: false,
        books,
        record_inside: matches!(
            patch.tool.transaction,
            Transaction::Single | Transaction::Split
        ),
        implicit: patch.tool.transaction == Transaction::Implicit,
    };
    if let Transaction::Mixed(line) = patch.tool.transaction {
        // The tool refuses the migration before sending anything.
        tracer.run.error = Some(super::tool::mixed(patch, line));
        return tracer.run;
    }
    tracer.statements().await;
    // The next patch starts in a session as it was opened: no role or
    // session authorization, settings, temporary tables, prepared
    // statements, cursors, advisory locks or LISTENs of this one. Reset
    // here, so a session this patch's own timeout ends is named with it.
    if !tracer.run.connection_lost && tracer.run.halt.is_none() {
        match tracer
            .client()
            .batch_execute("/*downtime*/ discard all")
            .await
        {
            Ok(()) => tracer.client().clear_type_cache(),
            Err(e) => tracer.lost(tracer.last_index(), e.into()).await,
        }
    }
    tracer.run
}

impl<'a> Tracer<'a> {
    fn client(&self) -> &'a Client {
        &self.session.client
    }

    /// The last statement that ran (the one a COMMIT after it belongs to).
    fn last_index(&self) -> usize {
        self.run.statements.last().map_or(0, |s| s.index)
    }

    /// Every statement in order, then the end of the patch; a failure ends
    /// the patch at the statement it happened at.
    async fn statements(&mut self) {
        match self.start().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.lost(0, e).await;
                return;
            }
        }
        let patch = self.patch;
        for (index, st) in patch.statements.iter().enumerate() {
            match self.statement(index, st).await {
                Ok(false) => {}
                Ok(true) => return,
                Err(e) => {
                    self.lost(index, e).await;
                    return;
                }
            }
        }
        if let Err(e) = self.finish().await {
            self.lost(self.last_index(), e).await;
        }
    }

    /// Before the first statement: analyse what needs it, and record the
    /// relations that exist, their storage and the indexes. `false` when
    /// the patch ended there (an ANALYZE did not complete).
    async fn start(&mut self) -> Result<bool> {
        // The tool's books before the patch come before its snapshot: what
        // they change (golang-migrate truncates its table) is not the
        // patch's doing.
        if !self.books_before().await? {
            return Ok(false);
        }
        let client = self.client();
        let unanalysed = catalog::pinned(client, false, catalog::unanalysed(client)).await?;
        for name in unanalysed {
            // Capped like a statement: an expression index runs functions.
            let executed = run_capped(
                self.session,
                self.watch,
                &format!("/*downtime*/ analyze {name}"),
                self.opts.statement_cap,
                self.cancel,
            )
            .await;
            if !matches!(executed, Executed::Done(_)) {
                self.ended(0, executed, &Stage::Analyze(name)).await?;
                return Ok(false);
            }
        }
        let (snapshot, trace) = catalog::pinned(client, false, async {
            let snapshot = catalog::snapshot(client).await?;
            let trace = catalog::trace(client, &[], &[]).await?;
            Ok((snapshot, trace))
        })
        .await?;
        self.timeouts = trace
            .timeouts
            .into_iter()
            .map(|(name, value)| (name, (value, None)))
            .collect();
        let relations = snapshot.relations.values();
        self.invalid_before = relations
            .clone()
            .filter(|r| !r.valid)
            .map(|r| r.oid)
            .collect();
        self.filenodes = relations.clone().map(|r| (r.oid, r.filenode)).collect();
        self.known_indexes = relations
            .clone()
            .filter(|r| r.table.is_some())
            .map(|r| r.oid)
            .collect();
        self.oids = snapshot.oids();
        self.run.snapshot = snapshot;
        self.lock_timeout = trace.lock_timeout;
        // The session starts the patch as downtime (reset after the last).
        self.me = trace.user;
        self.known_me = true;
        Ok(true)
    }

    /// Run and trace one statement; `true` when the patch ends here.
    async fn statement(&mut self, index: usize, st: &Statement) -> Result<bool> {
        if self.enter(st).await? {
            return Ok(true);
        }
        let autocommit = self.tx == TxState::Idle;
        let pre = self.precheck(st, !autocommit).await?;
        let server_before = self.watch.exec_ms().await?;
        let t0 = Instant::now();
        let executed = run_capped(
            self.session,
            self.watch,
            &st.sql,
            self.opts.statement_cap,
            self.cancel,
        )
        .await;
        let seconds = t0.elapsed().as_secs_f64();
        self.elapsed += seconds;
        self.ran = Some(Ran {
            index,
            started: t0,
            seconds,
            autocommit,
            pre,
        });
        let rows = match executed {
            Executed::Done(rows) => rows,
            other => {
                self.ended(index, other, &Stage::Statement).await?;
                return Ok(true);
            }
        };
        self.left(st);
        let server_after = self.watch.exec_ms().await?;
        let server_seconds = match (server_before, server_after) {
            (Some(before), Some(after)) => Some(((after - before) / 1000.0).max(0.0)),
            _ => None,
        };
        let blocks_before = self.ran.as_ref().map(|r| r.pre.blocks_before.clone());
        let (trace, scanned_blocks) = self.trace(blocks_before, autocommit).await?;
        let Some(ran) = self.ran.take() else {
            return Ok(false);
        };
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
            pre: ran.pre,
            scanned_blocks,
            server_seconds,
            started: Some(ran.started),
        };
        self.record(&mut sr, st, &trace);
        self.run.statements.push(sr);
        for (name, value) in &trace.timeouts {
            if self.timeouts.get(name).is_none_or(|(v, _)| v != value) {
                self.timeouts
                    .insert(name.clone(), (value.clone(), Some(index)));
            }
        }
        self.check_templates(index, &trace).await
    }

    /// Open or close downtime's own transaction before `st`, as it needs;
    /// `true` when the patch ended there (its COMMIT failed).
    async fn enter(&mut self, st: &Statement) -> Result<bool> {
        match self.mode {
            Transaction::Single => {
                // The tool's one transaction, opened once; what cannot run
                // in it fails there, as under the tool.
                if !self.opened && self.tx == TxState::Idle {
                    self.opened = true;
                    if self.implicit && st.analysis.tx_control == Some(TxControl::Begin) {
                        return Ok(false);
                    }
                    self.client().batch_execute("/*downtime*/ begin").await?;
                    self.tx = TxState::Tool;
                }
                return Ok(false);
            }
            Transaction::Autocommit | Transaction::Mixed(_) => return Ok(false),
            Transaction::Split | Transaction::Implicit => {}
        }
        let outside = st.analysis.outside_transaction;
        let opens_own = st.analysis.tx_control == Some(TxControl::Begin);
        if self.tx == TxState::Tool && (outside || opens_own) {
            if self.commit_own().await? {
                return Ok(true);
            }
            self.committed_any = true;
            let elapsed = self.elapsed;
            self.open
                .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
        } else if self.tx == TxState::Idle && !outside && st.analysis.tx_control.is_none() {
            self.client().batch_execute("/*downtime*/ begin").await?;
            self.tx = TxState::Tool;
        }
        Ok(false)
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

    /// downtime's COMMIT, timed as part of the patch and capped like a
    /// statement (deferred triggers run in it). `true` when it failed: the
    /// patch then ends at the statement before it.
    async fn commit_own(&mut self) -> Result<bool> {
        let t0 = Instant::now();
        let executed = run_capped(
            self.session,
            self.watch,
            "/*downtime*/ commit",
            self.opts.statement_cap,
            self.cancel,
        )
        .await;
        let dt = t0.elapsed().as_secs_f64();
        // The patch's `SET LOCAL`s end with the transaction.
        self.known_me = false;
        self.run.commit_seconds += dt;
        self.elapsed += dt;
        if matches!(executed, Executed::Done(_)) {
            self.tx = TxState::Idle;
            return Ok(false);
        }
        self.ended(self.last_index(), executed, &Stage::Commit)
            .await?;
        Ok(true)
    }

    /// After the last statement: commit downtime's transaction, or refuse a
    /// transaction the patch opened and never closed.
    async fn finish(&mut self) -> Result<()> {
        if let TxState::Patch(line) = self.tx {
            self.client().batch_execute("/*downtime*/ rollback").await?;
            self.tx = TxState::Idle;
            self.known_me = false;
            let elapsed = self.elapsed;
            self.open
                .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
            let last = self.patch.statements.last().map_or(line, |s| s.line);
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
                ended_by: None,
            });
            return Ok(());
        }
        let mut inside_done = false;
        if self.tx == TxState::Tool {
            if self.record_inside && self.books.is_some() {
                inside_done = true;
                if !self.books_inside().await? {
                    return Ok(());
                }
            }
            if self.commit_own().await? {
                return Ok(());
            }
        }
        let elapsed = self.elapsed;
        self.open
            .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
        if !self.books_after(inside_done).await? {
            return Ok(());
        }
        self.run.invalid_indexes = self.new_invalid_indexes().await?;
        Ok(())
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
