//! `downtime cache`: the baseline cache, here and on a server.

use super::CacheAction;
use crate::error::{Result, EXIT_PASS};
use crate::staging::cache::{self, default_root, Cache};
use crate::staging::server;

pub(super) async fn run(action: CacheAction) -> Result<i32> {
    match action {
        CacheAction::Clear { url, config } => {
            let source = super::resolve::server_named(url.as_deref(), config)?;
            // Only a cache of this user's own is cleared.
            let cache = Cache {
                root: cache::root()?,
            };
            let n = cache.clear()?;
            println!(
                "removed {n} cached baseline(s) from {}",
                cache.root.display()
            );
            if let Some(source) = source {
                clear_server(&source).await?;
            }
        }
        CacheAction::Dir => println!("{}", default_root().display()),
    }
    Ok(EXIT_PASS)
}

/// Drop the cached baselines the server keeps: those downtime made and
/// marked; a database only named like one is kept, and said so.
async fn clear_server(source: &crate::staging::source::Source) -> Result<()> {
    let client = server::connect_maintenance(source).await?;
    let cached = server::cached_baselines(&client).await?;
    for name in &cached {
        server::drop_cached(&client, name).await?;
    }
    println!(
        "removed {} cached baseline(s) from {}",
        cached.len(),
        source.redacted()
    );
    for name in server::unmarked_caches(&client).await? {
        println!(
            "kept database {name}: named like a cached baseline, but downtime did not make it \
             (it lacks the comment downtime puts on its own)"
        );
    }
    Ok(())
}
