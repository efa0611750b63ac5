//! `downtime cache`: the baseline cache.

use super::CacheAction;
use crate::error::{Result, EXIT_PASS};
use crate::staging::cache::{default_root, Cache};

pub(super) fn run(action: CacheAction) -> Result<i32> {
    let cache = Cache {
        root: default_root(),
    };
    match action {
        CacheAction::Clear => {
            let n = cache.clear()?;
            println!(
                "removed {n} cached baseline(s) from {}",
                cache.root.display()
            );
        }
        CacheAction::Dir => println!("{}", cache.root.display()),
    }
    Ok(EXIT_PASS)
}
