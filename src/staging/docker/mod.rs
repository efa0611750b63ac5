//! The Docker backend: one container per run, started with testcontainers
//! from a PostgreSQL image (`postgres:<version>` by default), published on
//! the loopback interface only, password-protected, labelled, and removed
//! when the run ends, fails or is interrupted. `downtime clean` removes the
//! containers of runs that were killed outright.
//!
//! The image must behave like the official `postgres` image: initialise an
//! empty data directory from `POSTGRES_USER`/`POSTGRES_PASSWORD`, listen on
//! all addresses, and pass `-c name=value` arguments on to the server.

mod container;
mod image;
mod removal;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use testcontainers::{ContainerAsync, GenericImage};

use super::binaries;
use super::settings;
use super::Backend;
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ui;
use container::{Launch, LaunchError};

pub use image::engine;
pub(crate) use removal::remove_at_once;
pub use removal::{leftovers, remove_leftover, Leftover};

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

/// Find the client programs that load the baseline (`psql`, `pg_restore`,
/// `pg_dump`) on this machine, in the order of [`binaries::find`]: `--pg-bin`,
/// PATH, then the newest `/usr/lib/postgresql/*/bin`.
pub fn find_client_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    binaries::find(explicit, &binaries::CLIENTS)
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
        let user = settings::read_conf(opts.extra_conf.as_deref())?;
        let docker = engine().await?;
        let reference = opts.image_ref();
        let image = image::ensure_image(&docker, &reference).await?;
        let password = container::random_password()?;
        ui::note(&format!(
            "starting a container from {reference} ({})",
            short_id(&image.id)
        ));
        let launch = Launch {
            image: &image,
            password: &password,
            client_dir: &client_dir,
        };
        let with_stats = settings::staging(true, &user);
        match Docker::launch(&launch, &with_stats, true, cancel).await {
            Ok(d) => Ok(d),
            // The server would not start with pg_stat_statements preloaded:
            // try without it, and time statements with the client's clock.
            Err(LaunchError::Exited(_)) => {
                let without = settings::staging(false, &user);
                let d = Docker::launch(&launch, &without, false, cancel)
                    .await
                    .map_err(LaunchError::into_error)?;
                ui::note("the image has no pg_stat_statements: statements are timed by the client");
                Ok(d)
            }
            Err(e) => Err(e.into_error()),
        }
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
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
            .application_name("downtime")
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
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

    async fn stop_now(&self) -> Result<()> {
        // No grace: the engine kills the container's processes at once.
        self.container()?
            .stop_with_timeout(Some(0))
            .await
            .map_err(|e| Error::Docker(format!("cannot stop container: {e}")))
    }

    fn has_statement_stats(&self) -> bool {
        self.statements_extension
    }

    async fn keep_baseline(&mut self, _cache_root: &Path, _key: &str) -> Result<String> {
        Err(Error::Docker(
            "the baseline cache is kept for the local and server backends only".into(),
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
        self.wait_ready(&Cancel::never())
            .await
            .map_err(LaunchError::into_error)
    }
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
