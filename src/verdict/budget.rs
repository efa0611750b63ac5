//! The verdict of a run: budgets, sign-offs and the profile's demands,
//! applied to the measured and classified patches. A pure function of what
//! it is given: it returns a [`Verdict`] and changes nothing.

use serde::{Deserialize, Serialize};

use super::classify::Classification;
use super::history::Regression;
use super::policy::Policy;
use super::signoff::{self, RunPatch, SignoffRecord, SignoffState, Signoffs};
use super::{RuleId, Severity};
use crate::cancel::Abort;
use crate::measure::PatchError;
use crate::outcome::{Aborted, FailedRun, PatchOutcome};
use crate::patch::{Class, Patch};

/// Pass, fail, or stopped by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    Pass,
    Fail,
    Aborted,
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerdictKind::Pass => "pass",
            VerdictKind::Fail => "fail",
            VerdictKind::Aborted => "aborted",
        })
    }
}

/// The verdict of a run.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// Why it failed, one line each.
    pub failures: Vec<String>,
    /// What passed but deserves a look.
    pub warnings: Vec<String>,
    pub total_seconds: f64,
    /// Seconds of the cold patches: the downtime window they need.
    pub cold_seconds: f64,
    /// One per patch, in order.
    pub patches: Vec<PatchVerdict>,
}

/// The verdict on one patch.
#[derive(Debug, Clone, Default)]
pub struct PatchVerdict {
    /// Its budget under the policy; None when none applies.
    pub budget_seconds: Option<f64>,
    pub over_budget: bool,
    pub signoff: Option<SignoffRecord>,
    /// A regression against the history failed it.
    pub regressed: bool,
    pub failures: Vec<String>,
    pub warnings: Vec<String>,
}

/// Everything the verdict looks at for one patch.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    pub patch: &'a Patch,
    pub result: &'a PatchOutcome,
    pub classification: Option<&'a Classification>,
    /// Why the patch failed, when it did.
    pub error: Option<&'a PatchError>,
    /// The predicted seconds at production size, and the tables the
    /// prediction lacks (`--prod-stats`).
    pub estimate: Option<(f64, &'a [String])>,
    pub regression: Option<&'a Regression>,
}

impl Judged<'_> {
    fn class(&self) -> Option<Class> {
        self.classification.map(|c| c.class)
    }

    fn ran(&self) -> bool {
        self.result.run().is_some()
    }
}

/// Run-level facts the verdict needs.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// The budget is decided on the estimate (`--decide estimate`).
    pub on_estimate: bool,
    pub aborted: Option<&'a Aborted>,
    /// `--max-run-seconds`, for the message when the run hit it.
    pub max_run_seconds: Option<f64>,
}

/// Totals, per-patch budgets and sign-offs, and pass or fail.
pub fn decide(
    patches: &[Judged<'_>],
    run: RunFacts<'_>,
    policy: &Policy,
    signoffs: &Signoffs,
) -> Verdict {
    let budget = &policy.budget;
    // `+ 0.0` turns the empty sum's -0.0 into 0.0.
    let total_seconds = patches.iter().map(|p| p.result.seconds).sum::<f64>() + 0.0;
    let cold_seconds = patches
        .iter()
        .filter(|p| p.class() == Some(Class::Cold))
        .map(|p| p.result.seconds)
        .sum::<f64>()
        + 0.0;
    let mut verdicts = Vec::new();
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    let in_run: Vec<RunPatch<'_>> = patches
        .iter()
        .map(|p| RunPatch {
            path: &p.patch.file.path,
            sha256: &p.patch.sha256,
        })
        .collect();
    let signoffs = (signoffs, &in_run[..]);
    for p in patches {
        let v = patch_verdict(p, run.on_estimate, policy, signoffs);
        failures.extend(v.failures.iter().cloned());
        warnings.extend(v.warnings.iter().cloned());
        verdicts.push(v);
    }
    if let Some(window) = budget.cold_window_seconds.filter(|w| cold_seconds > *w) {
        failures.push(format!(
            "cold patches took {cold_seconds:.3} s, over the {window:.2} s downtime window"
        ));
    }
    if let Some(total) = budget.total_seconds.filter(|t| total_seconds > *t) {
        failures.push(format!(
            "all patches took {total_seconds:.3} s, over the {total:.2} s total budget"
        ));
    }
    if let Some(notify) = budget.notify_seconds.filter(|n| total_seconds > *n) {
        warnings.push(format!(
            "all patches took {total_seconds:.3} s, over {notify:.2} s: notify the release managers"
        ));
    }
    let mut kind = if failures.is_empty() {
        VerdictKind::Pass
    } else {
        VerdictKind::Fail
    };
    if let Some(a) = run.aborted {
        let (k, line) = aborted_failure(a, run.max_run_seconds);
        kind = k;
        failures.push(line);
    }
    Verdict {
        kind,
        failures,
        warnings,
        total_seconds,
        cold_seconds,
        patches: verdicts,
    }
}

/// The failure line for a stopped run, and the verdict it gives: a signal
/// or an infrastructure failure aborts the run; the run cap and a patch
/// that broke the staging server fail it.
fn aborted_failure(a: &Aborted, max_run_seconds: Option<f64>) -> (VerdictKind, String) {
    let running = match (&a.patch, a.line) {
        (Some(p), Some(l)) => format!(
            " while running {p} line {l}: {}",
            a.statement.as_deref().unwrap_or("")
        ),
        (Some(p), None) => format!(" while applying {p}"),
        _ => format!(" while {}", a.phase.as_str()),
    };
    let ended = a
        .ended_by
        .map(|e| format!(" (the statement was {e})"))
        .unwrap_or_default();
    let what = a
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match a.reason {
        Abort::RunCap => {
            let cap = max_run_seconds.unwrap_or_default();
            (
                VerdictKind::Fail,
                format!("the run hit its {cap:.2} s cap (--max-run-seconds){running}{ended}"),
            )
        }
        Abort::Broken => (
            VerdictKind::Fail,
            format!("the run stopped{running}, which left the staging server unfit to go on{ended}{what}"),
        ),
        Abort::Infrastructure => (
            VerdictKind::Aborted,
            format!("the staging server failed{running}{what}"),
        ),
        Abort::Sigint | Abort::Sigterm => (
            VerdictKind::Aborted,
            format!("aborted by {}{running}{ended}", a.reason),
        ),
    }
}

/// The sign-offs and the patches of the run (a sign-off covers the patch
/// it names, or a renamed one whose old path is gone).
type SignoffsIn<'a> = (&'a Signoffs, &'a [RunPatch<'a>]);

/// The sign-off covering a patch, in the state its content and time put it.
fn signoff_of(p: &Judged<'_>, signoffs: SignoffsIn<'_>) -> Option<(SignoffRecord, Option<String>)> {
    let patch = p.patch;
    let (signoffs, in_run) = signoffs;
    let s = signoffs.find(&patch.file.path, &patch.sha256, in_run)?;
    let seconds = p.result.seconds;
    let state = signoff::state(s, &patch.sha256, p.ran().then_some(seconds));
    let failure = match state {
        SignoffState::Stale => Some(format!(
            "{}: signed off by {} on {}, but the patch changed since (sha256 {} now, {} signed); \
             review it again and sign it off anew (`{}`)",
            patch.file.id,
            s.by,
            s.at,
            &patch.sha256[..12.min(patch.sha256.len())],
            &s.sha256[..12.min(s.sha256.len())],
            signoffs.command_for(
                &patch.file.path,
                signoff::default_max_seconds(p.result.seconds)
            )
        )),
        SignoffState::Exceeded => Some(format!(
            "{} took {:.3} s, more than the {:.2} s {} approved",
            patch.file.id, seconds, s.max_seconds, s.by
        )),
        SignoffState::Valid | SignoffState::Orphaned => None,
    };
    Some((SignoffRecord::of(s, state), failure))
}

/// The verdict on one patch: its budget, sign-off, failures and warnings.
fn patch_verdict(
    p: &Judged<'_>,
    on_estimate: bool,
    policy: &Policy,
    signoffs: SignoffsIn<'_>,
) -> PatchVerdict {
    let budget = &policy.budget;
    let id = &p.patch.file.id;
    let path = p.patch.file.path.display().to_string();
    let seconds = p.result.seconds;
    let mut v = PatchVerdict {
        budget_seconds: budget.for_patch(p.class(), p.patch.post_deploy),
        ..PatchVerdict::default()
    };
    let judged = match (p.estimate, on_estimate) {
        (Some((e, _)), true) => e,
        _ => seconds,
    };
    v.over_budget = p.ran() && v.budget_seconds.is_some_and(|b| judged > b);
    if let (true, Some((_, missing))) = (on_estimate, p.estimate) {
        if !missing.is_empty() {
            v.failures.push(format!(
                "{id}: no estimate for {} (not in the stats file, without a row estimate there, or without rows on staging to measure on), and the estimate decides",
                missing.join(", ")
            ));
        }
    }
    if let Some((record, failure)) = signoff_of(p, signoffs) {
        v.failures.extend(failure);
        v.signoff = Some(record);
    }
    let signed_off = v
        .signoff
        .as_ref()
        .is_some_and(|s| s.state == SignoffState::Valid);
    if p.result.failed_runs.is_empty() {
        if let Some(e) = p.error {
            v.failures
                .push(format!("{path}:{}: {id} failed: {}", e.line, e.message));
        }
    } else {
        v.failures
            .extend(failed_runs(&path, id, &p.result.failed_runs));
    }
    if v.over_budget && !signed_off {
        let (signoffs, _) = signoffs;
        let unnamed = signoffs
            .unnamed(&p.patch.sha256)
            .map(|s| {
                format!(
                    "; the sign-off by {} for this content names no patch and covers none: sign it again",
                    s.by
                )
            })
            .unwrap_or_default();
        v.failures.push(format!(
            "{id} {} {judged:.3} s, over its {:.2} s budget{}; speed it up or record a sign-off (`{}`){unnamed}",
            if on_estimate { "is estimated at" } else { "took" },
            v.budget_seconds.unwrap_or_default(),
            if p.patch.post_deploy { " (post-deploy)" } else { "" },
            signoffs.command_for(&p.patch.file.path, signoff::default_max_seconds(seconds)),
        ));
    }
    if let Some(r) = p.regression.filter(|r| r.regressed) {
        let line = format!(
            "{id} regressed: {seconds:.3} s now, {:.3} s on {} ({:+.0} %, over the {:.0} % threshold, confidence intervals apart)",
            r.previous_seconds, r.previous_at, r.change_percent, r.threshold_percent
        );
        // A reviewer's sign-off of this content approves its time; the
        // regression is then shown, and this run becomes the comparison point.
        if signed_off {
            v.warnings.push(format!("{line}; signed off"));
        } else {
            v.regressed = true;
            v.failures.push(line);
        }
    }
    if let Some(warn) = budget.warn_at_seconds {
        if p.ran() && seconds > warn && !v.over_budget {
            v.warnings.push(format!(
                "{id} took {seconds:.3} s, over the {warn:.2} s warning threshold"
            ));
        }
    }
    if !policy.classify.allow_cold && p.class() == Some(Class::Cold) {
        v.failures.push(format!(
            "{id} is cold, and profile {} allows live patches only",
            policy.profile
        ));
    }
    let reasons = p.classification.map_or(&[][..], |c| &c.reasons[..]);
    if let (Some(budget), false) = (v.budget_seconds, on_estimate) {
        for r in reasons.iter().filter(|r| r.counts()) {
            let Some(s) = r.size.as_ref().and_then(|s| s.production_seconds) else {
                continue;
            };
            if s > budget {
                v.warnings.push(format!(
                    "{id}: line {} takes about {s:.1} s at production's size ({}), over its {budget:.2} s budget; --decide estimate gates on the estimate",
                    r.statement_line.unwrap_or(0),
                    r.relation.as_deref().unwrap_or("?"),
                ));
            }
        }
    }
    for r in reasons
        .iter()
        .filter(|r| r.severity == Severity::Error && r.counts() && r.rule != RuleId::InvalidIndex)
    {
        v.failures.push(format!("{id} [{}]: {}", r.rule, r.message));
    }
    v
}

/// One failure line per distinct error over the runs, naming the runs it
/// happened in: "… failed in run 2 of 3: …".
fn failed_runs(path: &str, id: &str, runs: &[FailedRun]) -> Vec<String> {
    let mut groups: Vec<(&PatchError, Vec<String>)> = Vec::new();
    for r in runs {
        let same = |e: &PatchError| e.line == r.error.line && e.message == r.error.message;
        match groups.iter_mut().find(|(e, _)| same(e)) {
            Some((_, which)) => which.push(r.describe()),
            None => groups.push((&r.error, vec![r.describe()])),
        }
    }
    groups
        .into_iter()
        .map(|(e, which)| {
            format!(
                "{path}:{}: {id} failed in {}: {}",
                e.line,
                which.join(", "),
                e.message
            )
        })
        .collect()
}

/// The verdict when a patch was refused before anything ran.
pub fn refused(outcome: &crate::outcome::Outcome) -> Option<Verdict> {
    let (patch, why) = outcome.refused()?;
    let patches = outcome
        .patches
        .iter()
        .map(|p| PatchVerdict {
            failures: if std::ptr::eq(p, patch) {
                vec![format!(
                    "refused before anything ran (line {}): {}",
                    why.line, why.reason
                )]
            } else {
                Vec::new()
            },
            ..PatchVerdict::default()
        })
        .collect();
    Some(Verdict {
        kind: VerdictKind::Fail,
        failures: vec![format!(
            "{}:{}: refused before anything ran: {}",
            patch.file.path.display(),
            why.line,
            why.reason
        )],
        warnings: Vec::new(),
        total_seconds: 0.0,
        cold_seconds: 0.0,
        patches,
    })
}
