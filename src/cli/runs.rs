//! `check`, `bench`, `estimate`, and `report` (re-rendering a saved run).

use super::emit::check_targets;
use super::resolve::{bench_plan, check_plan, estimate_plan};
use super::{emit, BenchArgs, CheckArgs, EstimateCmdArgs, ReportArgs};
use crate::cancel::Cancel;
use crate::check;
use crate::error::{Error, Result, EXIT_PASS, EXIT_VERDICT};
use crate::report::{self, Format, Report, Status};

/// The exit status a report calls for.
fn exit_code(report: &Report) -> i32 {
    match &report.aborted {
        Some(a) => a.reason.exit_code().unwrap_or(EXIT_VERDICT),
        None if report.passed() => EXIT_PASS,
        None => EXIT_VERDICT,
    }
}

pub(super) async fn check(args: CheckArgs, cancel: &Cancel) -> Result<i32> {
    let opts = check_plan(&args)?;
    let report = check::run(&opts, cancel).await?;
    if let Some(path) = &args.output {
        std::fs::write(path, report.to_json() + "\n")
            .map_err(|e| Error::write("report", path, e))?;
    }
    emit(&report, &args.out)?;
    Ok(exit_code(&report))
}

pub(super) async fn bench(args: BenchArgs, cancel: &Cancel) -> Result<i32> {
    let opts = bench_plan(&args)?;
    let report = check::run(&opts, cancel).await?;
    if args.out.format == [Format::Text] && args.out.output_dir.is_none() {
        print!("{}", report::text::render_bench(&report));
    } else {
        emit(&report, &args.out)?;
    }
    Ok(match &report.aborted {
        Some(a) => a.reason.exit_code().unwrap_or(EXIT_VERDICT),
        None if report.patches.iter().any(|p| p.status == Status::Failed) => EXIT_VERDICT,
        None => EXIT_PASS,
    })
}

pub(super) async fn estimate(args: EstimateCmdArgs, cancel: &Cancel) -> Result<i32> {
    let opts = estimate_plan(&args)?;
    let report = check::run(&opts, cancel).await?;
    if args.out.format == [Format::Text] && args.out.output_dir.is_none() {
        print!("{}", report::text::render_estimate(&report));
    } else {
        emit(&report, &args.out)?;
    }
    Ok(exit_code(&report))
}

/// `downtime report`: render a saved JSON report again.
pub(super) fn rerender(args: ReportArgs) -> Result<i32> {
    let report = report::load(&args.file)?;
    check_targets(&args.out, None)?;
    emit(&report, &args.out)?;
    Ok(exit_code(&report))
}
