//! What the server backend leaves on a server between runs: the databases
//! of runs killed outright (for `downtime clean --url`), told from a live
//! run's by the advisory lock it holds, and the cached baselines (for
//! `downtime cache clear --url`, and evicted beyond [`super::KEEP`]).

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::names::{self, RunId};
use crate::error::Result;
use crate::staging::ident;

/// One run's databases on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub run: RunId,
    pub databases: Vec<String>,
    /// The run still holds its lock: it is going.
    pub live: bool,
}

/// Every run's databases on the server `admin` is connected to, by run.
pub async fn leftovers(admin: &Client) -> Result<Vec<Leftover>> {
    let rows = admin
        .query(
            "/*downtime*/ select datname::text from pg_database where datname ~ $1 order by datname",
            &[&names::ANY_RUN],
        )
        .await?;
    let mut runs: BTreeMap<RunId, Vec<String>> = BTreeMap::new();
    for row in rows {
        let name: String = row.get(0);
        if let Some(run) = RunId::of_database(&name) {
            runs.entry(run).or_default().push(name);
        }
    }
    let held: Vec<i64> = admin
        .query(
            "/*downtime*/ select objid::int8 from pg_locks \
             where locktype = 'advisory' and classid = $1 and objsubid = 2 and granted",
            &[&(names::LOCK_CLASS as u32)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(runs
        .into_iter()
        .map(|(run, databases)| Leftover {
            live: held.contains(&i64::from(run.0)),
            run,
            databases,
        })
        .collect())
}

/// Drop a run's databases, whoever is connected to them.
pub async fn drop_leftover(admin: &Client, leftover: &Leftover) -> Result<Vec<String>> {
    super::drop_prefixed(admin, &leftover.run.prefix()).await
}

/// The cached baselines on the server, oldest first.
pub async fn cached_baselines(admin: &Client) -> Result<Vec<String>> {
    Ok(admin
        .query(
            "/*downtime*/ select datname::text from pg_database where datname ~ $1 order by oid",
            &[&names::ANY_CACHE],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Drop a cached baseline. No one connects to one; a run copying it
/// meanwhile is waited for.
pub async fn drop_cached(admin: &Client, name: &str) -> Result<()> {
    admin
        .simple_query(&format!("drop database if exists {}", ident(name)))
        .await?;
    Ok(())
}

/// Drop the oldest cached baselines beyond `keep`; one that cannot be
/// dropped now stays for the next run to try.
pub(super) async fn evict(admin: &Client, keep: usize) {
    let Ok(cached) = cached_baselines(admin).await else {
        return;
    };
    for name in cached.iter().take(cached.len().saturating_sub(keep)) {
        let _ = drop_cached(admin, name).await;
    }
}
