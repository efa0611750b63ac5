//! Several runs of the same patches at one scale, merged into one result
//! per patch: the trace of the first timed run (of the cold ones, when there
//! are), and statistics over every run where the patch applied. A failure
//! in any run, warm-up or timed, at any scale, is kept ([`FailureLog`]) and
//! fails the patch.

use crate::measure::{stats, PatchError, PatchRun};
use crate::outcome::{CacheMode, FailedRun, PatchOutcome, PatchTiming};
use crate::patch::Patch;

use super::TimingOptions;

/// One timed run, reduced to its timings: per patch, its seconds and its
/// statements' seconds (by downtime's clock, and by the server's when it has
/// one) when it applied without failing.
struct Sample {
    mode: CacheMode,
    patches: Vec<Option<(f64, Vec<StatementTimes>)>>,
}

/// A statement's seconds in one run: downtime's clock, the server's.
type StatementTimes = (f64, Option<f64>);

impl Sample {
    fn of(mode: CacheMode, results: &[PatchOutcome]) -> Sample {
        Sample {
            mode,
            patches: results
                .iter()
                .map(|r| {
                    r.ok().then(|| {
                        let server = |j: usize| {
                            r.run()
                                .and_then(|run| run.statements.get(j))
                                .and_then(|s| s.server_seconds)
                        };
                        let statements = r
                            .statements
                            .iter()
                            .enumerate()
                            .map(|(j, s)| (s.seconds, server(j)))
                            .collect();
                        (r.seconds, statements)
                    })
                })
                .collect(),
        }
    }
}

/// The runs of one scale, as they come in.
pub(super) struct ScaleRuns {
    /// The cache mode whose figures decide.
    decide: CacheMode,
    /// The first timed run in the deciding mode, kept whole.
    base: Option<Vec<PatchOutcome>>,
    samples: Vec<Sample>,
    /// The latest run, kept whole (a stopped run reports it).
    pub last: Vec<PatchOutcome>,
}

impl ScaleRuns {
    pub fn new(modes: &[CacheMode]) -> ScaleRuns {
        ScaleRuns {
            decide: if modes.contains(&CacheMode::Cold) {
                CacheMode::Cold
            } else {
                CacheMode::Warm
            },
            base: None,
            samples: Vec::new(),
            last: Vec::new(),
        }
    }

    /// Add a run; `timed` is false for warm-up runs.
    pub fn add(&mut self, mode: CacheMode, timed: bool, results: Vec<PatchOutcome>) {
        if timed {
            self.samples.push(Sample::of(mode, &results));
            if mode == self.decide && self.base.is_none() {
                self.base = Some(results.clone());
            }
        }
        self.last = results;
    }

    /// One result per patch.
    pub fn merge(self, t: &TimingOptions) -> Vec<PatchOutcome> {
        let Some(mut base) = self.base else {
            return self.last;
        };
        if self.samples.len() == 1 {
            return base;
        }
        for (i, p) in base.iter_mut().enumerate() {
            let of_mode = |mode: CacheMode| {
                self.samples
                    .iter()
                    .filter(move |s| s.mode == mode)
                    .filter_map(move |s| s.patches.get(i).and_then(Option::as_ref))
            };
            let seconds = |mode| of_mode(mode).map(|(s, _)| *s).collect::<Vec<_>>();
            let timing = PatchTiming {
                warm: stats::summarise(&seconds(CacheMode::Warm)),
                cold: stats::summarise(&seconds(CacheMode::Cold)),
            };
            let decided = match self.decide {
                CacheMode::Cold => timing.cold.as_ref(),
                CacheMode::Warm => timing.warm.as_ref(),
            };
            if let Some(st) = decided {
                p.seconds = st.get(t.statistic);
            }
            let mut server_medians = Vec::new();
            for (j, s) in p.statements.iter_mut().enumerate() {
                let per_run: Vec<StatementTimes> = of_mode(self.decide)
                    .filter_map(|(_, statements)| statements.get(j).copied())
                    .collect();
                let client: Vec<f64> = per_run.iter().map(|(c, _)| *c).collect();
                s.stats = stats::summarise(&client);
                if let Some(st) = &s.stats {
                    s.seconds = st.median;
                }
                // The server's time over the same runs, so that it stands
                // beside the median it is compared with.
                let server: Option<Vec<f64>> = per_run.iter().map(|(_, sv)| *sv).collect();
                server_medians.push(
                    server
                        .and_then(|v| stats::summarise(&v))
                        .map(|st| st.median),
                );
            }
            if let Some(run) = p.run_mut() {
                for (sr, median) in run.statements.iter_mut().zip(server_medians) {
                    if median.is_some() {
                        sr.server_seconds = median;
                    }
                }
            }
            p.timing = Some(timing);
        }
        base
    }
}

/// Which pass over the patches this was.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunNo {
    pub mode: CacheMode,
    /// From 1, among the warm-ups or among the timed runs.
    pub run: usize,
    /// How many warm-ups, or how many timed runs.
    pub runs: usize,
    pub warmup: bool,
    /// Fraction of the staging rows, when not full size.
    pub scale: Option<f64>,
}

/// Every run in which a patch failed, in the order the runs happened.
#[derive(Debug, Default)]
pub(super) struct FailureLog {
    per_patch: Vec<Vec<FailedRun>>,
    passes: usize,
}

impl FailureLog {
    /// Note the patches that failed in one pass.
    pub fn record(&mut self, no: RunNo, patches: &[Patch], results: &[PatchOutcome]) {
        self.passes += 1;
        self.per_patch.resize_with(patches.len(), Vec::new);
        for ((p, r), log) in patches.iter().zip(results).zip(&mut self.per_patch) {
            let Some(error) = r.run().and_then(|run| failure_of(p, run)) else {
                continue;
            };
            log.push(FailedRun {
                run: no.run,
                runs: no.runs,
                warmup: no.warmup,
                cache: no.mode,
                scale: no.scale,
                error,
            });
        }
    }

    /// Give each patch the runs it failed in, when there was more than one
    /// pass (a single run's failure is its own error already).
    pub fn attach(self, results: &mut [PatchOutcome]) {
        if self.passes < 2 {
            return;
        }
        for (r, failed) in results.iter_mut().zip(self.per_patch) {
            r.failed_runs = failed;
        }
    }
}

/// Why a patch failed in a run: its error, or the INVALID index it left.
fn failure_of(p: &Patch, run: &PatchRun) -> Option<PatchError> {
    if let Some(e) = &run.error {
        return Some(e.clone());
    }
    if run.invalid_indexes.is_empty() {
        return None;
    }
    let line = p.statements.last().map_or(1, |s| s.line);
    Some(PatchError {
        message: format!(
            "left the INVALID index {} behind",
            run.invalid_indexes.join(", ")
        ),
        sqlstate: None,
        line,
        statement_line: line,
        detail: None,
        hint: None,
        partially_applied: false,
        ended_by: None,
    })
}
