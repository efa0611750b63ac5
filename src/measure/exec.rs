//! Sending one statement: capped by the statement cap, cancellable by an
//! abort, with the server told to stop whatever downtime stops waiting for.

use std::time::Duration;

use futures_util::FutureExt;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::cancel::{Abort, Cancel};
use crate::error::{Error, Result};

/// How a statement ended.
pub(super) enum Executed {
    /// It completed; rows from its command tag (UPDATE 42 → 42).
    Done(Option<u64>),
    /// The server (or the session) reported an error.
    Failed(tokio_postgres::Error),
    /// The run was aborted while it ran; it was cancelled on the server.
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
pub(super) async fn run_capped(
    client: &Client,
    sql: &str,
    cap: Duration,
    cancel: &Cancel,
) -> Result<Executed> {
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
            return Ok(Executed::Aborted(a));
        }
    };
    match result {
        Ok(messages) => Ok(Executed::Done(messages.iter().rev().find_map(
            |m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            },
        ))),
        Err(e) if e.as_db_error().is_some() || e.is_closed() || client.is_closed() => {
            Ok(Executed::Failed(e))
        }
        Err(e) => Err(Error::Database(format!(
            "the connection to the staging server failed: {e}"
        ))),
    }
}
