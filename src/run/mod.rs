//! A run from start to end: find the patches and the baseline, refuse what
//! cannot be applied, start the staging server, follow the schedule of runs,
//! and hand back the [`Outcome`]. It judges nothing: the verdict and the
//! estimate read the outcome afterwards.

mod books;
mod merge;
mod pass;
mod plan;
mod schedule;

use std::path::PathBuf;
use std::time::Instant;

pub use plan::{
    load, load_patches, CacheChoice, Loaded, RunPlan, TimingOptions, DEFAULT_PATCH_DIR,
};

use crate::cancel::{Abort, Cancel};
use crate::error::{Error, Result};
use crate::outcome::{
    Aborted, BaselineOutcome, CacheState, Outcome, PatchOutcome, PatchState, Phase, Server,
};
use crate::patch::discover::same_file;
use crate::patch::Patch;
use crate::staging::cache::{self, Cache};
use crate::staging::docker::Docker;
use crate::staging::embedded::{self, Embedded};
use crate::staging::{Backend, BackendKind, Baseline};
use crate::ui;

/// Run the plan and return what happened. `Err` is an input or
/// infrastructure error; a stopped run is an outcome that says so.
pub async fn execute(plan: &RunPlan, cancel: &Cancel) -> Result<Outcome> {
    let run_started = Instant::now();
    let started_at = crate::time::now_rfc3339();
    let cap = match plan.max_run_seconds {
        Some(s) => Some(
            crate::limits::duration(s)
                .map_err(|e| Error::Usage(format!("--max-run-seconds: {e}")))?,
        ),
        None => None,
    };
    // A cap too far away to be an instant is no cap.
    let cancel = cancel
        .clone()
        .with_deadline(cap.and_then(|d| run_started.checked_add(d)));
    let baseline = plan.find_baseline()?;
    let (mut patches, notes, layouts) = patches(plan, &baseline)?;
    let mut outcome = Outcome {
        layout: layouts.layout,
        started_at,
        server: Server {
            backend: match plan.backend {
                BackendKind::Local => "embedded".into(),
                BackendKind::Docker => "docker".into(),
            },
            ..Server::default()
        },
        baseline: BaselineOutcome {
            source: baseline.describe(),
            load_seconds: 0.0,
            cache: CacheState::Off,
            first_statement_seconds: 0.0,
        },
        notes,
        patches: Vec::new(),
        results: Vec::new(),
        scales: Vec::new(),
        timing: None,
        aborted: None,
        probe: None,
    };
    // A patch downtime cannot apply is refused before anything runs.
    if let Some(refused) = patches.iter().find(|p| p.refusal.is_some()) {
        outcome.results = refusal_results(&patches, refused);
        outcome.patches = patches;
        return Ok(outcome);
    }
    let result = start_and_measure(
        plan,
        &baseline,
        &mut patches,
        &layouts,
        &mut outcome,
        &cancel,
        run_started,
    );
    match result.await {
        Ok(()) => {}
        Err(Error::Aborted(reason)) => {
            // Stopped before patches ran: every patch is reported as not run.
            let phase = if outcome.baseline.load_seconds == 0.0 {
                Phase::Starting
            } else {
                Phase::Applying
            };
            outcome
                .aborted
                .get_or_insert(Aborted::in_phase(reason, phase));
        }
        Err(e) => return Err(e),
    }
    let why = match outcome.aborted.as_ref().map(|a| a.reason) {
        Some(reason @ (Abort::Broken | Abort::Infrastructure)) => {
            format!("not run: the run was stopped by {reason}")
        }
        _ => "not run: the run was aborted".to_string(),
    };
    while outcome.results.len() < patches.len() {
        outcome.results.push(PatchOutcome::not_run(why.clone()));
    }
    outcome.patches = patches;
    Ok(outcome)
}

/// The patches the plan names, up to `until`, with discovery notes and
/// their layout.
fn patches(
    plan: &RunPlan,
    baseline: &Baseline,
) -> Result<(Vec<Patch>, Vec<String>, books::Layouts)> {
    let exclude: Vec<PathBuf> = match baseline {
        Baseline::Script(p) | Baseline::Archive(p) => vec![p.clone()],
        Baseline::Empty | Baseline::Url(_) => Vec::new(),
    };
    let loaded = load(&plan.paths, &exclude, plan.layout)?;
    let (mut patches, notes) = (loaded.patches, loaded.notes);
    if let Some(l) = loaded.layout {
        ui::note(&format!("layout {} ({})", l.name(), loaded.reason));
    }
    for n in &notes {
        ui::note(n);
    }
    let mut layouts = books::Layouts {
        layout: loaded.layout,
        forced: plan.layout.is_some(),
        alternatives: loaded.alternatives,
    };
    if let Some(until) = &plan.until {
        let Some(pos) = patches.iter().position(|p| same_file(&p.file.path, until)) else {
            return Err(Error::input(
                until,
                "not among the patches found (give the folder it is in, or set `patches` in downtime.toml)",
            ));
        };
        patches.truncate(pos + 1);
        for (_, tools) in &mut layouts.alternatives {
            tools.truncate(pos + 1);
        }
    }
    Ok((patches, notes, layouts))
}

/// The refused patch, and every other one not run because of it.
fn refusal_results(patches: &[Patch], refused: &Patch) -> Vec<PatchOutcome> {
    patches
        .iter()
        .map(|p| match (&p.refusal, std::ptr::eq(p, refused)) {
            (Some(why), true) => PatchOutcome::with_state(PatchState::Refused(why.clone())),
            _ => PatchOutcome::not_run(format!("not run: {} was refused", refused.file.id)),
        })
        .collect()
}

/// Start the staging server (from the baseline cache when it has the
/// baseline), measure, and stop the server again.
async fn start_and_measure(
    plan: &RunPlan,
    baseline: &Baseline,
    patches: &mut [Patch],
    layouts: &books::Layouts,
    outcome: &mut Outcome,
    cancel: &Cancel,
    run_started: Instant,
) -> Result<()> {
    let cached = match (&plan.cache, plan.backend) {
        (Some(root), BackendKind::Local) => {
            cache::key(baseline, &embedded::server_identity(&plan.embedded)?)?
                .map(|key| (Cache { root: root.clone() }, key))
        }
        _ => None,
    };
    let hit = cached.as_ref().and_then(|(c, k)| c.lookup(k));
    outcome.baseline.cache = match (&cached, &hit) {
        (None, _) => CacheState::Off,
        (Some(_), Some(_)) => CacheState::Hit,
        (Some(_), None) => CacheState::Miss,
    };
    if let Some(a) = cancel.fired() {
        return Err(Error::Aborted(a));
    }
    let (mut backend, from_cache): (Box<dyn Backend>, bool) = match plan.backend {
        BackendKind::Local => {
            let mut opts = plan.embedded.clone();
            opts.from_data = hit.clone();
            if hit.is_some() {
                ui::note("baseline cache hit: starting from the cached, loaded cluster (--no-cache to load it again)");
            }
            // The entry may vanish or be incomplete by the time it is
            // copied (a `cache clear` meanwhile): the cluster is then made
            // afresh and the baseline loaded, as on a miss.
            let server = Embedded::start(&opts, cancel).await?;
            let from_cache = server.started_from_cache();
            (Box::new(server), from_cache)
        }
        BackendKind::Docker => (Box::new(Docker::start(&plan.docker, cancel).await?), false),
    };
    if cached.is_some() && !from_cache {
        outcome.baseline.cache = CacheState::Miss;
    }
    let loading = schedule::Loading {
        run_started,
        cached: from_cache,
        store: if from_cache { None } else { cached.as_ref() },
    };
    let result = schedule::measure_all(
        backend.as_mut(),
        baseline,
        (patches, layouts),
        plan,
        outcome,
        cancel,
        loading,
    )
    .await;
    ui::progress_finish();
    let stopped = backend.shutdown().await;
    result.and(stopped)
}
