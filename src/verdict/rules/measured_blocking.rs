//! `measured-blocking`: the probe's application queries were blocked by
//! the patch for longer than the threshold, though nothing the patch did
//! was known to block (a row it wrote and kept locked, a lock queue behind
//! a long reader, a lock the inference does not see).

use super::{Measured, Reason, RuleInfo, Severity};
use crate::measure::probe::PatchProbe;
use crate::measure::PatchRun;
use crate::rule_id::RuleId;

pub const INFO: RuleInfo = RuleInfo {
    id: RuleId::MeasuredBlocking,
    severity: Severity::Cold,
    why: "With --probe, simulated application sessions query every table with rows while the patch applies, and downtime asks the server which lock each slow query waits on and who holds it. A patch the rules found live, yet whose locks kept application queries waiting longer than --probe-threshold (default 50 ms), blocks the application in fact: rows it updated and kept locked in a long transaction, a lock queued behind a long-running query (--probe-long-query) that every later query then queues behind, or a lock taken in a way no rule models. The measurement wins, with its numbers.",
    summary: "application queries sent while the patch applied (--probe) waited on its locks longer than the probe threshold",
    recipe: "keep what blocks short: commit row changes in small batches, set lock_timeout (and retry) before DDL, or move the blocking step to a downtime window",
    measured: Measured::Stalls,
};

/// The reason, when the probe saw queries blocked behind the patch.
pub fn check(run: &PatchRun) -> Option<Reason> {
    let probe = run.probe.as_ref()?;
    if probe.blocked_queries == 0 {
        return None;
    }
    let worst = probe.by_relation.first()?;
    let wait = worst
        .reads_blocked_seconds
        .max(worst.writes_blocked_seconds);
    let row = worst.waited_for.iter().any(|w| w == "row");
    let behind = match worst.lock_mode {
        Some(m) if !row => format!("behind its {m}"),
        _ => "behind rows it had written or locked".to_string(),
    };
    let queued = if probe.queued_queries > 0 {
        format!(
            ", {} of them waiting for a session while every session was blocked",
            probe.queued_queries
        )
    } else {
        String::new()
    };
    let mut message = format!(
        "application queries waited up to {wait:.2} s on {} {behind} ({} of {} queries over the {:.3} s threshold{queued}{})",
        worst.relation,
        probe.blocked_queries,
        probe.queries,
        probe.threshold_seconds,
        at_line(worst.statement_line),
    );
    if let Some(q) = &probe.long_query {
        message.push_str(&format!("; {}", queue(q)));
    }
    Some(INFO.reason(
        worst.statement_line,
        Some(&worst.relation),
        worst.lock_mode,
        message,
    ))
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!("; statement at line {l}"))
        .unwrap_or_default()
}

/// The lock queue behind a statement that waited for the long reader, and
/// what `lock_timeout` does to it.
pub fn queue(q: &crate::measure::probe::LongQueryWait) -> String {
    let bound = if q.lock_timeout.trim() == "0" {
        "SET lock_timeout bounds this: the statement gives up after that long (retry it) and the queue drains".to_string()
    } else {
        format!(
            "lock_timeout = {} bounded the wait (the statement gives up then; retry it)",
            q.lock_timeout
        )
    };
    format!(
        "the statement at line {} waited {:.1} s for a long-running reader on {}; {} application queries waited behind it, up to {:.1} s. {bound}",
        q.statement_line,
        q.waited_seconds,
        q.tables.join(", "),
        q.queued_queries,
        q.max_queued_wait_seconds,
    )
}

/// Says what the probe saw of a cold patch, for reports: a cold patch
/// keeps its class whatever was observed (staging data is small).
pub fn observed(probe: &PatchProbe) -> String {
    if probe.blocked_queries == 0 {
        format!(
            "no application query waited past {:.3} s ({} sent, worst {:.3} s); staging data is small, so this does not make it live",
            probe.threshold_seconds, probe.queries, probe.max_wait_seconds
        )
    } else {
        format!(
            "{} of {} application queries waited past {:.3} s, up to {:.2} s",
            probe.blocked_queries, probe.queries, probe.threshold_seconds, probe.max_wait_seconds
        )
    }
}
