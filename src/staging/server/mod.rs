//! The server backend: an existing PostgreSQL server the user owns
//! (`--url`), reached as libpq reaches it (see [`super::source`]). Nothing
//! is started and nothing of the server's own is touched: downtime connects
//! to the database the URL names (the maintenance database) only to make
//! and drop databases of its own, all named after the run
//! ([`names`]), and drops them when the run ends, fails or is interrupted.
//! A run killed outright leaves them to `downtime clean --url`, which tells
//! them from a live run's by the advisory lock every live run holds.
//!
//! The server's settings are its own: downtime reads them for the report
//! and sets none; it cannot restart the server (no cold cache) nor stop it
//! (a statement that outlives a cancel and a terminate is terminated again).

mod leftovers;
pub mod names;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::source::{PassFile, Source};
use super::tls::Tls;
use super::{binaries, cache, cleanup, connect_admin, ident, Admin, Backend};
use crate::error::{Error, Result};
use crate::ui;
pub use leftovers::{
    cached_baselines, drop_cached, drop_leftover, leftovers, unmarked_caches, Leftover,
};
use names::RunId;

/// How many cached baselines a server keeps (the oldest go first).
pub const KEEP: usize = cache::KEEP;
/// How long a connection to the server may take to open, unless the URL says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the drops of a run killed by a second Ctrl-C, or dropped
/// without a shutdown, may take.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for the server backend.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The server and its maintenance database (`--url`), resolved and
    /// checked against the production guard.
    pub url: Source,
    /// Directory with `psql`/`pg_restore` on this machine (`--pg-bin`).
    pub client_bin_dir: Option<PathBuf>,
    /// The baseline is loaded with the client programs: they must be found.
    pub needs_clients: bool,
}

/// Connection settings for downtime's own connections to `source`: as the
/// URL says, with a connect timeout and downtime's application name where
/// it says none.
pub fn connect_config(source: &Source) -> Result<tokio_postgres::Config> {
    let mut base = source.connect_config("downtime")?;
    if base.get_connect_timeout().is_none() {
        base.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(base)
}

/// A connection to the database `source` names (the maintenance
/// database), for `clean` and `cache clear`.
pub async fn connect_maintenance(source: &Source) -> Result<Client> {
    let dbname = source.get("dbname").unwrap_or("postgres").to_string();
    let mut config = connect_config(source)?;
    config.dbname(&dbname);
    let (client, _, _) = super::connect_watched(config, &source.tls()?, &dbname)
        .await
        .map_err(|e| cannot_reach(source, &e))?;
    Ok(client)
}

/// A connection error, naming the server (no password).
fn cannot_reach(source: &Source, e: &Error) -> Error {
    let why = match e {
        Error::Server(m) => m.clone(),
        e => e.to_string(),
    };
    Error::Server(format!(
        "cannot reach {}: {}",
        source.redacted(),
        source.scrub(&why)
    ))
}

/// A server the user owns, with this run's databases on it. Dropping it
/// drops them, also on error paths.
pub struct Server {
    source: Source,
    base: tokio_postgres::Config,
    /// TLS as the URL says, its files read once.
    tls: Tls,
    /// The database the URL names.
    maintenance: String,
    run: RunId,
    /// What this run's databases' names start with.
    prefix: String,
    /// This run's template (`<prefix>baseline`).
    template: String,
    /// The server's `server_version_num`.
    version_num: i32,
    /// The connection holding the run's advisory lock, also used to make
    /// and drop databases outside the runs.
    keeper: Option<Admin>,
    /// Where `psql` and `pg_restore` are taken from.
    client_dir: PathBuf,
    /// `pg_stat_statements` times statements.
    statements: bool,
    /// The emergency job dropping this run's databases.
    job: Option<u64>,
}

impl Server {
    /// Connect, check that the role may do what a run does, take a run
    /// number no live run holds, and see whether `pg_stat_statements` can
    /// time statements.
    pub async fn start(opts: &ServerOptions) -> Result<Server> {
        let source = opts.url.clone();
        let client_dir = match binaries::find(opts.client_bin_dir.as_deref(), &binaries::CLIENTS) {
            Ok(dir) => dir,
            Err(e) if opts.needs_clients => return Err(e),
            Err(_) => PathBuf::new(),
        };
        let mut me = Server {
            base: connect_config(&source)?,
            tls: source.tls()?,
            maintenance: source.get("dbname").unwrap_or("postgres").to_string(),
            source,
            run: RunId(0),
            prefix: String::new(),
            template: String::new(),
            version_num: 0,
            keeper: None,
            client_dir,
            statements: false,
            job: None,
        };
        let keeper = connect_admin(&me)
            .await
            .map_err(|e| cannot_reach(&me.source, &e))?;
        let row = keeper
            .query_one(
                "/*downtime*/ select current_setting('server_version_num')::int, \
                 current_user::text, r.rolsuper \
                 from pg_roles r where r.rolname = current_user",
                &[],
            )
            .await?;
        me.version_num = row.get(0);
        let (user, superuser): (String, bool) = (row.get(1), row.get(2));
        if !superuser {
            return Err(Error::Server(format!(
                "{}: the role {user} is not a superuser. downtime reads the server's roles \
                 (pg_authid) to put back what patches change outside their database between \
                 runs, and checkpoints after loading the baseline: connect as a superuser of \
                 the staging server",
                me.source.redacted()
            )));
        }
        if me.version_num < 130000 {
            return Err(Error::Server(format!(
                "{}: PostgreSQL {} is older than 13, which downtime needs to drop its \
                 databases whoever is connected (DROP DATABASE … WITH (FORCE))",
                me.source.redacted(),
                me.version_num / 10000
            )));
        }
        me.run = take_run_number(&keeper).await?;
        me.prefix = me.run.prefix();
        me.template = format!("{}baseline", me.prefix);
        let (config, tls, prefix) = (
            me.config(&me.maintenance),
            me.tls.clone(),
            me.prefix.clone(),
        );
        me.job = Some(cleanup::add_job(move || drop_blocking(config, tls, prefix)));
        ui::note(&format!(
            "staging on {} as run {} (databases {}*)",
            me.source.redacted(),
            me.run,
            me.prefix
        ));
        me.statements = statement_stats(&keeper).await?;
        if !me.statements {
            ui::note(&format!(
                "pg_stat_statements is not loaded with its view in schema public of database \
                 {}: statements are timed by the client",
                me.maintenance
            ));
        }
        me.keeper = Some(keeper);
        Ok(me)
    }

    /// What decides whether a cached baseline fits: the server's version
    /// and the role the databases belong to.
    pub fn identity(&self) -> String {
        format!(
            "server backend\n{}\n{}",
            self.version_num,
            self.source.get("user").unwrap_or_default()
        )
    }

    /// The connection holding the run's lock.
    fn keeper(&self) -> Result<&Admin> {
        self.keeper
            .as_ref()
            .ok_or_else(|| Error::Server("the connection to the staging server is closed".into()))
    }

    /// Make this run's template a copy of the cached baseline `key`, when
    /// the server keeps it; false when it does not (or it was evicted
    /// meanwhile), and the baseline is to be loaded.
    pub async fn template_from_cache(&mut self, key: &str) -> Result<bool> {
        let cached = names::cache_db(key);
        let keeper = self.keeper()?;
        if !leftovers::is_cached(keeper, &cached).await? {
            return Ok(false);
        }
        let made =
            super::create_database(keeper, &self.template, &cached, file_copy(self.version_num))
                .await;
        match made {
            Ok(()) => Ok(true),
            Err(e) => match e {
                // Evicted meanwhile.
                Error::Database { .. } if !leftovers::is_cached(keeper, &cached).await? => {
                    Ok(false)
                }
                e => Err(e),
            },
        }
    }

    /// Drop every database of this run, then let go of the run's lock.
    async fn drop_own(&mut self) -> Result<()> {
        let alive = match &self.keeper {
            Some(k) => k.alive().await,
            None => false,
        };
        let keeper = match self.keeper.take() {
            Some(k) if alive => k,
            _ => connect_admin(self)
                .await
                .map_err(|e| cannot_reach(&self.source, &e))?,
        };
        let dropped = drop_prefixed(&keeper, &self.prefix).await;
        drop(keeper);
        if let Some(job) = self.job.take() {
            cleanup::forget_job(job);
        }
        dropped.map(|_| ())
    }
}

/// ` strategy file_copy` where the server knows it (15 and later): copies
/// made file by file, as older servers always make them.
fn file_copy(version_num: i32) -> &'static str {
    if version_num >= 150000 {
        " strategy file_copy"
    } else {
        ""
    }
}

/// A run number whose lock no live run holds and whose names no database
/// has, its advisory lock taken on `keeper`.
async fn take_run_number(keeper: &Client) -> Result<RunId> {
    for _ in 0..16 {
        let run = RunId::random()?;
        let row = keeper
            .query_one(
                "/*downtime*/ select pg_try_advisory_lock($1, $2)",
                &[&names::LOCK_CLASS, &run.lock_key()],
            )
            .await?;
        if !row.get::<_, bool>(0) {
            continue;
        }
        let taken = keeper
            .query_opt(
                "/*downtime*/ select 1 from pg_database where left(datname, length($1)) = $1",
                &[&run.prefix()],
            )
            .await?;
        if taken.is_none() {
            return Ok(run);
        }
        keeper
            .query_one(
                "/*downtime*/ select pg_advisory_unlock($1, $2)",
                &[&names::LOCK_CLASS, &run.lock_key()],
            )
            .await?;
    }
    Err(Error::Server(
        "no free run number on the staging server after 16 tries".into(),
    ))
}

/// Whether `pg_stat_statements` times statements on this server: the
/// library preloaded and its view in schema `public` of the database
/// `client` is connected to (downtime creates nothing there).
pub(crate) async fn statement_stats(client: &Client) -> Result<bool> {
    let row = client
        .query_one(
            "/*downtime*/ select exists (select 1 from pg_extension e \
               join pg_namespace n on n.oid = e.extnamespace \
               where e.extname = 'pg_stat_statements' and n.nspname = 'public') \
             and current_setting('shared_preload_libraries') \
               ~ '(^|[\\s,])\"?pg_stat_statements\"?([\\s,]|$)'",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Drop every database whose name starts with `prefix`, whoever is
/// connected to it (a template flag a patch set is taken off first);
/// returns their names. Looked for again after each round: a copy whose
/// `CREATE DATABASE` was still running (a run stopped at once) is there
/// once its template could be dropped.
pub(crate) async fn drop_prefixed(admin: &Client, prefix: &str) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for _ in 0..3 {
        let rows = admin
            .query(
                "/*downtime*/ select datname::text, datistemplate from pg_database \
                 where left(datname, length($1)) = $1 order by oid desc",
                &[&prefix],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let (name, template): (String, bool) = (row.get(0), row.get(1));
            let db = ident(&name);
            if template {
                admin
                    .simple_query(&format!("alter database {db} is_template false"))
                    .await?;
            }
            admin
                .simple_query(&format!("drop database if exists {db} with (force)"))
                .await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// End the sessions still making a database of this run (a run stopped at
/// once leaves its `CREATE DATABASE` running on the server, to commit
/// after the databases were looked for), and wait for them to go.
async fn end_creations(admin: &Client, prefix: &str) -> Result<()> {
    let making = format!("create database {}", ident(prefix).trim_end_matches('"'));
    let running = "/*downtime*/ select pid from pg_stat_activity where pid <> pg_backend_pid() \
                   and state = 'active' and left(query, length($1)) = $1";
    for _ in 0..100 {
        let pids: Vec<i32> = admin
            .query(running, &[&making])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if pids.is_empty() {
            break;
        }
        admin
            .query(
                "/*downtime*/ select pg_terminate_backend(pid) from unnest($1::int4[]) pid",
                &[&pids],
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// [`drop_prefixed`] on a runtime of its own, within [`DROP_TIMEOUT`]:
/// for `Drop` and an emergency exit.
fn drop_blocking(config: tokio_postgres::Config, tls: Tls, prefix: String) {
    let work = move || {
        super::on_own_runtime(async {
            let drop = async {
                let (client, _, _) = super::connect_watched(config, &tls, "maintenance").await?;
                end_creations(&client, &prefix).await?;
                drop_prefixed(&client, &prefix).await
            };
            let _ = tokio::time::timeout(DROP_TIMEOUT, drop).await;
        });
    };
    // A thread of its own: the caller may be on a runtime already.
    let _ = std::thread::spawn(work).join();
}

#[async_trait::async_trait(?Send)]
impl Backend for Server {
    fn name(&self) -> &'static str {
        "server"
    }

    fn address(&self) -> Option<String> {
        Some(self.source.address())
    }

    fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = self.base.clone();
        c.dbname(dbname);
        c
    }

    fn tls(&self) -> Result<Tls> {
        Ok(self.tls.clone())
    }

    fn admin_db(&self) -> &str {
        &self.maintenance
    }

    fn template_db(&self) -> &str {
        &self.template
    }

    fn db_name(&self, kind: &str, n: usize) -> String {
        format!("{}{kind}_{n}", self.prefix)
    }

    fn foreign_databases(&self) -> Vec<String> {
        self.run.foreign()
    }

    fn shared(&self) -> bool {
        true
    }

    fn client_args(&self, dbname: &str) -> Vec<String> {
        let target = self.source.on_database(dbname);
        vec!["--dbname".into(), target.client_conninfo(None, "downtime")]
    }

    fn client(
        &self,
        program: &Path,
        dbname: &str,
        dir: &Path,
    ) -> Result<(Command, Option<PassFile>)> {
        self.source
            .on_database(dbname)
            .client_named(program, dir, "downtime", "server.pgpass")
    }

    fn client_bin_dir(&self) -> &Path {
        &self.client_dir
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.drop_own().await
    }

    async fn stop_now(&self) -> Result<()> {
        // Not downtime's server to stop: end every session on this run's
        // databases once more, and say so.
        let keeper = self.keeper()?;
        keeper
            .query(
                "/*downtime*/ select pg_terminate_backend(pid) from pg_stat_activity \
                 where left(datname, length($1)) = $1 and pid <> pg_backend_pid()",
                &[&self.prefix],
            )
            .await?;
        ui::warn(
            "the server is not downtime's own, so it is not stopped: the sessions on this \
             run's databases were terminated again, and the databases are dropped at the end",
        );
        Ok(())
    }

    async fn restart(&mut self) -> Result<()> {
        Err(Error::Server(format!(
            "{} is not downtime's own server: it cannot be restarted for a cold cache",
            self.source.redacted()
        )))
    }

    fn has_statement_stats(&self) -> bool {
        self.statements
    }

    async fn keep_baseline(&mut self, _cache_root: &Path, key: &str) -> Result<String> {
        let cached = names::cache_db(key);
        let keeper = self.keeper()?;
        let made = keeper
            .simple_query(&format!(
                "create database {} template {} allow_connections false{}",
                ident(&cached),
                ident(&self.template),
                file_copy(self.version_num)
            ))
            .await;
        match made {
            Ok(_) => leftovers::mark_cached(keeper, &cached, key).await?,
            // Another run kept it meanwhile.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e.into()),
        }
        leftovers::evict(keeper, KEEP).await;
        Ok(format!("database {cached} on the staging server"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            cleanup::forget_job(job);
            drop_blocking(
                self.config(&self.maintenance),
                self.tls.clone(),
                self.prefix.clone(),
            );
        }
        // The lock goes with the connection, after the drops.
        self.keeper.take();
    }
}
