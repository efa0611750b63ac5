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
}

impl Abort {
    /// The exit status for an abort by signal (128 + signal number).
    pub fn exit_code(self) -> Option<i32> {
        match self {
            Abort::Sigint => Some(130),
            Abort::Sigterm => Some(143),
            Abort::RunCap => None,
        }
    }
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Abort::Sigint => "SIGINT",
            Abort::Sigterm => "SIGTERM",
            Abort::RunCap => "the whole-run cap (--max-run-seconds)",
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
