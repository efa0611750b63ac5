//! Printing and writing a report as the output flags ask.

use std::path::PathBuf;

use super::OutputArgs;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::report::{self, Format, Report};
use crate::ui;

/// The default output directory.
pub const DEFAULT_OUTPUT_DIR: &str = "reports";

/// Where the output flags send a report.
pub(super) struct Targets {
    /// One format, printed on stdout.
    pub to_stdout: Option<Format>,
    /// The files written, each with its format.
    pub files: Vec<(Format, PathBuf)>,
    /// The directory files and charts are written to, when any are.
    pub dir: Option<PathBuf>,
}

pub(super) fn targets(out: &OutputArgs) -> Targets {
    let formats = &out.format;
    let dir = out
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUTPUT_DIR));
    let to_stdout = (out.output_dir.is_none() && formats.len() == 1 && formats[0] != Format::Html)
        .then_some(formats[0]);
    let files: Vec<(Format, PathBuf)> = if to_stdout.is_some() {
        Vec::new()
    } else {
        formats
            .iter()
            .filter(|f| **f != Format::Text)
            .map(|f| (*f, dir.join(f.file_name())))
            .collect()
    };
    let dir = (!files.is_empty() || !out.charts.is_empty()).then_some(dir);
    Targets {
        to_stdout,
        files,
        dir,
    }
}

/// Whether every file the output flags ask for can be written, and `json`
/// (`--output FILE`): found before a run starts, not after it. No link is
/// written through: not the output directory, nor a report file in it, nor,
/// when charts are asked for, any `.png` or `.svg` there (their names come
/// from the patches).
pub(super) fn check_targets(out: &OutputArgs, json: Option<&std::path::Path>) -> Result<()> {
    let t = targets(out);
    if let Some(dir) = &t.dir {
        fsutil::check_dir(dir, "output directory")?;
        if !out.charts.is_empty() {
            check_chart_names(dir)?;
        }
    }
    for (_, path) in &t.files {
        fsutil::check_writable(path, "report")?;
    }
    if let Some(path) = json {
        fsutil::check_writable(path, "report")?;
    }
    Ok(())
}

/// No link in the output directory is named like a chart.
fn check_chart_names(dir: &std::path::Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let path = e.path();
        let chart = path.extension().is_some_and(|x| x == "png" || x == "svg");
        if chart && e.file_type().is_ok_and(|t| t.is_symlink()) {
            fsutil::check_links(&path, "chart")?;
        }
    }
    Ok(())
}

/// Print and write a report as the output options ask.
pub fn emit(report: &Report, out: &OutputArgs) -> Result<()> {
    let t = targets(out);
    match t.to_stdout {
        Some(f) => print!("{}", report::render(report, f)),
        None => {
            if out.format.contains(&Format::Text) {
                print!("{}", report::render(report, Format::Text));
            }
        }
    }
    if let Some(dir) = &t.dir {
        fsutil::check_links(dir, "output directory")?;
        std::fs::create_dir_all(dir).map_err(|e| Error::write("output directory", dir, e))?;
    }
    for (f, path) in &t.files {
        fsutil::replace(path, "report", report::render(report, *f).as_bytes())?;
        ui::note(&format!("wrote {}", path.display()));
    }
    if let (false, Some(dir)) = (out.charts.is_empty(), &t.dir) {
        for path in report::write_charts(report, dir, &out.charts)? {
            ui::note(&format!("wrote {}", path.display()));
        }
    }
    let on_github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if on_github && !out.no_annotations && !out.format.contains(&Format::Github) {
        eprint!("{}", report::render(report, Format::Github));
    }
    Ok(())
}
