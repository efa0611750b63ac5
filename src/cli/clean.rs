//! `downtime clean`: what runs killed outright left behind.

use std::path::PathBuf;

use crate::error::{Result, EXIT_PASS};
use crate::staging::{command, server};
use crate::ui;

/// How many things `clean` removed and kept.
#[derive(Default)]
struct Count {
    removed: usize,
    kept: usize,
}

/// `downtime clean`: leftover containers, clones and cluster directories,
/// then with a server URL (given, or the server backend's in
/// downtime.toml) the databases of dead runs on that server.
pub(super) async fn run(
    dry_run: bool,
    all: bool,
    url: Option<String>,
    config: Option<PathBuf>,
) -> Result<i32> {
    let mut count = Count::default();
    // The server first: a bad URL stops before anything is removed.
    let source = super::resolve::server_named(url.as_deref(), config)?;
    containers(dry_run, all, &mut count).await?;
    directories(dry_run, all, &mut count).await?;
    if let Some(source) = source {
        databases(&source, dry_run, all, &mut count).await?;
    }
    if count.removed == 0 && count.kept == 0 {
        println!("nothing to clean");
    }
    Ok(EXIT_PASS)
}

/// "removed", or "would remove" for a dry run.
fn verb(dry_run: bool) -> &'static str {
    if dry_run {
        "would remove"
    } else {
        "removed"
    }
}

/// Containers of runs killed outright (those of live runs are kept
/// unless `all`).
async fn containers(dry_run: bool, all: bool, count: &mut Count) -> Result<()> {
    use crate::staging::docker;
    let engine = match docker::engine().await {
        Ok(engine) => engine,
        Err(e) => {
            ui::note(&format!("containers not checked: {e}"));
            return Ok(());
        }
    };
    for c in docker::leftovers(&engine).await? {
        let what = format!(
            "container {} ({}, {}, started by pid {} on {})",
            docker::short_id(&c.id),
            c.image,
            c.status,
            c.pid.map_or("?".to_string(), |p| p.to_string()),
            if c.host.is_empty() { "?" } else { &c.host }
        );
        if c.in_use && !all {
            println!("kept {what}: that run is still going (--all removes it)");
            count.kept += 1;
            continue;
        }
        if !dry_run {
            docker::remove_leftover(&engine, &c.id).await?;
        }
        println!("{} {what}", verb(dry_run));
        count.removed += 1;
    }
    Ok(())
}

/// Cluster and load directories, and the records of clones (whose clones
/// are destroyed first).
async fn directories(dry_run: bool, all: bool, count: &mut Count) -> Result<()> {
    use crate::staging::embedded;
    for d in embedded::leftover_dirs(&std::env::temp_dir()) {
        if d.in_use && !all {
            println!(
                "kept {}: its run is still going (--all removes it)",
                d.path.display()
            );
            count.kept += 1;
            continue;
        }
        if command::is_record(&d.path) && !dry_run {
            let path = d.path.clone();
            let destroyed = tokio::task::spawn_blocking(move || command::destroy_recorded(&path))
                .await
                .map_err(|e| crate::error::Error::Server(e.to_string()))??;
            for (id, ok) in destroyed {
                if ok {
                    println!("destroyed clone {id} ([staging.command] destroy)");
                } else {
                    ui::warn(&format!(
                        "[staging.command] destroy failed for clone {id}: it may be left behind"
                    ));
                }
            }
        }
        if !dry_run {
            embedded::remove_leftover(&d).await?;
        }
        println!("{} {}", verb(dry_run), d.path.display());
        count.removed += 1;
    }
    Ok(())
}

/// The databases of dead runs on the server (those of live runs are kept
/// unless `all`).
async fn databases(
    source: &crate::staging::source::Source,
    dry_run: bool,
    all: bool,
    count: &mut Count,
) -> Result<()> {
    let client = server::connect_maintenance(source).await?;
    for left in server::leftovers(&client).await? {
        if !left.live {
            for name in &left.unmarked {
                println!(
                    "kept database {name} on {}: named like a run's, but downtime did not make \
                     it (it lacks the comment downtime puts on its own)",
                    source.redacted()
                );
                count.kept += 1;
            }
            if left.databases.is_empty() {
                continue;
            }
        }
        let what = format!(
            "databases of run {} on {} ({})",
            left.run,
            source.redacted(),
            left.databases.join(", ")
        );
        if left.live && !all {
            println!("kept {what}: that run is still going (--all removes them)");
            count.kept += 1;
            continue;
        }
        if !dry_run {
            server::drop_leftover(&client, &left).await?;
        }
        println!("{} {what}", verb(dry_run));
        count.removed += 1;
    }
    Ok(())
}
