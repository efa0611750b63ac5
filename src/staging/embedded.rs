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

use super::Backend;
use crate::error::{Error, Result};
use crate::ui;

/// Servers and directories of this process, for [`emergency_cleanup`].
static LIVE: std::sync::Mutex<Vec<(i32, PathBuf)>> = std::sync::Mutex::new(Vec::new());

fn register(pid: Option<i32>, dir: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.push((pid.unwrap_or(0), dir.to_path_buf()));
    }
}

fn unregister(dir: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|(_, d)| d != dir);
    }
}

/// Stop every server this process started, at once, and remove their
/// directories: for a second Ctrl-C, when an orderly stop takes too long.
pub fn emergency_cleanup() {
    let live = match LIVE.lock() {
        Ok(l) => l.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for (pid, _) in &live {
        if *pid > 0 {
            // Immediate shutdown: the postmaster stops its children itself.
            let _ = signal::kill(Pid::from_raw(*pid), Signal::SIGQUIT);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    for (pid, dir) in &live {
        while *pid > 0
            && Instant::now() < deadline
            && signal::kill(Pid::from_raw(*pid), None).is_ok()
        {
            // Reap it if it is our child; otherwise just wait for it to go.
            let _ = nix::sys::wait::waitpid(
                Pid::from_raw(*pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if *pid > 0 {
            let _ = signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The file in a cluster's directory naming the downtime process that owns it.
pub const OWNER_FILE: &str = "owner.pid";
/// The prefix of the clusters' temporary directories.
pub const DIR_PREFIX: &str = "downtime-";

/// A cluster directory left in the temporary directory, as `downtime clean` sees it.
#[derive(Debug, Clone)]
pub struct LeftoverDir {
    pub path: PathBuf,
    /// The downtime process that made it, or its server, is still running.
    pub in_use: bool,
}

/// The process named on the first line of `pid_file`, if it still runs.
fn running_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        .filter(|pid| super::process_alive(*pid))
}

/// Remove a leftover cluster directory, stopping its server first if one
/// still runs there (immediate shutdown).
pub fn remove_leftover(dir: &LeftoverDir) -> Result<()> {
    if let Some(pid) = running_pid(&dir.path.join("data").join("postmaster.pid")) {
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while super::process_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::fs::remove_dir_all(&dir.path).map_err(|e| Error::io(&dir.path, e))
}

/// Cluster directories of earlier runs under `tmp` (a run killed outright
/// cannot remove its own): `downtime-*` folders with a `socket` folder.
pub fn leftover_dirs(tmp: &Path) -> Vec<LeftoverDir> {
    let mut found: Vec<LeftoverDir> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(DIR_PREFIX))
                && e.path().join("socket").is_dir()
        })
        .map(|e| {
            let path = e.path();
            let in_use = running_pid(&path.join(OWNER_FILE)).is_some()
                || running_pid(&path.join("data").join("postmaster.pid")).is_some();
            LeftoverDir { path, in_use }
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The superuser the cluster is created with.
pub const SUPERUSER: &str = "downtime";
const PORT: u16 = 5432;

/// Settings that make the staging server behave like production for timing:
/// durable commits, full page writes. Written before the user's `--pg-conf`,
/// which may override them.
const BASE_CONF: &str = "\
fsync = on
full_page_writes = on
synchronous_commit = on
logging_collector = off
log_min_messages = warning
";

/// Options for starting the embedded cluster.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Directory holding `initdb` and `postgres`; found automatically when unset.
    pub bin_dir: Option<PathBuf>,
    /// Extra `postgresql.conf` lines (the `--pg-conf` file).
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
    dir: Option<tempfile::TempDir>,
    socket_dir: PathBuf,
    child: Option<Child>,
    user: Option<User>,
}

/// Find the directory with the server binaries.
pub fn find_bin_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let has_server = |d: &Path| d.join("postgres").is_file() && d.join("initdb").is_file();
    if let Some(d) = explicit {
        if has_server(d) {
            return Ok(d.to_path_buf());
        }
        return Err(Error::Usage(format!(
            "--pg-bin {}: no `postgres` and `initdb` there",
            d.display()
        )));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_server(&d) {
                // Follow links so psql/pg_restore are taken from the same installation.
                let real = std::fs::canonicalize(d.join("postgres"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|p| has_server(p))
                    .unwrap_or(d);
                return Ok(real);
            }
        }
    }
    super::newest_installed(has_server).ok_or_else(|| {
        Error::Server(
            "no PostgreSQL server binaries found (looked for `postgres` and `initdb` on PATH and \
             under /usr/lib/postgresql/*/bin). Install them (Debian/Ubuntu: `apt-get install postgresql`), \
             point --pg-bin at their directory, or choose another --backend"
                .into(),
        )
    })
}

/// The lines downtime adds to `postgresql.conf`: production-like durability,
/// the statement statistics when available, then the user's `--pg-conf`.
/// Connection settings go on the command line instead (see `spawn_server`),
/// so a data directory can be cached and started elsewhere.
pub fn staging_conf(opts: &EmbeddedOptions, statements_extension: bool) -> Result<String> {
    let mut extra = format!("\n# downtime staging settings\n{BASE_CONF}");
    if statements_extension {
        // The server's own per-statement clock, as production often has it.
        extra.push_str(
            "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_utility = on\n",
        );
    }
    if let Some(p) = &opts.extra_conf {
        let user_conf = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        extra.push_str(&format!("\n# from --pg-conf\n{user_conf}\n"));
    }
    Ok(extra)
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

/// Copy a directory tree, keeping owners and modes, copy-on-write where the
/// filesystem can (`cp -a --reflink=auto`).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| Error::Server(format!("cannot run cp: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Server(format!(
            "cannot copy {} to {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
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

impl Embedded {
    /// initdb and start a private cluster; returns once it accepts connections.
    pub fn start(opts: &EmbeddedOptions) -> Result<Embedded> {
        let bin_dir = find_bin_dir(opts.bin_dir.as_deref())?;
        let user = server_user()?;
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::Server(format!("cannot create a temporary directory: {e}")))?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir(&socket_dir).map_err(|e| Error::io(&socket_dir, e))?;
        if let Some(u) = &user {
            ui::note("running as root: the staging server runs as user postgres (PostgreSQL refuses to run as root)");
            for p in [dir.path(), socket_dir.as_path()] {
                nix::unistd::chown(p, Some(u.uid), Some(u.gid)).map_err(|e| {
                    Error::Server(format!("cannot hand {} to postgres: {e}", p.display()))
                })?;
            }
        }
        register(None, dir.path());
        // Who owns this directory, for `downtime clean`.
        let owner = dir.path().join(OWNER_FILE);
        std::fs::write(&owner, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(&owner, e))?;
        let statements_extension = has_library(&bin_dir, "pg_stat_statements");
        let mut me = Embedded {
            statements_extension,
            bin_dir,
            dir: Some(dir),
            socket_dir,
            child: None,
            user: user.clone(),
        };

        match &opts.from_data {
            Some(cached) => copy_tree(cached, &data)?,
            None => me.init(&data, opts)?,
        }
        me.spawn_server()?;
        Ok(me)
    }

    /// initdb and the staging settings.
    fn init(&self, data: &Path, opts: &EmbeddedOptions) -> Result<()> {
        let user = self.user.clone();
        let mut initdb = self.server_command("initdb", user.as_ref());
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
        let out = initdb
            .output()
            .map_err(|e| Error::Server(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(Error::Server(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }

        let conf_path = data.join("postgresql.conf");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .map_err(|e| Error::io(&conf_path, e))?;
        let extra = staging_conf(opts, self.statements_extension)?;
        conf.write_all(extra.as_bytes())
            .map_err(|e| Error::io(&conf_path, e))?;
        drop(conf);

        Ok(())
    }

    /// Start `postgres` on the data directory and wait until it accepts connections.
    fn spawn_server(&mut self) -> Result<()> {
        let user = self.user.clone();
        let data = self.path().join("data");
        let log_path = self.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        if let Some(u) = &user {
            let _ = nix::unistd::chown(&log_path, Some(u.uid), Some(u.gid));
        }
        let mut postgres = self.server_command("postgres", user.as_ref());
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
        if let Ok(mut live) = LIVE.lock() {
            let dir = self.path().to_path_buf();
            if let Some(entry) = live.iter_mut().find(|(_, d)| *d == dir) {
                entry.0 = child.id() as i32;
            }
        }
        self.child = Some(child);
        self.wait_ready(&log_path)
    }

    /// Stop the server (fast shutdown) and wait for it to exit.
    fn stop_server(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = signal::kill(pid, Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = signal::kill(pid, Signal::SIGQUIT);
                        std::thread::sleep(Duration::from_millis(200));
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/"))
    }

    fn server_command(&self, program: &str, user: Option<&User>) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some(u) = user {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
            cmd.current_dir(self.path());
        }
        cmd
    }

    fn wait_ready(&mut self, log_path: &Path) -> Result<()> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{PORT}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = std::fs::read_to_string(log_path).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(6).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(Error::Server(format!(
                        "postgres exited during startup ({status}); last log lines:\n{}",
                        tail.join("\n")
                    )));
                }
            }
            if socket.exists() {
                let ready = Command::new(self.bin_dir.join("pg_isready"))
                    .args(["-q", "-h"])
                    .arg(&self.socket_dir)
                    .args(["-p", &PORT.to_string(), "-U", SUPERUSER])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ready {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Server(
                    "postgres did not accept connections within 60 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stop(&mut self) {
        self.stop_server();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                ui::warn(&format!("could not remove {}: {e}", path.display()));
            }
            unregister(&path);
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
            .application_name("downtime");
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
        &self.bin_dir
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.stop();
        Ok(())
    }

    fn has_statement_stats(&self) -> bool {
        self.statements_extension
    }

    async fn snapshot_data(&mut self, dest: &Path) -> Result<()> {
        self.stop_server();
        let copied = copy_tree(&self.path().join("data"), dest);
        self.spawn_server()?;
        copied
    }

    async fn restart(&mut self) -> Result<()> {
        self.stop_server();
        self.spawn_server()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.stop();
    }
}
