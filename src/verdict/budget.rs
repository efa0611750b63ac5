//! The verdict of a run: budgets, sign-offs and the profile's demands,
//! applied to the measured and classified patches.

use super::policy::Policy;
use super::signoff::{self, SignoffState, Signoffs};
use super::Severity;
use crate::patch::Class;
use crate::report::{Report, SignoffReport, Status};

/// Fill in totals, per-patch budgets and sign-offs, and decide pass or fail.
pub fn decide(report: &mut Report, policy: &Policy, signoffs: &Signoffs) {
    let budget = &policy.budget;
    // `+ 0.0` turns the empty sum's -0.0 into 0.0.
    report.total_seconds = report.patches.iter().map(|p| p.seconds).sum::<f64>() + 0.0;
    report.cold_seconds = report
        .patches
        .iter()
        .filter(|p| p.classification == Some(Class::Cold))
        .map(|p| p.seconds)
        .sum::<f64>()
        + 0.0;
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    let on_estimate = report.estimate.as_ref().is_some_and(|e| e.decides);
    for p in &mut report.patches {
        let (fail_before, warn_before) = (failures.len(), warnings.len());
        let ran = p.status != Status::Skipped;
        p.budget_seconds = budget.for_patch(p.classification, p.post_deploy);
        let judged = match (&p.estimate, on_estimate) {
            (Some(e), true) => e.seconds,
            _ => p.seconds,
        };
        p.over_budget = ran && p.budget_seconds.is_some_and(|b| judged > b);
        if on_estimate {
            if let Some(e) = p.estimate.as_ref().filter(|e| !e.complete) {
                failures.push(format!(
                    "{}: no estimate for {} (not in the stats file), and the estimate decides",
                    p.id,
                    e.missing_tables.join(", ")
                ));
            }
        }

        let path = std::path::Path::new(&p.path);
        if let Some(s) = signoffs.find(path, &p.sha256) {
            let state = signoff::state(s, &p.sha256, ran.then_some(p.seconds));
            p.signoff = Some(SignoffReport {
                by: s.by.clone(),
                at: s.at.clone(),
                reason: s.reason.clone(),
                max_seconds: s.max_seconds,
                state,
            });
            match state {
                SignoffState::Stale => failures.push(format!(
                    "{}: signed off by {} on {}, but the patch changed since (sha256 {} now, {} signed); \
                     review it again and run `downtime signoff`",
                    p.id,
                    s.by,
                    s.at,
                    &p.sha256[..12.min(p.sha256.len())],
                    &s.sha256[..12.min(s.sha256.len())]
                )),
                SignoffState::Exceeded => failures.push(format!(
                    "{} took {:.3} s, more than the {:.2} s {} approved",
                    p.id, p.seconds, s.max_seconds, s.by
                )),
                SignoffState::Valid | SignoffState::Orphaned => {}
            }
        }
        let signed_off = p
            .signoff
            .as_ref()
            .is_some_and(|s| s.state == SignoffState::Valid);

        if let Some(e) = &p.error {
            failures.push(format!(
                "{}:{}: {} failed: {}",
                p.path, e.line, p.id, e.message
            ));
        }
        if p.over_budget && !signed_off {
            failures.push(format!(
                "{} {} {:.3} s, over its {:.2} s budget{}; speed it up or record a sign-off (`downtime signoff {}`)",
                p.id,
                if on_estimate { "is estimated at" } else { "took" },
                judged,
                p.budget_seconds.unwrap_or_default(),
                if p.post_deploy { " (post-deploy)" } else { "" },
                p.path
            ));
        }
        if let Some(r) = p.regression.as_ref().filter(|r| r.regressed) {
            failures.push(format!(
                "{} regressed: {:.3} s now, {:.3} s on {} ({:+.0} %, over the {:.0} % threshold, confidence intervals apart)",
                p.id, p.seconds, r.previous_seconds, r.previous_at, r.change_percent, r.threshold_percent
            ));
        }
        if let Some(warn) = budget.warn_at_seconds {
            if ran && p.seconds > warn && !p.over_budget {
                warnings.push(format!(
                    "{} took {:.3} s, over the {warn:.2} s warning threshold",
                    p.id, p.seconds
                ));
            }
        }
        if !policy.classify.allow_cold && p.classification == Some(Class::Cold) {
            failures.push(format!(
                "{} is cold, and profile {} allows live patches only",
                p.id, policy.profile
            ));
        }
        for r in p
            .reasons
            .iter()
            .filter(|r| r.severity == Severity::Error && r.counts() && r.rule != "invalid-index")
        {
            failures.push(format!("{} [{}]: {}", p.id, r.rule, r.message));
        }
        p.failures = failures[fail_before..].to_vec();
        p.warnings = warnings[warn_before..].to_vec();
    }
    if let Some(window) = budget.cold_window_seconds {
        if report.cold_seconds > window {
            failures.push(format!(
                "cold patches took {:.3} s, over the {window:.2} s downtime window",
                report.cold_seconds
            ));
        }
    }
    if let Some(total) = budget.total_seconds {
        if report.total_seconds > total {
            failures.push(format!(
                "all patches took {:.3} s, over the {total:.2} s total budget",
                report.total_seconds
            ));
        }
    }
    if let Some(notify) = budget.notify_seconds {
        if report.total_seconds > notify {
            warnings.push(format!(
                "all patches took {:.3} s, over {notify:.2} s: notify the release managers",
                report.total_seconds
            ));
        }
    }
    report.verdict = if failures.is_empty() { "pass" } else { "fail" }.into();
    report.failures = failures;
    report.warnings = warnings;
}
