//! What the server backend leaves on a server between runs: the databases
//! of runs killed outright (for `downtime clean --url`), told from a live
//! run's by the advisory lock it holds, and the cached baselines (for
//! `downtime cache clear --url`, and evicted beyond [`super::KEEP`]). Both
//! are downtime's only when they carry downtime's comment as well as its
//! name ([`names::RUN_MARK`], [`names::cache_mark`]): a database of the
//! user's that happens to be named `downtime_cache_…` is never dropped.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::names::{self, RunId};
use crate::error::Result;
use crate::staging::ident;

/// One run's databases on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub run: RunId,
    /// Those marked as downtime's own.
    pub databases: Vec<String>,
    /// Those named like the run's but not marked: not downtime's to drop
    /// (unless the run is live: one it is making now is not marked yet).
    pub unmarked: Vec<String>,
    /// The run still holds its lock: it is going.
    pub live: bool,
}

/// Every run's databases on the server `admin` is connected to, by run.
pub async fn leftovers(admin: &Client) -> Result<Vec<Leftover>> {
    let rows = admin
        .query(
            "/*downtime*/ select datname::text, \
               shobj_description(oid, 'pg_database') is not distinct from $2 \
             from pg_database where datname ~ $1 order by datname",
            &[&names::ANY_RUN, &names::RUN_MARK],
        )
        .await?;
    let mut runs: BTreeMap<RunId, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let (name, marked): (String, bool) = (row.get(0), row.get(1));
        if let Some(run) = RunId::of_database(&name) {
            let entry = runs.entry(run).or_default();
            match marked {
                true => entry.0.push(name),
                false => entry.1.push(name),
            }
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
        .map(|(run, (databases, unmarked))| Leftover {
            live: held.contains(&i64::from(run.0)),
            run,
            databases,
            unmarked,
        })
        .collect())
}

/// Drop a run's databases, whoever is connected to them: a dead run's
/// marked ones; every one named after a live run (`clean --all`), whose
/// copy being made is not marked yet.
pub async fn drop_leftover(admin: &Client, leftover: &Leftover) -> Result<Vec<String>> {
    if leftover.live {
        return super::drop_prefixed(admin, &leftover.run.prefix()).await;
    }
    for name in &leftover.databases {
        let db = ident(name);
        admin
            .simple_query(&format!("alter database {db} is_template false"))
            .await?;
        admin
            .simple_query(&format!("drop database if exists {db} with (force)"))
            .await?;
    }
    Ok(leftover.databases.clone())
}

/// The cached baselines on the server, oldest first: named as downtime
/// names them and carrying the comment downtime puts on them.
pub async fn cached_baselines(admin: &Client) -> Result<Vec<String>> {
    Ok(cache_candidates(admin)
        .await?
        .into_iter()
        .filter_map(|(name, marked)| marked.then_some(name))
        .collect())
}

/// Databases named like cached baselines that downtime did not mark as
/// its own (a user's `downtime_cache_…`, or one an older downtime left):
/// never dropped, only named.
pub async fn unmarked_caches(admin: &Client) -> Result<Vec<String>> {
    let rows = admin
        .query(
            "/*downtime*/ select datname::text from pg_database \
             where left(datname, length($1)) = $1 order by datname",
            &[&names::CACHE_PREFIX],
        )
        .await?;
    let marked = cached_baselines(admin).await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|n| !marked.contains(n))
        .collect())
}

/// Every database named as a cached baseline, and whether it carries the
/// comment for its own key.
async fn cache_candidates(admin: &Client) -> Result<Vec<(String, bool)>> {
    let rows = admin
        .query(
            "/*downtime*/ select datname::text, shobj_description(oid, 'pg_database') \
             from pg_database where datname ~ $1 order by oid",
            &[&names::ANY_CACHE],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (name, comment): (String, Option<String>) = (r.get(0), r.get(1));
            let marked = names::cache_key(&name)
                .is_some_and(|key| comment.as_deref() == Some(names::cache_mark(key).as_str()));
            (name, marked)
        })
        .collect())
}

/// Whether `name` is a cached baseline downtime made (and is still there).
pub(super) async fn is_cached(admin: &Client, name: &str) -> Result<bool> {
    Ok(cache_candidates(admin)
        .await?
        .into_iter()
        .any(|(n, marked)| marked && n == name))
}

/// Mark the cached baseline `name` (of cache key `key`) as downtime's; one
/// that cannot be marked is dropped again, as it would never be cleared.
pub(super) async fn mark_cached(admin: &Client, name: &str, key: &str) -> Result<()> {
    let marked = admin
        .simple_query(&format!(
            "comment on database {} is '{}'",
            ident(name),
            names::cache_mark(key)
        ))
        .await;
    if let Err(e) = marked {
        let _ = drop_cached(admin, name).await;
        return Err(e.into());
    }
    Ok(())
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
