//! The schedule of a run on a started server: load the template, make a
//! scaled template per scale, then time the patches runs × cache modes ×
//! scales, each run on a fresh copy.

use std::collections::BTreeSet;
use std::time::Instant;

use futures_util::FutureExt;
use tokio_postgres::Client;

use crate::cancel::{Abort, Cancel, Ended};
use crate::error::{Error, Result};
use crate::outcome::{Aborted, CacheMode, Outcome, Phase, RunTiming, Server};
use crate::patch::Patch;
use crate::pg::catalog;
use crate::staging::cluster::{Changed, ClusterWatch};
use crate::staging::{self, cache::Cache, Admin, Backend, Baseline};
use crate::ui;

use super::books::{self, Layouts};
use super::pass::{run_patches, Copy};
use super::tally::{run_timing, PassNo, Tally};
use super::RunPlan;
use crate::ledger::Plan;

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
        match backend.keep_baseline(&cache.root, key).await {
            Ok(place) => ui::note(&format!("baseline cached in {place}")),
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
        let name = backend.db_name("scaled", k);
        ui::note(&format!(
            "scaling a copy to {:.0} % of the staging rows",
            scale * 100.0
        ));
        if let Some(a) = cancel.fired() {
            return Err(aborted_while_scaling(outcome, a));
        }
        staging::create_copy_of(admin, &name, backend.template_db(), version_num).await?;
        let c = staging::connect(backend, &name).await?;
        // Scaling a large table takes a while: a signal cancels it.
        let scaling = staging::scale::scale_copy(&c, scale).fuse();
        let aborted = cancel.wait().fuse();
        futures_util::pin_mut!(scaling, aborted);
        futures_util::select! {
            r = scaling => r?,
            a = aborted => {
                if let Ok(tls) = backend.tls() {
                    let _ = c.cancel_token().cancel_query(tls).await;
                }
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
    admin: Admin,
    timing: &mut RunTiming,
) -> Result<Admin> {
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
    staging::connect_admin(backend).await
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
    // What the baseline's bookkeeping records decides the layout (where
    // the names fit several) and which patches run.
    let books = books::settle(backend, patches, layouts, plan.all, &mut outcome.notes).await?;
    outcome.layout = books.as_ref().map(|b| b.layout).or(outcome.layout);
    let patches: &[Patch] = patches;
    let admin = staging::connect_admin(backend).await?;
    let info = record_server(backend, &admin, outcome).await?;
    if plan.measure_costs {
        let root = plan.cache.as_deref();
        match crate::measure::calibrate::costs(backend, &admin, &info.version, &info.settings, root)
            .await
        {
            Ok(c) => {
                ui::note(&c.describe());
                outcome.costs = Some(c);
            }
            Err(e) => ui::warn(&format!("work costs on this server were not measured: {e}")),
        }
    }
    let t = &plan.timing;
    let scales = plan.scales();
    ui::progress_start(patches.len() * (t.warmup + t.runs) * t.cache.modes().len() * scales.len());
    let mut timing = run_timing(plan);
    let templates =
        scaled_templates(backend, &admin, &scales, info.version_num, cancel, outcome).await?;
    let mut names: Vec<String> = vec![backend.template_db().to_string()];
    names.extend(templates.iter().flatten().cloned());
    let foreign = backend.foreign_databases();
    let cluster = ClusterWatch::start(&admin, info.version_num, &names, &foreign).await?;
    let mut runner = Runner {
        admin: Some(admin),
        version_num: info.version_num,
        templates: &templates,
        watched: Vec::new(),
        done: String::new(),
        tally: Tally::new(plan),
        cluster,
        noted: BTreeSet::new(),
        books,
    };
    let result = runner
        .timed_runs(
            backend,
            patches,
            plan,
            outcome,
            cancel,
            &loading,
            &mut timing,
        )
        .await;
    match result {
        Ok(()) => {}
        // An abort, or a patch that changed what every run starts from
        // (named in the error).
        Err(e @ (Error::Aborted(_) | Error::Input { .. } | Error::InputAt { .. })) => {
            return Err(e)
        }
        // The server or downtime's connection to it failed between passes
        // (making a copy, restarting, dropping one, undoing a run's
        // changes): a stopped run that says where it was.
        Err(e) => {
            let mut a = Aborted::infrastructure(Phase::Applying, &e);
            a.message = Some(format!("{}: {e}", runner.done));
            a.patch = runner.tally.last_applied(patches);
            outcome.aborted.get_or_insert(a);
        }
    }
    if let (None, Some(admin)) = (&outcome.aborted, &runner.admin) {
        for name in templates.iter().flatten() {
            staging::drop_copy(admin, name).await?;
        }
    }
    runner.tally.finish(plan, timing, outcome);
    Ok(())
}

/// Read the server's version and settings into the outcome, and ready the
/// server's clock (`pg_stat_statements`) where the backend has it.
pub(super) async fn record_server(
    backend: &dyn Backend,
    admin: &Admin,
    outcome: &mut Outcome,
) -> Result<staging::ServerInfo> {
    let info = staging::server_info(admin, backend.name()).await?;
    outcome.server = Server {
        version: info.version.clone(),
        backend: info.backend.clone(),
        address: backend.address(),
        image: backend.image(),
        settings: info.settings.clone(),
    };
    if backend.has_statement_stats() {
        admin
            .batch_execute("create extension if not exists pg_stat_statements schema public")
            .await?;
    }
    Ok(info)
}

/// The timed runs and what they need between passes.
struct Runner<'t> {
    /// `None` once it could not be had back (a cold run's restart failed).
    admin: Option<Admin>,
    version_num: i32,
    /// One per scale: its scaled template, `None` for the full size.
    templates: &'t [Option<String>],
    /// The templates by oid and name, which patches must leave alone.
    watched: Vec<(u32, String)>,
    /// What the runs have done so far, for an error between passes.
    done: String,
    /// The passes' results and failures.
    tally: Tally,
    /// The cluster-level state every run starts from.
    cluster: ClusterWatch,
    /// Patches already named in a note for changing the cluster.
    noted: BTreeSet<String>,
    /// The tool's books: which patches run, and the records kept.
    books: Option<Plan>,
}

impl Runner<'_> {
    /// Round robin over the scales, runs × cache modes: each pass on a
    /// fresh copy, from the same cluster-level state. A slow spell of the
    /// machine then slows every scale a little instead of one scale a lot,
    /// which would bend the fitted curve. A pass that stops (aborted, or
    /// the server unfit to go on) stops them all.
    #[allow(clippy::too_many_arguments)]
    async fn timed_runs(
        &mut self,
        backend: &mut dyn Backend,
        patches: &[Patch],
        plan: &RunPlan,
        outcome: &mut Outcome,
        cancel: &Cancel,
        loading: &Loading<'_>,
        timing: &mut RunTiming,
    ) -> Result<()> {
        let t = &plan.timing;
        self.watched = self.watched_templates(backend.template_db()).await?;
        let total = t.cache.modes().len() * (t.warmup + t.runs) * self.templates.len();
        let mut n = 0;
        for &mode in t.cache.modes() {
            for r in 0..t.warmup + t.runs {
                for k in 0..self.templates.len() {
                    n += 1;
                    let copy = backend.db_name("copy", n);
                    let after = self
                        .tally
                        .last_applied(patches)
                        .map(|p| format!(", after pass {} applied the patches up to {p}", n - 1))
                        .unwrap_or_default();
                    self.done = format!("making staging copy {n}{after}");
                    let template = self.templates[k]
                        .clone()
                        .unwrap_or_else(|| backend.template_db().to_string());
                    let admin = self.admin()?;
                    staging::create_copy_of(admin, &copy, &template, self.version_num).await?;
                    if mode == CacheMode::Cold {
                        let admin = self.admin.take().ok_or_else(no_admin)?;
                        self.admin = Some(empty_caches(backend, admin, timing).await?);
                    }
                    if n == 1 {
                        outcome.baseline.first_statement_seconds =
                            loading.run_started.elapsed().as_secs_f64();
                    }
                    let place = Copy {
                        backend,
                        admin: self.admin()?,
                        name: &copy,
                        templates: &self.watched,
                        cluster: &self.cluster,
                        books: self.books.as_ref(),
                        major: self.version_num / 10000,
                    };
                    let pass = match run_patches(&place, patches, plan, cancel).await {
                        Ok(pass) => pass,
                        Err(e) => {
                            // A patch changed a template or hid the
                            // cluster: on a server that outlives the run,
                            // what can be put back still is.
                            if backend.shared() {
                                self.undo_anyway(&[], outcome).await;
                            }
                            return Err(e);
                        }
                    };
                    if outcome.probe.is_none() {
                        outcome.probe = pass.probe.clone();
                    }
                    let no = PassNo { mode, r, k };
                    self.tally.add(plan, no, patches, pass.results);
                    if let Some(a) = pass.aborted {
                        // A server a patch broke, or that failed, is not
                        // asked for anything more; shutting it down removes
                        // the copy with it.
                        let server_gone = matches!(a.reason, Abort::Broken | Abort::Infrastructure)
                            || a.ended_by == Some(Ended::ServerStop);
                        if !server_gone {
                            let _ = staging::drop_copy(self.admin()?, &copy).await;
                            if backend.shared() {
                                self.undo_anyway(&pass.changed, outcome).await;
                            }
                        }
                        outcome.aborted = Some(a);
                        return Ok(());
                    }
                    let upto = self
                        .tally
                        .last_applied_at(k, patches)
                        .map(|p| format!(" after its patches up to {p}"))
                        .unwrap_or_default();
                    self.done = format!("dropping staging copy {n}{upto}");
                    staging::drop_copy(self.admin()?, &copy).await?;
                    // Before the next pass; after the last one too where
                    // the server outlives the run (a shared server: other
                    // people's roles and databases), so that a single run
                    // leaves the cluster as it found it. A server of
                    // downtime's own goes with the run.
                    if n < total || backend.shared() {
                        self.done = format!(
                            "undoing what pass {n}{upto} changed in the cluster's roles, databases and settings"
                        );
                        self.undo(&pass.changed, outcome).await?;
                    } else {
                        self.note_changes(&pass.changed, outcome);
                    }
                }
            }
        }
        Ok(())
    }

    fn admin(&self) -> Result<&Admin> {
        self.admin.as_ref().ok_or_else(no_admin)
    }

    /// The templates of this run (`full` the full-size one), by oid and name.
    async fn watched_templates(&self, full: &str) -> Result<Vec<(u32, String)>> {
        let admin = self.admin()?;
        let mut watched = Vec::new();
        let names = self.templates.iter().map(|t| t.as_deref().unwrap_or(full));
        for name in names {
            if let Some(oid) = catalog::database_oid(admin, name).await? {
                watched.push((oid, name.to_string()));
            }
        }
        Ok(watched)
    }

    /// [`Runner::undo`] on a way out that already has its error: what
    /// cannot be put back is a warning.
    async fn undo_anyway(&mut self, changed: &[Changed], outcome: &mut Outcome) {
        if let Err(e) = self.undo(changed, outcome).await {
            ui::warn(&format!(
                "what the patches changed in the cluster's roles, databases and settings could \
                 not all be put back: {e}"
            ));
        }
    }

    /// Put the cluster-level state back after a run, and say once per
    /// patch what of it the patch changed.
    async fn undo(&mut self, changed: &[Changed], outcome: &mut Outcome) -> Result<()> {
        let admin = self.admin.as_ref().ok_or_else(no_admin)?;
        self.cluster.restore(admin, changed).await?;
        self.note_changes(changed, outcome);
        Ok(())
    }

    /// Say once per patch what it changed in the cluster outside its database.
    fn note_changes(&mut self, changed: &[Changed], outcome: &mut Outcome) {
        for c in changed {
            if self.noted.insert(c.id.clone()) {
                let mut labels: Vec<&str> = c.changes.iter().map(|x| x.label.as_str()).collect();
                if labels.len() > 8 {
                    labels.truncate(8);
                    labels.push("…");
                }
                let note = format!(
                    "{} changes the cluster outside its database ({}); undone after every run (on \
                     a server of downtime's own, the last run's goes with the server), so that \
                     every run starts from the same roles, databases and settings and a server \
                     others use is left as it was",
                    c.id,
                    labels.join("; ")
                );
                ui::note(&note);
                outcome.notes.push(note);
            }
        }
    }
}

fn no_admin() -> Error {
    Error::Server("downtime's connection to the staging server is gone".into())
}
