//! Runs of INSERTs of constant rows, sent back to back with no trace
//! between them.
//!
//! Such a statement into a table whose definition runs nothing of the
//! user's takes ROW EXCLUSIVE on the table and its indexes (and the locks
//! of its foreign-key checks) and nothing else: no catalogue row, no
//! setting, no other relation (see [`trace::insert_locks`]). Once its
//! transaction holds all those locks, the trace after it could show
//! nothing new, so it is not read, and neither is the server's clock: that
//! is read when the run ends, and the run's time on it shared out among
//! its statements by their own times. A table is checked at the second
//! such INSERT into it in a row (the first is traced, taking the locks);
//! what the check found holds while only such INSERTs run.

use std::collections::HashMap;
use std::time::Instant;

use super::{Ran, Tracer, TxState};
use crate::error::Result;
use crate::measure::exec::{run_capped, Executed};
use crate::measure::{PreCheck, StatementRun};
use crate::patch::Statement;
use crate::pg::locks::LockMode;
use crate::pg::trace;

use super::failure::Stage;

/// What is known of constant INSERTs while a patch is applied.
#[derive(Default)]
pub(super) struct Chain {
    /// The locks a constant INSERT into each relation (as written) takes,
    /// where that is all it can do (`None`: it can do more). What can do
    /// more stays so; what cannot is forgotten when any other statement
    /// runs (it could change the table).
    locks: HashMap<String, Option<Vec<(u32, LockMode)>>>,
    /// Statements sent without a trace (positions in the patch run's
    /// statements), waiting for the server's clock.
    untraced: Vec<usize>,
}

impl Tracer<'_> {
    /// Whether `st` can run without a trace after it: a constant INSERT
    /// whose locks the transaction already holds, into a relation checked
    /// for it (at the second such INSERT in a row into it).
    pub(super) async fn untraced(&mut self, st: &Statement) -> Result<bool> {
        let Some(rel) = st.analysis.values_into.as_ref() else {
            return Ok(false);
        };
        if self.tx == TxState::Idle {
            return Ok(false);
        }
        let key = rel.to_string();
        let needed = match self.chain.locks.get(&key) {
            Some(known) => known.clone(),
            None if self.last_values == Some((key.clone(), self.tx_ended)) => {
                let needed = trace::insert_locks(self.client(), &rel.regclass_text()).await?;
                self.chain.locks.insert(key, needed.clone());
                needed
            }
            None => return Ok(false),
        };
        Ok(needed.is_some_and(|n| n.iter().all(|l| self.last_locks.contains(l))))
    }

    /// Run `st` (statement `index` of the patch) with no trace after it:
    /// the locks held are those of the last trace. `true` when the patch
    /// ends here.
    pub(super) async fn statement_untraced(
        &mut self,
        index: usize,
        st: &Statement,
    ) -> Result<bool> {
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
            autocommit: false,
            pre: PreCheck::default(),
        });
        let rows = match executed {
            Executed::Done(rows) => rows,
            other => {
                self.ended(index, other, &Stage::Statement).await?;
                return Ok(true);
            }
        };
        self.ran = None;
        self.run.statements.push(StatementRun {
            index,
            seconds,
            rows_affected: rows,
            outside_transaction: false,
            held: self.last_held.clone(),
            locks: Vec::new(),
            rewrites: Vec::new(),
            new_indexes: Vec::new(),
            lock_timeout: self.lock_timeout.clone(),
            pre: PreCheck::default(),
            scanned_blocks: HashMap::new(),
            server_seconds: None,
            started: Some(t0),
        });
        let position = self.run.statements.len() - 1;
        self.chain.untraced.push(position);
        Ok(false)
    }

    /// After statement `st` was traced: unless it was a constant INSERT
    /// into a relation known to do nothing else, what was known of the
    /// relations that do nothing else is forgotten.
    pub(super) fn traced(&mut self, st: &Statement) {
        let values = st.analysis.values_into.as_ref().map(|r| r.to_string());
        let plain = values
            .as_ref()
            .is_some_and(|r| matches!(self.chain.locks.get(r), Some(Some(_))));
        if !plain {
            self.chain.locks.retain(|_, known| known.is_none());
        }
        self.last_values = values.map(|r| (r, self.tx_ended));
    }

    /// End the run's wait for the server's clock: read it, and share the
    /// time it recorded since the last reading among the statements sent
    /// without a trace, by their own times.
    pub(super) async fn settle(&mut self) -> Result<()> {
        let untraced = std::mem::take(&mut self.chain.untraced);
        if untraced.is_empty() {
            return Ok(());
        }
        let before = self.clock.last().flatten();
        let now = self.clock.read().await?;
        self.clock.after(now);
        let (Some(before), Some(now)) = (before, now) else {
            return Ok(());
        };
        let server = ((now - before) / 1000.0).max(0.0);
        let own: f64 = untraced
            .iter()
            .map(|&i| self.run.statements[i].seconds)
            .sum();
        for &i in &untraced {
            let s = &mut self.run.statements[i];
            s.server_seconds = Some(match own > 0.0 {
                true => server * s.seconds / own,
                false => server / untraced.len() as f64,
            });
        }
        Ok(())
    }
}
