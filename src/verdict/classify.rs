//! Live or cold, by mechanism: combines what each statement asked for (the
//! parse tree) with what it did on the staging copy (the trace), then applies
//! the patch's waivers.

use super::rules::{self, Reason, Severity, StatementContext};
use super::ClassifyOptions;
use crate::measure::{PatchError, PatchRun};
use crate::patch::{Class, Patch};
use crate::rule_id::RuleId;

/// A patch's class and every reason behind it, most severe first.
#[derive(Debug, Clone)]
pub struct Classification {
    pub class: Class,
    pub reasons: Vec<Reason>,
}

impl Classification {
    /// Reasons that fail the patch.
    pub fn errors(&self) -> impl Iterator<Item = &Reason> {
        self.reasons
            .iter()
            .filter(|r| r.severity == Severity::Error && r.counts())
    }

    /// Why the patch failed: its statement's error, or an INVALID index it
    /// left behind (reported at its last statement).
    pub fn failure(&self, patch: &Patch, run: &PatchRun) -> Option<PatchError> {
        if let Some(e) = &run.error {
            return Some(e.clone());
        }
        let e = self.errors().find(|r| r.rule == RuleId::InvalidIndex)?;
        let line = patch.statements.last().map_or(1, |s| s.line);
        Some(PatchError {
            message: e.message.clone(),
            sqlstate: None,
            line,
            statement_line: line,
            detail: None,
            hint: Some(e.hint.clone()),
            partially_applied: false,
            ended_by: None,
        })
    }
}

/// Mark the reasons a waiver of the patch covers.
fn apply_waivers(patch: &Patch, reasons: &mut [Reason]) {
    for r in reasons.iter_mut() {
        let Some(line) = r.statement_line else {
            continue;
        };
        if let Some(w) = patch
            .waivers
            .iter()
            .find(|w| w.rule == r.rule && w.covers(line))
        {
            r.waived = Some(w.because.clone());
        }
    }
}

/// Classify a patch from its measured run.
pub fn classify(patch: &Patch, run: &PatchRun, options: &ClassifyOptions) -> Classification {
    let mut reasons = Vec::new();
    for measured in &run.statements {
        let cx = StatementContext {
            patch,
            run,
            statement: &patch.statements[measured.index],
            measured,
            options,
        };
        reasons.extend(rules::check_statement(&cx));
    }
    apply_waivers(patch, &mut reasons);
    let patch_reasons = rules::check_patch(patch, run, options, &reasons);
    reasons.extend(patch_reasons);
    apply_waivers(patch, &mut reasons);
    let cold = |reasons: &[Reason]| {
        reasons
            .iter()
            .any(|r| r.severity == Severity::Cold && r.counts())
    };
    if !cold(&reasons) {
        // Found live, yet the application was measured waiting on it.
        let mut measured: Vec<Reason> = rules::measured_blocking::check(run).into_iter().collect();
        apply_waivers(patch, &mut measured);
        reasons.extend(measured);
    }
    let class = if cold(&reasons) {
        Class::Cold
    } else {
        Class::Live
    };
    if class == Class::Live {
        // In a downtime window nobody queues behind the patch; live, they do.
        let mut timeouts = rules::check_lock_timeout(patch, run);
        if options.require_lock_timeout {
            for r in &mut timeouts {
                r.severity = Severity::Error;
                r.message
                    .push_str(" (lock_timeout is required by the policy)");
            }
        }
        apply_waivers(patch, &mut timeouts);
        reasons.extend(timeouts);
    }
    reasons.extend(rules::check_declared(patch.declared, class));
    reasons.sort_by(|a, b| {
        b.counts()
            .cmp(&a.counts())
            .then(b.severity.cmp(&a.severity))
            .then(a.statement_line.cmp(&b.statement_line))
    });
    Classification { class, reasons }
}
