//! A run from start to end: find the patches and the baseline, refuse what
//! cannot be applied, start the staging server, follow the schedule of runs,
//! and hand back the [`Outcome`]. It judges nothing: the verdict and the
//! estimate read the outcome afterwards.

mod books;
mod clones;
mod merge;
mod pass;
mod plan;
mod schedule;
mod tally;

use std::path::PathBuf;
use std::time::Instant;

pub use plan::{
    load, load_patches, CacheChoice, Loaded, RunPlan, TimingOptions, DEFAULT_PATCH_DIR,
};

use crate::cancel::{Abort, Cancel};
use crate::error::{Error, Result};
use crate::outcome::{
    Aborted, BaselineOutcome, CacheState, Outcome, PatchOutcome, PatchState, Phase,
};
use crate::patch::discover::same_file;
use crate::patch::{Layout, Migration, Patch};
use crate::staging::cache::{self, Cache};
use crate::staging::docker::Docker;
use crate::staging::embedded::{self, Embedded};
use crate::staging::server::Server;
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
        server: crate::outcome::Server {
            backend: plan.backend.report_name().into(),
            ..Default::default()
        },
        baseline: BaselineOutcome {
            source: match plan.backend {
                BackendKind::Command => "each clone, as [staging.command] create makes it".into(),
                _ => baseline.describe(),
            },
            load_seconds: 0.0,
            cache: CacheState::Off,
            first_statement_seconds: 0.0,
        },
        notes: plan.notes.iter().cloned().chain(notes).collect(),
        patches: Vec::new(),
        results: Vec::new(),
        scales: Vec::new(),
        timing: None,
        aborted: None,
        probe: None,
        costs: None,
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

/// The other tools the names fit, when the names alone decided the layout:
/// their tools send and record migrations differently, so say how to choose.
fn fits_too(alternatives: &[(Layout, Vec<Migration>)]) -> String {
    let names: Vec<&str> = alternatives.iter().map(|(a, _)| a.name()).collect();
    match names.first() {
        None => String::new(),
        Some(first) => format!(
            "; the names fit {} too, whose tool sends and records migrations its own way: \
             a baseline holding its table, or --layout {first}, chooses it",
            names.join(" and ")
        ),
    }
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
        ui::note(&format!(
            "layout {} ({}{})",
            l.name(),
            loaded.reason,
            fits_too(&loaded.alternatives)
        ));
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
/// baseline), measure, and stop the server again. The command backend has
/// no server of its own: each pass gets a clone.
async fn start_and_measure(
    plan: &RunPlan,
    baseline: &Baseline,
    patches: &mut [Patch],
    layouts: &books::Layouts,
    outcome: &mut Outcome,
    cancel: &Cancel,
    run_started: Instant,
) -> Result<()> {
    if plan.backend == BackendKind::Command {
        if *baseline != Baseline::Empty {
            let note = format!(
                "{} is not loaded: with the command backend each clone is the starting point",
                baseline.describe()
            );
            ui::note(&note);
            outcome.notes.push(note);
        }
        let patches = (patches, layouts);
        return clones::measure_all(plan, patches, outcome, cancel, run_started).await;
    }
    if let Some(a) = cancel.fired() {
        return Err(Error::Aborted(a));
    }
    let mut started = start(plan, baseline, cancel).await?;
    outcome.baseline.cache = match (&started.cached, started.from_cache) {
        (None, _) => CacheState::Off,
        (Some(_), true) => CacheState::Hit,
        (Some(_), false) => CacheState::Miss,
    };
    let loading = schedule::Loading {
        run_started,
        cached: started.from_cache,
        store: if started.from_cache {
            None
        } else {
            started.cached.as_ref()
        },
    };
    let result = schedule::measure_all(
        started.backend.as_mut(),
        baseline,
        (patches, layouts),
        plan,
        outcome,
        cancel,
        loading,
    )
    .await;
    ui::progress_finish();
    let stopped = started.backend.shutdown().await;
    result.and(stopped)
}

/// A started staging server, and how the baseline cache met it.
struct Started {
    backend: Box<dyn Backend>,
    /// The cache and this baseline's key in it, when the cache is used.
    cached: Option<(Cache, String)>,
    /// The template came from the cache.
    from_cache: bool,
}

/// Start the plan's server: the local one from the cached cluster when the
/// cache has the baseline, the user's with this run's template copied
/// from the cached one when it keeps the baseline.
async fn start(plan: &RunPlan, baseline: &Baseline, cancel: &Cancel) -> Result<Started> {
    match plan.backend {
        BackendKind::Local => {
            let cached = match &plan.cache {
                Some(root) => cache::key(baseline, &embedded::server_identity(&plan.embedded)?)?
                    .map(|key| (Cache { root: root.clone() }, key)),
                None => None,
            };
            let mut opts = plan.embedded.clone();
            opts.from_data = cached.as_ref().and_then(|(c, k)| c.lookup(k));
            if opts.from_data.is_some() {
                ui::note("baseline cache hit: starting from the cached, loaded cluster (--no-cache to load it again)");
            }
            // The entry may vanish or be incomplete by the time it is
            // copied (a `cache clear` meanwhile): the cluster is then made
            // afresh and the baseline loaded, as on a miss.
            let server = Embedded::start(&opts, cancel).await?;
            let from_cache = server.started_from_cache();
            Ok(Started {
                backend: Box::new(server),
                cached,
                from_cache,
            })
        }
        BackendKind::Docker => Ok(Started {
            backend: Box::new(Docker::start(&plan.docker, cancel).await?),
            cached: None,
            from_cache: false,
        }),
        BackendKind::Command => Err(Error::Usage(
            "the command backend starts no server: each pass gets a clone".into(),
        )),
        BackendKind::Server => {
            let mut opts = plan.server.clone().ok_or_else(|| {
                Error::Usage("--backend server needs --url (or `url` under [staging])".into())
            })?;
            opts.needs_clients = *baseline != Baseline::Empty;
            let mut server = Server::start(&opts).await?;
            let cached = match &plan.cache {
                Some(root) => cache::key(baseline, &server.identity())?
                    .map(|key| (Cache { root: root.clone() }, key)),
                None => None,
            };
            let from_cache = match &cached {
                Some((_, key)) => server.template_from_cache(key).await?,
                None => false,
            };
            if from_cache {
                ui::note("baseline cache hit: this run's template is a copy of the baseline the server keeps (--no-cache to load it again)");
            }
            Ok(Started {
                backend: Box::new(server),
                cached,
                from_cache,
            })
        }
    }
}
