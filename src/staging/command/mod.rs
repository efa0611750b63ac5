//! The command backend: clones made by an external provisioner (Database
//! Lab Engine, Neon branches, a filesystem snapshot), with the commands of
//! `[staging.command]` in downtime.toml. `create` is run once per fresh
//! copy a run needs, with [`shell::CLONE_VAR`] naming the clone, and prints
//! the clone's connection URL as the last line of its output; `destroy` is
//! run with the same name when the copy is done with, on every way out of
//! the run (an error, Ctrl-C, a second Ctrl-C). No baseline is loaded: the
//! clone is the starting point.
//!
//! The clones a run asked for are recorded in a private directory in the
//! temporary directory, so `downtime clean` can destroy those of a run that
//! was killed outright.

mod record;
pub mod shell;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::source::Source;
use super::tls::Tls;
use super::{cleanup, connect_watched, Backend};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ui;
pub use record::{destroy_recorded, is_record, Record};

/// How long `create` and `destroy` may each run unless
/// `[staging.command] timeout-seconds` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a fresh clone may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `destroy` may take when downtime cannot wait properly (a
/// clone dropped without a shutdown; an emergency exit waits less).
const DESTROY_TIMEOUT: Duration = Duration::from_secs(60);

/// The commands of `[staging.command]`, and what the production guard
/// judges a clone's URL by.
#[derive(Debug, Clone)]
pub struct CommandOptions {
    /// Makes a clone named `$DOWNTIME_CLONE`; prints its URL last.
    pub create: String,
    /// Removes the clone named `$DOWNTIME_CLONE`.
    pub destroy: String,
    /// Words in a host or database name that mean production.
    pub production_patterns: Vec<String>,
    /// How long `create` and `destroy` may each run.
    pub timeout: Duration,
}

/// Makes the clones of one run, each named `downtime-<run>-<n>`.
pub struct Provisioner {
    opts: CommandOptions,
    /// Eight hex digits naming the run's clones.
    run: String,
    /// How many clones were asked for so far.
    made: usize,
    /// The record `downtime clean` reads after a run killed outright.
    record: Record,
}

impl Provisioner {
    /// A provisioner for one run, with its record of clones.
    pub fn new(opts: &CommandOptions) -> Result<Provisioner> {
        Ok(Provisioner {
            opts: opts.clone(),
            run: super::random_hex(4)?,
            made: 0,
            record: Record::create(&opts.destroy)?,
        })
    }

    /// Run `create` for a new clone and connect to it; on any failure the
    /// clone is destroyed again before the error is returned.
    pub async fn create(&mut self, cancel: &Cancel) -> Result<Clone> {
        self.made += 1;
        let id = format!("downtime-{}-{}", self.run, self.made);
        self.record.add(&id)?;
        let mut clone = Clone {
            id: id.clone(),
            record: self.record.path().to_path_buf(),
            destroy: self.opts.destroy.clone(),
            timeout: self.opts.timeout,
            job: None,
            destroying: Arc::default(),
            source: None,
            base: tokio_postgres::Config::new(),
            tls: None,
            dbname: String::new(),
            statements: false,
        };
        let (destroy, job_id) = (self.opts.destroy.clone(), id.clone());
        let destroying = clone.destroying.clone();
        clone.job = Some(cleanup::add_job(move || {
            // A `destroy` already running is waited for, not run twice.
            if destroying.load(Ordering::SeqCst) {
                let deadline = Instant::now() + cleanup_wait();
                while destroying.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            } else {
                shell::run_blocking(&destroy, &job_id, cleanup_wait());
            }
        }));
        ui::note(&format!("creating clone {id} ([staging.command] create)"));
        let started = Instant::now();
        match self.provision(&mut clone, cancel).await {
            Ok(()) => {
                ui::note(&format!(
                    "clone {id} ready in {:.1} s: {}",
                    started.elapsed().as_secs_f64(),
                    clone
                        .source
                        .as_ref()
                        .map(Source::redacted)
                        .unwrap_or_default()
                ));
                Ok(clone)
            }
            Err(e) => {
                if let Err(d) = clone.destroy_now().await {
                    ui::warn(&d.to_string());
                }
                Err(e)
            }
        }
    }

    /// `create`, its URL read, judged and connected to.
    async fn provision(&self, clone: &mut Clone, cancel: &Cancel) -> Result<()> {
        let id = clone.id.clone();
        let ran = shell::run(
            &self.opts.create,
            &id,
            "[staging.command] create",
            self.opts.timeout,
            cancel,
        )
        .await?;
        if !ran.status.success() {
            return Err(Error::Server(format!(
                "[staging.command] create failed for clone {id} ({}); the last lines it wrote \
                 on stderr:\n{}",
                ran.status,
                ran.stderr_tail(8)
            )));
        }
        let url = match ran.last_line() {
            shell::LastLine::Text(l) if looks_like_conninfo(l) => l,
            // The line is not shown: it may hold a secret.
            shell::LastLine::NotText => {
                return Err(Error::Server(format!(
                    "[staging.command] create for clone {id} printed no connection URL: its last \
                     line of output is not UTF-8 text, and it must be the clone's URL \
                     (postgresql://…) or a key=value connection string"
                )))
            }
            _ => {
                return Err(Error::Server(format!(
                    "[staging.command] create for clone {id} printed no connection URL: its last \
                     line of output must be the clone's URL (postgresql://…) or a key=value \
                     connection string"
                )))
            }
        };
        let source = Source::writable("[staging.command] create", url)?;
        source.guard(&self.opts.production_patterns, false)?;
        clone.base = super::server::connect_config(&source)?;
        clone.tls = Some(source.tls()?);
        clone.dbname = source.get("dbname").unwrap_or("postgres").to_string();
        clone.source = Some(source);
        let client = clone.wait_ready(cancel).await?;
        clone.statements = super::server::statement_stats(&client).await?;
        Ok(())
    }
}

/// A URL (`postgresql://`, `postgres://`) or a key/value connection string.
fn looks_like_conninfo(line: &str) -> bool {
    line.starts_with("postgresql://") || line.starts_with("postgres://") || line.contains('=')
}

/// How long an emergency exit lets `destroy` run before leaving it running.
fn cleanup_wait() -> Duration {
    Duration::from_secs(5)
}

/// A clone the provisioner made: one database on a server of its own (or
/// shared with other clones). Dropping it destroys it.
pub struct Clone {
    /// `$DOWNTIME_CLONE`.
    id: String,
    /// The run's record of its clones.
    record: PathBuf,
    /// The `destroy` command.
    destroy: String,
    /// How long `destroy` may run.
    timeout: Duration,
    /// The emergency job destroying it; `None` once destroyed.
    job: Option<u64>,
    /// `destroy` runs now (the emergency job then waits for it).
    destroying: Arc<AtomicBool>,
    /// The URL `create` printed, resolved (once it did).
    source: Option<Source>,
    /// downtime's connection settings for it.
    base: tokio_postgres::Config,
    /// Their TLS, as the URL says (once it is known).
    tls: Option<Tls>,
    /// The clone's database, as its URL names it.
    dbname: String,
    /// `pg_stat_statements` times statements there.
    statements: bool,
}

impl Clone {
    /// The clone's name (`$DOWNTIME_CLONE`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wait until the clone answers; returns a connection to it.
    async fn wait_ready(&self, cancel: &Cancel) -> Result<tokio_postgres::Client> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match connect_watched(self.config(&self.dbname), &self.tls()?, &self.dbname).await {
                Ok((client, _, _)) => return Ok(client),
                Err(e) if Instant::now() > deadline => {
                    let shown = self
                        .source
                        .as_ref()
                        .map(|s| (s.redacted(), s.scrub(&e.to_string())));
                    let (at, why) = shown.unwrap_or_default();
                    return Err(Error::Server(format!(
                        "clone {} at {at} did not accept connections within {} s: {why}",
                        self.id,
                        READY_TIMEOUT.as_secs()
                    )));
                }
                Err(_) => {}
            }
            if let Some(a) = cancel.fired() {
                return Err(Error::Aborted(a));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Run `destroy` for the clone (once).
    async fn destroy_now(&mut self) -> Result<()> {
        let Some(job) = self.job.take() else {
            return Ok(());
        };
        self.destroying.store(true, Ordering::SeqCst);
        let ran = shell::run(
            &self.destroy,
            &self.id,
            "[staging.command] destroy",
            self.timeout,
            &Cancel::never(),
        )
        .await;
        self.destroying.store(false, Ordering::SeqCst);
        cleanup::forget_job(job);
        let ran = ran?;
        record::forget(&self.record, &self.id);
        if !ran.status.success() {
            return Err(Error::Server(format!(
                "[staging.command] destroy failed for clone {} ({}): it may be left behind; \
                 the last lines it wrote on stderr:\n{}",
                self.id,
                ran.status,
                ran.stderr_tail(8)
            )));
        }
        ui::note(&format!("clone {} destroyed", self.id));
        Ok(())
    }
}

#[async_trait::async_trait(?Send)]
impl Backend for Clone {
    fn name(&self) -> &'static str {
        "command"
    }

    fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = self.base.clone();
        c.dbname(dbname);
        c
    }

    fn tls(&self) -> Result<Tls> {
        match &self.tls {
            Some(tls) => Ok(tls.clone()),
            None => super::plain_tls(),
        }
    }

    fn admin_db(&self) -> &str {
        &self.dbname
    }

    fn template_db(&self) -> &str {
        &self.dbname
    }

    fn client_args(&self, dbname: &str) -> Vec<String> {
        let conninfo = self
            .source
            .as_ref()
            .map(|s| s.on_database(dbname).client_conninfo(None, "downtime"))
            .unwrap_or_default();
        vec!["--dbname".into(), conninfo]
    }

    fn client_bin_dir(&self) -> &Path {
        Path::new("")
    }

    fn private_copies(&self) -> bool {
        false
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.destroy_now().await
    }

    async fn stop_now(&self) -> Result<()> {
        // Not downtime's server: end every other session on the clone.
        let (client, _, _) =
            connect_watched(self.config(&self.dbname), &self.tls()?, &self.dbname).await?;
        client
            .query(
                "/*downtime*/ select pg_catalog.pg_terminate_backend(pid) \
                 from pg_catalog.pg_stat_activity \
                 where datname operator(pg_catalog.=) pg_catalog.current_database() \
                   and pid operator(pg_catalog.<>) pg_catalog.pg_backend_pid()",
                &[],
            )
            .await?;
        ui::warn(&format!(
            "clone {} is not a server downtime started, so it is not stopped: its sessions were \
             terminated again, and it is destroyed at the end of the pass",
            self.id
        ));
        Ok(())
    }

    async fn restart(&mut self) -> Result<()> {
        Err(Error::Server(format!(
            "clone {} cannot be restarted by downtime (a cold cache needs a restart)",
            self.id
        )))
    }

    fn has_statement_stats(&self) -> bool {
        self.statements
    }

    async fn keep_baseline(&mut self, _cache_root: &Path, _key: &str) -> Result<String> {
        Err(Error::Server(
            "the command backend loads no baseline, so it keeps none".into(),
        ))
    }
}

impl Drop for Clone {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            cleanup::forget_job(job);
            if shell::run_blocking(&self.destroy, &self.id, DESTROY_TIMEOUT).is_some() {
                record::forget(&self.record, &self.id);
            }
        }
    }
}
