//! The default backend: a private PostgreSQL cluster made with the server
//! binaries on this machine, in its own 0700 temporary directory, reachable
//! only through a Unix socket in that directory, and removed when the run ends.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, User};

mod leftovers;

use super::cache::{self, Restored};
pub use super::child::copy_tree;
use super::child::{kill_group, run_child};
use super::{binaries, cleanup, settings, Backend, ConnectionEnd};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ui;
pub use leftovers::{leftover_dirs, remove_leftover, LeftoverDir, DIR_PREFIX, OWNER_FILE};

/// How often a starting or stopping process is looked at.
pub(super) const POLL: Duration = Duration::from_millis(20);
/// How long the server gets to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an immediate shutdown may take before the server is killed.
pub(super) const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The superuser the cluster is created with.
pub const SUPERUSER: &str = "downtime";
const PORT: u16 = 5432;

/// Options for starting the embedded cluster.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Directory holding `initdb` and `postgres`; found automatically when unset.
    pub bin_dir: Option<PathBuf>,
    /// Extra `postgresql.conf` settings (the `--pg-conf` file).
    pub extra_conf: Option<PathBuf>,
    /// Start from a copy of this data directory (a cached baseline) instead
    /// of initdb.
    pub from_data: Option<PathBuf>,
}

/// A running private cluster. Dropping it stops the server and removes the
/// directory, also on error paths.
pub struct Embedded {
    /// `pg_stat_statements` is preloaded (the server-side clock).
    statements_extension: bool,
    bin_dir: PathBuf,
    /// Where `psql`, `pg_restore` and `pg_dump` are taken from.
    client_dir: PathBuf,
    dir: Option<tempfile::TempDir>,
    socket_dir: PathBuf,
    child: Option<Child>,
    user: Option<User>,
    /// The data directory is a copy of the cached baseline (asked for with
    /// `from_data`, and the copy was complete).
    from_cache: bool,
}

/// Find the directory with the server binaries (see [`binaries::find`]).
pub fn find_bin_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    binaries::find(explicit, &binaries::SERVER)
}

/// The client programs from the server's own directory when they are
/// there, else wherever [`binaries::find`] finds them.
fn find_client_dir(bin_dir: &Path) -> Result<PathBuf> {
    if binaries::CLIENTS.all_in(bin_dir) {
        Ok(bin_dir.to_path_buf())
    } else {
        binaries::find(None, &binaries::CLIENTS)
    }
}

/// The lines downtime adds to `postgresql.conf`: production-like durability,
/// the statement statistics when available, then the user's `--pg-conf`.
/// Connection settings go on the command line instead (see `spawn_server`),
/// so a data directory can be cached and started elsewhere.
pub fn staging_conf(opts: &EmbeddedOptions, statements_extension: bool) -> Result<String> {
    let user = settings::read_conf(opts.extra_conf.as_deref())?;
    let ours = settings::staging(statements_extension, &[]);
    let mut text = format!(
        "\n# downtime staging settings\n{}",
        settings::conf_lines(&ours)
    );
    // The file's settings, not its path: the text is part of the cache key.
    if opts.extra_conf.is_some() {
        text.push_str(&format!(
            "\n# from --pg-conf\n{}",
            settings::conf_lines(&user)
        ));
    }
    Ok(text)
}

/// What decides whether a cached data directory fits these options: the
/// server's version and the configuration downtime would write.
pub fn server_identity(opts: &EmbeddedOptions) -> Result<String> {
    let bin_dir = find_bin_dir(opts.bin_dir.as_deref())?;
    let version = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let conf = staging_conf(opts, has_library(&bin_dir, "pg_stat_statements"))?;
    Ok(format!(
        "{version}\n{conf}\nlocale=C encoding=UTF8 user={SUPERUSER}"
    ))
}

/// Whether the installation has a server library (`pg_config --pkglibdir`).
fn has_library(bin_dir: &Path, name: &str) -> bool {
    Command::new(bin_dir.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|dir| dir.join(format!("{name}.so")).is_file())
}

/// The unprivileged account to run the server as when we are root.
fn server_user() -> Result<Option<User>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(u)) => Ok(Some(u)),
        _ => Err(Error::Server(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` \
             user to run the server as; create one (`useradd --system postgres`) or run downtime \
             as an ordinary user"
                .into(),
        )),
    }
}

/// The last `n` lines of a server log.
fn log_tail(log_path: &Path, n: usize) -> String {
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Embedded {
    /// initdb (or copy the cached data directory) and start a private
    /// cluster; returns once it accepts connections. Nothing here blocks
    /// the runtime, and a fired `cancel` stops it promptly: initdb or the
    /// server is killed, the directory removed, and `Error::Aborted` returned.
    pub async fn start(opts: &EmbeddedOptions, cancel: &Cancel) -> Result<Embedded> {
        let bin_dir = find_bin_dir(opts.bin_dir.as_deref())?;
        let client_dir = find_client_dir(&bin_dir)?;
        let user = server_user()?;
        let probe = bin_dir.clone();
        let statements_extension =
            tokio::task::spawn_blocking(move || has_library(&probe, "pg_stat_statements"))
                .await
                .unwrap_or(false);
        // Read --pg-conf before anything is made: a bad line stops here.
        let conf = staging_conf(opts, statements_extension)?;
        let mut me = Embedded::create(bin_dir, client_dir, user, statements_extension)?;
        match me.boot(opts, &conf, cancel).await {
            Ok(()) => Ok(me),
            Err(e) => {
                me.discard().await;
                Err(e)
            }
        }
    }

    /// [`Embedded::start`] for callers without an async runtime (tests,
    /// benchmarks): runs on a runtime of its own and is never cancelled.
    pub fn start_blocking(opts: &EmbeddedOptions) -> Result<Embedded> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Server(format!("cannot start an async runtime: {e}")))?
            .block_on(Embedded::start(opts, &Cancel::never()))
    }

    /// The cluster's 0700 directory with its socket folder, handed to the
    /// server's user, registered for an emergency exit, and naming its owner.
    fn create(
        bin_dir: PathBuf,
        client_dir: PathBuf,
        user: Option<User>,
        statements_extension: bool,
    ) -> Result<Embedded> {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::Server(format!("cannot create a temporary directory: {e}")))?;
        cleanup::add_cluster(dir.path());
        let socket_dir = dir.path().join("socket");
        let me = Embedded {
            statements_extension,
            bin_dir,
            client_dir,
            dir: Some(dir),
            socket_dir,
            child: None,
            user,
            from_cache: false,
        };
        std::fs::create_dir(&me.socket_dir).map_err(|e| Error::io(&me.socket_dir, e))?;
        if let Some(u) = &me.user {
            ui::note("running as root: the staging server runs as user postgres (PostgreSQL refuses to run as root)");
            for p in [me.path(), me.socket_dir.as_path()] {
                nix::unistd::chown(p, Some(u.uid), Some(u.gid)).map_err(|e| {
                    Error::Server(format!("cannot hand {} to postgres: {e}", p.display()))
                })?;
            }
        }
        // Who owns this directory, for `downtime clean`.
        let owner = me.path().join(OWNER_FILE);
        std::fs::write(&owner, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(&owner, e))?;
        Ok(me)
    }

    /// Make the data directory (initdb, or a copy of a cached one) and start
    /// the server on it.
    async fn boot(&mut self, opts: &EmbeddedOptions, conf: &str, cancel: &Cancel) -> Result<()> {
        let data = self.path().join("data");
        self.from_cache = match &opts.from_data {
            Some(cached) => match cache::restore(cached, &data, cancel).await? {
                Restored::Copied => true,
                Restored::Unusable(why) => {
                    ui::note(&format!(
                        "the cached baseline could not be used ({why}); loading the baseline instead"
                    ));
                    false
                }
            },
            None => false,
        };
        if !self.from_cache {
            self.init(&data, conf, cancel).await?;
        }
        if let Some(a) = cancel.fired() {
            return Err(Error::Aborted(a));
        }
        self.spawn_server(cancel).await
    }

    /// initdb and the staging settings.
    async fn init(&self, data: &Path, conf: &str, cancel: &Cancel) -> Result<()> {
        let mut initdb = self.server_command("initdb");
        initdb.arg("-D").arg(data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
        // Killed with downtime, so a killed run leaves no initdb writing on.
        unsafe {
            initdb.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let (status, stderr) = run_child(initdb, "initdb", Some(self.path()), cancel).await?;
        if !status.success() {
            return Err(Error::Server(format!("initdb failed: {stderr}")));
        }
        let conf_path = data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .map_err(|e| Error::io(&conf_path, e))?;
        file.write_all(conf.as_bytes())
            .map_err(|e| Error::io(&conf_path, e))
    }

    /// Start `postgres` on the data directory and wait until it accepts connections.
    async fn spawn_server(&mut self, cancel: &Cancel) -> Result<()> {
        let data = self.path().join("data");
        let log_path = self.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        if let Some(u) = &self.user {
            let _ = nix::unistd::chown(&log_path, Some(u.uid), Some(u.gid));
        }
        let mut postgres = self.server_command("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                &format!("port={PORT}"),
                "-c",
            ])
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir.display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| Error::io(&log_path, e))?)
            .stderr(log)
            // Its own process group: a terminal's Ctrl-C reaches downtime,
            // which then shuts the server down in order.
            .process_group(0);
        // If downtime itself dies, the server gets an immediate-shutdown signal.
        unsafe {
            postgres.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(std::io::Error::from)
            });
        }
        let child = postgres
            .spawn()
            .map_err(|e| Error::Server(format!("cannot start postgres: {e}")))?;
        cleanup::set_cluster_process(self.path(), Some(child.id() as i32));
        self.child = Some(child);
        self.wait_ready(&log_path, cancel).await
    }

    /// Wait until the server accepts connections; it exiting meanwhile is
    /// an error with its last log lines.
    async fn wait_ready(&mut self, log_path: &Path, cancel: &Cancel) -> Result<()> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{PORT}"));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(a) = cancel.fired() {
                return Err(Error::Aborted(a));
            }
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                cleanup::set_cluster_process(self.path(), None);
                return Err(Error::Server(format!(
                    "postgres exited during startup ({status}); last log lines:\n{}",
                    log_tail(log_path, 6)
                )));
            }
            if socket.exists() && self.accepts_connections().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Server(format!(
                    "postgres did not accept connections within {} s",
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The server answers a query.
    async fn accepts_connections(&self) -> bool {
        crate::staging::answers(self.config("postgres"), crate::staging::plain_tls()).await
    }

    /// Stop the server in order (fast shutdown), polling without blocking
    /// the runtime; killed when it takes longer than [`STOP_TIMEOUT`].
    async fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = signal::kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = signal::kill(pid, Signal::SIGQUIT);
            tokio::time::sleep(Duration::from_millis(200)).await;
            kill_group(&mut child);
        }
        cleanup::set_cluster_process(self.path(), None);
    }

    /// [`Embedded::stop_server`] for `Drop`, which cannot wait asynchronously.
    fn stop_server_now(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = signal::kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = signal::kill(pid, Signal::SIGQUIT);
            std::thread::sleep(Duration::from_millis(200));
            kill_group(&mut child);
        }
        cleanup::set_cluster_process(self.path(), None);
    }

    /// Give up on a cluster that did not start (or was cancelled while
    /// starting): immediate shutdown of its server, then remove it all.
    async fn discard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGQUIT);
            let deadline = Instant::now() + QUIT_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
            }
            kill_group(&mut child);
        }
        self.remove_dir();
    }

    /// Copy the data directory (the server stopped meanwhile) to `dest`.
    async fn snapshot_data(&mut self, dest: &Path) -> Result<()> {
        self.stop_server().await;
        let never = Cancel::never();
        let copied = copy_tree(&self.path().join("data"), dest, &never).await;
        self.spawn_server(&never).await?;
        copied
    }

    /// The cluster started from a complete copy of the cached baseline (so
    /// the template is loaded already). False when no cache was asked for,
    /// or the cached entry vanished or was incomplete and initdb ran instead.
    pub fn started_from_cache(&self) -> bool {
        self.from_cache
    }

    fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/"))
    }

    /// A server program, run as the server's user when we are root.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some(u) = &self.user {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
            cmd.current_dir(self.path());
        }
        cmd
    }

    /// Remove the cluster directory (the server stopped already).
    fn remove_dir(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                ui::warn(&format!("could not remove {}: {e}", path.display()));
            }
            cleanup::forget_cluster(&path);
        }
    }
}

#[async_trait::async_trait(?Send)]
impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.socket_dir)
            .port(PORT)
            .user(SUPERUSER)
            .dbname(dbname)
            .application_name("downtime")
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        c
    }

    fn client_args(&self, dbname: &str) -> Vec<String> {
        vec![
            "-h".into(),
            self.socket_dir.display().to_string(),
            "-p".into(),
            PORT.to_string(),
            "-U".into(),
            SUPERUSER.into(),
            "-d".into(),
            dbname.into(),
        ]
    }

    fn client_bin_dir(&self) -> &Path {
        &self.client_dir
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.stop_server().await;
        self.remove_dir();
        Ok(())
    }

    fn session_end(&self, pid: i32) -> Option<ConnectionEnd> {
        let log = super::server_log::tail(&self.path().join("server.log"), 256 * 1024)?;
        super::server_log::session_end(&log, pid)
    }

    async fn stop_now(&self) -> Result<()> {
        // Immediate shutdown: the postmaster stops its backends with SIGQUIT
        // (and SIGKILL after a few seconds), whatever they are doing.
        if let Some(child) = &self.child {
            let _ = signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGQUIT);
        }
        Ok(())
    }

    fn has_statement_stats(&self) -> bool {
        self.statements_extension
    }

    async fn keep_baseline(&mut self, cache_root: &Path, key: &str) -> Result<String> {
        let cache = cache::Cache {
            root: cache_root.to_path_buf(),
        };
        let dir = cache.staging_dir(key)?;
        self.snapshot_data(&dir.join("data")).await?;
        cache.commit(key, &dir)?;
        Ok(cache.root.display().to_string())
    }

    async fn restart(&mut self) -> Result<()> {
        self.stop_server().await;
        self.spawn_server(&Cancel::never()).await
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.stop_server_now();
        self.remove_dir();
    }
}
