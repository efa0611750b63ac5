//! Log lines on stderr. Reports go to stdout or files; everything a person
//! watching the run should see goes through here.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silence notes (warnings and errors are still printed).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A progress or context line.
pub fn note(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("downtime: {msg}");
    }
}

/// Something the user should look at, that does not stop the run.
pub fn warn(msg: &str) {
    eprintln!("downtime: warning: {msg}");
}
