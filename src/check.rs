//! `downtime check`: patch → staging → measure → verdict → report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cancel::{Abort, Cancel};
use crate::error::{Error, Result};
use crate::measure::stats::{self, Statistic};
use crate::measure::{self, ApplyOptions};
use crate::patch::discover::same_file;
use crate::patch::{self, Patch};
use crate::report::{
    self, BaselineInfo, CacheMode, ErrorReport, LockReport, PatchReport, PatchTiming, Postgres,
    Report, RewriteReport, RunTiming, StatementReport, Status, WaiverReport,
};
use crate::staging::docker::{Docker, DockerOptions};
use crate::staging::embedded::{self, Embedded, EmbeddedOptions};
use crate::staging::{self, Backend, BackendKind, Baseline};
use crate::ui;
use crate::verdict::signoff::Signoffs;
use crate::verdict::{self, Budget, Policy};
use futures_util::FutureExt;

/// Where patches are looked for when no path is given.
pub const DEFAULT_PATCH_DIR: &str = "patches";

/// Everything `check` needs to know.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub paths: Vec<PathBuf>,
    /// Explicit baseline; when `None`, a `baseline.sql` beside the patches is used.
    pub baseline: Option<PathBuf>,
    /// Start from an empty database even if a baseline.sql is found.
    pub no_baseline: bool,
    /// Copy an existing database (read-only) as the baseline.
    pub source: Option<staging::source::Source>,
    pub policy: Policy,
    /// Statement cap; default ten times the largest per-patch budget.
    pub timeout_seconds: Option<f64>,
    /// Which staging server: a local cluster or a container.
    pub backend: BackendKind,
    pub embedded: EmbeddedOptions,
    pub docker: DockerOptions,
    /// Go on with later patches after one fails (it is rolled back).
    pub keep_going: bool,
    /// Where sign-offs are read from, and the directory their paths are relative to.
    pub signoff_file: PathBuf,
    pub signoff_base: PathBuf,
    /// Apply patches only up to and including this one.
    pub until: Option<PathBuf>,
    /// Stop the whole run after this long, cancelling what runs.
    pub max_run_seconds: Option<f64>,
    /// Repeated runs and cache modes.
    pub timing: TimingOptions,
    /// The timing history: read for comparisons and the trend chart.
    pub history_file: Option<PathBuf>,
    /// Append this run's timings to the history file.
    pub record_history: bool,
    /// Flag patches slower than their last recorded run by more than this
    /// many percent (with non-overlapping confidence intervals).
    pub compare_history: Option<f64>,
    /// The baseline cache directory (None: no cache).
    pub cache: Option<PathBuf>,
    /// Production statistics to estimate against (`--prod-stats`).
    pub prod_stats: Option<(PathBuf, crate::estimate::ProdStats)>,
    /// Fractions of the staging data to measure at for the estimate.
    pub scales: Vec<f64>,
    /// `--growth`, per month.
    pub growth: Option<f64>,
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

impl CheckOptions {
    pub fn statement_cap(&self) -> Duration {
        Duration::from_secs_f64(
            self.timeout_seconds
                .unwrap_or(self.policy.budget.largest_patch_budget() * 10.0)
                .max(0.001),
        )
    }
}

fn find_baseline(opts: &CheckOptions) -> Result<Baseline> {
    if let Some(source) = &opts.source {
        return Ok(Baseline::Url(source.clone()));
    }
    if let Some(path) = &opts.baseline {
        return Baseline::from_path(path);
    }
    if opts.no_baseline {
        return Ok(Baseline::Empty);
    }
    for dir in opts.paths.iter().filter(|p| p.is_dir()) {
        let candidate = dir.join("baseline.sql");
        if candidate.is_file() {
            ui::note(&format!(
                "using baseline {} (--baseline FILE to choose another, --no-baseline for an empty database)",
                candidate.display()
            ));
            return Ok(Baseline::Script(candidate));
        }
    }
    ui::note("no baseline: patches are applied to an empty database (--baseline FILE to load one)");
    Ok(Baseline::Empty)
}

/// Discover and load the patches, refusing bad input before anything starts.
pub fn load_patches(paths: &[PathBuf], exclude: &[PathBuf]) -> Result<(Vec<Patch>, Vec<String>)> {
    let found = patch::discover(paths, exclude)?;
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
        .map(patch::load)
        .collect::<Result<Vec<_>>>()?;
    Ok((patches, found.notes))
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// A patch's report before anything is known of its run: not run, no
/// figures, the facts of the file itself.
fn base_report(p: &Patch) -> PatchReport {
    PatchReport {
        path: path_text(&p.file.path),
        id: p.file.id.clone(),
        sha256: p.sha256.clone(),
        status: Status::Skipped,
        seconds: 0.0,
        server_seconds: None,
        budget_seconds: None,
        over_budget: false,
        post_deploy: p.post_deploy,
        signoff: None,
        waivers: waiver_reports(p, &[]),
        failures: Vec::new(),
        warnings: Vec::new(),
        timing: None,
        history: Vec::new(),
        regression: None,
        estimate: None,
        classification: None,
        declared: p.declared,
        reasons: Vec::new(),
        error: None,
        commit_seconds: 0.0,
        wall_seconds: 0.0,
        skipped_because: None,
        statements: Vec::new(),
    }
}

/// Record that the run stopped while the scaled copies were being made.
fn aborted_while_scaling(report: &mut Report, reason: Abort) -> Error {
    report.aborted.get_or_insert(report::AbortReport {
        reason,
        phase: "scaling the staging copies".into(),
        patch: None,
        line: None,
        statement: None,
    });
    Error::Aborted(reason)
}

fn skipped(p: &Patch, because: String) -> PatchReport {
    PatchReport {
        skipped_because: Some(because),
        ..base_report(p)
    }
}

/// Run `check` end to end and return the report. `Err` is an input or
/// infrastructure error (exit 2); a failing verdict is a report that says so.
pub async fn run(opts: &CheckOptions, cancel: &Cancel) -> Result<Report> {
    let run_started = Instant::now();
    let started_at = report::now_rfc3339();
    let cancel = cancel.clone().with_deadline(
        opts.max_run_seconds
            .map(|s| Instant::now() + Duration::from_secs_f64(s)),
    );
    let baseline = find_baseline(opts)?;
    let exclude: Vec<PathBuf> = match &baseline {
        Baseline::Script(p) | Baseline::Archive(p) => vec![p.clone()],
        Baseline::Empty | Baseline::Url(_) => Vec::new(),
    };
    let (mut patches, notes) = load_patches(&opts.paths, &exclude)?;
    for n in &notes {
        ui::note(n);
    }
    if let Some(until) = &opts.until {
        let Some(pos) = patches.iter().position(|p| same_file(&p.file.path, until)) else {
            return Err(Error::input(
                until,
                "not among the patches found (give the folder it is in, or set `patches` in downtime.toml)",
            ));
        };
        patches.truncate(pos + 1);
    }
    let signoffs = Signoffs::load(&opts.signoff_file, &opts.signoff_base)?;

    let mut report = Report {
        schema_version: report::SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        postgres: Postgres {
            version: String::new(),
            backend: match opts.backend {
                BackendKind::Local => "embedded".into(),
                BackendKind::Docker => "docker".into(),
            },
            image: None,
            settings: Default::default(),
        },
        baseline: BaselineInfo {
            source: baseline.describe(),
            load_seconds: 0.0,
            cache: "off".into(),
            first_statement_seconds: 0.0,
        },
        budget: Budget::from_policy(&opts.policy.budget),
        policy: opts.policy.clone(),
        verdict: "pass".into(),
        failures: Vec::new(),
        warnings: Vec::new(),
        total_seconds: 0.0,
        cold_seconds: 0.0,
        patches: Vec::new(),
        notes,
        aborted: None,
        timing: None,
        estimate: None,
    };

    // A patch downtime cannot apply is refused before anything runs.
    if let Some(refused) = patches.iter().find(|p| p.refusal.is_some()) {
        let refusal = refused.refusal.clone().unwrap_or_else(|| patch::Refusal {
            line: 1,
            reason: String::new(),
        });
        for p in &patches {
            if std::ptr::eq(p, refused) {
                let mut r = skipped(p, String::new());
                r.status = Status::Failed;
                r.skipped_because = None;
                r.error = Some(ErrorReport {
                    message: refusal.reason.clone(),
                    sqlstate: None,
                    line: refusal.line,
                    statement_line: refusal.line,
                    detail: None,
                    hint: None,
                    partially_applied: false,
                });
                r.failures.push(format!(
                    "refused before anything ran (line {}): {}",
                    refusal.line, refusal.reason
                ));
                report.patches.push(r);
            } else {
                report.patches.push(skipped(
                    p,
                    format!("not run: {} was refused", refused.file.id),
                ));
            }
        }
        report.failures.push(format!(
            "{}:{}: refused before anything ran: {}",
            refused.file.path.display(),
            refusal.line,
            refusal.reason
        ));
        report.verdict = "fail".into();
        return Ok(report);
    }

    let cached = match (&opts.cache, opts.backend) {
        (Some(root), BackendKind::Local) => {
            staging::cache::key(&baseline, &embedded::server_identity(&opts.embedded)?)?
                .map(|key| (staging::cache::Cache { root: root.clone() }, key))
        }
        _ => None,
    };
    let hit = cached.as_ref().and_then(|(c, k)| c.lookup(k));
    report.baseline.cache = match (&cached, &hit) {
        (None, _) => "off",
        (Some(_), Some(_)) => "hit",
        (Some(_), None) => "miss",
    }
    .into();
    let result = match cancel.fired() {
        Some(a) => Err(Error::Aborted(a)),
        None => {
            let started: Result<Box<dyn Backend>> = match opts.backend {
                BackendKind::Local => {
                    let mut embedded_opts = opts.embedded.clone();
                    embedded_opts.from_data = hit.clone();
                    if hit.is_some() {
                        ui::note("baseline cache hit: starting from the cached, loaded cluster (--no-cache to load it again)");
                    }
                    Embedded::start(&embedded_opts, &cancel)
                        .await
                        .map(|b| Box::new(b) as Box<dyn Backend>)
                }
                BackendKind::Docker => Docker::start(&opts.docker, &cancel)
                    .await
                    .map(|b| Box::new(b) as Box<dyn Backend>),
            };
            match started {
                Err(e) => Err(e),
                Ok(mut backend) => {
                    let store = if hit.is_some() { None } else { cached.as_ref() };
                    let result = apply_all(
                        backend.as_mut(),
                        &baseline,
                        &patches,
                        opts,
                        &mut report,
                        &cancel,
                        Loading {
                            run_started,
                            cached: hit.is_some(),
                            store,
                        },
                    )
                    .await;
                    ui::progress_finish();
                    let stopped = backend.shutdown().await;
                    result.and(stopped)
                }
            }
        }
    };
    match result {
        Ok(()) => {}
        Err(Error::Aborted(reason)) => {
            // Stopped before patches ran: every patch is reported as not run.
            let phase = if report.baseline.load_seconds == 0.0 {
                "starting the server and loading the baseline"
            } else {
                "applying patches"
            };
            report.aborted.get_or_insert(report::AbortReport {
                reason,
                phase: phase.into(),
                patch: None,
                line: None,
                statement: None,
            });
        }
        Err(e) => return Err(e),
    }
    let ran: Vec<String> = report.patches.iter().map(|p| p.id.clone()).collect();
    for p in patches.iter().filter(|p| !ran.contains(&p.file.id)) {
        report
            .patches
            .push(skipped(p, "not run: the run was aborted".into()));
    }
    let history = match &opts.history_file {
        Some(f) => verdict::history::load(f)?,
        None => Vec::new(),
    };
    verdict::history::compare(
        &mut report,
        &history,
        opts.compare_history.unwrap_or(20.0),
        opts.compare_history.is_some(),
    );
    verdict::budget::decide(&mut report, &opts.policy, &signoffs);
    if let (Some(f), None, true) = (&opts.history_file, &report.aborted, opts.record_history) {
        verdict::history::append(f, &verdict::history::entries(&report))?;
    }
    if let Some(a) = &report.aborted {
        let running = match (&a.patch, a.line) {
            (Some(p), Some(l)) => format!(
                " while running {p} line {l}: {}",
                a.statement.as_deref().unwrap_or("")
            ),
            _ => format!(" while {}", a.phase),
        };
        if a.reason == Abort::RunCap {
            let cap = opts.max_run_seconds.unwrap_or_default();
            report.failures.push(format!(
                "the run hit its {cap:.2} s cap (--max-run-seconds){running}"
            ));
            report.verdict = "fail".into();
        } else {
            report
                .failures
                .push(format!("aborted by {}{running}", a.reason));
            report.verdict = "aborted".into();
        }
    }
    Ok(report)
}

/// How the template gets there: loaded, or already in a cached cluster.
struct Loading<'a> {
    run_started: Instant,
    cached: bool,
    /// Store the loaded cluster in this cache under this key.
    store: Option<&'a (staging::cache::Cache, String)>,
}

async fn apply_all(
    backend: &mut dyn Backend,
    baseline: &Baseline,
    patches: &[Patch],
    opts: &CheckOptions,
    report: &mut Report,
    cancel: &Cancel,
    loading: Loading<'_>,
) -> Result<()> {
    let load_started = Instant::now();
    if !loading.cached {
        staging::prepare_template(backend, baseline, cancel).await?;
        report.baseline.load_seconds = load_started.elapsed().as_secs_f64();
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
    }

    let mut admin = staging::connect(backend, "postgres").await?;
    let info = staging::server_info(&admin, backend.name()).await?;
    report.postgres = Postgres {
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
    let t = &opts.timing;
    let modes = t.cache.modes();
    let per_mode = t.warmup + t.runs;
    ui::progress_start(patches.len() * per_mode * modes.len() * opts.scales.len().max(1));
    let mut run_info = RunTiming {
        runs: t.runs,
        warmup: t.warmup,
        statistic: t.statistic,
        cache: modes.to_vec(),
        server_restarts: 0,
        os_cache_dropped: None,
    };
    let scales: Vec<f64> = if opts.scales.is_empty() {
        vec![1.0]
    } else {
        opts.scales.clone()
    };
    // A scaled-down template per scale, made once: every run then starts from
    // a file copy of its template, as the full-size runs do, so the scales
    // differ in their rows only and not in what is cached.
    let mut templates: Vec<Option<String>> = Vec::new();
    for (k, &scale) in scales.iter().enumerate() {
        templates.push(if scale < 1.0 {
            let name = format!("downtime_scaled_{}_{k}", std::process::id());
            ui::note(&format!(
                "scaling a copy to {:.0} % of the staging rows",
                scale * 100.0
            ));
            if let Some(a) = cancel.fired() {
                return Err(aborted_while_scaling(report, a));
            }
            staging::create_copy(&admin, &name, info.version_num).await?;
            let c = staging::connect(backend, &name).await?;
            {
                // Scaling a large table takes a while: a signal cancels it.
                let scaling = crate::estimate::scale_copy(&c, scale).fuse();
                let aborted = cancel.wait().fuse();
                futures_util::pin_mut!(scaling, aborted);
                futures_util::select! {
                    r = scaling => r?,
                    a = aborted => {
                        let _ = c.cancel_token().cancel_query(tokio_postgres::NoTls).await;
                        return Err(aborted_while_scaling(report, a));
                    }
                }
            }
            drop(c);
            Some(name)
        } else {
            None
        });
    }
    // Round robin over the scales: a slow spell of the machine then slows
    // every scale a little instead of one scale a lot, which would bend the
    // fitted curve.
    let mut measured: Vec<Vec<(CacheMode, Vec<PatchReport>)>> = vec![Vec::new(); scales.len()];
    let mut last_at: Vec<Vec<PatchReport>> = vec![Vec::new(); scales.len()];
    let mut last: Vec<PatchReport> = Vec::new();
    let mut n = 0;
    'runs: for &mode in modes {
        for r in 0..per_mode {
            for (k, template) in templates.iter().enumerate() {
                n += 1;
                let copy = format!("downtime_copy_{}_{n}", std::process::id());
                let template = template.as_deref().unwrap_or(staging::TEMPLATE_DB);
                staging::create_copy_of(&admin, &copy, template, info.version_num).await?;
                if mode == CacheMode::Cold {
                    // The copy's files are written now; empty both caches before timing.
                    admin.batch_execute("checkpoint").await?;
                    drop(admin);
                    backend.restart().await?;
                    run_info.server_restarts += 1;
                    let dropped = staging::drop_os_cache();
                    if run_info.os_cache_dropped.is_none() {
                        ui::note(&match &dropped {
                            Ok(()) => {
                                "cold cache: server restarted, OS page cache dropped".to_string()
                            }
                            Err(e) => {
                                format!(
                                    "cold cache: server restarted; OS page cache not dropped ({e})"
                                )
                            }
                        });
                    }
                    run_info.os_cache_dropped = Some(dropped.is_ok());
                    admin = staging::connect(backend, "postgres").await?;
                }
                if n == 1 {
                    report.baseline.first_statement_seconds =
                        loading.run_started.elapsed().as_secs_f64();
                }
                let (reports, aborted) =
                    run_patches(backend, &admin, &copy, patches, opts, cancel).await?;
                staging::drop_copy(&admin, &copy).await?;
                if r >= t.warmup {
                    measured[k].push((mode, reports.clone()));
                }
                last_at[k] = reports.clone();
                last = reports;
                if let Some(a) = aborted {
                    report.aborted = Some(a);
                    break 'runs;
                }
            }
        }
    }
    for name in templates.iter().flatten() {
        staging::drop_copy(&admin, name).await?;
    }
    // An aborted run reports the run it stopped in; otherwise each scale's
    // runs are merged.
    let mut per_scale: Vec<(f64, Vec<PatchReport>)> = if report.aborted.is_some() {
        Vec::new()
    } else {
        scales
            .iter()
            .zip(measured)
            .zip(last_at)
            .map(|((&scale, m), l)| (scale, merge_runs(m, l, t)))
            .collect()
    };
    ui::progress_finish();
    // The report's own figures are those of the largest scale measured.
    per_scale.sort_by(|a, b| a.0.total_cmp(&b.0));
    report.patches = per_scale.last().map_or(last, |(_, r)| r.clone());
    if let (Some((path, stats)), false) = (&opts.prod_stats, per_scale.is_empty()) {
        let budget = &opts.policy.budget;
        let estimates = crate::estimate::estimate(
            &per_scale,
            stats,
            opts.growth,
            |p| budget.for_patch(p.classification, p.post_deploy),
            &report.started_at,
        );
        for (p, e) in report.patches.iter_mut().zip(estimates) {
            p.estimate = e;
        }
        report.estimate = Some(crate::estimate::EstimateInfo {
            stats_file: path.display().to_string(),
            stats_exported_at: stats.exported_at.clone(),
            scales: scales.clone(),
            growth_per_month: opts.growth,
            decides: t.statistic == Statistic::Estimate,
        });
    }
    if t.runs > 1 || modes != [CacheMode::Warm] {
        report.timing = Some(run_info);
    }
    Ok(())
}

/// Apply every patch once, on the copy `copy`.
async fn run_patches(
    backend: &dyn Backend,
    admin: &tokio_postgres::Client,
    copy: &str,
    patches: &[Patch],
    opts: &CheckOptions,
    cancel: &Cancel,
) -> Result<(Vec<PatchReport>, Option<report::AbortReport>)> {
    let cap = opts.statement_cap();
    let mut config = backend.config(copy);
    config.options(format!("-c statement_timeout={}", cap.as_millis().max(1)));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::Server(format!("cannot connect to the staging copy: {e}")))?;
    let conn = tokio::spawn(async move {
        let _ = connection.await;
    });

    let apply_opts = ApplyOptions { statement_cap: cap };
    let dbid: Option<u32> = if backend.has_statement_stats() {
        admin
            .query_opt("select oid from pg_database where datname = $1", &[&copy])
            .await?
            .map(|r| r.get(0))
    } else {
        None
    };
    let clock = dbid.map(|dbid| measure::ServerClock { admin, dbid });
    let mut reports = Vec::new();
    let mut aborted = None;
    let mut stop_after: Option<String> = None;
    for p in patches {
        if let Some(a) = cancel.fired() {
            aborted = Some(report::AbortReport {
                reason: a,
                phase: "applying patches".into(),
                patch: None,
                line: None,
                statement: None,
            });
            break;
        }
        if let Some(why) = &stop_after {
            reports.push(skipped(p, why.clone()));
            ui::progress_done();
            continue;
        }
        ui::progress_patch(&p.file.id);
        client.batch_execute("/*downtime*/ reset all").await?;
        let wall = Instant::now();
        let run = measure::apply(&client, p, &apply_opts, cancel, clock.as_ref()).await?;
        let mut patch_report = patch_report(p, &run, opts);
        patch_report.wall_seconds = wall.elapsed().as_secs_f64();
        if patch_report.status == Status::Failed && !opts.keep_going {
            stop_after = Some(format!(
                "not run: {} failed before it (--keep-going runs later patches anyway)",
                p.file.id
            ));
        }
        if run.connection_lost {
            stop_after = Some(format!(
                "not run: {} ended its own session, so the copy's state is unknown",
                p.file.id
            ));
        }
        reports.push(patch_report);
        ui::progress_done();
        if let Some(reason) = run.aborted {
            let st = run.statements.last().map(|s| &p.statements[s.index]);
            aborted = Some(report::AbortReport {
                reason,
                phase: "applying patches".into(),
                patch: Some(p.file.id.clone()),
                line: st.map(|s| s.line),
                statement: st.map(|s| report::excerpt(&s.sql)),
            });
            break;
        }
    }
    drop(client);
    let _ = conn.await;
    Ok((reports, aborted))
}

/// One report per patch from several runs: the classification of the first
/// timed run (of the cold ones, when there are), and statistics over all
/// runs where the patch applied.
fn merge_runs(
    measured: Vec<(CacheMode, Vec<PatchReport>)>,
    fallback: Vec<PatchReport>,
    t: &TimingOptions,
) -> Vec<PatchReport> {
    let decide_mode = if measured.iter().any(|(m, _)| *m == CacheMode::Cold) {
        CacheMode::Cold
    } else {
        CacheMode::Warm
    };
    let Some((_, base)) = measured.iter().find(|(m, _)| *m == decide_mode) else {
        return fallback;
    };
    if measured.len() == 1 {
        return base.clone();
    }
    let mut out = base.clone();
    for (i, p) in out.iter_mut().enumerate() {
        let samples = |mode: CacheMode| -> Vec<f64> {
            measured
                .iter()
                .filter(|(m, _)| *m == mode)
                .filter_map(|(_, rs)| rs.get(i))
                .filter(|r| r.status == Status::Ok)
                .map(|r| r.seconds)
                .collect()
        };
        let timing = PatchTiming {
            warm: stats::summarise(&samples(CacheMode::Warm)),
            cold: stats::summarise(&samples(CacheMode::Cold)),
        };
        let decided = match decide_mode {
            CacheMode::Cold => timing.cold.as_ref(),
            CacheMode::Warm => timing.warm.as_ref(),
        };
        if let Some(st) = decided {
            p.seconds = st.get(t.statistic);
        }
        for (j, s) in p.statements.iter_mut().enumerate() {
            let per_statement: Vec<f64> = measured
                .iter()
                .filter(|(m, _)| *m == decide_mode)
                .filter_map(|(_, rs)| rs.get(i))
                .filter(|r| r.status == Status::Ok)
                .filter_map(|r| r.statements.get(j))
                .map(|s| s.seconds)
                .collect();
            s.stats = stats::summarise(&per_statement);
            if let Some(st) = &s.stats {
                s.seconds = st.median;
            }
        }
        p.timing = Some(timing);
    }
    out
}

fn patch_report(p: &Patch, run: &measure::PatchRun, opts: &CheckOptions) -> PatchReport {
    let classification = verdict::classify(p, run, &opts.policy.classify);
    let seconds = run.seconds();
    let mut error = run.error.clone().map(ErrorReport::from);
    if error.is_none() {
        if let Some(e) = classification.errors().find(|r| r.rule == "invalid-index") {
            error = Some(ErrorReport {
                message: e.message.clone(),
                sqlstate: None,
                line: p.statements.last().map_or(1, |s| s.line),
                statement_line: p.statements.last().map_or(1, |s| s.line),
                detail: None,
                hint: Some(e.hint.clone()),
                partially_applied: false,
            });
        }
    }
    let statements = run
        .statements
        .iter()
        .map(|sr| {
            let st = &p.statements[sr.index];
            StatementReport {
                line: st.line,
                sql: report::excerpt(&st.sql),
                seconds: sr.seconds,
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
                    })
                    .collect(),
                stats: None,
                work: work_of(p, run, sr),
                server_seconds: sr.server_seconds,
                rewrites: sr
                    .rewrites
                    .iter()
                    .map(|r| RewriteReport {
                        relation: r.relation.clone(),
                        kind: r.kind.to_string(),
                        rows: r.rows,
                        bytes: r.bytes,
                    })
                    .collect(),
            }
        })
        .collect();
    PatchReport {
        status: if error.is_some() {
            Status::Failed
        } else {
            Status::Ok
        },
        seconds,
        server_seconds: run
            .statements
            .iter()
            .map(|s| s.server_seconds)
            .sum::<Option<f64>>(),
        waivers: waiver_reports(p, &classification.reasons),
        classification: Some(classification.class),
        reasons: classification.reasons,
        error,
        commit_seconds: run.commit_seconds,
        statements,
        ..base_report(p)
    }
}

/// The table a statement's work grows with: what it rewrote, indexed,
/// validated, updated or vacuumed, with its rows before the statement.
fn work_of(
    p: &Patch,
    run: &measure::PatchRun,
    sr: &measure::StatementRun,
) -> Option<crate::estimate::Work> {
    let snap = &run.snapshot;
    let table_of = |oid: u32| {
        let rel = snap.get(oid)?;
        match rel.table {
            Some(t) => snap.get(t),
            None => Some(rel),
        }
    };
    use crate::estimate::WorkKind;
    let from_evidence = sr
        .rewrites
        .iter()
        .find_map(|rw| table_of(rw.oid).map(|t| (t, WorkKind::Rewrite)))
        .or_else(|| {
            sr.new_indexes
                .iter()
                .find_map(|(t, _)| snap.get(*t).map(|t| (t, WorkKind::IndexBuild)))
        });
    let from_facts = || {
        p.statements[sr.index].analysis.facts.iter().find_map(|f| {
            let (rel, kind) = match f {
                patch::Fact::Validates { rel, .. } => (rel, WorkKind::Scan),
                patch::Fact::Writes { rel, verb, .. } if *verb == "UPDATE" => {
                    (rel, WorkKind::Update)
                }
                patch::Fact::Writes { rel, .. } => (rel, WorkKind::Write),
                patch::Fact::BuildsIndex { rel, .. } => (rel, WorkKind::IndexBuild),
                patch::Fact::HoldsWhileRunning { rel, .. } => (rel, WorkKind::Scan),
                _ => return None,
            };
            let oid = (*sr.pre.resolved.get(&rel.to_string())?)?;
            table_of(oid).map(|t| (t, kind))
        })
    };
    // An update inserts each new row version into every index of its table
    // (a B-tree descent per row); without indexes it is a pass over the rows.
    let indexed = |t: &measure::trace::Relation| {
        snap.relations
            .values()
            .any(|i| i.table == Some(t.oid) && matches!(i.kind, 'i' | 'I'))
    };
    from_evidence
        .or_else(from_facts)
        .map(|(r, kind)| match kind {
            WorkKind::Update if !indexed(r) => (r, WorkKind::Write),
            _ => (r, kind),
        })
        .map(|(r, kind)| crate::estimate::Work {
            relation: r.name.clone(),
            rows: r.rows,
            kind: Some(kind),
        })
}

fn waiver_reports(p: &Patch, reasons: &[verdict::Reason]) -> Vec<WaiverReport> {
    p.waivers
        .iter()
        .map(|w| WaiverReport {
            rule: w.rule.clone(),
            line: w.line,
            because: w.because.clone(),
            used: reasons
                .iter()
                .any(|r| r.rule == w.rule && r.statement_line.is_some_and(|l| w.covers(l))),
        })
        .collect()
}
