//! The private directory a baseline is loaded through: 0700, in the
//! temporary directory, naming the process that owns it (so `downtime
//! clean` can tell a killed run's from a live one's), removed when the load
//! ends and at an emergency exit. A source's dump, its password file and
//! the loaders' error output live here and nowhere else.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::cleanup;
use super::embedded::OWNER_FILE;
use crate::error::{Error, Result};
use crate::ui;

/// The prefix of a load directory's name.
pub const PREFIX: &str = "downtime-load-";

/// A load directory; removed when dropped.
#[derive(Debug)]
pub struct WorkDir {
    dir: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub fn create() -> Result<WorkDir> {
        WorkDir::create_named(PREFIX)
    }

    /// A private directory whose name starts with `prefix` (which starts
    /// with `downtime-`, so `downtime clean` finds it).
    pub fn create_named(prefix: &str) -> Result<WorkDir> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| Error::Server(format!("cannot create a temporary directory: {e}")))?;
        cleanup::add_cluster(dir.path());
        let me = WorkDir { dir: Some(dir) };
        let path = me.path();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(path, e))?;
        let owner = path.join(OWNER_FILE);
        std::fs::write(&owner, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(&owner, e))?;
        Ok(me)
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("/"), |d| d.path())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                ui::warn(&format!("could not remove {}: {e}", path.display()));
            }
            cleanup::forget_cluster(&path);
        }
    }
}
