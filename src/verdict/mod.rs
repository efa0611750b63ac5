//! Verdicts: live or cold by mechanism, with reasons and waivers; budgets,
//! profiles and reviewer sign-offs.

pub mod budget;
pub mod classify;
pub mod history;
pub mod policy;
pub mod rules;
pub mod signoff;
pub mod size;

use serde::{Deserialize, Serialize};

pub use crate::rule_id::RuleId;
pub use budget::{decide, Judged, PatchVerdict, RunFacts, Verdict, VerdictKind};
pub use classify::{classify, Classification};
pub use policy::{AppliesTo, BudgetPolicy, ClassifyOptions, Policy, Profile};
pub use rules::{Reason, RuleInfo, Severity, RULES};

/// The per-patch and total budget in the report's `budget` field (the full
/// set of limits is in `policy.budget`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Budget {
    pub per_patch_seconds: f64,
    pub total_seconds: Option<f64>,
}

impl Budget {
    pub fn from_policy(p: &BudgetPolicy) -> Self {
        Budget {
            per_patch_seconds: p.per_patch_seconds,
            total_seconds: p.total_seconds,
        }
    }
}
