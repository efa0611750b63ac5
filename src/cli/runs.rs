//! `check`, `bench`, `estimate`, and `report` (re-rendering a saved run).

use std::path::Path;

use super::emit::check_targets;
use super::resolve::{bench_plan, check_plan, estimate_plan};
use super::{emit, BenchArgs, CheckArgs, EstimateCmdArgs, OutputArgs, ReportArgs};
use crate::cancel::{Abort, Cancel};
use crate::check;
use crate::error::{Error, Result, EXIT_PASS, EXIT_VERDICT};
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
/// write `--output`, print the report as asked (the text of each ends with
/// the errors, the failures and the verdict), say on stderr what failed
/// when the staging server did, and return the exit status the report
/// calls for.
fn finish(report: &Report, output: Option<&Path>, out: &OutputArgs, table: Table) -> Result<i32> {
    if let Some(path) = output {
        std::fs::write(path, report.to_json() + "\n")
            .map_err(|e| Error::write("report", path, e))?;
    }
    let own_table = out.format == [Format::Text] && out.output_dir.is_none();
    match table {
        Table::Bench if own_table => print!("{}", report::text::render_bench(report)),
        Table::Estimate if own_table => print!("{}", report::text::render_estimate(report)),
        _ => emit(report, out)?,
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
    Ok(exit_code(report))
}

pub(super) async fn check(args: CheckArgs, cancel: &Cancel) -> Result<i32> {
    let opts = check_plan(&args)?;
    let report = check::run(&opts, cancel).await?;
    finish(&report, args.output.as_deref(), &args.out, Table::Check)
}

pub(super) async fn bench(args: BenchArgs, cancel: &Cancel) -> Result<i32> {
    let opts = bench_plan(&args)?;
    let report = check::run(&opts, cancel).await?;
    finish(&report, args.output.as_deref(), &args.out, Table::Bench)
}

pub(super) async fn estimate(args: EstimateCmdArgs, cancel: &Cancel) -> Result<i32> {
    let opts = estimate_plan(&args)?;
    let report = check::run(&opts, cancel).await?;
    finish(&report, args.output.as_deref(), &args.out, Table::Estimate)
}

/// `downtime report`: render a saved JSON report again.
pub(super) fn rerender(args: ReportArgs) -> Result<i32> {
    let report = report::load(&args.file)?;
    check_targets(&args.out, None)?;
    emit(&report, &args.out)?;
    Ok(exit_code(&report))
}
