//! Removing containers: those a killed run left (`downtime clean`), and this
//! run's own at an emergency exit.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};

use super::{hostname, short_id, LABEL_HOST, LABEL_PID, LABEL_RUN};
use crate::error::{Error, Result};

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
            let in_use = host == me && pid.is_some_and(crate::staging::process_alive);
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

/// Remove one leftover container (and its anonymous volumes). One that is
/// already gone is not an error.
pub async fn remove_leftover(docker: &bollard::Docker, id: &str) -> Result<()> {
    remove(docker, id)
        .await
        .map_err(|e| Error::Docker(format!("cannot remove container {}: {e}", short_id(id))))
}

/// Force-remove a container with its anonymous volumes; the engine not
/// having it (any more) counts as removed.
async fn remove(docker: &bollard::Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Err(e) if super::image::is_not_found(&e) => Ok(()),
        other => other,
    }
}

/// Remove these containers now, each within 10 s: for an emergency exit.
/// Runs its own small runtime, so call it from a thread of its own.
pub(crate) fn remove_at_once(ids: &[String]) {
    super::super::on_own_runtime(async {
        let Ok(docker) = bollard::Docker::connect_with_defaults() else {
            return;
        };
        for id in ids {
            let _ = tokio::time::timeout(Duration::from_secs(10), remove(&docker, id)).await;
        }
    });
}
