//! Printing and writing a report as the output flags ask.

use std::path::PathBuf;

use super::OutputArgs;
use crate::error::{Error, Result};
use crate::report::{self, Format, Report};
use crate::ui;

/// The default output directory.
pub const DEFAULT_OUTPUT_DIR: &str = "reports";

/// Print and write a report as the output options ask.
pub fn emit(report: &Report, out: &OutputArgs) -> Result<()> {
    let formats = &out.format;
    let to_stdout = out.output_dir.is_none() && formats.len() == 1 && formats[0] != Format::Html;
    let dir = out
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUTPUT_DIR));
    if to_stdout {
        print!("{}", report::render(report, formats[0]));
    } else {
        for f in formats {
            if *f == Format::Text {
                print!("{}", report::render(report, *f));
                continue;
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let path = dir.join(f.file_name());
            std::fs::write(&path, report::render(report, *f)).map_err(|e| Error::io(&path, e))?;
            ui::note(&format!("wrote {}", path.display()));
        }
    }
    if !out.charts.is_empty() {
        for path in report::write_charts(report, &dir, &out.charts)? {
            ui::note(&format!("wrote {}", path.display()));
        }
    }
    let on_github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if on_github && !out.no_annotations && !formats.contains(&Format::Github) {
        eprint!("{}", report::render(report, Format::Github));
    }
    Ok(())
}
