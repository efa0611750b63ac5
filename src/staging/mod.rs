//! Staging servers and the throwaway databases patches are applied to.
//!
//! A [`Backend`] provides a running PostgreSQL server and its connection
//! details; everything above it (loading the baseline into a template
//! database, copying it, dropping copies) is plain SQL and does not know which
//! backend it runs on.

pub mod binaries;
pub mod cache;
mod child;
mod cleanup;
pub mod cluster;
pub mod command;
mod connection;
mod databases;
pub mod docker;
pub mod embedded;
pub mod scale;
pub mod server;
pub mod server_log;
pub mod settings;
pub mod source;
pub mod tls;
pub mod workdir;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use tokio_postgres::Client;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ui;
pub(crate) use connection::answers;
pub use connection::{
    connect, connect_admin, connect_watched, plain_tls, Admin, ConnectionEnd, EndWatch, ADMIN_DB,
};
pub(crate) use databases::create_database;
pub use databases::{create_copy, create_copy_of, drop_copy, drop_subscriptions};

/// Name of the database the baseline is loaded into. Never patched itself.
pub const TEMPLATE_DB: &str = "downtime_baseline";

/// A running PostgreSQL server that can host staging copies.
#[async_trait::async_trait(?Send)]
pub trait Backend {
    /// Short name for reports (`embedded`, `docker`, `server`, `command`).
    fn name(&self) -> &'static str;
    /// Connection settings for a database on this server.
    fn config(&self, dbname: &str) -> tokio_postgres::Config;
    /// The TLS connector of connections to this server: for a server
    /// downtime started, encrypted when offered and nothing checked; for
    /// one the user names, as its connection string says.
    fn tls(&self) -> Result<tls::Tls> {
        plain_tls()
    }
    /// The database downtime's admin connection goes to (copies are made
    /// and dropped from it; patches never run there).
    fn admin_db(&self) -> &str {
        ADMIN_DB
    }
    /// The database the baseline is loaded into, which copies are made of.
    fn template_db(&self) -> &str {
        TEMPLATE_DB
    }
    /// The name of this run's `n`th database of a `kind` (`copy`, `scaled`).
    fn db_name(&self, kind: &str, n: usize) -> String {
        format!("downtime_{kind}_{}_{n}", std::process::id())
    }
    /// Patterns (regular expressions) of the names of databases on the
    /// server that are not this run's: left out of the cluster-level state
    /// the run watches.
    fn foreign_databases(&self) -> Vec<String> {
        Vec::new()
    }
    /// The server is shared with others (the server backend): what a
    /// patch changes there beyond what the run made fails the patch.
    fn shared(&self) -> bool {
        false
    }
    /// Only downtime connects to the copies (not so for a provisioner's
    /// clone, which its platform may watch).
    fn private_copies(&self) -> bool {
        true
    }
    /// Connection arguments for PostgreSQL client programs (`psql`, `pg_restore`).
    fn client_args(&self, dbname: &str) -> Vec<String>;
    /// Environment for those client programs (a password, say).
    fn client_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// A client program (`program`, a path) connected to `dbname`, and
    /// the password file it reads, written to the private directory `dir`
    /// and kept until dropped.
    fn client(
        &self,
        program: &Path,
        dbname: &str,
        _dir: &Path,
    ) -> Result<(Command, Option<source::PassFile>)> {
        let mut cmd = source::client_command(program);
        cmd.args(self.client_args(dbname)).envs(self.client_env());
        Ok((cmd, None))
    }
    /// Directory holding the client programs that load the baseline
    /// (`psql`, `pg_restore`, `pg_dump`), found as [`binaries::find`] says.
    fn client_bin_dir(&self) -> &Path;
    /// The container image the server runs in, if any.
    fn image(&self) -> Option<docker::ImageInfo> {
        None
    }
    /// Where the server is, for a report, when the user named it:
    /// `host:port/dbname`, nothing secret.
    fn address(&self) -> Option<String> {
        None
    }
    /// Stop the server and remove everything it left behind.
    async fn shutdown(&mut self) -> Result<()>;
    /// Stop the server at once, whatever its sessions are doing (the last
    /// step against a statement that outlives a cancel and a terminate):
    /// an immediate shutdown. [`Backend::shutdown`] still removes it.
    async fn stop_now(&self) -> Result<()>;
    /// Stop and start the server again (empties its shared buffers).
    async fn restart(&mut self) -> Result<()>;
    /// `pg_stat_statements` is loaded, so statements can be timed by the server.
    fn has_statement_stats(&self) -> bool;
    /// Keep the loaded template in the baseline cache under `key` (the
    /// local backend: its data directory in the cache directory
    /// `cache_root`); returns where.
    async fn keep_baseline(&mut self, cache_root: &Path, key: &str) -> Result<String>;
    /// Why the server process `pid` ended its session, as the server's log
    /// says (its FATAL message, or the signal that killed it), when the
    /// log can be read.
    fn session_end(&self, _pid: i32) -> Option<ConnectionEnd> {
        None
    }
}

/// Which kind of staging server a run uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A private cluster from this machine's PostgreSQL server binaries.
    #[default]
    #[value(alias = "embedded")]
    #[serde(alias = "embedded")]
    Local,
    /// A container from a PostgreSQL image, started with testcontainers.
    Docker,
    /// An existing server (`--url`): its databases are made and dropped there.
    Server,
    /// Clones made and destroyed by the commands of `[staging.command]`.
    Command,
}

impl BackendKind {
    /// The name reports give it.
    pub fn report_name(self) -> &'static str {
        match self {
            BackendKind::Local => "embedded",
            BackendKind::Docker => "docker",
            BackendKind::Server => "server",
            BackendKind::Command => "command",
        }
    }

    /// The server is downtime's own: it can be restarted (a cold cache)
    /// and configured (`--pg-conf`).
    pub fn owns_server(self) -> bool {
        matches!(self, BackendKind::Local | BackendKind::Docker)
    }
}

/// Stop every server and container this process started, at once (a
/// second Ctrl-C), leaving nothing behind: the local clusters get an
/// immediate shutdown and their directories are removed, the containers are
/// force-removed.
pub fn emergency_cleanup() {
    cleanup::run();
}

/// Run `work` to its end on a small runtime of its own (`None` when none
/// can be made): for `Drop` and an emergency exit, on a thread of their own.
pub(crate) fn on_own_runtime<F: std::future::Future>(work: F) -> Option<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    Some(rt.block_on(work))
}

/// `n` random bytes from the kernel, as hex.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Server(format!("cannot read /dev/urandom: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A process with this id runs on this machine.
pub(crate) fn process_alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Empty the operating system's page cache (root only, and only where the
/// kernel lets this process). Returns why not, when it could not.
pub fn drop_os_cache() -> std::result::Result<(), String> {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|e| e.to_string())
}

/// What a staging baseline is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// An empty database.
    Empty,
    /// A SQL script, run with psql.
    Script(PathBuf),
    /// A `pg_dump` custom-format file or directory archive, restored with pg_restore.
    Archive(PathBuf),
    /// An existing database, dumped read-only with pg_dump and restored.
    Url(source::Source),
}

impl Baseline {
    /// Decide how to load `path` from its contents.
    pub fn from_path(path: &Path) -> Result<Baseline> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            if path.join("toc.dat").is_file() {
                return Ok(Baseline::Archive(path.to_path_buf()));
            }
            return Err(Error::input(
                path,
                "a baseline folder must be a pg_dump directory archive (with toc.dat)",
            ));
        }
        // A script is read by psql and hashed for the cache: only a regular
        // file (not a pipe, not a link to /dev/zero).
        let mut magic = [0u8; 5];
        let n = {
            use std::io::Read;
            let (f, _) = crate::fsutil::open_regular(path)?;
            f.take(5).read(&mut magic).map_err(|e| Error::io(path, e))?
        };
        if n == 5 && &magic == b"PGDMP" {
            Ok(Baseline::Archive(path.to_path_buf()))
        } else {
            Ok(Baseline::Script(path.to_path_buf()))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Baseline::Empty => "empty database".into(),
            Baseline::Script(p) => format!("SQL script {}", p.display()),
            Baseline::Archive(p) => format!("pg_dump archive {}", p.display()),
            Baseline::Url(s) => format!("database {} (read-only pg_dump)", s.redacted()),
        }
    }
}

/// The server a run uses, as recorded in reports.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub version: String,
    pub version_num: i32,
    pub backend: String,
    /// Settings that affect timing, by name, with units.
    pub settings: std::collections::BTreeMap<String, String>,
}

/// Settings recorded in every report: the ones that change how long patches take.
pub const TIMING_SETTINGS: &[&str] = &[
    "fsync",
    "full_page_writes",
    "synchronous_commit",
    "wal_level",
    "wal_compression",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "max_parallel_maintenance_workers",
    "max_parallel_workers_per_gather",
    "effective_io_concurrency",
    "random_page_cost",
    "autovacuum",
    "jit",
    "data_checksums",
    "lc_collate",
    "statement_timeout",
    "lock_timeout",
];

/// Settings from the configuration file that only say how to reach or log
/// the server: not recorded.
const NOT_TIMING: [&str; 7] = [
    "log_line_prefix",
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "logging_collector",
    "log_min_messages",
    "log_timezone",
];

/// Read the server version and timing-relevant settings.
pub async fn server_info(client: &Client, backend: &str) -> Result<ServerInfo> {
    let row = client
        .query_one(
            "select current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await?;
    let names: Vec<String> = TIMING_SETTINGS.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(
            "select name, current_setting(name) from pg_settings \
             where name = any($1) or (source = 'configuration file' and name <> all($2)) order by name",
            &[&names, &NOT_TIMING.as_slice()],
        )
        .await?;
    Ok(ServerInfo {
        version: row.get(0),
        version_num: row.get(1),
        backend: backend.to_string(),
        settings: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
    })
}

/// Quote an identifier for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Load the baseline into the template database and settle it (VACUUM
/// ANALYZE, CHECKPOINT) so every copy starts from the same steady state.
pub async fn prepare_template(
    backend: &dyn Backend,
    baseline: &Baseline,
    cancel: &Cancel,
) -> Result<()> {
    let admin = connect_admin(backend).await?;
    let template = backend.template_db();
    // From template0, which takes no connections: a session idling on
    // template1 (someone's psql on a shared server) cannot stop the copy.
    create_database(&admin, template, "template0", "").await?;
    if *baseline != Baseline::Empty {
        // The loaders' output, and a source's dump, stay in a private directory.
        let work = workdir::WorkDir::create()?;
        load(backend, baseline, &work, cancel).await?;
    }
    let db = connect(backend, template).await?;
    db.simple_query("vacuum analyze").await?;
    drop(db);
    admin.simple_query("checkpoint").await?;
    Ok(())
}

/// Load the baseline into the template database with the client programs.
async fn load(
    backend: &dyn Backend,
    baseline: &Baseline,
    work: &workdir::WorkDir,
    cancel: &Cancel,
) -> Result<()> {
    let bin = backend.client_bin_dir();
    let template = backend.template_db();
    let restore = |archive: &Path| -> Result<_> {
        let (mut cmd, passfile) = backend.client(&bin.join("pg_restore"), template, work.path())?;
        cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"])
            .arg(archive);
        Ok((cmd, passfile))
    };
    let loader = |program: &Path, label: &Path, source| Loader {
        program: program.to_path_buf(),
        label: label.to_path_buf(),
        dir: work.path().to_path_buf(),
        source,
    };
    match baseline {
        Baseline::Empty => Ok(()),
        Baseline::Script(path) => {
            let psql = bin.join("psql");
            let (mut cmd, _passfile) = backend.client(&psql, template, work.path())?;
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-f"])
                .arg(path);
            run_client(cmd, &loader(&psql, path, None), cancel).await
        }
        Baseline::Archive(path) => {
            let pg_restore = bin.join("pg_restore");
            let (cmd, _passfile) = restore(path)?;
            run_client(cmd, &loader(&pg_restore, path, None), cancel).await
        }
        Baseline::Url(source) => {
            let label = PathBuf::from(source.redacted());
            let archive = work.path().join("source.dump");
            let (dump, passfile) = source.dump(bin, &archive, work.path())?;
            let pg_dump = bin.join("pg_dump");
            let dumped = run_client(dump, &loader(&pg_dump, &label, Some(source)), cancel).await;
            // The password is needed no longer than pg_dump runs.
            drop(passfile);
            dumped?;
            let pg_restore = bin.join("pg_restore");
            let (cmd, passfile) = restore(&archive)?;
            let restored =
                run_client(cmd, &loader(&pg_restore, &label, Some(source)), cancel).await;
            drop(passfile);
            let _ = std::fs::remove_file(&archive);
            restored
        }
    }
}

/// A client program loading the baseline, for messages and its output.
struct Loader<'a> {
    program: PathBuf,
    /// The baseline, as messages name it.
    label: PathBuf,
    /// The private directory its error output goes to.
    dir: PathBuf,
    /// The source whose secrets are scrubbed from that output.
    source: Option<&'a source::Source>,
}

/// Run a client program to load the baseline; an abort kills it.
async fn run_client(mut cmd: Command, loader: &Loader<'_>, cancel: &Cancel) -> Result<()> {
    let (program, baseline, source) = (&loader.program, &loader.label, loader.source);
    let started = std::time::Instant::now();
    let stderr_path = tempfile::NamedTempFile::new_in(&loader.dir)
        .map_err(|e| Error::Server(format!("cannot create a temporary file: {e}")))?;
    let stderr_file = stderr_path
        .reopen()
        .map_err(|e| Error::Server(format!("cannot open a temporary file: {e}")))?;
    // Its own process group: a terminal's Ctrl-C reaches downtime, which
    // stops the child itself.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // If downtime itself is killed, the loader goes with it.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr_file)
        .spawn()
        .map_err(|e| Error::Server(format!("cannot run {}: {e}", program.display())))?;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Server(format!("{}: {e}", program.display())))?
        {
            break status;
        }
        if let Some(a) = cancel.fired() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Aborted(a));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    if !status.success() {
        let stderr = std::fs::read_to_string(stderr_path.path()).unwrap_or_default();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        let tail = source.map_or(tail.clone(), |s| s.scrub(&tail));
        let script = program.file_name().is_some_and(|n| n == "psql");
        return Err(Error::Baseline {
            path: baseline.to_path_buf(),
            message: format!(
                "loading failed:\n{tail}{}",
                missing_role_hint(&tail, script)
            ),
        });
    }
    ui::note(&format!(
        "baseline {} loaded in {:.1} s",
        baseline.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// A baseline that names a role the staging server lacks (a plain
/// `pg_dump` owns and grants its objects to the source's roles): how to
/// load it anyway.
fn missing_role_hint(output: &str, script: bool) -> String {
    let Some(role) = output.split("role \"").nth(1).and_then(|r| {
        r.split_once("\" does not exist")
            .map(|(name, _)| name)
            .filter(|name| !name.contains('"'))
    }) else {
        return String::new();
    };
    let dump = if script {
        "a plain pg_dump names the source's roles in OWNER TO and GRANT: dump with \
         --no-owner --no-privileges, or in the custom format (-Fc), which downtime \
         restores without owners and grants; "
    } else {
        ""
    };
    format!(
        "\nhint: the staging server does not have the source's role \"{role}\": {dump}\
         a role the schema itself needs (a policy, default privileges) can be created \
         at the top of the baseline (CREATE ROLE {} NOLOGIN;)",
        ident(role)
    )
}
