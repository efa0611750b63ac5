//! Connections to the staging server: downtime's admin connection (search
//! path pinned to the catalogue), plain ones, and watched ones that keep
//! the reason they ended (the server's last message), so a lost connection
//! can be explained.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Client;

use super::tls::Tls;
use super::Backend;
use crate::error::{Error, Result};
use crate::pg::catalog::PINNED_SEARCH_PATH;

/// Database of downtime's admin connection on a server of its own (copies
/// are made and dropped from it; patches never run there); see
/// [`Backend::admin_db`].
pub const ADMIN_DB: &str = "postgres";

/// The TLS connector of connections to a server downtime started itself
/// (see [`super::tls`]): encrypted when offered, nothing to check.
pub fn plain_tls() -> Result<Tls> {
    Tls::new().map_err(|e| Error::Server(format!("cannot set up TLS: {e}")))
}

/// Whether a server answers a query with these settings (readiness probe).
pub(crate) async fn answers(mut config: tokio_postgres::Config, tls: Result<Tls>) -> bool {
    config.connect_timeout(Duration::from_secs(2));
    let Ok(tls) = tls else {
        return false;
    };
    let Ok((client, connection)) = config.connect(tls).await else {
        return false;
    };
    let task = tokio::spawn(connection);
    let ok = client.simple_query("select 1").await.is_ok();
    drop(client);
    let _ = task.await;
    ok
}

/// Open a connection; the connection task runs on the current runtime.
pub async fn connect(backend: &dyn Backend, dbname: &str) -> Result<Client> {
    let (client, _, _) = connect_watched(backend.config(dbname), &backend.tls()?, dbname).await?;
    Ok(client)
}

/// How a connection ended, as its connection task saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEnd {
    /// The server's SQLSTATE, when it said why (57P01 for a terminated
    /// backend, 25P03 for an idle-in-transaction timeout, …).
    pub sqlstate: Option<String>,
    pub message: String,
}

impl ConnectionEnd {
    /// From a driver error: the server's message, or the driver's.
    pub fn of(e: &tokio_postgres::Error) -> ConnectionEnd {
        match e.as_db_error() {
            Some(db) => ConnectionEnd {
                sqlstate: Some(db.code().code().to_string()),
                message: db.message().to_string(),
            },
            None => ConnectionEnd {
                sqlstate: None,
                message: e.to_string(),
            },
        }
    }
}

/// Where a watched connection's task leaves how the connection ended.
#[derive(Debug, Clone, Default)]
pub struct EndWatch(Arc<Mutex<Option<ConnectionEnd>>>);

impl EndWatch {
    /// How the connection ended, once its task saw an error (`None` while
    /// it is open, or when it closed without one).
    pub fn get(&self) -> Option<ConnectionEnd> {
        match self.0.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, end: ConnectionEnd) {
        match self.0.lock() {
            Ok(mut v) => *v = Some(end),
            Err(poisoned) => *poisoned.into_inner() = Some(end),
        }
    }
}

/// Open a connection whose task records how it ended; returns the client,
/// that record, and the task (awaiting it waits for the connection to close).
pub async fn connect_watched(
    config: tokio_postgres::Config,
    tls: &Tls,
    dbname: &str,
) -> Result<(Client, EndWatch, tokio::task::JoinHandle<()>)> {
    let (client, connection) = config.connect(tls.clone()).await.map_err(|e| {
        let why = crate::error::describe_pg_error(&e);
        Error::Server(format!("cannot connect to database {dbname}: {why}"))
    })?;
    let ended = EndWatch::default();
    let record = ended.clone();
    let task = tokio::spawn(async move {
        // Errors also surface on the client's next call.
        if let Err(e) = connection.await {
            record.set(ConnectionEnd::of(&e));
        }
    });
    Ok((client, ended, task))
}

/// downtime's admin connection: to [`Backend::admin_db`], its search path pinned to
/// the catalogue (`-c search_path=pg_catalog,pg_temp`, which no role or
/// database setting a patch makes overrides), so nothing a patch creates
/// stands in for a catalogue relation, function or operator. It derefs to
/// its client.
pub struct Admin {
    client: Client,
    ended: EndWatch,
    /// The server process serving it.
    pub pid: i32,
}

impl Admin {
    /// How the connection ended, if the server said why.
    pub fn ended(&self) -> Option<ConnectionEnd> {
        self.ended.get()
    }

    /// The connection still answers (within 2 s).
    pub async fn alive(&self) -> bool {
        let probe = self.client.simple_query("/*downtime*/ select 1");
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(_))
        )
    }
}

impl std::ops::Deref for Admin {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Open downtime's admin connection (see [`Admin`]).
pub async fn connect_admin(backend: &dyn Backend) -> Result<Admin> {
    let dbname = backend.admin_db();
    let mut config = backend.config(dbname);
    config.options(format!(
        "-c search_path={}",
        PINNED_SEARCH_PATH.replace(' ', "")
    ));
    let (client, ended, _) = connect_watched(config, &backend.tls()?, dbname).await?;
    let pid = client
        .query_one("select pg_backend_pid()", &[])
        .await?
        .get(0);
    Ok(Admin { client, ended, pid })
}
