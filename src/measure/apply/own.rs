//! downtime's own queries on the patch's session, run as downtime (see
//! [`identity`]) and with the search path [`catalog::pinned`]: the
//! prechecks before a statement, the trace after it, the indexes left
//! INVALID at the end. The patch's role and search path are put back
//! afterwards.

use std::collections::HashMap;

use super::{Tracer, TxState};
use crate::error::Result;
use crate::measure::identity::{self, Borrowed};
use crate::measure::precheck::precheck;
use crate::measure::PreCheck;
use crate::patch::Statement;
use crate::pg::catalog::{self, Trace};

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
        if st.analysis.facts.is_empty() {
            return Ok(PreCheck::default());
        }
        let borrowed = self.as_downtime().await?;
        let pre = precheck(self.client(), st, in_transaction).await;
        // Given back even when the precheck failed (an aborted
        // transaction refuses both; the failure is the precheck's).
        let back = self.back_to_patch(borrowed).await;
        let pre = pre?;
        back?;
        Ok(pre)
    }

    /// The trace after a statement, and the pages each validated table of
    /// `blocks_before` read since, read pinned. The trace says which role
    /// the session runs as; when it is not downtime's, it is read again as
    /// downtime.
    pub(super) async fn trace(
        &mut self,
        blocks_before: Option<HashMap<u32, i64>>,
        autocommit: bool,
    ) -> Result<(Trace, HashMap<u32, i64>)> {
        let blocks = blocks_before.unwrap_or_default();
        let read = self.read_trace(&blocks, autocommit).await?;
        self.known_me = read.0.user == self.me;
        if self.known_me {
            return Ok(read);
        }
        let borrowed = self.as_downtime().await?;
        let read = self.read_trace(&blocks, autocommit).await;
        let back = self.back_to_patch(borrowed).await;
        let read = read?;
        back?;
        Ok(read)
    }

    async fn read_trace(
        &self,
        blocks_before: &HashMap<u32, i64>,
        autocommit: bool,
    ) -> Result<(Trace, HashMap<u32, i64>)> {
        let client = self.client();
        catalog::pinned(client, self.tx != TxState::Idle, async {
            let trace = catalog::trace(client, &self.oids, &self.template_oids).await?;
            let mut scanned = HashMap::new();
            if !autocommit {
                for (&oid, &before) in blocks_before {
                    let now = catalog::blocks_fetched(client, oid).await?;
                    scanned.insert(oid, now - before);
                }
            }
            Ok((trace, scanned))
        })
        .await
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
