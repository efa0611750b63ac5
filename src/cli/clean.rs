//! `downtime clean`: what runs killed outright left behind.

use crate::error::{Result, EXIT_PASS};
use crate::ui;

/// `downtime clean`: leftover containers, then leftover cluster directories.
pub(super) async fn run(dry_run: bool, all: bool) -> Result<i32> {
    use crate::staging::{docker, embedded};
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut removed = 0;
    let mut kept = 0;
    match docker::engine().await {
        Ok(engine) => {
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
                    kept += 1;
                    continue;
                }
                if !dry_run {
                    docker::remove_leftover(&engine, &c.id).await?;
                }
                println!("{verb} {what}");
                removed += 1;
            }
        }
        Err(e) => ui::note(&format!("containers not checked: {e}")),
    }
    for d in embedded::leftover_dirs(&std::env::temp_dir()) {
        if d.in_use && !all {
            println!(
                "kept {}: its run is still going (--all removes it)",
                d.path.display()
            );
            kept += 1;
            continue;
        }
        if !dry_run {
            embedded::remove_leftover(&d).await?;
        }
        println!("{verb} {}", d.path.display());
        removed += 1;
    }
    if removed == 0 && kept == 0 {
        println!("nothing to clean");
    }
    Ok(EXIT_PASS)
}
