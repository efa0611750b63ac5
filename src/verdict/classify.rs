//! Live or cold, by mechanism: combines what each statement asked for (the
//! parse tree) with what it did on the staging copy (the trace).

use super::rules::{self, Reason, Severity, StatementContext};
use super::ClassifyOptions;
use crate::measure::PatchRun;
use crate::patch::{Class, Patch};

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
            .filter(|r| r.severity == Severity::Error)
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
    let patch_reasons = rules::check_patch(patch, run, options, &reasons);
    reasons.extend(patch_reasons);
    let class = if reasons.iter().any(|r| r.severity == Severity::Cold) {
        Class::Cold
    } else {
        Class::Live
    };
    if class == Class::Live {
        // In a downtime window nobody queues behind the patch; live, they do.
        reasons.extend(rules::check_lock_timeout(patch, run));
    }
    reasons.extend(rules::check_declared(patch.declared, class));
    reasons.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.statement_line.cmp(&b.statement_line))
    });
    Classification { class, reasons }
}
