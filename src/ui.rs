//! Log lines and the progress bar on stderr. Reports go to stdout or files;
//! everything a person watching the run should see goes through here.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Silence notes (warnings and errors are still printed).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn with_bar<T>(f: impl FnOnce(&Option<ProgressBar>) -> T) -> T {
    match BAR.lock() {
        Ok(guard) => f(&guard),
        Err(poisoned) => f(&poisoned.into_inner()),
    }
}

/// A line on stderr: foreign text in it (file names, the server's words)
/// shown visibly, continuation lines indented, none a workflow command.
fn line(msg: &str) {
    let msg = crate::escape::log_lines(msg);
    let msg = msg.as_str();
    with_bar(|bar| match bar {
        Some(b) => b.println(msg),
        None => eprintln!("{msg}"),
    });
}

/// A progress or context line.
pub fn note(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        line(&format!("downtime: {msg}"));
    }
}

/// Something the user should look at, that does not stop the run.
pub fn warn(msg: &str) {
    line(&format!("downtime: warning: {msg}"));
}

/// An error that ends the run (printed even with `--quiet`).
pub fn error(msg: &str) {
    line(&format!("downtime: error: {msg}"));
}

/// Start a progress bar over `total` patches, when stderr is a terminal.
/// Elsewhere (CI logs, pipes) the plain `applying …` lines are the progress.
pub fn progress_start(total: usize) {
    if QUIET.load(Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        return;
    }
    let plain = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let template = if plain {
        "{spinner} [{elapsed_precise}] {pos}/{len} {wide_msg}"
    } else {
        "{spinner:.cyan} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {wide_msg}"
    };
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    if let Ok(mut slot) = BAR.lock() {
        *slot = Some(bar);
    }
}

/// The patch now being applied.
pub fn progress_patch(id: &str) {
    let shown = with_bar(|bar| {
        if let Some(b) = bar {
            b.set_message(format!("applying {}", crate::escape::visible(id)));
            true
        } else {
            false
        }
    });
    if !shown {
        note(&format!("applying {id}"));
    }
}

/// One patch done.
pub fn progress_done() {
    with_bar(|bar| {
        if let Some(b) = bar {
            b.inc(1);
        }
    });
}

/// Remove the bar.
pub fn progress_finish() {
    if let Ok(mut slot) = BAR.lock() {
        if let Some(b) = slot.take() {
            b.finish_and_clear();
        }
    }
}
