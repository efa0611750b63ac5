//! `check`, `bench` and `estimate` from end to end: run the plan
//! ([`crate::run`]), then judge the outcome (classify each patch, estimate at
//! production size, compare with the history, apply the policy) and build
//! the report. Each stage reads what the one before it produced.

use std::path::PathBuf;

use crate::cancel::Cancel;
use crate::error::Result;
use crate::estimate::{self, EstimateInfo, ProdStats};
use crate::measure::stats::Statistic;
use crate::outcome::Outcome;
use crate::report::{self, Assessed, Report};
use crate::run::{self, RunPlan};
use crate::verdict::signoff::Signoffs;
use crate::verdict::{self, history, Judged, Policy, RunFacts};

pub use crate::run::{load_patches, CacheChoice, TimingOptions, DEFAULT_PATCH_DIR};

/// Everything `check` needs to know.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// What to run, and where.
    pub run: RunPlan,
    pub policy: Policy,
    /// Where sign-offs are read from, and the directory their paths are relative to.
    pub signoff_file: PathBuf,
    pub signoff_base: PathBuf,
    /// The `--config` given, for the sign-off command a failure prints.
    pub config_flag: Option<PathBuf>,
    /// The timing history: read for comparisons and the trend chart.
    pub history_file: Option<PathBuf>,
    /// Append this run's timings to the history file.
    pub record_history: bool,
    /// Flag patches slower than their last recorded run by more than this
    /// many percent (with non-overlapping confidence intervals).
    pub compare_history: Option<f64>,
    /// Production statistics to estimate against (`--prod-stats`).
    pub prod_stats: Option<(PathBuf, ProdStats)>,
    /// `--growth`, per month.
    pub growth: Option<f64>,
}

/// A finished run: its report, and the lines it adds to the history,
/// appended once the report is out ([`Checked::record_history`]).
#[derive(Debug)]
pub struct Checked {
    pub report: Report,
    history: Option<(PathBuf, Vec<history::Entry>)>,
}

impl Checked {
    fn report_only(report: Report) -> Checked {
        Checked {
            report,
            history: None,
        }
    }

    /// Append this run's lines to the history file (when it keeps one).
    /// Called after the verdict is printed and the reports written, so a
    /// failure here (a full disk) is reported after them.
    pub fn record_history(&self) -> Result<()> {
        match &self.history {
            Some((file, entries)) => history::append(file, entries),
            None => Ok(()),
        }
    }
}

/// Run `check` end to end and return the report. `Err` is an input or
/// infrastructure error (exit 2); a failing verdict is a report that says so.
pub async fn run(opts: &CheckOptions, cancel: &Cancel) -> Result<Checked> {
    // Every file read or written after the run is checked before it starts.
    let mut signoffs = Signoffs::load(&opts.signoff_file, &opts.signoff_base)?;
    signoffs.config = opts.config_flag.clone();
    let history = match &opts.history_file {
        Some(f) => {
            if opts.record_history {
                history::check_writable(f)?;
            }
            history::load(f)?
        }
        None => Vec::new(),
    };
    let outcome = run::execute(&opts.run, cancel).await?;
    if let Some(verdict) = verdict::budget::refused(&outcome) {
        let report = report::build(&outcome, &[], &verdict, &opts.policy, None);
        return Ok(Checked::report_only(report));
    }
    let policy = judging(&outcome, &opts.policy);
    let mut assessed = classify(&outcome, &policy);
    let estimate = estimate(&outcome, opts, &policy, &mut assessed);
    let threshold = opts.compare_history.unwrap_or(20.0);
    let compared = history::compare(
        &outcome,
        &history,
        threshold,
        opts.compare_history.is_some(),
    );
    for (a, c) in assessed.iter_mut().zip(compared) {
        a.compared = c;
    }
    // A table without a row estimate leaves its statements unpredicted as
    // surely as one missing from the stats file: the gate sees both.
    let unpredicted: Vec<Option<Vec<String>>> = assessed
        .iter()
        .map(|a| {
            a.estimate
                .as_ref()
                .map(estimate::PatchEstimate::unpredicted)
        })
        .collect();
    let judged: Vec<Judged<'_>> = outcome
        .each()
        .zip(&assessed)
        .zip(&unpredicted)
        .map(|(((patch, result), a), tables)| Judged {
            patch,
            result,
            classification: a.classification.as_ref(),
            error: a.error.as_ref(),
            estimate: a
                .estimate
                .as_ref()
                .zip(tables.as_deref())
                .map(|(e, tables)| (e.seconds, tables)),
            regression: a.compared.regression.as_ref(),
        })
        .collect();
    let facts = RunFacts {
        on_estimate: estimate.as_ref().is_some_and(|e| e.decides),
        aborted: outcome.aborted.as_ref(),
        max_run_seconds: opts.run.max_run_seconds,
    };
    let verdict = verdict::decide(&judged, facts, &policy, &signoffs);
    let record = match (&opts.history_file, &outcome.aborted, opts.record_history) {
        (Some(f), None, true) => Some((f.clone(), judged_entries(&outcome, &verdict))),
        _ => None,
    };
    Ok(Checked {
        report: report::build(&outcome, &assessed, &verdict, &policy, estimate),
        history: record,
    })
}

/// The history lines of this run, each marked with how its patch did: a
/// patch that failed, went over its budget without a valid sign-off,
/// regressed or failed for any other reason, or whose run failed, is
/// recorded as failing and never compared with.
fn judged_entries(outcome: &Outcome, verdict: &verdict::Verdict) -> Vec<history::Entry> {
    let run_failed = verdict.kind != verdict::VerdictKind::Pass;
    let mut entries = history::entries(outcome);
    for e in &mut entries {
        let Some(v) = outcome
            .patches
            .iter()
            .position(|p| p.file.id == e.patch)
            .and_then(|i| verdict.patches.get(i))
        else {
            continue;
        };
        let signed_off = v
            .signoff
            .as_ref()
            .is_some_and(|s| s.state == verdict::signoff::SignoffState::Valid);
        let mut because = std::mem::take(&mut e.because);
        if v.over_budget && !signed_off {
            because.push("over-budget".into());
        }
        if v.regressed {
            because.push("regressed".into());
        }
        if because.is_empty() && !v.failures.is_empty() {
            because.push("rules".into());
        }
        if because.is_empty() && run_failed {
            because.push("run".into());
        }
        e.verdict = if because.is_empty() {
            history::Standing::Pass
        } else {
            history::Standing::Fail
        };
        e.because = because;
    }
    entries
}

/// The policy the outcome is judged by: `policy`, knowing which tables the
/// baseline had (those a patch of the run created are empty in production
/// too, and judged as staging measured them).
fn judging(outcome: &Outcome, policy: &Policy) -> Policy {
    let mut policy = policy.clone();
    let first = outcome.results.iter().find_map(|r| r.run());
    if let Some(run) = first {
        let names = run.snapshot.relations.values().map(|r| r.name.clone());
        policy.classify.sizes.baseline = Some(std::sync::Arc::new(names.collect()));
    }
    policy.classify.sizes.costs = outcome.costs.clone().map(std::sync::Arc::new);
    policy
}

/// Each applied patch's class and reasons, and why it failed if it did.
fn classify(outcome: &Outcome, policy: &Policy) -> Vec<Assessed> {
    outcome
        .each()
        .map(|(p, r)| match r.run() {
            Some(run) => {
                let c = verdict::classify(p, run, &policy.classify);
                // The run whose trace classifies the patch may have passed
                // where another failed: that failure is the patch's.
                let failed_elsewhere = r.failed_runs.first().map(|f| f.error.clone());
                Assessed {
                    error: c.failure(p, run).or(failed_elsewhere),
                    classification: Some(c),
                    ..Assessed::default()
                }
            }
            None => Assessed::default(),
        })
        .collect()
}

/// Production-size estimates, when asked for and the run was not stopped.
fn estimate(
    outcome: &Outcome,
    opts: &CheckOptions,
    policy: &Policy,
    assessed: &mut [Assessed],
) -> Option<EstimateInfo> {
    let (path, stats) = opts.prod_stats.as_ref()?;
    if outcome.scales.is_empty() {
        return None;
    }
    let budget_of = |p: &crate::patch::Patch, run: &crate::measure::PatchRun| {
        let class = verdict::classify(p, run, &policy.classify).class;
        policy.budget.for_patch(Some(class), p.post_deploy)
    };
    let estimates = estimate::estimate(outcome, stats, opts.growth, budget_of, &outcome.started_at);
    for (a, e) in assessed.iter_mut().zip(estimates) {
        a.estimate = e;
    }
    Some(EstimateInfo {
        stats_file: path.display().to_string(),
        stats_exported_at: stats.exported_at.clone(),
        scales: opts.run.scales.clone(),
        growth_per_month: opts.growth,
        decides: opts.run.timing.statistic == Statistic::Estimate,
    })
}
