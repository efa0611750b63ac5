//! downtime's own queries on the patch's session: the prechecks before a
//! statement, the names of the indexes it built and the indexes left
//! INVALID at the end, run as downtime (see [`identity`]) with the search
//! path [`catalog::pinned`], the patch's role and search path put back
//! afterwards; and the trace after each statement, which reads the same
//! whatever the role and the search path (see [`crate::pg::trace`]), sent
//! right behind the statement.

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::error::SqlState;

use super::storage::Changes;
use super::{Tracer, TxState};
use crate::error::Result;
use crate::measure::exec::{self, Traced};
use crate::measure::identity::{self, Borrowed};
use crate::measure::precheck::precheck;
use crate::measure::PreCheck;
use crate::patch::{Statement, TxControl};
use crate::pg::catalog;
use crate::pg::locks::LockMode;
use crate::pg::trace::{self, Trace};

impl Tracer<'_> {
    /// Run downtime's next queries as downtime; nothing to do when the
    /// session is known to run as downtime.
    async fn as_downtime(&self) -> Result<Option<Borrowed>> {
        if self.known_me {
            return Ok(None);
        }
        identity::as_downtime(self.client(), &self.me, self.tx != TxState::Idle).await
    }

    async fn back_to_patch(&self, borrowed: Option<Borrowed>) -> Result<()> {
        identity::back_to_patch(self.client(), borrowed).await
    }

    /// Catalogue facts before `st`, read as downtime (names resolved with
    /// the patch's search path, the catalogue read pinned).
    pub(super) async fn precheck(&self, st: &Statement, in_transaction: bool) -> Result<PreCheck> {
        // Pre-existing tables held under a lock that blocks the
        // application: what the statement reads of them is its work under it.
        let held: Vec<u32> = match in_transaction {
            true => self
                .last_held
                .iter()
                .filter(|(oid, mode)| {
                    mode.blocks_application()
                        && self.run.snapshot.get(*oid).is_some_and(|r| r.is_table())
                })
                .map(|(oid, _)| *oid)
                .collect::<std::collections::BTreeSet<u32>>()
                .into_iter()
                .collect(),
            false => Vec::new(),
        };
        if st.analysis.facts.is_empty() && held.is_empty() {
            return Ok(PreCheck::default());
        }
        let borrowed = self.as_downtime().await?;
        let pre = precheck(self.client(), st, in_transaction, &held, &self.run.snapshot).await;
        // Given back even when the precheck failed (an aborted
        // transaction refuses both; the failure is the precheck's).
        let back = self.back_to_patch(borrowed).await;
        let pre = pre?;
        back?;
        Ok(pre)
    }

    /// Prepare the per-statement trace on the session and read it once,
    /// before the patch's first statement.
    pub(super) async fn first_trace(&mut self) -> Result<Trace> {
        let client = self.client();
        let prepared = trace::prepare(client).await?;
        let first = trace::read(client, &prepared, self.ask(&[])).await?;
        self.prepared = Some(prepared);
        Ok(first)
    }

    /// What the trace after the next statement is asked: the templates,
    /// the tables `blocks` whose pages read are wanted, and this block's
    /// `pg_class` writes so far.
    fn ask<'b>(&'b self, blocks: &'b [u32]) -> trace::Ask<'b> {
        let tx = (self.tx != TxState::Idle).then_some(self.tx_ended);
        trace::Ask {
            databases: &self.template_oids,
            tables: blocks,
            writes_before: self.storage.as_ref().and_then(|s| s.writes_before(tx)),
        }
    }

    /// Run `st` with the trace sent right behind it (see
    /// [`exec::run_traced`]), reading the pages fetched from `blocks`, and
    /// the server's clock as soon as its result is in. A statement that
    /// may deallocate prepared statements (`DEALLOCATE`, `DISCARD`) is sent
    /// alone: the trace, prepared again, follows it.
    pub(super) async fn run_traced(
        &self,
        st: &Statement,
        blocks: &[u32],
    ) -> Traced<Result<Option<f64>>, Option<std::result::Result<Trace, tokio_postgres::Error>>>
    {
        let client = self.client();
        let pipelined = self.prepared.as_ref().filter(|_| !may_deallocate(&st.sql));
        let ask = self.ask(blocks);
        let clock = &self.clock;
        let trace = async move {
            match pipelined {
                Some(prepared) => Some(trace::read(client, prepared, ask).await),
                None => None,
            }
        };
        exec::run_traced(
            self.session,
            self.watch,
            &st.sql,
            self.opts.statement_cap,
            self.cancel,
            || clock.read(),
            trace,
        )
        .await
    }

    /// The trace after a statement that completed: the one sent behind
    /// it, or, when none was (or the patch deallocated it outside a
    /// transaction block, where its failure harms nothing), one prepared
    /// and read now.
    pub(super) async fn trace_after(
        &mut self,
        traced: Option<std::result::Result<Trace, tokio_postgres::Error>>,
        blocks: &[u32],
    ) -> Result<Trace> {
        match traced {
            Some(Ok(t)) => return Ok(t),
            Some(Err(e))
                if self.tx != TxState::Idle
                    || e.code() != Some(&SqlState::INVALID_SQL_STATEMENT_NAME) =>
            {
                return Err(e.into())
            }
            _ => {}
        }
        let client = self.client();
        let prepared = trace::prepare(client).await?;
        // The trace is read after the statement: the writes count is not
        // known to belong to this block any more (the statement may have
        // ended or begun one), so storage is read without it.
        let ask = trace::Ask {
            writes_before: None,
            ..self.ask(blocks)
        };
        let t = trace::read(client, &prepared, ask).await?;
        self.prepared = Some(prepared);
        Ok(t)
    }

    /// What the statement left in storage, from its trace: the locks held
    /// on relations that existed before the patch, the relations it
    /// rewrote and the indexes it built (with their names).
    pub(super) async fn storage_after(
        &mut self,
        trace: &Trace,
        st: &Statement,
    ) -> Result<(BTreeSet<(u32, LockMode)>, Changes, HashMap<u32, String>)> {
        let held: BTreeSet<(u32, LockMode)> = trace
            .locks
            .iter()
            .filter(|(oid, _)| self.run.snapshot.get(*oid).is_some())
            .copied()
            .collect();
        let tx = (self.tx != TxState::Idle).then_some(self.tx_ended);
        let rolled_back = matches!(
            st.analysis.tx_control,
            Some(TxControl::Rollback | TxControl::Savepoint)
        );
        let Some(storage) = self.storage.as_ref() else {
            return Ok((held, Changes::default(), HashMap::new()));
        };
        let elsewhere = st.sql.to_ascii_lowercase().contains("dblink");
        let look = storage.lookup(trace, tx, rolled_back, elsewhere);
        let rows = match look.is_empty() {
            true => Vec::new(),
            false => trace::stored(self.client(), &look.oids, look.window).await?,
        };
        let changes = match self.storage.as_mut() {
            Some(storage) => storage.record(trace, tx, &look, rows),
            None => Changes::default(),
        };
        let built: Vec<u32> = changes.built.iter().map(|(index, _)| *index).collect();
        let names = match built.is_empty() {
            true => HashMap::new(),
            false => self.relation_names(&built).await?,
        };
        Ok((held, changes, names))
    }

    /// The names of relations `oids` as the patch's statements would print
    /// them, read pinned and as downtime.
    async fn relation_names(&self, oids: &[u32]) -> Result<HashMap<u32, String>> {
        let client = self.client();
        let borrowed = self.as_downtime().await?;
        let names =
            catalog::pinned(client, self.tx != TxState::Idle, trace::names(client, oids)).await;
        let back = self.back_to_patch(borrowed).await;
        let names = names?;
        back?;
        Ok(names)
    }

    /// Indexes that are INVALID now and were not before the patch, read
    /// pinned and as downtime.
    pub(super) async fn new_invalid_indexes(&mut self) -> Result<Vec<String>> {
        let client = self.client();
        let in_tx = self.tx != TxState::Idle;
        let (mut all, user) =
            catalog::pinned(client, in_tx, catalog::invalid_indexes(client)).await?;
        self.known_me = user == self.me;
        if !self.known_me {
            let borrowed = self.as_downtime().await?;
            let again = catalog::pinned(client, in_tx, catalog::invalid_indexes(client)).await;
            let back = self.back_to_patch(borrowed).await;
            all = again?.0;
            back?;
        }
        Ok(all
            .into_iter()
            .filter(|(oid, _)| !self.invalid_before.contains(oid))
            .map(|(_, name)| name)
            .collect())
    }
}

/// Whether `sql` may deallocate the session's prepared statements
/// (`DEALLOCATE`, `DISCARD ALL`, also from a function body or `DO` block).
fn may_deallocate(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains("deallocate") || lower.contains("discard")
}
