//! The session a patch is applied on, and downtime's side of the staging
//! server that watches over it: the admin connection (to terminate a
//! backend, read the server's clock, see that downtime's own connection
//! survives the patch) and the backend (to stop the server).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Client;

use crate::error::Result;
use crate::staging::tls::Tls;
use crate::staging::{self, Admin, Backend, ConnectionEnd, EndWatch};

/// How long a closed session's connection task may take to finish.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The patch's own connection to its copy.
pub struct Session {
    pub client: Client,
    /// The server process serving it (for `pg_terminate_backend`).
    pub pid: i32,
    /// The connector its cancel requests are sent with.
    pub tls: Tls,
    ended: EndWatch,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Connect to the copy `dbname`, every statement capped on the server
    /// by `statement_timeout`.
    pub async fn open(
        backend: &dyn Backend,
        dbname: &str,
        statement_cap: Duration,
    ) -> Result<Session> {
        let mut config = backend.config(dbname);
        config.options(format!(
            "-c statement_timeout={}",
            statement_cap.as_millis().clamp(1, i32::MAX as u128)
        ));
        let tls = backend.tls()?;
        let (client, ended, task) = staging::connect_watched(config, &tls, dbname).await?;
        let pid = client
            .query_one("/*downtime*/ select pg_catalog.pg_backend_pid()", &[])
            .await?
            .get(0);
        Ok(Session {
            client,
            pid,
            tls,
            ended,
            task,
        })
    }

    /// How the connection ended, if the server said why.
    pub fn ended(&self) -> Option<ConnectionEnd> {
        self.ended.get()
    }

    /// Close the connection and wait (a little) for its task.
    pub async fn close(self) {
        drop(self.client);
        let mut task = self.task;
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// downtime's own sessions on a copy besides the patch's (the probe's, on
/// a thread of their own, which reconnects one a patch ended): any other
/// session there is the patch's doing.
#[derive(Debug, Clone, Default)]
pub struct OwnSessions(Arc<Mutex<Own>>);

#[derive(Debug, Default)]
struct Own {
    pids: BTreeSet<i32>,
    /// Connections asked for so far, counted before each is made.
    opened: u64,
}

impl OwnSessions {
    fn with<T>(&self, f: impl FnOnce(&mut Own) -> T) -> T {
        // A poisoned lock still holds the numbers.
        let mut own = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut own)
    }

    /// A connection to the copy is about to be made.
    pub fn opening(&self) {
        self.with(|o| o.opened += 1);
    }

    /// The connection made is served by the server process `pid`.
    pub fn opened(&self, pid: i32) {
        self.with(|o| o.pids.insert(pid));
    }

    /// The session of `pid` is gone.
    pub fn closed(&self, pid: i32) {
        self.with(|o| o.pids.remove(&pid));
    }

    /// The server processes of the sessions.
    pub fn pids(&self) -> Vec<i32> {
        self.with(|o| o.pids.iter().copied().collect())
    }

    /// How many connections were asked for so far.
    pub fn opened_count(&self) -> u64 {
        self.with(|o| o.opened)
    }
}

/// The copy a patch is applied to, as the admin connection sees it, to
/// find sessions on it that are not downtime's.
#[derive(Debug, Clone)]
pub struct CopyWatch {
    /// The copy's database oid.
    pub oid: u32,
    /// downtime's sessions there besides the patch's.
    pub own: OwnSessions,
    /// Only downtime connects to the copy (not a provisioner's clone,
    /// which others may watch): every connection opened to it while a
    /// statement runs is counted (`pg_stat_database.sessions`).
    pub private: bool,
}

/// downtime's side of the staging server while patches are applied.
pub struct Watch<'a> {
    pub admin: &'a Admin,
    pub backend: &'a dyn Backend,
    /// The copy's database oid, when `pg_stat_statements` gives the
    /// server's own clock.
    pub clock_dbid: Option<u32>,
    /// The databases copies are made from, by oid and name: a patch that
    /// renames or drops one breaks every later copy.
    pub templates: Vec<(u32, String)>,
    /// The copy, to see other sessions on it (work a patch sends there
    /// through `dblink` or a foreign table is not traced as its own).
    pub copy: Option<CopyWatch>,
}

impl Watch<'_> {
    /// Is the staging server still up (a new connection is answered)?
    pub(super) async fn server_up(&self) -> bool {
        staging::answers(
            self.backend.config(self.backend.admin_db()),
            self.backend.tls(),
        )
        .await
    }
}
