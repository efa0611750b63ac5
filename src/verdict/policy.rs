//! The effective policy: a profile's numbers, overridden by `downtime.toml`,
//! overridden by command-line flags. Reports record the result.

use serde::{Deserialize, Serialize};

use crate::patch::Class;

/// A named set of budgets and classification rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Live or cold by mechanism; 15 s for every patch.
    Standard,
    /// Launchpad: 15 s per cold patch (warn at 10 s); live patches may not
    /// ALTER TABLE, add triggers, or reference existing tables.
    Launchpad,
    /// GitLab: regular migrations 180 s, post-deployment 600 s, all
    /// together 3600 s, notify release managers over 1200 s.
    Gitlab,
    /// Live patches only: any cold patch fails; 15 s per patch.
    Strict,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Standard => "standard",
            Profile::Launchpad => "launchpad",
            Profile::Gitlab => "gitlab",
            Profile::Strict => "strict",
        })
    }
}

/// Which patches the per-patch budget applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppliesTo {
    All,
    Cold,
}

/// Time limits, in seconds. `None` is no limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetPolicy {
    pub per_patch_seconds: f64,
    pub applies_to: AppliesTo,
    /// Replaces the per-patch budget for post-deployment patches.
    pub post_deploy_seconds: Option<f64>,
    /// A patch slower than this gets a warning.
    pub warn_at_seconds: Option<f64>,
    /// All cold patches together: the downtime window.
    pub cold_window_seconds: Option<f64>,
    /// All patches together.
    pub total_seconds: Option<f64>,
    /// All patches together over this: a warning to notify release managers.
    pub notify_seconds: Option<f64>,
}

impl BudgetPolicy {
    pub fn for_profile(profile: Profile) -> Self {
        let base = BudgetPolicy {
            per_patch_seconds: 15.0,
            applies_to: AppliesTo::All,
            post_deploy_seconds: None,
            warn_at_seconds: None,
            cold_window_seconds: None,
            total_seconds: None,
            notify_seconds: None,
        };
        match profile {
            Profile::Standard | Profile::Strict => base,
            Profile::Launchpad => BudgetPolicy {
                applies_to: AppliesTo::Cold,
                warn_at_seconds: Some(10.0),
                ..base
            },
            Profile::Gitlab => BudgetPolicy {
                per_patch_seconds: 180.0,
                post_deploy_seconds: Some(600.0),
                total_seconds: Some(3600.0),
                notify_seconds: Some(1200.0),
                ..base
            },
        }
    }

    /// The budget of one patch, if it has one.
    pub fn for_patch(&self, class: Option<Class>, post_deploy: bool) -> Option<f64> {
        if post_deploy && self.post_deploy_seconds.is_some() {
            return self.post_deploy_seconds;
        }
        if self.applies_to == AppliesTo::Cold && class != Some(Class::Cold) {
            return None;
        }
        Some(self.per_patch_seconds)
    }

    /// The longest any single patch may take: the base of the statement cap.
    pub fn largest_patch_budget(&self) -> f64 {
        self.per_patch_seconds
            .max(self.post_deploy_seconds.unwrap_or(0.0))
    }
}

/// Thresholds and switches of the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyOptions {
    pub profile: Profile,
    /// A lock that blocks the application, held longer than this on staging,
    /// makes a patch cold whatever the work under it.
    pub live_lock_threshold_seconds: f64,
    /// An UPDATE or DELETE touching at least this fraction of a table's rows
    /// in one transaction makes a patch cold.
    pub bulk_write_fraction: f64,
    /// A live patch that takes a blocking lock without lock_timeout fails
    /// (instead of a warning).
    pub require_lock_timeout: bool,
    /// Cold patches are acceptable at all (false under `strict`).
    pub allow_cold: bool,
    /// Bulk writes are judged by the rows they touch where the patch will
    /// run: fewer than this many is not a bulk write, whatever the fraction.
    #[serde(default = "default_bulk_write_rows")]
    pub bulk_write_rows: f64,
    /// The sizes tables are judged at: production's statistics, tables
    /// declared small, the baseline's tables.
    #[serde(default, skip_serializing_if = "super::size::Sizes::is_empty")]
    pub sizes: super::size::Sizes,
}

fn default_bulk_write_rows() -> f64 {
    DEFAULT_BULK_WRITE_ROWS
}

/// `bulk_write_rows` unless set.
pub const DEFAULT_BULK_WRITE_ROWS: f64 = 1000.0;

impl ClassifyOptions {
    pub fn for_profile(profile: Profile) -> Self {
        ClassifyOptions {
            profile,
            live_lock_threshold_seconds: 1.0,
            bulk_write_fraction: 0.1,
            require_lock_timeout: false,
            allow_cold: profile != Profile::Strict,
            bulk_write_rows: DEFAULT_BULK_WRITE_ROWS,
            sizes: super::size::Sizes::default(),
        }
    }

    /// Launchpad's written rules for live patches apply.
    pub fn launchpad_rules(&self) -> bool {
        self.profile == Profile::Launchpad
    }
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        Self::for_profile(Profile::Standard)
    }
}

/// Everything that decides a verdict, as recorded in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub profile: Profile,
    /// The `downtime.toml` read, if any.
    pub config: Option<String>,
    pub budget: BudgetPolicy,
    pub classify: ClassifyOptions,
    /// Where sign-offs are read from and written to.
    pub signoff_file: String,
}

impl Policy {
    pub fn for_profile(profile: Profile) -> Self {
        Policy {
            profile,
            config: None,
            budget: BudgetPolicy::for_profile(profile),
            classify: ClassifyOptions::for_profile(profile),
            signoff_file: "patches/signoffs.toml".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_numbers() {
        let lp = BudgetPolicy::for_profile(Profile::Launchpad);
        assert_eq!(lp.for_patch(Some(Class::Cold), false), Some(15.0));
        assert_eq!(lp.for_patch(Some(Class::Live), false), None);
        assert_eq!(lp.warn_at_seconds, Some(10.0));
        let gl = BudgetPolicy::for_profile(Profile::Gitlab);
        assert_eq!(gl.for_patch(Some(Class::Live), false), Some(180.0));
        assert_eq!(gl.for_patch(Some(Class::Cold), true), Some(600.0));
        assert_eq!(gl.total_seconds, Some(3600.0));
        assert_eq!(gl.notify_seconds, Some(1200.0));
        assert!(!ClassifyOptions::for_profile(Profile::Strict).allow_cold);
        assert_eq!(
            BudgetPolicy::for_profile(Profile::Standard).for_patch(Some(Class::Live), false),
            Some(15.0)
        );
    }
}
