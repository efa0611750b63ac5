//! Aborting a run: Ctrl-C, SIGTERM or the whole-run cap. Every phase that
//! can take long (loading the baseline, each statement) waits on a [`Cancel`]
//! and stops in order: the running statement is cancelled on the server, the
//! copy and the server are removed, and a partial report is written.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Abort {
    /// SIGINT (Ctrl-C).
    Sigint,
    /// SIGTERM.
    Sigterm,
    /// `--max-run-seconds` ran out.
    RunCap,
    /// A patch left the staging server unfit to go on: it ended downtime's
    /// own connection, renamed the template, or would not stop until the
    /// server was. A verdict failure of that patch.
    Broken,
    /// The staging server or a connection to it failed for a reason no
    /// patch is known to have caused (killed from outside, a full disk).
    Infrastructure,
}

impl Abort {
    /// The exit status the stop itself calls for: 128 + signal number for
    /// a signal, 2 for an infrastructure failure, none (the verdict
    /// decides) for the run cap and a broken server.
    pub fn exit_code(self) -> Option<i32> {
        match self {
            Abort::Sigint => Some(130),
            Abort::Sigterm => Some(143),
            // error::EXIT_ERROR, the exit status of every infrastructure error.
            Abort::Infrastructure => Some(2),
            Abort::RunCap | Abort::Broken => None,
        }
    }
}

/// Which step of the escalation ended a statement that downtime stopped
/// (past its cap, or on an abort): a statement can catch a cancel (a
/// PL/pgSQL loop with `EXCEPTION WHEN query_canceled`), not a terminate;
/// and a backend that does not even go on a terminate goes with its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    /// The server cancelled it (statement_timeout or downtime's cancel request).
    Cancel,
    /// Its backend was terminated (`pg_terminate_backend`).
    Terminate,
    /// The staging server was stopped (immediate shutdown).
    ServerStop,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ended::Cancel => "cancelled on the server",
            Ended::Terminate => {
                "ended by terminating its backend (pg_terminate_backend), a cancel having gone unanswered"
            }
            Ended::ServerStop => {
                "ended by stopping the staging server (immediate shutdown), neither a cancel nor a terminate having ended it"
            }
        })
    }
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Abort::Sigint => "SIGINT",
            Abort::Sigterm => "SIGTERM",
            Abort::RunCap => "the whole-run cap (--max-run-seconds)",
            Abort::Broken => "a patch that broke the staging server",
            Abort::Infrastructure => "a failure of the staging server",
        })
    }
}

/// The sending side, held by whoever watches the signals.
pub type Trigger = watch::Sender<Option<Abort>>;

/// What long-running work listens to.
#[derive(Debug, Clone)]
pub struct Cancel {
    rx: watch::Receiver<Option<Abort>>,
    deadline: Option<Instant>,
}

impl Cancel {
    /// A trigger and the cancel it controls.
    pub fn new() -> (Trigger, Cancel) {
        let (tx, rx) = watch::channel(None);
        (tx, Cancel { rx, deadline: None })
    }

    /// A cancel that never fires (for library callers and tests).
    pub fn never() -> Cancel {
        let (tx, cancel) = Cancel::new();
        // Keep the channel open for the life of the program.
        std::mem::forget(tx);
        cancel
    }

    /// Also fire at `deadline`.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Cancel {
        self.deadline = deadline;
        self
    }

    /// Fired already?
    pub fn fired(&self) -> Option<Abort> {
        if let Some(a) = *self.rx.borrow() {
            return Some(a);
        }
        self.deadline
            .filter(|d| Instant::now() >= *d)
            .map(|_| Abort::RunCap)
    }

    /// Wait until fired.
    pub async fn wait(&self) -> Abort {
        let mut rx = self.rx.clone();
        let deadline = self.deadline;
        let cap = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = rx.wait_for(|v| v.is_some()) => match r {
                Ok(v) => v.unwrap_or(Abort::Sigint),
                // The trigger is gone: nobody can cancel any more.
                Err(_) => std::future::pending().await,
            },
            _ = cap => Abort::RunCap,
        }
    }
}
