//! The server's own clock around each statement: the execution time
//! `pg_stat_statements` recorded in the copy for statements that are not
//! downtime's own, read on the admin connection. A reading after one
//! statement is the reading before the next, as long as nothing but
//! downtime's own queries ran between them, so each statement costs one
//! reading, taken while its trace is read on the session.

use tokio_postgres::Statement;

use super::session::Watch;
use crate::error::Result;
use crate::pg::catalog;

/// The clock during one patch.
pub(super) struct Clock<'a> {
    watch: &'a Watch<'a>,
    /// The reading query, prepared on the admin connection (with the clock).
    prepared: Option<Statement>,
    /// The last reading, while it still stands for the time before the next
    /// statement.
    last: Option<Option<f64>>,
}

impl<'a> Clock<'a> {
    /// The clock for a patch applied under `watch`, before [`Clock::begin`].
    pub fn new(watch: &'a Watch<'a>) -> Clock<'a> {
        Clock {
            watch,
            prepared: None,
            last: None,
        }
    }

    /// Before the patch's first statement. With the server's clock, what
    /// `pg_stat_statements` kept so far for the copy is forgotten first, so
    /// that each reading costs a row per statement of this patch only
    /// (other databases' entries are kept: see [`catalog::reset_statements`]).
    pub async fn begin(&mut self) -> Result<()> {
        if let Some(dbid) = self.watch.clock_dbid {
            catalog::reset_statements(self.watch.admin, dbid).await;
            self.prepared = Some(catalog::prepare_statements_exec_ms(self.watch.admin).await?);
        }
        self.last = None;
        Ok(())
    }

    /// Milliseconds recorded so far (`None` without the server's clock).
    /// Also shows that the admin connection is still there; without the
    /// clock a trivial query does that.
    pub async fn read(&self) -> Result<Option<f64>> {
        match (&self.prepared, self.watch.clock_dbid) {
            (Some(prepared), Some(dbid)) => Ok(Some(
                catalog::statements_exec_ms(self.watch.admin, prepared, dbid).await?,
            )),
            _ => {
                self.watch
                    .admin
                    .simple_query("/*downtime*/ select 1")
                    .await?;
                Ok(None)
            }
        }
    }

    /// The reading before a statement: the last one if it still stands,
    /// else a new one.
    pub async fn before(&mut self) -> Result<Option<f64>> {
        if let Some(last) = self.last {
            return Ok(last);
        }
        let now = self.read().await?;
        self.last = Some(now);
        Ok(now)
    }

    /// The last reading, if it still stands (`Some(None)`: one without the
    /// server's clock).
    pub fn last(&self) -> Option<Option<f64>> {
        self.last
    }

    /// The reading taken after a statement, which stands for the next.
    pub fn after(&mut self, reading: Option<f64>) {
        self.last = Some(reading);
    }

    /// Something that is not downtime's own ran on the copy (the tool's
    /// books): the last reading no longer stands.
    pub fn forget(&mut self) {
        self.last = None;
    }
}

/// The server's time for a statement, in seconds, from readings around it.
pub(super) fn seconds(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    match (before, after) {
        (Some(before), Some(after)) => Some(((after - before) / 1000.0).max(0.0)),
        _ => None,
    }
}
