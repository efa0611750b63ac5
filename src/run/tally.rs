//! What the passes of a run add up to, whichever way their copies are
//! made: each pass's results kept by scale and cache mode, every failure
//! with the pass it happened in, and at the end the figures merged into
//! the outcome (or, for a stopped run, the pass it stopped in).

use crate::outcome::{CacheMode, Outcome, PatchOutcome, RunTiming, Scaled};
use crate::patch::Patch;
use crate::ui;

use super::merge::{FailureLog, RunNo, ScaleRuns};
use super::RunPlan;

/// Which pass this is: its cache mode, its number among all passes of one
/// scale (warm-ups first), and its scale's index.
#[derive(Debug, Clone, Copy)]
pub(super) struct PassNo {
    pub mode: CacheMode,
    pub r: usize,
    pub k: usize,
}

/// The passes so far.
pub(super) struct Tally {
    runs: Vec<ScaleRuns>,
    failures: FailureLog,
    /// The scale of the latest pass.
    last_scale: usize,
}

impl Tally {
    /// No passes yet, for the scales and cache modes of `plan`.
    pub fn new(plan: &RunPlan) -> Tally {
        let modes = plan.timing.cache.modes();
        Tally {
            runs: plan
                .scales()
                .iter()
                .map(|_| ScaleRuns::new(modes))
                .collect(),
            failures: FailureLog::default(),
            last_scale: 0,
        }
    }

    /// Keep one pass's results.
    pub fn add(
        &mut self,
        plan: &RunPlan,
        no: PassNo,
        patches: &[Patch],
        results: Vec<PatchOutcome>,
    ) {
        let t = &plan.timing;
        let warmup = no.r < t.warmup;
        let scale = plan.scales()[no.k];
        let run = RunNo {
            mode: no.mode,
            run: if warmup {
                no.r + 1
            } else {
                no.r - t.warmup + 1
            },
            runs: if warmup { t.warmup } else { t.runs },
            warmup,
            scale: (scale < 1.0).then_some(scale),
        };
        self.failures.record(run, patches, &results);
        self.runs[no.k].add(no.mode, !warmup, results);
        self.last_scale = no.k;
    }

    /// The last patch the latest pass applied, if any did.
    pub fn last_applied(&self, patches: &[Patch]) -> Option<String> {
        last_applied(&self.runs[self.last_scale].last, patches)
    }

    /// The last patch the latest pass at scale `k` applied, if any did.
    pub fn last_applied_at(&self, k: usize, patches: &[Patch]) -> Option<String> {
        last_applied(&self.runs[k].last, patches)
    }

    /// Put the figures into the outcome: merged by scale (the largest
    /// scale's are the outcome's own), or the pass a stopped run stopped in.
    pub fn finish(mut self, plan: &RunPlan, timing: RunTiming, outcome: &mut Outcome) {
        let t = &plan.timing;
        ui::progress_finish();
        if outcome.aborted.is_some() {
            outcome.results = std::mem::take(&mut self.runs[self.last_scale].last);
        } else {
            let mut scaled: Vec<Scaled> = plan
                .scales()
                .iter()
                .zip(self.runs)
                .map(|(&scale, r)| Scaled {
                    scale,
                    results: r.merge(t),
                })
                .collect();
            scaled.sort_by(|a, b| a.scale.total_cmp(&b.scale));
            outcome.results = scaled.last().map(|s| s.results.clone()).unwrap_or_default();
            outcome.scales = scaled;
        }
        // A failure in any run, at any scale, stays with its patch.
        self.failures.attach(&mut outcome.results);
        if t.runs > 1 || t.cache.modes() != [CacheMode::Warm] {
            outcome.timing = Some(timing);
        }
    }
}

/// How the passes are timed, before any ran.
pub(super) fn run_timing(plan: &RunPlan) -> RunTiming {
    let t = &plan.timing;
    RunTiming {
        runs: t.runs,
        warmup: t.warmup,
        statistic: t.statistic,
        cache: t.cache.modes().to_vec(),
        server_restarts: 0,
        os_cache_dropped: None,
    }
}

/// The last patch a pass applied, if any did.
fn last_applied(results: &[PatchOutcome], patches: &[Patch]) -> Option<String> {
    patches
        .iter()
        .zip(results)
        .rfind(|(_, r)| r.run().is_some())
        .map(|(p, _)| p.file.id.clone())
}
