//! The ids of the classification rules: what a waiver names, what a reason
//! carries and what reports print. Spelled in reports and patches as
//! kebab-case words (`table-rewrite`); the rules themselves live in
//! `verdict::rules`, one file each.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! rule_ids {
    ($($variant:ident => $id:literal,)*) => {
        /// A classification rule's stable id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId {
            $($variant,)*
        }

        impl RuleId {
            /// Every rule id, in the order rules are documented.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            /// The id as reports and waivers spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $id,)*
                }
            }
        }
    };
}

rule_ids! {
    TableRewrite => "table-rewrite",
    BlockingIndexBuild => "blocking-index-build",
    ValidationScan => "validation-scan",
    SetNotNullScan => "set-not-null-scan",
    AttachPartitionScan => "attach-partition-scan",
    BulkWrite => "bulk-write",
    HeldLockWork => "held-lock-work",
    LongLock => "long-lock",
    LockTimeoutMissing => "lock-timeout-missing",
    MeasuredBlocking => "measured-blocking",
    LaunchpadAlterTable => "launchpad-alter-table",
    LaunchpadTrigger => "launchpad-trigger",
    LaunchpadReferences => "launchpad-references",
    InvalidIndex => "invalid-index",
    PredictedFailure => "predicted-failure",
    DeclaredLiveButCold => "declared-live-but-cold",
    DeclaredColdButLive => "declared-cold-but-live",
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no rule `{0}`; `downtime rules` lists the rule ids")]
pub struct UnknownRule(pub String);

impl FromStr for RuleId {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleId::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRule(s.to_string()))
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_round_trips_through_its_spelling() {
        for &id in RuleId::ALL {
            assert_eq!(id.as_str().parse::<RuleId>(), Ok(id));
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{id}\""));
            assert_eq!(serde_json::from_str::<RuleId>(&json).unwrap(), id);
        }
        assert!("no-such-rule".parse::<RuleId>().is_err());
        assert!(serde_json::from_str::<RuleId>("\"no-such-rule\"").is_err());
    }
}
