//! Applying one patch: statement by statement, each timed with a monotonic
//! clock and followed by a trace of locks, rewrites and new indexes.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use tokio_postgres::Client;

use super::clock::{self, Clock};
use super::exec::{run_capped, Executed};
use super::session::{Session, Watch};
use super::{ApplyOptions, PatchError, PatchRun, PreCheck, StatementRun};
use crate::cancel::Cancel;
use crate::error::Result;
use crate::ledger::Plan as Books;
use crate::patch::{Patch, Statement, Transaction, TxControl};
use crate::pg::catalog;
use crate::pg::locks::LockMode;

mod books;
mod chain;
mod elsewhere;
mod failure;
mod own;
mod record;
mod storage;

use chain::Chain;
use failure::Stage;
use record::OpenLocks;
use storage::Storage;

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
    /// The server's clock around each statement.
    clock: Clock<'a>,
    /// The per-statement trace query, prepared on the session.
    prepared: Option<tokio_postgres::Statement>,
    /// The template databases that must survive the patch.
    template_oids: Vec<u32>,
    /// Indexes that were INVALID before the patch.
    invalid_before: Vec<u32>,
    tx: TxState,
    /// Transaction blocks ended so far: the block the session is in is
    /// told apart from earlier ones by this.
    tx_ended: u64,
    /// A transaction of this patch was committed.
    committed_any: bool,
    /// Patch time so far: statements and downtime's commits.
    elapsed: f64,
    /// The storage of the copy's relations, as traced.
    storage: Option<Storage>,
    /// The locks the session held at the last trace (on every user
    /// relation), and those on relations that existed before the patch.
    last_locks: BTreeSet<(u32, LockMode)>,
    last_held: Vec<(u32, LockMode)>,
    /// The relation of the last traced statement when it was a constant
    /// INSERT, with its transaction block.
    last_values: Option<(String, u64)>,
    /// What is known of constant INSERTs, and those sent without a trace.
    chain: Chain,
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
    /// Connections to the copy when the patch started (see [`elsewhere`]).
    connections: elsewhere::AtStart,
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
        clock: Clock::new(watch),
        prepared: None,
        template_oids: watch.templates.iter().map(|(oid, _)| *oid).collect(),
        invalid_before: Vec::new(),
        tx: TxState::Idle,
        tx_ended: 0,
        committed_any: false,
        elapsed: 0.0,
        storage: None,
        last_locks: BTreeSet::new(),
        last_held: Vec::new(),
        last_values: None,
        chain: Chain::default(),
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
        connections: elsewhere::AtStart::default(),
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
        let (mut snapshot, unanalysed) =
            catalog::pinned(client, false, catalog::snapshot(client)).await?;
        if !unanalysed.is_empty() {
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
            // Their row estimates are new.
            snapshot = catalog::pinned(client, false, catalog::snapshot(client))
                .await?
                .0;
        }
        self.clock.begin().await?;
        self.elsewhere_start().await?;
        let trace = self.first_trace().await?;
        self.timeouts = trace
            .timeouts
            .iter()
            .map(|(name, value)| (name.clone(), (value.clone(), None)))
            .collect();
        self.invalid_before = snapshot
            .relations
            .values()
            .filter(|r| !r.valid)
            .map(|r| r.oid)
            .collect();
        self.storage = Some(Storage::new(&snapshot, &trace));
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
        if self.untraced(st).await? {
            return self.statement_untraced(index, st).await;
        }
        self.settle().await?;
        let autocommit = self.tx == TxState::Idle;
        let pre = self.precheck(st, !autocommit).await?;
        let server_before = self.clock.before().await?;
        // Pages read so far from the tables the statement validates
        // (counted only inside a transaction).
        let blocks: Vec<u32> = match autocommit {
            true => Vec::new(),
            false => pre.blocks_before.keys().copied().collect(),
        };
        let started = Instant::now();
        let ran = self.run_traced(st, &blocks).await;
        self.elapsed += ran.seconds;
        self.ran = Some(Ran {
            index,
            started,
            seconds: ran.seconds,
            autocommit,
            pre,
        });
        let (rows, (server_after, traced)) = match (ran.executed, ran.read) {
            (Executed::Done(rows), Some(read)) => (rows, read),
            (other, _) => {
                self.ended(index, other, &Stage::Statement).await?;
                return Ok(true);
            }
        };
        self.left(st);
        let server_after = server_after?;
        self.clock.after(server_after);
        let trace = self.trace_after(traced, &blocks).await?;
        self.known_me = trace.user == self.me;
        let (held, changes, names) = self.storage_after(&trace, st).await?;
        let Some(ran) = self.ran.take() else {
            return Ok(false);
        };
        let scanned_blocks = match autocommit {
            true => HashMap::new(),
            false => ran
                .pre
                .blocks_before
                .iter()
                .map(|(oid, before)| {
                    let after = trace.blocks.get(oid).copied().unwrap_or(*before);
                    (*oid, after.since(before))
                })
                .collect(),
        };
        let mut sr = StatementRun {
            index,
            seconds: ran.seconds,
            rows_affected: rows,
            outside_transaction: autocommit,
            held: held.iter().copied().collect(),
            locks: Vec::new(),
            rewrites: Vec::new(),
            new_indexes: Vec::new(),
            lock_timeout: std::mem::replace(&mut self.lock_timeout, trace.lock_timeout.clone()),
            pre: ran.pre,
            scanned_blocks,
            server_seconds: clock::seconds(server_before, server_after),
            started: Some(ran.started),
        };
        self.record(&mut sr, st, &held, &changes, &names);
        self.run.statements.push(sr);
        self.last_held = held.into_iter().collect();
        self.last_locks = trace.locks.clone();
        self.traced(st);
        for (name, value) in &trace.timeouts {
            if self.timeouts.get(name).is_none_or(|(v, _)| v != value) {
                self.timeouts
                    .insert(name.clone(), (value.clone(), Some(index)));
            }
        }
        if self.check_templates(index, &trace).await? {
            return Ok(true);
        }
        self.check_elsewhere(index).await
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
                self.tx_over();
                self.committed_any = true;
            }
            Some(TxControl::Rollback) => self.tx_over(),
            _ => {}
        }
    }

    /// The transaction block the session was in has ended.
    fn tx_over(&mut self) {
        if self.tx != TxState::Idle {
            self.tx_ended += 1;
        }
        // Its locks are released with it.
        self.last_held.clear();
        self.tx = TxState::Idle;
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
            self.tx_over();
            if let Some(storage) = self.storage.as_mut() {
                storage.committed();
            }
            return Ok(false);
        }
        self.ended(self.last_index(), executed, &Stage::Commit)
            .await?;
        Ok(true)
    }

    /// After the last statement: commit downtime's transaction, or refuse a
    /// transaction the patch opened and never closed.
    async fn finish(&mut self) -> Result<()> {
        self.settle().await?;
        if let TxState::Patch(line) = self.tx {
            self.client().batch_execute("/*downtime*/ rollback").await?;
            self.tx_over();
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
}
