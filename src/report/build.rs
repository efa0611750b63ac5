//! The report, built once from the outcome of a run and what was judged of
//! it; every format is rendered from what this builds.

use super::{
    AbortReport, BaselineInfo, ErrorReport, LockReport, PatchReport, Postgres, Report,
    RewriteReport, StatementReport, Status, WaiverReport, SCHEMA_VERSION,
};
use crate::estimate::{work, EstimateInfo, PatchEstimate};
use crate::measure::{PatchError, PatchRun};
use crate::outcome::{excerpt, Aborted, Outcome, PatchOutcome, PatchState, StatementFigures};
use crate::patch::Patch;
use crate::verdict::history::Compared;
use crate::verdict::{Budget, Classification, PatchVerdict, Policy, Reason, Verdict};

/// What was judged of one patch, beside its outcome.
#[derive(Debug, Clone, Default)]
pub struct Assessed {
    pub classification: Option<Classification>,
    /// Why it failed, when it did.
    pub error: Option<PatchError>,
    pub estimate: Option<PatchEstimate>,
    pub compared: Compared,
}

/// The report of a run.
pub fn build(
    outcome: &Outcome,
    assessed: &[Assessed],
    verdict: &Verdict,
    policy: &Policy,
    estimate: Option<EstimateInfo>,
) -> Report {
    let none = Assessed::default();
    let no_verdict = PatchVerdict::default();
    let patches = outcome
        .each()
        .enumerate()
        .map(|(i, (p, r))| {
            patch_report(
                p,
                r,
                assessed.get(i).unwrap_or(&none),
                verdict.patches.get(i).unwrap_or(&no_verdict),
            )
        })
        .collect();
    Report {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: outcome.started_at.clone(),
        postgres: Postgres {
            version: outcome.server.version.clone(),
            backend: outcome.server.backend.clone(),
            address: outcome.server.address.clone(),
            image: outcome.server.image.clone(),
            settings: outcome.server.settings.clone(),
        },
        baseline: BaselineInfo {
            source: outcome.baseline.source.clone(),
            load_seconds: outcome.baseline.load_seconds,
            cache: outcome.baseline.cache,
            first_statement_seconds: outcome.baseline.first_statement_seconds,
        },
        budget: Budget::from_policy(&policy.budget),
        policy: policy.clone(),
        verdict: verdict.kind,
        failures: verdict.failures.clone(),
        warnings: verdict.warnings.clone(),
        total_seconds: verdict.total_seconds,
        cold_seconds: verdict.cold_seconds,
        patches,
        notes: outcome.notes.clone(),
        aborted: outcome.aborted.as_ref().map(abort_report),
        timing: outcome.timing.clone(),
        estimate,
        layout: outcome.layout,
        probe: outcome.probe.clone(),
    }
}

fn abort_report(a: &Aborted) -> AbortReport {
    AbortReport {
        reason: a.reason,
        phase: a.phase.as_str().to_string(),
        patch: a.patch.clone(),
        line: a.line,
        statement: a.statement.clone(),
        ended_by: a.ended_by,
        message: a.message.clone(),
    }
}

/// One patch's report.
fn patch_report(p: &Patch, r: &PatchOutcome, a: &Assessed, v: &PatchVerdict) -> PatchReport {
    let reasons: &[Reason] = a.classification.as_ref().map_or(&[], |c| &c.reasons);
    let (status, error) = match &r.state {
        PatchState::NotRun(_) => (Status::Skipped, None),
        PatchState::Refused(why) => (
            Status::Failed,
            Some(ErrorReport {
                message: why.reason.clone(),
                sqlstate: None,
                line: why.line,
                statement_line: why.line,
                detail: None,
                hint: None,
                partially_applied: false,
                ended_by: None,
            }),
        ),
        PatchState::Applied(_) => match &a.error {
            Some(e) => (Status::Failed, Some(ErrorReport::from(e.clone()))),
            None if reasons.iter().any(|r| {
                r.rule == crate::verdict::RuleId::PredictedFailure
                    && r.severity == crate::verdict::Severity::Error
                    && r.counts()
            }) =>
            {
                (Status::PredictedFailure, None)
            }
            None => (Status::Ok, None),
        },
    };
    let run = r.run();
    PatchReport {
        path: p.file.path.display().to_string(),
        id: p.file.id.clone(),
        sha256: p.sha256.clone(),
        status,
        seconds: r.seconds,
        server_seconds: run.and_then(PatchRun::server_seconds),
        budget_seconds: v.budget_seconds,
        over_budget: v.over_budget,
        post_deploy: p.post_deploy,
        signoff: v.signoff.clone(),
        waivers: waiver_reports(p, reasons),
        failures: v.failures.clone(),
        warnings: v.warnings.clone(),
        timing: r.timing.clone(),
        history: a.compared.history.clone(),
        regression: a.compared.regression.clone(),
        estimate: a.estimate.clone(),
        classification: a.classification.as_ref().map(|c| c.class),
        declared: p.declared,
        reasons: reasons.to_vec(),
        error,
        failed_runs: r.failed_runs.clone(),
        commit_seconds: run.map_or(0.0, |run| run.commit_seconds),
        wall_seconds: r.wall_seconds,
        skipped_because: r.skipped_because().map(str::to_string),
        bookkeeping_seconds: run.map(|run| run.bookkeeping_seconds).filter(|s| *s > 0.0),
        probe: run.and_then(|run| run.probe.clone()),
        statements: run.map_or_else(Vec::new, |run| statement_reports(p, run, &r.statements)),
    }
}

fn statement_reports(
    p: &Patch,
    run: &PatchRun,
    figures: &[StatementFigures],
) -> Vec<StatementReport> {
    run.statements
        .iter()
        .enumerate()
        .map(|(j, sr)| {
            let st = &p.statements[sr.index];
            let f = figures.get(j);
            StatementReport {
                line: st.line,
                sql: excerpt(&st.sql),
                seconds: f.map_or(sr.seconds, |f| f.seconds),
                kind: st.analysis.kind.clone(),
                rows_affected: sr.rows_affected,
                outside_transaction: sr.outside_transaction,
                locks: sr
                    .locks
                    .iter()
                    .map(|l| LockReport {
                        relation: l.relation.clone(),
                        mode: l.mode,
                        held_seconds: l.held_seconds,
                        waited_seconds: l.waited_seconds,
                    })
                    .collect(),
                stats: f.and_then(|f| f.stats.clone()),
                work: work::work_of(p, run, sr),
                server_seconds: sr.server_seconds,
                probe: run.probe.as_ref().and_then(|pr| {
                    pr.statements
                        .iter()
                        .find(|s| s.statement_line == st.line)
                        .cloned()
                }),
                rewrites: sr
                    .rewrites
                    .iter()
                    .map(|rw| RewriteReport {
                        relation: rw.relation.clone(),
                        kind: rw.kind.to_string(),
                        rows: rw.rows,
                        bytes: rw.bytes,
                    })
                    .collect(),
            }
        })
        .collect()
}

fn waiver_reports(p: &Patch, reasons: &[Reason]) -> Vec<WaiverReport> {
    p.waivers
        .iter()
        .map(|w| WaiverReport {
            rule: w.rule,
            line: w.line,
            because: w.because.clone(),
            used: reasons
                .iter()
                .any(|r| r.rule == w.rule && r.statement_line.is_some_and(|l| w.covers(l))),
        })
        .collect()
}
