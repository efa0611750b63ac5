//! Verdicts: live or cold by mechanism, with reasons; the budget gate.

pub mod classify;
pub mod locks;
pub mod rules;

use serde::{Deserialize, Serialize};

pub use classify::{classify, Classification};
pub use rules::{Reason, RuleInfo, Severity, RULES};

/// Which written rules apply on top of the mechanism-based classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Live or cold by what PostgreSQL does: locks, rewrites, scans.
    Standard,
    /// Standard, plus Launchpad's rules for live patches: no ALTER TABLE,
    /// no table triggers, no new table referencing an existing table.
    Launchpad,
}

/// Thresholds of the classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifyOptions {
    pub profile: Profile,
    /// A lock that blocks the application, held longer than this on staging,
    /// makes a patch cold whatever the work under it.
    pub live_lock_threshold_seconds: f64,
    /// An UPDATE or DELETE touching at least this fraction of a table's rows
    /// in one transaction makes a patch cold.
    pub bulk_write_fraction: f64,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            profile: Profile::Standard,
            live_lock_threshold_seconds: 1.0,
            bulk_write_fraction: 0.1,
        }
    }
}

/// Per-patch and whole-run limits, in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Budget {
    pub per_patch_seconds: f64,
    pub total_seconds: Option<f64>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            per_patch_seconds: 15.0,
            total_seconds: None,
        }
    }
}
