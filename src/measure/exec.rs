//! Sending one statement: capped by the statement cap, cancellable by an
//! abort, and stopped for certain when downtime stops waiting for it.
//!
//! A cancel can be caught: a PL/pgSQL loop with `EXCEPTION WHEN
//! query_canceled` (or `WHEN SQLSTATE '57014'`; `WHEN OTHERS` does not
//! catch a cancel) swallows `statement_timeout` and a cancel request alike. So past the cap, or on an abort, downtime
//! escalates: cancel, then (after [`GRACE`]) terminate the backend from the
//! admin connection (a terminate cannot be caught), then (after another
//! grace) stop the server. Whatever the statement does, it ends within a
//! few seconds, and the step that ended it is known.

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_postgres::SimpleQueryMessage;

use super::session::{Session, Watch};
use crate::cancel::{Abort, Cancel, Ended};
use crate::error::{Error, Result};

/// How long each step of the escalation waits for the statement to end.
pub const GRACE: Duration = Duration::from_secs(2);

/// How a statement ended.
pub(super) enum Executed {
    /// It completed; rows from its command tag (UPDATE 42 → 42).
    Done(Option<u64>),
    /// The server (or the session) reported an error.
    Failed(tokio_postgres::Error),
    /// downtime stopped it: past the cap (`abort` is `None`) or because
    /// the run was aborted; `ended` is the step that ended it.
    Stopped { abort: Option<Abort>, ended: Ended },
}

/// Run one statement with the client-side cap as a backstop to the server's
/// statement_timeout: past the cap (plus [`GRACE`], so the server's own
/// timeout comes first), or when the run is aborted, the statement is
/// stopped by escalating steps (see the module documentation).
pub(super) async fn run_capped(
    session: &Session,
    watch: &Watch<'_>,
    sql: &str,
    cap: Duration,
    cancel: &Cancel,
) -> Executed {
    match capped(
        session,
        watch,
        session.client.simple_query(sql),
        cap,
        cancel,
    )
    .await
    {
        Capped::Done(Ok(messages)) => Executed::Done(command_rows(&messages)),
        Capped::Done(Err(e)) => Executed::Failed(e),
        Capped::Stopped { abort, ended } => Executed::Stopped { abort, ended },
    }
}

/// A statement run by [`run_traced`].
pub(super) struct Traced<C, T> {
    pub executed: Executed,
    /// From sending the statement to its result.
    pub seconds: f64,
    /// What `after` read once the statement's result was in, and the trace
    /// sent behind it (`None` when downtime stopped the statement).
    pub read: Option<(C, T)>,
}

/// Run one statement like [`run_capped`], with `trace` (queries on the same
/// session) sent right behind it, so the server runs the trace as soon as
/// the statement ends and no round trip is spent in between; and `after`
/// (on another connection) started as soon as the statement's result is
/// in, while the trace runs. The statement's time ends with its result:
/// neither is part of it. The cap covers all three.
pub(super) async fn run_traced<C, T, A, AF, F>(
    session: &Session,
    watch: &Watch<'_>,
    sql: &str,
    cap: Duration,
    cancel: &Cancel,
    after: A,
    trace: F,
) -> Traced<C, T>
where
    A: FnOnce() -> AF,
    AF: Future<Output = C>,
    F: Future<Output = T>,
{
    let started = std::time::Instant::now();
    let statement = async {
        let result = session.client.simple_query(sql).await;
        let seconds = started.elapsed().as_secs_f64();
        (result, seconds, after().await)
    };
    let work = futures_util::future::join(statement, trace);
    match capped(session, watch, work, cap, cancel).await {
        Capped::Done(((result, seconds, read), traced)) => Traced {
            executed: match result {
                Ok(messages) => Executed::Done(command_rows(&messages)),
                Err(e) => Executed::Failed(e),
            },
            seconds,
            read: Some((read, traced)),
        },
        Capped::Stopped { abort, ended } => Traced {
            executed: Executed::Stopped { abort, ended },
            seconds: started.elapsed().as_secs_f64(),
            read: None,
        },
    }
}

/// Rows from the last command tag (UPDATE 42 → 42).
fn command_rows(messages: &[SimpleQueryMessage]) -> Option<u64> {
    messages.iter().rev().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    })
}

/// How capped work on the patch's session ended.
pub(super) enum Capped<T> {
    /// It completed with this.
    Done(T),
    /// downtime stopped it, as [`Executed::Stopped`].
    Stopped { abort: Option<Abort>, ended: Ended },
}

/// Run `work` (queries on `session`: a statement, or the tool's
/// bookkeeping) capped and stopped like a statement.
pub(super) async fn capped<T, F: Future<Output = T>>(
    session: &Session,
    watch: &Watch<'_>,
    work: F,
    cap: Duration,
    cancel: &Cancel,
) -> Capped<T> {
    let work = work.fuse();
    let timer = tokio::time::sleep(cap + GRACE).fuse();
    let aborted = cancel.wait().fuse();
    futures_util::pin_mut!(work, timer, aborted);
    let abort = futures_util::select! {
        r = work => return Capped::Done(r),
        _ = timer => None,
        a = aborted => Some(a),
    };
    let ended = escalate(session, watch, work).await;
    Capped::Stopped { abort, ended }
}

/// downtime's own work on the patch's session outside every patch (the
/// tool's bookkeeping table, made before the first), capped and stopped
/// like a statement: an `Err` says what stopped it.
pub async fn own_work<T>(
    session: &Session,
    watch: &Watch<'_>,
    work: impl Future<Output = Result<T>>,
    cap: Duration,
    cancel: &Cancel,
) -> Result<T> {
    match capped(session, watch, work, cap, cancel).await {
        Capped::Done(r) => r,
        Capped::Stopped { abort: Some(a), .. } => Err(Error::Aborted(a)),
        Capped::Stopped { abort: None, ended } => Err(Error::Server(format!(
            "it ran past the statement cap ({:.3} s, --timeout) and was {ended}",
            cap.as_secs_f64()
        ))),
    }
}

/// Stop the running `query`: cancel, terminate, stop the server, each
/// given [`GRACE`] to end it. Returns the step that did.
async fn escalate<F: Future + Unpin>(session: &Session, watch: &Watch<'_>, mut query: F) -> Ended {
    let cancel = session.client.cancel_token();
    let _ = tokio::time::timeout(GRACE, cancel.cancel_query(session.tls.clone())).await;
    if ends_within(&mut query, GRACE).await {
        return Ended::Cancel;
    }
    crate::ui::warn(&format!(
        "the statement did not stop when cancelled (does it catch query_canceled?): terminating its backend (pid {})",
        session.pid
    ));
    let pid = session.pid;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&pid];
    let terminate = watch.admin.query(
        "/*downtime*/ select pg_catalog.pg_terminate_backend($1)",
        &params,
    );
    let _ = tokio::time::timeout(GRACE, terminate).await;
    if ends_within(&mut query, GRACE).await {
        return Ended::Terminate;
    }
    crate::ui::warn("the backend did not stop when terminated: stopping the staging server");
    let _ = tokio::time::timeout(GRACE, watch.backend.stop_now()).await;
    // Whether or not the driver noticed yet, the server is going: stop
    // waiting for the statement.
    let _ = ends_within(&mut query, 2 * GRACE).await;
    Ended::ServerStop
}

/// Whether `query` completes within `grace`.
async fn ends_within<F: Future + Unpin>(query: &mut F, grace: Duration) -> bool {
    tokio::time::timeout(grace, query).await.is_ok()
}
