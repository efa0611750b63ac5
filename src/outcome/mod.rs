//! The outcome of a run: what was applied, measured and traced, in domain
//! terms. It is made once, by the run module, and only read downstream: the
//! verdict, the estimate and the report each take it as it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cancel::{Abort, Ended};
use crate::measure::stats::{Statistic, Stats};
use crate::measure::{PatchError, PatchRun};
use crate::patch::{Patch, Refusal};
use crate::staging::docker::ImageInfo;

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The layout the patches were read as (None when there were none).
    pub layout: Option<crate::patch::Layout>,
    pub server: Server,
    pub baseline: BaselineOutcome,
    /// Files passed over during discovery and other context.
    pub notes: Vec<String>,
    /// The patches, in the order they apply.
    pub patches: Vec<Patch>,
    /// One per patch, in the same order: the figures of the largest scale
    /// measured, or of the run that was stopped.
    pub results: Vec<PatchOutcome>,
    /// Each scale's merged runs, smallest scale first (empty when the run
    /// was stopped or refused).
    pub scales: Vec<Scaled>,
    /// Repeated runs: how many, which statistic decides, which caches. None
    /// for a single warm run.
    pub timing: Option<RunTiming>,
    /// Set when the run stopped early.
    pub aborted: Option<Aborted>,
    /// The simulated application traffic, when it ran (`--probe`).
    pub probe: Option<crate::measure::probe::ProbeInfo>,
    /// What work costs on this server, when production's sizes are judged
    /// (`--prod-stats`).
    pub costs: Option<crate::measure::calibrate::Costs>,
}

impl Outcome {
    /// The patch refused before anything ran, with why.
    pub fn refused(&self) -> Option<(&Patch, &Refusal)> {
        self.patches
            .iter()
            .zip(&self.results)
            .find_map(|(p, r)| match &r.state {
                PatchState::Refused(why) => Some((p, why)),
                _ => None,
            })
    }

    /// Each patch with what happened to it.
    pub fn each(&self) -> impl Iterator<Item = (&Patch, &PatchOutcome)> {
        self.patches.iter().zip(&self.results)
    }
}

/// The staging server, as recorded in reports.
#[derive(Debug, Clone, Default)]
pub struct Server {
    /// Empty when the server never started.
    pub version: String,
    /// Where the server is, when it is one the user names (`--backend
    /// server`): `host:port/dbname`, nothing secret.
    pub address: Option<String>,
    /// `embedded` or `docker`.
    pub backend: String,
    pub image: Option<ImageInfo>,
    /// Settings that affect timing, with units.
    pub settings: BTreeMap<String, String>,
}

/// How the baseline got into the template database.
#[derive(Debug, Clone)]
pub struct BaselineOutcome {
    pub source: String,
    pub load_seconds: f64,
    pub cache: CacheState,
    /// From the start of the run to the first patch being applied.
    pub first_statement_seconds: f64,
}

/// The baseline cache in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheState {
    /// Not used (`--no-cache`, or a backend without one).
    Off,
    /// Loaded, and stored for the next run.
    Miss,
    /// Started from the cached, loaded cluster.
    Hit,
}

impl CacheState {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheState::Off => "off",
            CacheState::Miss => "miss",
            CacheState::Hit => "hit",
        }
    }
}

/// What happened to one patch.
#[derive(Debug, Clone)]
pub enum PatchState {
    /// Not applied, and why.
    NotRun(String),
    /// Refused before anything ran.
    Refused(Refusal),
    /// Applied (successfully or not): the run whose trace classifies it.
    Applied(Box<PatchRun>),
}

/// One patch's result, with its figures over the runs.
#[derive(Debug, Clone)]
pub struct PatchOutcome {
    pub state: PatchState,
    /// The deciding figure: the run's time, or the statistic over the runs.
    pub seconds: f64,
    /// Wall-clock seconds downtime spent on the patch, tracing included.
    pub wall_seconds: f64,
    /// Statistics over repeated runs (None for a single run).
    pub timing: Option<PatchTiming>,
    /// One per statement of the run, in the order they ran.
    pub statements: Vec<StatementFigures>,
    /// Over repeated runs: every run in which the patch failed (warm-ups
    /// included), in the order they ran. Empty for a single run, whose
    /// failure is the run's own error.
    pub failed_runs: Vec<FailedRun>,
}

impl PatchOutcome {
    /// A patch that did not run.
    pub fn not_run(because: impl Into<String>) -> PatchOutcome {
        PatchOutcome::with_state(PatchState::NotRun(because.into()))
    }

    pub fn with_state(state: PatchState) -> PatchOutcome {
        PatchOutcome {
            state,
            seconds: 0.0,
            wall_seconds: 0.0,
            timing: None,
            statements: Vec::new(),
            failed_runs: Vec::new(),
        }
    }

    /// A patch applied once.
    pub fn applied(run: PatchRun, wall_seconds: f64) -> PatchOutcome {
        let statements = run
            .statements
            .iter()
            .map(|s| StatementFigures {
                seconds: s.seconds,
                stats: None,
            })
            .collect();
        PatchOutcome {
            seconds: run.seconds(),
            wall_seconds,
            timing: None,
            statements,
            failed_runs: Vec::new(),
            state: PatchState::Applied(Box::new(run)),
        }
    }

    /// The run, when the patch was applied.
    pub fn run(&self) -> Option<&PatchRun> {
        match &self.state {
            PatchState::Applied(run) => Some(run),
            _ => None,
        }
    }

    /// The run, to merge figures of other runs into.
    pub fn run_mut(&mut self) -> Option<&mut PatchRun> {
        match &mut self.state {
            PatchState::Applied(run) => Some(run),
            _ => None,
        }
    }

    /// Applied without failing, in every run.
    pub fn ok(&self) -> bool {
        self.run().is_some_and(|r| !r.failed()) && self.failed_runs.is_empty()
    }

    /// Why it did not run.
    pub fn skipped_because(&self) -> Option<&str> {
        match &self.state {
            PatchState::NotRun(why) => Some(why),
            _ => None,
        }
    }
}

/// One run, among repeated runs, in which a patch failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRun {
    /// Which run: counted from 1 among the timed runs, or among the
    /// warm-ups when `warmup`.
    pub run: usize,
    /// How many timed runs (or warm-ups) there were.
    pub runs: usize,
    pub warmup: bool,
    pub cache: CacheMode,
    /// Fraction of the staging rows, when not full size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Why it failed in that run.
    pub error: PatchError,
}

impl FailedRun {
    /// "run 2 of 3", "warm-up 1 of 1, cold cache", "run 1 of 5 at 25 %".
    pub fn describe(&self) -> String {
        let mut s = if self.warmup {
            format!("warm-up {} of {}", self.run, self.runs)
        } else {
            format!("run {} of {}", self.run, self.runs)
        };
        if self.cache == CacheMode::Cold {
            s.push_str(", cold cache");
        }
        if let Some(scale) = self.scale {
            s.push_str(&format!(" at {:.0} %", scale * 100.0));
        }
        s
    }
}

/// A statement's time: one run's, or the median over the runs with the
/// statistics beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementFigures {
    pub seconds: f64,
    pub stats: Option<Stats>,
}

/// The merged runs at one scale of the staging data.
#[derive(Debug, Clone)]
pub struct Scaled {
    /// Fraction of the staging rows (1 for full size).
    pub scale: f64,
    /// One per patch, in order.
    pub results: Vec<PatchOutcome>,
}

/// Whether a timed run started with warm or emptied caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    Warm,
    Cold,
}

/// How often patches were timed, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunTiming {
    pub runs: usize,
    pub warmup: usize,
    /// The figure that is a patch's `seconds` and decides its budget.
    pub statistic: Statistic,
    pub cache: Vec<CacheMode>,
    /// How often the server was restarted to empty its buffers.
    pub server_restarts: usize,
    /// Whether the OS page cache could be dropped (null: not tried).
    pub os_cache_dropped: Option<bool>,
}

/// A patch's timings over the runs, per cache mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchTiming {
    pub warm: Option<Stats>,
    pub cold: Option<Stats>,
}

/// What the run was doing when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Scaling,
    Applying,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting the server and loading the baseline",
            Phase::Scaling => "scaling the staging copies",
            Phase::Applying => "applying patches",
        }
    }
}

/// Where a run stopped early.
#[derive(Debug, Clone)]
pub struct Aborted {
    pub reason: Abort,
    pub phase: Phase,
    /// The patch and statement that were running, if any.
    pub patch: Option<String>,
    pub line: Option<usize>,
    pub statement: Option<String>,
    /// How the running statement was ended, when downtime stopped one.
    pub ended_by: Option<Ended>,
    /// What failed (a broken server, an infrastructure failure).
    pub message: Option<String>,
}

impl Aborted {
    pub fn in_phase(reason: Abort, phase: Phase) -> Aborted {
        Aborted {
            reason,
            phase,
            patch: None,
            line: None,
            statement: None,
            ended_by: None,
            message: None,
        }
    }

    /// The staging server or a connection to it failed in `phase`: `error`.
    pub fn infrastructure(phase: Phase, error: &crate::error::Error) -> Aborted {
        Aborted {
            message: Some(error.to_string()),
            ..Aborted::in_phase(Abort::Infrastructure, phase)
        }
    }

    /// ... while `patch` was being applied (at `statement`, if one ran).
    pub fn at(mut self, patch: &Patch, statement: Option<&crate::patch::Statement>) -> Aborted {
        self.patch = Some(patch.file.id.clone());
        self.line = statement.map(|s| s.line);
        self.statement = statement.map(|s| excerpt(&s.sql));
        self
    }
}

/// Shorten SQL to the excerpt reports keep, on a character boundary.
pub fn excerpt(sql: &str) -> String {
    match sql.char_indices().nth(SQL_EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &sql[..i]),
        None => sql.to_string(),
    }
}

/// Longest statement text kept in a report.
pub const SQL_EXCERPT_CHARS: usize = 200;
