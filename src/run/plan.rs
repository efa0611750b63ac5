//! What a run does, resolved once from the command line and downtime.toml:
//! which patches, which baseline, which staging server, how often.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::measure::stats::Statistic;
use crate::outcome::CacheMode;
use crate::patch::{self, Layout, Migration, Patch};
use crate::staging::command::CommandOptions;
use crate::staging::docker::DockerOptions;
use crate::staging::embedded::EmbeddedOptions;
use crate::staging::server::ServerOptions;
use crate::staging::{source::Source, BackendKind, Baseline};
use crate::ui;

/// Where patches are looked for when no path is given.
pub const DEFAULT_PATCH_DIR: &str = "patches";

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub paths: Vec<PathBuf>,
    /// Explicit baseline; when `None`, a `baseline.sql` beside the patches is used.
    pub baseline: Option<PathBuf>,
    /// Start from an empty database even if a baseline.sql is found.
    pub no_baseline: bool,
    /// Copy an existing database (read-only) as the baseline.
    pub source: Option<Source>,
    /// No statement may run longer than this.
    pub statement_cap: Duration,
    /// Which staging server: a local cluster, a container, the user's
    /// server, or a provisioner's clones.
    pub backend: BackendKind,
    pub embedded: EmbeddedOptions,
    pub docker: DockerOptions,
    /// The server backend's server (`--url`).
    pub server: Option<ServerOptions>,
    /// The command backend's commands (`[staging.command]`).
    pub command: Option<CommandOptions>,
    /// Go on with later patches after one fails (it is rolled back).
    pub keep_going: bool,
    /// Apply patches only up to and including this one.
    pub until: Option<PathBuf>,
    /// Stop the whole run after this long, cancelling what runs.
    pub max_run_seconds: Option<f64>,
    /// Repeated runs and cache modes.
    pub timing: TimingOptions,
    /// The baseline cache directory (None: no cache).
    pub cache: Option<PathBuf>,
    /// Fractions of the staging data to measure at (empty: full size only).
    pub scales: Vec<f64>,
    /// Read the patches as this layout's tool does (None: as their names show).
    pub layout: Option<Layout>,
    /// Apply every migration, also those the baseline's bookkeeping records.
    pub all: bool,
    /// Run simulated application traffic while each patch applies.
    pub probe: Option<crate::measure::probe::ProbeOptions>,
    /// Measure what work costs on the server (once; cached), to judge work
    /// on tables staging holds no rows of at production's size.
    pub measure_costs: bool,
    /// What resolving the options decided that the report records (a
    /// setting not applied, say).
    pub notes: Vec<String>,
}

/// Which caches a timed run starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheChoice {
    /// As left by loading the baseline and earlier runs.
    Warm,
    /// Server restarted and OS page cache dropped before each timed run.
    Cold,
    /// Both, reported side by side; the cold figures decide.
    Both,
}

impl CacheChoice {
    pub fn modes(self) -> &'static [CacheMode] {
        match self {
            CacheChoice::Warm => &[CacheMode::Warm],
            CacheChoice::Cold => &[CacheMode::Cold],
            CacheChoice::Both => &[CacheMode::Warm, CacheMode::Cold],
        }
    }
}

/// How often patches are timed and which figure decides.
#[derive(Debug, Clone)]
pub struct TimingOptions {
    pub runs: usize,
    pub warmup: usize,
    pub statistic: Statistic,
    pub cache: CacheChoice,
}

impl Default for TimingOptions {
    fn default() -> Self {
        TimingOptions {
            runs: 1,
            warmup: 0,
            statistic: Statistic::Median,
            cache: CacheChoice::Warm,
        }
    }
}

impl RunPlan {
    /// The scales measured: the plan's, or full size only.
    pub fn scales(&self) -> Vec<f64> {
        if self.scales.is_empty() {
            vec![1.0]
        } else {
            self.scales.clone()
        }
    }

    /// The baseline the plan names, or `baseline.sql` beside the patches.
    pub fn find_baseline(&self) -> Result<Baseline> {
        if let Some(source) = &self.source {
            return Ok(Baseline::Url(source.clone()));
        }
        if let Some(path) = &self.baseline {
            return Baseline::from_path(path);
        }
        if self.no_baseline {
            return Ok(Baseline::Empty);
        }
        for dir in self.paths.iter().filter(|p| p.is_dir()) {
            let candidate = dir.join("baseline.sql");
            // Anything by that name is the baseline: a pipe or a link to a
            // device is an error, not passed over.
            if std::fs::symlink_metadata(&candidate).is_ok() {
                crate::fsutil::check_regular(&candidate)?;
                ui::note(&format!(
                    "using baseline {} (--baseline FILE to choose another, --no-baseline for an empty database)",
                    candidate.display()
                ));
                return Ok(Baseline::Script(candidate));
            }
        }
        ui::note(
            "no baseline: patches are applied to an empty database (--baseline FILE to load one)",
        );
        Ok(Baseline::Empty)
    }
}

/// The patches of a run, read as their layout's tool reads them.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub patches: Vec<Patch>,
    pub notes: Vec<String>,
    pub layout: Option<Layout>,
    /// Why this layout.
    pub reason: String,
    /// Other layouts the same files fit (not when the layout was chosen by hand).
    pub alternatives: Vec<(Layout, Vec<Migration>)>,
}

/// Discover and load the patches, refusing bad input before anything starts.
pub fn load_patches(paths: &[PathBuf], exclude: &[PathBuf]) -> Result<(Vec<Patch>, Vec<String>)> {
    let loaded = load(paths, exclude, None)?;
    Ok((loaded.patches, loaded.notes))
}

/// Discover and load the patches as `layout`'s tool reads them (or as
/// their names show), refusing bad input before anything starts.
pub fn load(paths: &[PathBuf], exclude: &[PathBuf], layout: Option<Layout>) -> Result<Loaded> {
    let found = patch::discover_with(paths, exclude, layout)?;
    if found.patches.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::Usage(format!(
            "no patches found in {}; accepted names: {}",
            shown.join(", "),
            patch::discover::ACCEPTED_PATTERNS
        )));
    }
    let patches = found
        .patches
        .into_iter()
        .zip(found.migrations)
        .map(|(file, tool)| patch::load_with(file, tool))
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded {
        patches,
        notes: found.notes,
        layout: found.layout,
        reason: found.reason,
        alternatives: found.alternatives,
    })
}
