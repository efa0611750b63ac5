//! The Docker engine and the image a run uses: connect, find the image
//! locally or pull it, and what is recorded about it.

use std::time::Duration;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::{split_reference, ImageInfo};
use crate::error::{Error, Result};
use crate::ui;

/// The HTTP status the engine answers for an image or container it does not have.
pub(super) const NOT_FOUND: u16 = 404;

/// The engine answered that it does not have what was asked for.
pub(super) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code, .. }
            if *status_code == NOT_FOUND
    )
}

/// Where the Docker engine is expected, for messages.
pub(super) fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// The engine is on this machine (a Unix socket, not TCP).
pub(super) fn engine_is_local() -> bool {
    let address = engine_address();
    !address.starts_with("tcp://") && !address.starts_with("http")
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

/// Make sure the image is present locally: inspect it, else (the engine
/// does not have it) pull it.
pub(super) async fn ensure_image(docker: &bollard::Docker, reference: &str) -> Result<ImageInfo> {
    match docker.inspect_image(reference).await {
        Ok(found) => return Ok(image_info(reference, found)),
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            return Err(Error::Docker(format!(
                "cannot inspect image {reference}: {e}"
            )))
        }
    }
    ui::note(&format!(
        "image {reference} is not present locally: pulling it"
    ));
    pull(docker, reference).await?;
    let found = docker.inspect_image(reference).await.map_err(|e| {
        Error::Docker(format!(
            "image {reference} was pulled but cannot be inspected: {e}"
        ))
    })?;
    Ok(image_info(reference, found))
}

/// Pull the image; a failure says how else to get it.
async fn pull(docker: &bollard::Docker, reference: &str) -> Result<()> {
    let (name, tag) = split_reference(reference);
    let options = CreateImageOptionsBuilder::new()
        .from_image(&name)
        .tag(&tag)
        .build();
    let mut steps = docker.create_image(Some(options), None, None);
    while let Some(step) = steps.next().await {
        if let Err(e) = step {
            return Err(Error::Docker(format!(
                "image {reference} is not present locally and cannot be pulled ({e}). Build or \
                 load it first: `docker pull {reference}` where a registry is reachable, `docker \
                 load -i FILE` from a saved image, or `tests/docker/build-image.sh {reference}` \
                 to build a PostgreSQL image from Debian packages; or choose another with --image"
            )));
        }
    }
    Ok(())
}

fn image_info(reference: &str, found: bollard::models::ImageInspect) -> ImageInfo {
    ImageInfo {
        reference: reference.to_string(),
        id: found.id.unwrap_or_default(),
        digests: found.repo_digests.unwrap_or_default(),
    }
}
