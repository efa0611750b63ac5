//! `check`, `bench`, `estimate`, and `report` (re-rendering a saved run).

use super::resolve::check_options;
use super::{emit, BenchArgs, CheckArgs, EstimateCmdArgs, ReportArgs};
use crate::cancel::Cancel;
use crate::check;
use crate::config::Overrides;
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
    let overrides = Overrides {
        profile: args.profile,
        per_patch_seconds: args.budget,
        total_seconds: args.total_budget,
        cold_window_seconds: args.cold_window_budget,
        live_lock_threshold_seconds: args.live_lock_threshold,
        bulk_write_fraction: args.bulk_write_fraction,
        require_lock_timeout: args.require_lock_timeout,
    };
    let mut opts = check_options(&args.common, &args.paths, &overrides)?;
    opts.run.keep_going = args.keep_going;
    args.timing.apply(&mut opts, 1, 0);
    args.estimate.apply(&mut opts, &[0.25, 0.5, 1.0])?;
    let report = check::run(&opts, cancel).await?;
    if let Some(path) = &args.output {
        std::fs::write(path, report.to_json() + "\n").map_err(|e| Error::io(path, e))?;
    }
    emit(&report, &args.out)?;
    Ok(exit_code(&report))
}

pub(super) async fn bench(args: BenchArgs, cancel: &Cancel) -> Result<i32> {
    let mut opts = check_options(&args.common, &args.paths, &Overrides::default())?;
    opts.run.keep_going = true;
    args.timing.apply(&mut opts, 5, 1);
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
    if args.estimate.prod_stats.is_none() {
        return Err(Error::Usage(
            "estimate needs --prod-stats FILE (from `downtime stats export`)".into(),
        ));
    }
    let mut opts = check_options(&args.common, &args.paths, &Overrides::default())?;
    opts.run.keep_going = true;
    args.timing.apply(&mut opts, 1, 0);
    args.estimate.apply(&mut opts, &[0.1, 0.25, 0.5, 1.0])?;
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
    emit(&report, &args.out)?;
    Ok(exit_code(&report))
}
