//! `downtime history`: the recorded timings of patches.

use std::path::Path;

use crate::error::{Result, EXIT_PASS};
use crate::outcome::CacheMode;
use crate::verdict::history::{self, Entry};

pub(super) fn run(patch: Option<String>, file: &Path) -> Result<i32> {
    let entries = history::load(file)?;
    let wanted = |e: &&Entry| match &patch {
        None => true,
        Some(p) => {
            e.patch == *p
                || e.path == *p
                || std::path::Path::new(p)
                    .file_stem()
                    .is_some_and(|s| s.to_string_lossy() == e.patch)
        }
    };
    let shown: Vec<_> = entries.iter().filter(wanted).collect();
    if shown.is_empty() {
        println!(
            "no recorded runs{} in {}",
            patch.map(|p| format!(" of {p}")).unwrap_or_default(),
            file.display()
        );
        return Ok(EXIT_PASS);
    }
    println!(
        "{:<24} {:<20} {:>9} {:>21} {:>4} {:<5} {:<9} {:<16} verdict",
        "patch", "at", "seconds", "95% CI", "runs", "cache", "commit", "settings"
    );
    for e in shown {
        // Failing runs are recorded, and never compared with.
        let verdict = match (e.passed(), e.because.is_empty()) {
            (true, _) => "pass".to_string(),
            (false, true) => "fail".to_string(),
            (false, false) => format!("fail ({})", e.because.join(", ")),
        };
        let line = format!(
            "{:<24} {:<20} {:>9.4} {:>21} {:>4} {:<5} {:<9} {:<16} {verdict}",
            e.patch,
            e.at,
            e.seconds,
            format!("[{:.4}, {:.4}]", e.ci_low, e.ci_high),
            e.runs,
            match e.cache {
                CacheMode::Warm => "warm",
                CacheMode::Cold => "cold",
            },
            e.commit
                .as_deref()
                .map(|c| &c[..c.len().min(9)])
                .unwrap_or("-"),
            e.fingerprint
        );
        println!("{}", crate::escape::log_line(&line));
    }
    Ok(EXIT_PASS)
}
