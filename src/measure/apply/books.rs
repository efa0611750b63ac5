//! The tool's books around a patch (see [`crate::ledger`]): written as the
//! tool writes them, on the patch's session (inside its transaction where
//! the tool records there), capped and stopped like a statement; their time
//! is `bookkeeping_seconds`, not the patch's. A record the tool would fail
//! to write fails the patch there, in the tool's words.

use std::future::Future;
use std::time::Instant;

use super::failure::Stage;
use super::Tracer;
use crate::error::{Error, Result};
use crate::measure::exec::{capped, Capped};

impl Tracer<'_> {
    /// Before the patch and its snapshot, outside its transaction
    /// (golang-migrate's dirty mark). `false`: the patch ended there.
    pub(super) async fn books_before(&mut self) -> Result<bool> {
        let Some(b) = self.books else {
            return Ok(true);
        };
        let (client, patch) = (self.client(), self.patch);
        let work = async move { b.before(client, patch).await.map(|()| None) };
        self.book("before the patch", work).await
    }

    /// The record in the patch's transaction, before downtime commits it.
    pub(super) async fn books_inside(&mut self) -> Result<bool> {
        let Some(b) = self.books else {
            return Ok(true);
        };
        let (client, patch, seconds) = (self.client(), self.patch, self.elapsed);
        self.book(
            "in the patch's transaction",
            b.inside(client, patch, seconds),
        )
        .await
    }

    /// After the patch: the record when it was not written inside, and
    /// what the tool does afterwards.
    pub(super) async fn books_after(&mut self, inside_done: bool) -> Result<bool> {
        let Some(b) = self.books else {
            return Ok(true);
        };
        let (client, patch, seconds) = (self.client(), self.patch, self.elapsed);
        // What the patch did is committed by now.
        self.committed_any |= !self.run.statements.is_empty();
        self.book(
            "after the patch",
            b.after(client, patch, seconds, inside_done),
        )
        .await
    }

    /// Run one piece of bookkeeping, capped; `false` when the patch ended
    /// there (the tool refuses, or downtime stopped it). An `Err` is a
    /// connection or the server lost, as for downtime's own queries.
    async fn book(
        &mut self,
        when: &str,
        work: impl Future<Output = Result<Option<String>>>,
    ) -> Result<bool> {
        let table = self
            .books
            .and_then(|b| b.layout.table())
            .unwrap_or("the tool's table");
        // The books are not downtime's own queries to the server's clock.
        self.clock.forget();
        let t0 = Instant::now();
        let done = capped(
            self.session,
            self.watch,
            work,
            self.opts.statement_cap,
            self.cancel,
        )
        .await;
        self.run.bookkeeping_seconds += t0.elapsed().as_secs_f64();
        let index = self.last_index();
        match done {
            Capped::Done(Ok(None)) => Ok(true),
            // The session is gone: found out and named as for any query.
            Capped::Done(Ok(Some(why))) if self.client().is_closed() => Err(Error::Server(why)),
            Capped::Done(Ok(Some(why))) => {
                let line = self.patch.statements.last().map_or(1, |s| s.line);
                let mut error = self.own_error(line, why);
                // The server's refusal keeps its SQLSTATE in the field of its own.
                if let Some((message, code)) = split_sqlstate(&error.message) {
                    (error.message, error.sqlstate) = (message, Some(code));
                }
                self.close_patch(index, error, None, false).await?;
                Ok(false)
            }
            Capped::Done(Err(e)) => Err(e),
            Capped::Stopped { abort, ended } => {
                let stage = Stage::Books(format!("the tool's bookkeeping in {table} {when}"));
                self.stopped(index, abort, ended, &stage).await?;
                Ok(false)
            }
        }
    }
}

/// A message ending in ` (SQLSTATE XXXXX)`, as a server error is described:
/// the message without it, and the code.
fn split_sqlstate(message: &str) -> Option<(String, String)> {
    let (text, rest) = message.rsplit_once(" (SQLSTATE ")?;
    let code = rest.strip_suffix(')')?;
    let valid = code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| (text.to_string(), code.to_string()))
}

#[cfg(test)]
mod tests {
    use super::split_sqlstate;

    #[test]
    fn a_refusal_keeps_its_sqlstate_apart() {
        assert_eq!(
            split_sqlstate("recording …: refused (SQLSTATE P0001)"),
            Some(("recording …: refused".into(), "P0001".into()))
        );
        assert_eq!(split_sqlstate("failed to update it correctly"), None);
        assert_eq!(split_sqlstate("odd (SQLSTATE not a code)"), None);
    }
}
