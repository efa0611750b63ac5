//! A run's record of the clones it asked for: a private directory in the
//! temporary directory (`downtime-clones-…`, naming the process that owns
//! it) holding the `destroy` command and the names of the clones not
//! destroyed yet, so `downtime clean` can destroy those of a run that was
//! killed outright.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::shell;
use crate::error::{Error, Result};
use crate::staging::workdir::WorkDir;

/// The prefix of a record's directory name.
pub const PREFIX: &str = "downtime-clones-";
/// The file holding the `destroy` command.
const DESTROY: &str = "destroy";
/// The file listing the clones, one name a line.
const CLONES: &str = "clones";
/// How long `downtime clean` waits for one `destroy`.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(120);

/// A run's record; removed when dropped.
pub struct Record {
    dir: WorkDir,
}

impl Record {
    /// A new record for clones destroyed with `destroy`.
    pub fn create(destroy: &str) -> Result<Record> {
        let dir = WorkDir::create_named(PREFIX)?;
        let path = dir.path().join(DESTROY);
        std::fs::write(&path, destroy).map_err(|e| Error::io(&path, e))?;
        Ok(Record { dir })
    }

    /// The record's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Note a clone about to be created.
    pub fn add(&mut self, id: &str) -> Result<()> {
        let path = self.path().join(CLONES);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{id}"))
            .map_err(|e| Error::io(&path, e))
    }
}

/// The clone `id` is destroyed: take it off the record in `dir`.
pub(super) fn forget(dir: &Path, id: &str) {
    let path = dir.join(CLONES);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let kept: String = text
        .lines()
        .filter(|l| *l != id)
        .map(|l| format!("{l}\n"))
        .collect();
    let _ = std::fs::write(&path, kept);
}

/// Whether `dir` is a record of clones.
pub fn is_record(dir: &Path) -> bool {
    dir.join(DESTROY).is_file()
}

/// Run the recorded `destroy` for every clone the record in `dir` still
/// lists; returns each clone's name and whether its `destroy` succeeded.
pub fn destroy_recorded(dir: &Path) -> Result<Vec<(String, bool)>> {
    let path = dir.join(DESTROY);
    let destroy = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let ids: Vec<String> = std::fs::read_to_string(dir.join(CLONES))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut done = Vec::new();
    for id in ids {
        let ok = shell::run_blocking(&destroy, &id, CLEAN_TIMEOUT).is_some_and(|s| s.success());
        if ok {
            forget(dir, &id);
        }
        done.push((id, ok));
    }
    Ok(done)
}
