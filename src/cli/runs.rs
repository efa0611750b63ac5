//! `check`, `bench`, `estimate`, and `report` (re-rendering a saved run).

use std::path::Path;

use super::emit::check_targets;
use super::resolve::{bench_plan, check_plan, estimate_plan};
use super::{emit, BenchArgs, CheckArgs, EstimateCmdArgs, OutputArgs, ReportArgs};
use crate::cancel::{Abort, Cancel};
use crate::check::{self, Checked};
use crate::error::{Result, EXIT_PASS, EXIT_VERDICT};
use crate::report::{self, Format, Report};

/// The exit status a report calls for.
fn exit_code(report: &Report) -> i32 {
    match &report.aborted {
        Some(a) => a.reason.exit_code().unwrap_or(EXIT_VERDICT),
        None if report.passed() => EXIT_PASS,
        None => EXIT_VERDICT,
    }
}

/// The text table a command prints by default.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Check,
    Bench,
    Estimate,
}

/// The end of every run, the same for `check`, `bench` and `estimate`:
/// print the report as asked (the text of each ends with the errors, the
/// failures and the verdict), write the report files and `--output`, say
/// on stderr what failed when the staging server did, append the run to
/// the history, and return the exit status the report calls for. A write
/// that fails comes after the verdict is out: an error of its own (exit 2).
fn finish(checked: &Checked, output: Option<&Path>, out: &OutputArgs, table: Table) -> Result<i32> {
    let report = &checked.report;
    let own_table = out.format == [Format::Text] && out.output_dir.is_none();
    match table {
        Table::Bench if own_table => print!("{}", report::text::render_bench(report)),
        Table::Estimate if own_table => print!("{}", report::text::render_estimate(report)),
        _ => emit(report, out)?,
    }
    if let Some(path) = output {
        crate::fsutil::replace(path, "report", (report.to_json() + "\n").as_bytes())?;
    }
    if let Some(a) = report
        .aborted
        .as_ref()
        .filter(|a| a.reason == Abort::Infrastructure)
    {
        let at = match (&a.patch, a.line) {
            (Some(p), Some(l)) => format!("{p} line {l}: "),
            (Some(p), None) => format!("{p}: "),
            _ => String::new(),
        };
        let what = a.message.as_deref().unwrap_or("the staging server failed");
        crate::ui::error(&format!("{at}{what}"));
    }
    if let Err(e) = checked.record_history() {
        crate::ui::warn(&format!(
            "the verdict above stands ({}), but this run is not in the history",
            report.verdict
        ));
        return Err(e);
    }
    Ok(exit_code(report))
}

pub(super) async fn check(args: CheckArgs, cancel: &Cancel) -> Result<i32> {
    let opts = check_plan(&args)?;
    let checked = check::run(&opts, cancel).await?;
    finish(&checked, args.output.as_deref(), &args.out, Table::Check)
}

pub(super) async fn bench(args: BenchArgs, cancel: &Cancel) -> Result<i32> {
    let opts = bench_plan(&args)?;
    let checked = check::run(&opts, cancel).await?;
    finish(&checked, args.output.as_deref(), &args.out, Table::Bench)
}

pub(super) async fn estimate(args: EstimateCmdArgs, cancel: &Cancel) -> Result<i32> {
    let opts = estimate_plan(&args)?;
    let checked = check::run(&opts, cancel).await?;
    finish(&checked, args.output.as_deref(), &args.out, Table::Estimate)
}

/// `downtime report`: render a saved JSON report again.
pub(super) fn rerender(args: ReportArgs) -> Result<i32> {
    let report = report::load(&args.file)?;
    check_targets(&args.out, None)?;
    emit(&report, &args.out)?;
    Ok(exit_code(&report))
}
