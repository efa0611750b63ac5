//! Starting the container, waiting for its server, and removing it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

use super::image::engine_is_local;
use super::{
    hostname, short_id, split_reference, Docker, ImageInfo, LABEL_HOST, LABEL_MANAGED_BY,
    LABEL_PID, LABEL_RUN, PG_PORT, STARTUP_TIMEOUT, SUPERUSER,
};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::staging::settings::{self, Setting};
use crate::staging::{cleanup, Backend};

/// Why a container did not come up.
pub(super) enum LaunchError {
    /// It started, and its server exited while starting up (a bad setting,
    /// a library the image lacks).
    Exited(Error),
    /// Anything else: the engine, a signal, a timeout.
    Other(Error),
}

impl LaunchError {
    pub(super) fn into_error(self) -> Error {
        match self {
            LaunchError::Exited(e) | LaunchError::Other(e) => e,
        }
    }
}

impl From<Error> for LaunchError {
    fn from(e: Error) -> Self {
        LaunchError::Other(e)
    }
}

/// What every container of a run is started with.
pub(super) struct Launch<'a> {
    pub image: &'a ImageInfo,
    pub password: &'a str,
    /// Where the client programs that load the baseline are.
    pub client_dir: &'a Path,
}

/// The container request: the image's server with `settings`, labelled,
/// published on the loopback interface only when the engine is local.
fn request(
    image: &ImageInfo,
    password: &str,
    settings: &[Setting],
) -> ContainerRequest<GenericImage> {
    let (name, tag) = split_reference(&image.reference);
    let mut cmd = vec!["postgres".to_string()];
    cmd.extend(settings::server_arguments(settings));
    let bind_ip = if engine_is_local() {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    };
    let port_key = format!("{PG_PORT}/tcp");
    GenericImage::new(name, tag)
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
        })
}

impl Docker {
    /// Start a container and wait until its server accepts connections. A
    /// container that does not come up is removed before this returns.
    pub(super) async fn launch(
        launch: &Launch<'_>,
        settings: &[Setting],
        statements_extension: bool,
        cancel: &Cancel,
    ) -> std::result::Result<Docker, LaunchError> {
        let image = launch.image;
        let request = request(image, launch.password, settings);
        let container = tokio::select! {
            c = request.start() => c.map_err(|e| Error::Docker(format!(
                "cannot start a container from {}: {e}", image.reference
            )))?,
            a = cancel.wait() => return Err(Error::Aborted(a).into()),
        };
        let id = container.id().to_string();
        cleanup::add_container(&id);
        let host = if engine_is_local() {
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
            password: launch.password.to_string(),
            client_dir: launch.client_dir.to_path_buf(),
            image: image.clone(),
            statements_extension,
        };
        if let Err(e) = me.wait_ready(cancel).await {
            let _ = me.remove().await;
            return Err(e);
        }
        Ok(me)
    }

    pub(super) fn container(&self) -> Result<&ContainerAsync<GenericImage>> {
        self.container
            .as_ref()
            .ok_or_else(|| Error::Docker("the container was already removed".into()))
    }

    /// Wait until the server in the container accepts connections on its
    /// published port; a container that exits meanwhile is an error with its
    /// last log lines.
    pub(super) async fn wait_ready(
        &mut self,
        cancel: &Cancel,
    ) -> std::result::Result<(), LaunchError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(a) = cancel.fired() {
                return Err(Error::Aborted(a).into());
            }
            let container = self.container()?;
            let running = container.is_running().await.map_err(|e| {
                Error::Docker(format!(
                    "cannot inspect container {}: {e}",
                    short_id(&self.id)
                ))
            })?;
            if !running {
                let code = container.exit_code().await.ok().flatten();
                let tail = self.log_tail(12).await;
                return Err(LaunchError::Exited(Error::Docker(format!(
                    "container {} of {} exited during startup{}; its last log lines:\n{tail}",
                    short_id(&self.id),
                    self.image.reference,
                    code.map(|c| format!(" (exit code {c})"))
                        .unwrap_or_default(),
                ))));
            }
            if self.accepts_connections().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail = self.log_tail(12).await;
                return Err(Error::Docker(format!(
                    "the server in container {} did not accept connections within {} s; its \
                     last log lines:\n{tail}",
                    short_id(&self.id),
                    STARTUP_TIMEOUT.as_secs()
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server answers a query on the published port (looked up again:
    /// it may change when the container starts again).
    async fn accepts_connections(&mut self) -> bool {
        let Ok(container) = self.container() else {
            return false;
        };
        let Ok(port) = container.get_host_port_ipv4(PG_PORT).await else {
            return false;
        };
        self.port = port;
        crate::staging::answers(self.config("postgres"), crate::staging::plain_tls()).await
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

    /// Remove the container and its anonymous volumes; one the engine no
    /// longer has counts as removed.
    pub(super) async fn remove(&mut self) -> Result<()> {
        let Some(container) = self.container.take() else {
            return Ok(());
        };
        let id = container.id().to_string();
        let removed = container.rm().await;
        cleanup::forget_container(&id);
        match removed {
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(Error::Docker(format!(
                "cannot remove container {}: {e}",
                short_id(&id)
            ))),
            Ok(()) => Ok(()),
        }
    }
}

/// The engine answered that the container does not exist (any more).
fn gone(e: &testcontainers::TestcontainersError) -> bool {
    use testcontainers::core::error::ClientError;
    matches!(
        e,
        testcontainers::TestcontainersError::Client(ClientError::RemoveContainer(inner))
            if super::image::is_not_found(inner)
    )
}

/// 16 random bytes, hex: the container's superuser password.
pub(super) fn random_password() -> Result<String> {
    crate::staging::random_hex(16).map_err(|e| Error::Docker(e.to_string()))
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
