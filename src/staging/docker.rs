//! The Docker backend: one container per run, started with testcontainers
//! from a PostgreSQL image (`postgres:<version>` by default), published on
//! the loopback interface only, password-protected, labelled, and removed
//! when the run ends, fails or is interrupted. `downtime clean` removes the
//! containers of runs that were killed outright.
//!
//! The image must behave like the official `postgres` image: initialise an
//! empty data directory from `POSTGRES_USER`/`POSTGRES_PASSWORD`, listen on
//! all addresses, and pass `-c name=value` arguments on to the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::Backend;
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ui;

/// The superuser the container's cluster is created with.
pub const SUPERUSER: &str = "downtime";
/// The label every container downtime starts carries: the run's id.
pub const LABEL_RUN: &str = "io.downtime.run";
/// The process id of the run, and the host it ran on (for `downtime clean`).
pub const LABEL_PID: &str = "io.downtime.pid";
pub const LABEL_HOST: &str = "io.downtime.host";
/// The label testcontainers puts on the containers it manages.
pub const LABEL_MANAGED_BY: &str = "org.testcontainers.managed-by";
/// The repository of the default image (`postgres:<version>`).
pub const DEFAULT_REPOSITORY: &str = "postgres";
/// The major version used when neither `--pg-version` nor `--image` is
/// given and no local PostgreSQL client tells otherwise.
pub const FALLBACK_PG_VERSION: &str = "17";
const PG_PORT: u16 = 5432;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings passed to every container's server: production-like durability.
const BASE_SETTINGS: &[&str] = &["fsync=on", "full_page_writes=on", "synchronous_commit=on"];
const STATEMENT_STATS: &[&str] = &[
    "shared_preload_libraries=pg_stat_statements",
    "pg_stat_statements.track_utility=on",
];

/// Containers of this process, for [`emergency_cleanup`].
static LIVE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn register(id: &str) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(id.to_string());
    }
}

fn unregister(id: &str) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|l| l != id);
    }
}

/// Options for the Docker backend.
#[derive(Debug, Clone, Default)]
pub struct DockerOptions {
    /// `--image REPO:TAG`; overrides `pg_version`.
    pub image: Option<String>,
    /// `--pg-version N`: the image `postgres:N`.
    pub pg_version: Option<String>,
    /// `postgresql.conf` lines (`--pg-conf`), passed as `-c name=value`.
    pub extra_conf: Option<PathBuf>,
    /// Directory with `psql`/`pg_restore` on this machine (`--pg-bin`).
    pub client_bin_dir: Option<PathBuf>,
}

impl DockerOptions {
    /// The image reference to run.
    pub fn image_ref(&self) -> String {
        if let Some(image) = &self.image {
            return image.clone();
        }
        let version = self
            .pg_version
            .clone()
            .or_else(local_client_major)
            .unwrap_or_else(|| FALLBACK_PG_VERSION.to_string());
        format!("{DEFAULT_REPOSITORY}:{version}")
    }
}

/// The image a run used, as recorded in reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// As asked for (`postgres:16`).
    pub reference: String,
    /// The local image id (`sha256:...`).
    pub id: String,
    /// Registry digests, when the image came from a registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
}

/// Split `REPO[:TAG]` (a registry port is not a tag) into name and tag.
pub fn split_reference(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        // testcontainers joins name and tag with ':'; a digest reference
        // `repo@sha256:...` survives the round trip split at its last ':'.
        if let Some((algo, hex)) = digest.rsplit_once(':') {
            return (format!("{name}@{algo}"), hex.to_string());
        }
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// The major version of the PostgreSQL client tools on this machine.
fn local_client_major() -> Option<String> {
    let dir = find_client_dir(None).ok()?;
    let out = std::process::Command::new(dir.join("psql"))
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "psql (PostgreSQL) 15.18 (Debian ...)"
    let version = text.split_whitespace().nth(2)?;
    let major = version.split('.').next()?;
    major.parse::<u32>().ok().map(|m| m.to_string())
}

/// Find `psql` and `pg_restore` on this machine: `--pg-bin`, PATH, then the
/// newest `/usr/lib/postgresql/*/bin`.
pub fn find_client_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let has_clients = |d: &Path| d.join("psql").is_file() && d.join("pg_restore").is_file();
    if let Some(d) = explicit {
        if has_clients(d) {
            return Ok(d.to_path_buf());
        }
        return Err(Error::Usage(format!(
            "--pg-bin {}: no `psql` and `pg_restore` there",
            d.display()
        )));
    }
    if let Some(d) = super::newest_installed(has_clients) {
        return Ok(d);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_clients(&d) {
                return Ok(d);
            }
        }
    }
    Err(Error::Docker(
        "the Docker backend loads the baseline with this machine's `psql` and `pg_restore`, \
         and neither was found; install the PostgreSQL client (Debian/Ubuntu: `apt-get install \
         postgresql-client`) or point --pg-bin at it"
            .into(),
    ))
}

/// Turn `postgresql.conf` lines into `name=value` server arguments. Comments
/// and blank lines are skipped; quotes around values are removed.
pub fn conf_arguments(text: &str, path: &Path) -> Result<Vec<String>> {
    let mut args = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => match line.split_once(char::is_whitespace) {
                Some((n, v)) => (n.trim(), v.trim()),
                None => ("", ""),
            },
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid_name || value.is_empty() {
            return Err(Error::InputAt {
                path: path.to_path_buf(),
                line: n + 1,
                message: format!("expected `name = value`, found `{}`", raw.trim()),
            });
        }
        if matches!(name, "include" | "include_if_exists" | "include_dir") {
            return Err(Error::InputAt {
                path: path.to_path_buf(),
                line: n + 1,
                message: format!(
                    "`{name}` cannot be passed to a container; put the settings in this file"
                ),
            });
        }
        let value = if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
            value[1..value.len() - 1].replace("''", "'")
        } else {
            value.to_string()
        };
        args.push(format!("{name}={value}"));
    }
    Ok(args)
}

/// Drop a `#` comment that is not inside single quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Where the Docker engine is expected, for messages.
fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// A connected Docker client, or a clear error saying how to get one.
pub async fn engine() -> Result<bollard::Docker> {
    let fail = |e: String| {
        Error::Docker(format!(
            "no Docker engine answers at {} ({e}). Start the Docker daemon, set DOCKER_HOST to \
             one that runs, or use --backend local",
            engine_address()
        ))
    };
    let docker = bollard::Docker::connect_with_defaults().map_err(|e| fail(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail("no answer within 10 s".into())),
    }
}

/// Make sure the image is present locally: inspect it, else pull it.
async fn ensure_image(docker: &bollard::Docker, reference: &str) -> Result<ImageInfo> {
    if let Ok(found) = docker.inspect_image(reference).await {
        return Ok(image_info(reference, found));
    }
    ui::note(&format!(
        "image {reference} is not present locally: pulling it"
    ));
    let (name, tag) = split_reference(reference);
    let options = CreateImageOptionsBuilder::new()
        .from_image(&name)
        .tag(&tag)
        .build();
    let mut pull = docker.create_image(Some(options), None, None);
    let mut failure = None;
    while let Some(step) = pull.next().await {
        if let Err(e) = step {
            failure = Some(e.to_string());
            break;
        }
    }
    if let Some(e) = failure {
        return Err(Error::Docker(format!(
            "image {reference} is not present locally and cannot be pulled ({e}). Build or load \
             it first: `docker pull {reference}` where a registry is reachable, `docker load -i \
             FILE` from a saved image, or `tests/docker/build-image.sh {reference}` to build a \
             PostgreSQL image from Debian packages; or choose another with --image"
        )));
    }
    let found = docker.inspect_image(reference).await.map_err(|e| {
        Error::Docker(format!(
            "image {reference} was pulled but cannot be inspected: {e}"
        ))
    })?;
    Ok(image_info(reference, found))
}

fn image_info(reference: &str, found: bollard::models::ImageInspect) -> ImageInfo {
    ImageInfo {
        reference: reference.to_string(),
        id: found.id.unwrap_or_default(),
        digests: found.repo_digests.unwrap_or_default(),
    }
}

/// 16 random bytes, hex: the container's superuser password.
fn random_password() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Docker(format!("cannot read /dev/urandom: {e}")))?;
    Ok(hex::encode(bytes))
}

/// This run's id: process id and start time, unique on a host.
fn run_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos}", std::process::id())
    })
    .clone()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// A PostgreSQL server in a container. Dropping it removes the container.
pub struct Docker {
    container: Option<ContainerAsync<GenericImage>>,
    id: String,
    host: String,
    port: u16,
    password: String,
    client_dir: PathBuf,
    image: ImageInfo,
    statements_extension: bool,
}

impl Docker {
    /// Start a container and wait until its server accepts connections.
    pub async fn start(opts: &DockerOptions, cancel: &Cancel) -> Result<Docker> {
        let client_dir = find_client_dir(opts.client_bin_dir.as_deref())?;
        let mut settings: Vec<String> = BASE_SETTINGS.iter().map(|s| s.to_string()).collect();
        if let Some(p) = &opts.extra_conf {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            settings.extend(conf_arguments(&text, p)?);
        }
        let docker = engine().await?;
        let reference = opts.image_ref();
        let image = ensure_image(&docker, &reference).await?;
        let password = random_password()?;
        ui::note(&format!(
            "starting a container from {reference} ({})",
            short_id(&image.id)
        ));
        let mut with_stats = settings.clone();
        with_stats.extend(STATEMENT_STATS.iter().map(|s| s.to_string()));
        match Docker::launch(&image, &password, &with_stats, &client_dir, true, cancel).await {
            Ok(d) => Ok(d),
            // An image without pg_stat_statements: go on with the client's clock.
            Err(Error::Docker(m)) if m.contains("pg_stat_statements") => {
                ui::note("the image has no pg_stat_statements: statements are timed by the client");
                Docker::launch(&image, &password, &settings, &client_dir, false, cancel).await
            }
            Err(e) => Err(e),
        }
    }

    async fn launch(
        image: &ImageInfo,
        password: &str,
        settings: &[String],
        client_dir: &Path,
        statements_extension: bool,
        cancel: &Cancel,
    ) -> Result<Docker> {
        let (name, tag) = split_reference(&image.reference);
        let mut cmd = vec!["postgres".to_string()];
        for s in settings {
            cmd.push("-c".into());
            cmd.push(s.clone());
        }
        let local_engine =
            !engine_address().starts_with("tcp://") && !engine_address().starts_with("http");
        // Published on the loopback interface only when the engine is local.
        let bind_ip = if local_engine { "127.0.0.1" } else { "0.0.0.0" };
        let port_key = format!("{PG_PORT}/tcp");
        let request = GenericImage::new(name, tag)
            .with_exposed_port(PG_PORT.tcp())
            .with_env_var("POSTGRES_USER", SUPERUSER)
            .with_env_var("POSTGRES_PASSWORD", password)
            .with_env_var("POSTGRES_DB", "postgres")
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "scram-sha-256")
            .with_env_var("POSTGRES_INITDB_ARGS", "--encoding=UTF8 --locale=C")
            .with_label(LABEL_MANAGED_BY, "testcontainers")
            .with_label(LABEL_RUN, run_id())
            .with_label(LABEL_PID, std::process::id().to_string())
            .with_label(LABEL_HOST, hostname())
            .with_cmd(cmd)
            .with_startup_timeout(STARTUP_TIMEOUT)
            .with_host_config_modifier(move |host| {
                host.publish_all_ports = Some(false);
                host.port_bindings = Some(HashMap::from([(
                    port_key.clone(),
                    Some(vec![bollard::models::PortBinding {
                        host_ip: Some(bind_ip.to_string()),
                        host_port: Some(String::new()),
                    }]),
                )]));
            });
        let container = tokio::select! {
            c = request.start() => c.map_err(|e| Error::Docker(format!(
                "cannot start a container from {}: {e}", image.reference
            )))?,
            a = cancel.wait() => return Err(Error::Aborted(a)),
        };
        let id = container.id().to_string();
        register(&id);
        let host = if local_engine {
            "127.0.0.1".to_string()
        } else {
            container
                .get_host()
                .await
                .map(|h| h.to_string())
                .unwrap_or_else(|_| "localhost".into())
        };
        let mut me = Docker {
            container: Some(container),
            id,
            host,
            port: 0,
            password: password.to_string(),
            client_dir: client_dir.to_path_buf(),
            image: image.clone(),
            statements_extension,
        };
        me.wait_ready(cancel).await?;
        Ok(me)
    }

    fn container(&self) -> Result<&ContainerAsync<GenericImage>> {
        self.container
            .as_ref()
            .ok_or_else(|| Error::Docker("the container was already removed".into()))
    }

    /// Wait until the server in the container accepts connections on its
    /// published port; a container that exits meanwhile is an error with its
    /// last log lines.
    async fn wait_ready(&mut self, cancel: &Cancel) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(a) = cancel.fired() {
                return Err(Error::Aborted(a));
            }
            let container = self.container()?;
            let running = container.is_running().await.unwrap_or(false);
            if !running {
                let code = container.exit_code().await.ok().flatten();
                let tail = self.log_tail(12).await;
                return Err(Error::Docker(format!(
                    "container {} of {} exited during startup{}; its last log lines:\n{tail}",
                    short_id(&self.id),
                    self.image.reference,
                    code.map(|c| format!(" (exit code {c})"))
                        .unwrap_or_default(),
                )));
            }
            if let Ok(port) = container.get_host_port_ipv4(PG_PORT).await {
                self.port = port;
                let mut config = self.config("postgres");
                config.connect_timeout(Duration::from_secs(2));
                if let Ok((client, connection)) = config.connect(tokio_postgres::NoTls).await {
                    let task = tokio::spawn(connection);
                    let ok = client.simple_query("select 1").await.is_ok();
                    drop(client);
                    let _ = task.await;
                    if ok {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                let tail = self.log_tail(12).await;
                return Err(Error::Docker(format!(
                    "the server in container {} did not accept connections within {} s; its \
                     last log lines:\n{tail}",
                    short_id(&self.id),
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The container's last `n` log lines (stdout and stderr).
    async fn log_tail(&self, n: usize) -> String {
        let Ok(container) = self.container() else {
            return String::new();
        };
        let mut text =
            String::from_utf8_lossy(&container.stdout_to_vec().await.unwrap_or_default())
                .into_owned();
        text.push_str(&String::from_utf8_lossy(
            &container.stderr_to_vec().await.unwrap_or_default(),
        ));
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    async fn remove(&mut self) -> Result<()> {
        if let Some(container) = self.container.take() {
            let id = container.id().to_string();
            let removed = container.rm().await;
            unregister(&id);
            removed.map_err(|e| {
                Error::Docker(format!("cannot remove container {}: {e}", short_id(&id)))
            })?;
        }
        Ok(())
    }
}

/// The first 12 hex digits of an id, as `docker ps` shows it.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[async_trait::async_trait(?Send)]
impl Backend for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(SUPERUSER)
            .password(&self.password)
            .dbname(dbname)
            .application_name("downtime");
        c
    }

    fn client_args(&self, dbname: &str) -> Vec<String> {
        vec![
            "-h".into(),
            self.host.clone(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            SUPERUSER.into(),
            "-d".into(),
            dbname.into(),
        ]
    }

    fn client_env(&self) -> Vec<(String, String)> {
        vec![("PGPASSWORD".into(), self.password.clone())]
    }

    fn client_bin_dir(&self) -> &Path {
        &self.client_dir
    }

    fn image(&self) -> Option<ImageInfo> {
        Some(self.image.clone())
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.remove().await
    }

    fn has_statement_stats(&self) -> bool {
        self.statements_extension
    }

    async fn snapshot_data(&mut self, _dest: &Path) -> Result<()> {
        Err(Error::Docker(
            "the baseline cache is kept for the local backend only".into(),
        ))
    }

    async fn restart(&mut self) -> Result<()> {
        let container = self.container()?;
        // The image's stop signal (SIGINT in the official image): a fast shutdown.
        container
            .stop_with_timeout(Some(30))
            .await
            .map_err(|e| Error::Docker(format!("cannot stop container: {e}")))?;
        container
            .start()
            .await
            .map_err(|e| Error::Docker(format!("cannot start container again: {e}")))?;
        // The published port may change when a container starts again.
        self.wait_ready(&Cancel::never()).await
    }
}

/// Remove every container this process started, at once: for a second
/// Ctrl-C. Runs its own small runtime on a thread of its own.
pub fn emergency_cleanup() {
    let live = match LIVE.lock() {
        Ok(l) => l.clone(),
        Err(p) => p.into_inner().clone(),
    };
    if live.is_empty() {
        return;
    }
    let worker = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(docker) = bollard::Docker::connect_with_defaults() else {
                return;
            };
            for id in &live {
                let _ = tokio::time::timeout(Duration::from_secs(10), remove(&docker, id)).await;
            }
        });
    });
    let _ = worker.join();
}

async fn remove(docker: &bollard::Docker, id: &str) -> std::result::Result<(), String> {
    docker
        .remove_container(
            id,
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
        .map_err(|e| e.to_string())
}

/// A container started by downtime, as `downtime clean` sees it.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub id: String,
    pub image: String,
    pub status: String,
    pub pid: Option<i32>,
    pub host: String,
    /// The run that started it is still going (same host, process alive).
    pub in_use: bool,
}

/// The containers downtime started that still exist.
pub async fn leftovers(docker: &bollard::Docker) -> Result<Vec<Leftover>> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&HashMap::from([("label", vec![LABEL_RUN])]))
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| Error::Docker(format!("cannot list containers: {e}")))?;
    let me = hostname();
    Ok(list
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let pid = labels.get(LABEL_PID).and_then(|p| p.parse::<i32>().ok());
            let host = labels.get(LABEL_HOST).cloned().unwrap_or_default();
            let in_use = host == me && pid.is_some_and(super::process_alive);
            Leftover {
                id: c.id.unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                pid,
                host,
                in_use,
            }
        })
        .collect())
}

/// Remove one leftover container (and its anonymous volumes).
pub async fn remove_leftover(docker: &bollard::Docker, id: &str) -> Result<()> {
    remove(docker, id)
        .await
        .map_err(|e| Error::Docker(format!("cannot remove container {}: {e}", short_id(id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag() {
        let s = |r: &str| split_reference(r);
        assert_eq!(s("postgres:16"), ("postgres".into(), "16".into()));
        assert_eq!(s("postgres"), ("postgres".into(), "latest".into()));
        assert_eq!(
            s("registry.local:5000/pg/postgres:15-alpine"),
            ("registry.local:5000/pg/postgres".into(), "15-alpine".into())
        );
        assert_eq!(
            s("registry.local:5000/postgres"),
            ("registry.local:5000/postgres".into(), "latest".into())
        );
        let (name, tag) = s("postgres@sha256:abcd");
        assert_eq!(format!("{name}:{tag}"), "postgres@sha256:abcd");
    }

    #[test]
    fn conf_lines_become_arguments() {
        let p = Path::new("pg.conf");
        let args = conf_arguments(
            "# comment\n\nshared_buffers = 256MB  # note\nwork_mem=8MB\n\
             log_line_prefix = '%m # [%p] '\nsearch_path 'a, b'\n",
            p,
        )
        .unwrap();
        assert_eq!(
            args,
            [
                "shared_buffers=256MB",
                "work_mem=8MB",
                "log_line_prefix=%m # [%p] ",
                "search_path=a, b"
            ]
        );
        let err = conf_arguments("work_mem = 8MB\nnonsense\n", p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pg.conf:2: expected `name = value`, found `nonsense`"
        );
        let err = conf_arguments("include 'other.conf'\n", p).unwrap_err();
        assert!(err.to_string().starts_with("pg.conf:1: `include`"), "{err}");
    }

    #[test]
    fn the_image_defaults_to_the_official_one() {
        let o = DockerOptions {
            pg_version: Some("16".into()),
            ..Default::default()
        };
        assert_eq!(o.image_ref(), "postgres:16");
        let o = DockerOptions {
            pg_version: Some("16".into()),
            image: Some("mirror.local/postgres:16.4".into()),
            ..Default::default()
        };
        assert_eq!(o.image_ref(), "mirror.local/postgres:16.4");
        assert!(DockerOptions::default()
            .image_ref()
            .starts_with("postgres:"));
    }
}
