//! The schedule of a run on a started server: load the template, make a
//! scaled template per scale, then time the patches runs × cache modes ×
//! scales, each run on a fresh copy.

use std::time::Instant;

use futures_util::FutureExt;
use tokio_postgres::Client;

use crate::cancel::{Abort, Cancel};
use crate::error::{Error, Result};
use crate::outcome::{Aborted, CacheMode, Outcome, Phase, RunTiming, Scaled, Server};
use crate::patch::Patch;
use crate::staging::{self, cache::Cache, Backend, Baseline};
use crate::ui;

use super::books::{self, Layouts};
use super::merge::ScaleRuns;
use super::pass::{self, run_patches};
use super::RunPlan;

/// How the template gets there: loaded, or already in a cached cluster.
pub(super) struct Loading<'a> {
    pub run_started: Instant,
    pub cached: bool,
    /// Store the loaded cluster in this cache under this key.
    pub store: Option<&'a (Cache, String)>,
}

/// Load the template (unless cached) and store it in the cache.
async fn load_template(
    backend: &mut dyn Backend,
    baseline: &Baseline,
    cancel: &Cancel,
    loading: &Loading<'_>,
    outcome: &mut Outcome,
) -> Result<()> {
    if loading.cached {
        return Ok(());
    }
    let load_started = Instant::now();
    staging::prepare_template(backend, baseline, cancel).await?;
    outcome.baseline.load_seconds = load_started.elapsed().as_secs_f64();
    if let Some((cache, key)) = loading.store {
        let stored = match cache.staging_dir(key) {
            Ok(dir) => match backend.snapshot_data(&dir.join("data")).await {
                Ok(()) => cache.commit(key, &dir),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => ui::note(&format!("baseline cached in {}", cache.root.display())),
            Err(e) => ui::warn(&format!("the baseline was not cached: {e}")),
        }
    }
    Ok(())
}

/// Record that the run stopped while the scaled copies were being made.
fn aborted_while_scaling(outcome: &mut Outcome, reason: Abort) -> Error {
    outcome
        .aborted
        .get_or_insert(Aborted::in_phase(reason, Phase::Scaling));
    Error::Aborted(reason)
}

/// A scaled-down template per scale, made once: every run then starts from
/// a file copy of its template, as the full-size runs do, so the scales
/// differ in their rows only and not in what is cached. `None` is the
/// full-size template.
async fn scaled_templates(
    backend: &dyn Backend,
    admin: &Client,
    scales: &[f64],
    version_num: i32,
    cancel: &Cancel,
    outcome: &mut Outcome,
) -> Result<Vec<Option<String>>> {
    let mut templates = Vec::new();
    for (k, &scale) in scales.iter().enumerate() {
        if scale >= 1.0 {
            templates.push(None);
            continue;
        }
        let name = format!("downtime_scaled_{}_{k}", std::process::id());
        ui::note(&format!(
            "scaling a copy to {:.0} % of the staging rows",
            scale * 100.0
        ));
        if let Some(a) = cancel.fired() {
            return Err(aborted_while_scaling(outcome, a));
        }
        staging::create_copy(admin, &name, version_num).await?;
        let c = staging::connect(backend, &name).await?;
        // Scaling a large table takes a while: a signal cancels it.
        let scaling = staging::scale::scale_copy(&c, scale).fuse();
        let aborted = cancel.wait().fuse();
        futures_util::pin_mut!(scaling, aborted);
        futures_util::select! {
            r = scaling => r?,
            a = aborted => {
                let _ = c.cancel_token().cancel_query(tokio_postgres::NoTls).await;
                return Err(aborted_while_scaling(outcome, a));
            }
        }
        templates.push(Some(name));
    }
    Ok(templates)
}

/// Restart the server and drop the OS page cache before a cold run; returns
/// the new admin connection.
async fn empty_caches(
    backend: &mut dyn Backend,
    admin: Client,
    timing: &mut RunTiming,
) -> Result<Client> {
    // The copy's files are written now; empty both caches before timing.
    admin.batch_execute("checkpoint").await?;
    drop(admin);
    backend.restart().await?;
    timing.server_restarts += 1;
    let dropped = staging::drop_os_cache();
    if timing.os_cache_dropped.is_none() {
        ui::note(&match &dropped {
            Ok(()) => "cold cache: server restarted, OS page cache dropped".to_string(),
            Err(e) => format!("cold cache: server restarted; OS page cache not dropped ({e})"),
        });
    }
    timing.os_cache_dropped = Some(dropped.is_ok());
    staging::connect(backend, "postgres").await
}

/// Everything after the server started: load, scale, run, merge.
pub(super) async fn measure_all(
    backend: &mut dyn Backend,
    baseline: &Baseline,
    (patches, layouts): (&mut [Patch], &Layouts),
    plan: &RunPlan,
    outcome: &mut Outcome,
    cancel: &Cancel,
    loading: Loading<'_>,
) -> Result<()> {
    load_template(backend, baseline, cancel, &loading, outcome).await?;
    let books = books::settle(backend, patches, layouts, plan.all, &mut outcome.notes).await?;
    outcome.layout = books.as_ref().map(|b| b.layout).or(outcome.layout);
    let patches: &[Patch] = patches;
    let mut admin = staging::connect(backend, "postgres").await?;
    let info = staging::server_info(&admin, backend.name()).await?;
    outcome.server = Server {
        version: info.version.clone(),
        backend: info.backend.clone(),
        image: backend.image(),
        settings: info.settings.clone(),
    };
    if backend.has_statement_stats() {
        admin
            .batch_execute("create extension if not exists pg_stat_statements")
            .await?;
    }
    let t = &plan.timing;
    let modes = t.cache.modes();
    let per_mode = t.warmup + t.runs;
    let scales = plan.scales();
    ui::progress_start(patches.len() * per_mode * modes.len() * plan.scales.len().max(1));
    let mut timing = RunTiming {
        runs: t.runs,
        warmup: t.warmup,
        statistic: t.statistic,
        cache: modes.to_vec(),
        server_restarts: 0,
        os_cache_dropped: None,
    };
    let templates =
        scaled_templates(backend, &admin, &scales, info.version_num, cancel, outcome).await?;
    // Round robin over the scales: a slow spell of the machine then slows
    // every scale a little instead of one scale a lot, which would bend the
    // fitted curve.
    let mut runs: Vec<ScaleRuns> = scales.iter().map(|_| ScaleRuns::new(modes)).collect();
    let mut last_scale = 0;
    let mut n = 0;
    'runs: for &mode in modes {
        for r in 0..per_mode {
            for (k, template) in templates.iter().enumerate() {
                n += 1;
                let copy = format!("downtime_copy_{}_{n}", std::process::id());
                let template = template.as_deref().unwrap_or(staging::TEMPLATE_DB);
                staging::create_copy_of(&admin, &copy, template, info.version_num).await?;
                if mode == CacheMode::Cold {
                    admin = empty_caches(backend, admin, &mut timing).await?;
                }
                if n == 1 {
                    outcome.baseline.first_statement_seconds =
                        loading.run_started.elapsed().as_secs_f64();
                }
                let on = pass::On {
                    copy: &copy,
                    books: books.as_ref(),
                    major: info.version_num / 10000,
                };
                let pass = run_patches(backend, &admin, on, patches, plan, cancel).await?;
                staging::drop_copy(&admin, &copy).await?;
                runs[k].add(mode, r >= t.warmup, pass.results);
                last_scale = k;
                if let Some(a) = pass.aborted {
                    outcome.aborted = Some(a);
                    break 'runs;
                }
            }
        }
    }
    for name in templates.iter().flatten() {
        staging::drop_copy(&admin, name).await?;
    }
    ui::progress_finish();
    if outcome.aborted.is_some() {
        // A stopped run reports the run it stopped in.
        outcome.results = std::mem::take(&mut runs[last_scale].last);
    } else {
        let mut scaled: Vec<Scaled> = scales
            .iter()
            .zip(runs)
            .map(|(&scale, r)| Scaled {
                scale,
                results: r.merge(t),
            })
            .collect();
        // The outcome's own figures are those of the largest scale measured.
        scaled.sort_by(|a, b| a.scale.total_cmp(&b.scale));
        outcome.results = scaled.last().map(|s| s.results.clone()).unwrap_or_default();
        outcome.scales = scaled;
    }
    if t.runs > 1 || modes != [CacheMode::Warm] {
        outcome.timing = Some(timing);
    }
    Ok(())
}
