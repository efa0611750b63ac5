//! `declared-live-but-cold` and `declared-cold-but-live`: the class a patch
//! declares (`-- downtime: live|cold`) against the one it is given.

use super::{Measured, Reason, RuleInfo, Severity};
use crate::patch::Class;
use crate::rule_id::RuleId;

pub const LIVE_BUT_COLD: RuleInfo = RuleInfo {
    id: RuleId::DeclaredLiveButCold,
    severity: Severity::Error,
    why: "A patch that says it can be applied while the application runs is scheduled that way; if it would in fact block the application, the check must stop it before it is deployed.",
    summary: "the patch declares `-- downtime: live` but would block the application",
    recipe: "rewrite the patch with the recipes of its cold reasons, or declare it `-- downtime: cold` and schedule a window",
    measured: Measured::NotByItself("a declaration checked against the classification; the probe measures the patch as it is"),
};

pub const COLD_BUT_LIVE: RuleInfo = RuleInfo {
    id: RuleId::DeclaredColdButLive,
    severity: Severity::Note,
    why: "Nothing in the patch blocks the application, so it needs no downtime window; declaring it live lets it go out without one.",
    summary: "the patch declares `-- downtime: cold` but could be applied live",
    recipe: "declare it `-- downtime: live` to apply it without a downtime window",
    measured: Measured::NotByItself("a declaration checked against the classification; the probe measures the patch as it is"),
};

pub fn check(declared: Option<Class>, classified: Class) -> Option<Reason> {
    match (declared?, classified) {
        (Class::Live, Class::Cold) => Some(LIVE_BUT_COLD.reason(
            None,
            None,
            None,
            "declared live, but classified cold for the reasons above".into(),
        )),
        (Class::Cold, Class::Live) => Some(COLD_BUT_LIVE.reason(
            None,
            None,
            None,
            "declared cold, but nothing in it blocks the application".into(),
        )),
        _ => None,
    }
}
