//! `downtime signoff`: record or list reviewer sign-offs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::resolve::check_options;
use super::SignoffArgs;
use crate::cancel::Cancel;
use crate::check;
use crate::config::Overrides;
use crate::error::{Error, Result, EXIT_PASS};
use crate::report::{Report, Status};
use crate::ui;
use crate::verdict::signoff::{self, Signoff, SignoffState, Signoffs};

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = crate::fsutil::read_regular(path, crate::fsutil::PATCHES)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn inside(child: &Path, dir: &Path) -> bool {
    match (std::fs::canonicalize(child), std::fs::canonicalize(dir)) {
        (Ok(c), Ok(d)) => c.starts_with(d),
        _ => false,
    }
}

pub async fn run(args: SignoffArgs, cancel: &Cancel) -> Result<i32> {
    let mut opts = check_options(&args.common, &[], &Overrides::default())?;
    if !args.list {
        // Found out now, not after measuring.
        signoff::check_writable(&opts.signoff_file)?;
    }
    let signoffs = Signoffs::load(&opts.signoff_file, &opts.signoff_base)?;
    if args.list {
        return list(&signoffs, args.report.as_deref());
    }
    let (Some(patch), Some(by), Some(reason)) = (args.patch, args.by, args.reason) else {
        return Err(Error::Usage(
            "signoff needs PATCH, --by and --reason".into(),
        ));
    };
    if std::fs::symlink_metadata(&patch).is_err() {
        return Err(Error::input(&patch, "no such patch file"));
    }
    if by.trim().is_empty() || reason.trim().is_empty() {
        return Err(Error::Usage("--by and --reason must not be empty".into()));
    }
    let sha256 = sha256_of(&patch)?;
    let max_seconds = match args.max_seconds {
        Some(m) => m,
        None => {
            // Measure it where it runs: on top of the patches before it.
            if !opts.run.paths.iter().any(|d| inside(&patch, d)) {
                opts.run.paths = vec![patch
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf)];
            }
            opts.run.until = Some(patch.clone());
            ui::note(&format!(
                "measuring {} to set the approved maximum",
                patch.display()
            ));
            let report = check::run(&opts, cancel).await?.report;
            if let Some(a) = &report.aborted {
                return Err(Error::Aborted(a.reason));
            }
            let measured = report
                .patches
                .last()
                .ok_or_else(|| Error::input(&patch, "nothing was measured"))?;
            if measured.status != Status::Ok {
                let why = measured.error.as_ref().map_or_else(String::new, |e| {
                    format!(" at line {}: {}", e.line, e.message)
                });
                return Err(Error::input(
                    &patch,
                    format!("cannot sign off a patch that fails{why}"),
                ));
            }
            let max = signoff::default_max_seconds(measured.seconds);
            ui::note(&format!(
                "measured {:.3} s; approving up to {max:.0} s (50 % headroom, rounded up; --max-seconds to choose)",
                measured.seconds
            ));
            max
        }
    };
    let key = signoffs.key_for(&patch);
    // Read again, changed and written under the file's lock: a sign-off
    // recorded by another run meanwhile is kept.
    let saved = signoff::record(
        &opts.signoff_file,
        &opts.signoff_base,
        Signoff {
            patch: key.clone(),
            sha256,
            by: by.clone(),
            at: crate::time::now_rfc3339(),
            reason,
            max_seconds,
        },
    )?;
    println!(
        "{}",
        crate::escape::log_line(&format!(
            "signed off {key} for up to {max_seconds} s by {by} in {}",
            saved.path.display()
        ))
    );
    Ok(EXIT_PASS)
}

fn list(signoffs: &Signoffs, report: Option<&Path>) -> Result<i32> {
    let measured: Option<Report> = report.map(crate::report::load).transpose()?;
    if signoffs.entries.is_empty() {
        println!("no sign-offs in {}", signoffs.path.display());
        return Ok(EXIT_PASS);
    }
    println!(
        "{:<9} {:<40} {:<16} {:>8}  {:<20}  reason",
        "state", "patch", "by", "max s", "at"
    );
    for s in &signoffs.entries {
        let path = signoffs.resolve(&s.patch);
        let state = if s.patch.is_empty() {
            // Names no patch: covers none until signed again.
            "unnamed".to_string()
        } else if !path.is_file() {
            SignoffState::Orphaned.to_string()
        } else {
            let sha = sha256_of(&path)?;
            let seconds = measured.as_ref().and_then(|r| {
                r.patches
                    .iter()
                    .find(|p| p.sha256 == sha && p.status == Status::Ok)
                    .map(|p| p.seconds)
            });
            signoff::state(s, &sha, seconds).to_string()
        };
        // Names and reasons are the sign-off file's: shown visibly.
        let line = format!(
            "{:<9} {:<40} {:<16} {:>8.1}  {:<20}  {}",
            state, s.patch, s.by, s.max_seconds, s.at, s.reason
        );
        println!("{}", crate::escape::log_line(&line));
    }
    if measured.is_none() {
        println!("(pass --report FILE from `check --output FILE` to see which are exceeded)");
    }
    Ok(EXIT_PASS)
}
