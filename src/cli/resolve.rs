//! Flags and downtime.toml resolved, once, into the plan of a run: every
//! default decided here, nothing decided later, and every file the run will
//! write found writable before anything starts.

use crate::measure::probe::ProbeOptions;
use std::path::PathBuf;

use super::args::image_tag;
use super::emit::check_targets;
use super::{BenchArgs, CheckArgs, CommonArgs, EstimateArgs, EstimateCmdArgs, TimingArgs};
use crate::check::{CacheChoice, CheckOptions, DEFAULT_PATCH_DIR};
use crate::config::{self, Overrides};
use crate::error::{Error, Result};
use crate::measure::stats::Statistic;
use crate::run::RunPlan;
use crate::staging::docker::DockerOptions;
use crate::staging::embedded::EmbeddedOptions;
use crate::staging::source::{Source, DEFAULT_PRODUCTION_PATTERNS};
use crate::staging::BackendKind;
use crate::{fsutil, limits};

impl TimingArgs {
    pub(super) fn apply(&self, opts: &mut CheckOptions, runs: u32, warmup: u32) {
        opts.run.timing = self.options(runs, warmup);
        opts.history_file = Some(
            self.history
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::verdict::history::DEFAULT_FILE)),
        );
        opts.record_history = !self.no_history;
        opts.compare_history = self.compare_history.then_some(self.regression_threshold);
    }

    pub(super) fn options(&self, runs: u32, warmup: u32) -> crate::check::TimingOptions {
        crate::check::TimingOptions {
            runs: self.runs.unwrap_or(runs) as usize,
            warmup: self.warmup.unwrap_or(warmup) as usize,
            statistic: self.decide,
            cache: if self.cold_cache {
                CacheChoice::Cold
            } else {
                self.cache
            },
        }
    }
}

impl EstimateArgs {
    pub(super) fn apply(&self, opts: &mut CheckOptions, default_scales: &[f64]) -> Result<()> {
        if let Some(path) = &self.prod_stats {
            let stats = crate::estimate::ProdStats::load(path)?;
            opts.prod_stats = Some((path.clone(), stats));
            opts.run.scales = if self.scales.is_empty() {
                default_scales.to_vec()
            } else {
                self.scales.clone()
            };
            opts.growth = self.growth;
        } else if !self.scales.is_empty() || self.growth.is_some() {
            return Err(Error::Usage(
                "--scales and --growth need --prod-stats FILE".into(),
            ));
        }
        if opts.run.timing.statistic == Statistic::Estimate && opts.prod_stats.is_none() {
            return Err(Error::Usage(
                "--decide estimate needs --prod-stats FILE".into(),
            ));
        }
        Ok(())
    }
}

/// `check`'s plan: its flags and downtime.toml resolved, its outputs found
/// writable. Nothing is started.
pub fn check_plan(args: &CheckArgs) -> Result<CheckOptions> {
    let overrides = Overrides {
        profile: args.profile,
        per_patch_seconds: args.budget,
        total_seconds: args.total_budget,
        cold_window_seconds: args.cold_window_budget,
        live_lock_threshold_seconds: args.live_lock_threshold,
        bulk_write_fraction: args.bulk_write_fraction,
        require_lock_timeout: args.require_lock_timeout,
    };
    let mut opts = check_options(&args.common, &args.paths, &overrides)?;
    opts.run.keep_going = args.keep_going;
    args.timing.apply(&mut opts, 1, 0);
    args.estimate.apply(&mut opts, &[0.25, 0.5, 1.0])?;
    let config = config::load(args.common.config.as_deref())?;
    opts.run.probe = probe_options(&args.probe, &config, opts.run.statement_cap)?;
    check_targets(&args.out, args.output.as_deref())?;
    Ok(opts)
}

/// The probe, from its flags and `[probe]` (flags win); `None` when off.
fn probe_options(
    args: &super::args::ProbeArgs,
    config: &config::Config,
    statement_cap: std::time::Duration,
) -> Result<Option<ProbeOptions>> {
    let file = &config.file.probe;
    let asked = args.probe
        || !args.probe_sql.is_empty()
        || args.probe_long_query.is_some()
        || file.enabled.unwrap_or(false);
    if args.no_probe || !asked {
        return Ok(None);
    }
    let defaults = ProbeOptions::default();
    let seconds =
        |flag: Option<f64>, key: &config::Number| -> Result<Option<std::time::Duration>> {
            flag.or(config::value(key))
                .map(|s| crate::limits::duration(s).map_err(Error::Usage))
                .transpose()
        };
    let mut scripts = Vec::new();
    let files: Vec<std::path::PathBuf> = if args.probe_sql.is_empty() {
        file.sql
            .iter()
            .flatten()
            .map(|p| config.resolve(p))
            .collect()
    } else {
        args.probe_sql.clone()
    };
    for f in &files {
        scripts.extend(crate::measure::probe::parse_script_file(f)?);
    }
    let sql_only = args.probe_sql_only || file.sql_only.unwrap_or(false);
    if sql_only && scripts.is_empty() {
        return Err(Error::Usage(
            "--probe-sql-only needs queries of the application's own (--probe-sql FILE)".into(),
        ));
    }
    Ok(Some(ProbeOptions {
        sessions: args
            .probe_sessions
            .map(|n| n as usize)
            .or(config::value(&file.sessions).map(|n| n as usize))
            .unwrap_or(defaults.sessions),
        rate: args
            .probe_rate
            .or(config::value(&file.rate))
            .unwrap_or(defaults.rate),
        threshold: seconds(args.probe_threshold, &file.threshold_seconds)?
            .unwrap_or(defaults.threshold),
        long_query: seconds(args.probe_long_query, &file.long_query_seconds)?,
        derived: !sql_only,
        scripts,
        max_tables: args
            .probe_tables
            .map(|n| n as usize)
            .or(config::value(&file.tables).map(|n| n as usize))
            .unwrap_or(defaults.max_tables),
        idle: defaults.idle,
        statement_cap,
    }))
}

/// `bench`'s plan (see [`check_plan`]).
pub fn bench_plan(args: &BenchArgs) -> Result<CheckOptions> {
    let mut opts = check_options(&args.common, &args.paths, &Overrides::default())?;
    opts.run.keep_going = true;
    args.timing.apply(&mut opts, 5, 1);
    check_targets(&args.out, args.output.as_deref())?;
    Ok(opts)
}

/// `estimate`'s plan (see [`check_plan`]).
pub fn estimate_plan(args: &EstimateCmdArgs) -> Result<CheckOptions> {
    if args.estimate.prod_stats.is_none() {
        return Err(Error::Usage(
            "estimate needs --prod-stats FILE (from `downtime stats export`)".into(),
        ));
    }
    let mut opts = check_options(&args.common, &args.paths, &Overrides::default())?;
    opts.run.keep_going = true;
    args.timing.apply(&mut opts, 1, 0);
    args.estimate.apply(&mut opts, &[0.1, 0.25, 0.5, 1.0])?;
    check_targets(&args.out, args.output.as_deref())?;
    Ok(opts)
}

/// The statement cap: `--timeout`, else the file's, else ten times the
/// largest budget, at most what PostgreSQL's `statement_timeout` takes.
fn statement_cap(
    common: &CommonArgs,
    file: &config::ConfigFile,
    policy: &crate::verdict::Policy,
) -> Result<std::time::Duration> {
    let timeout = common
        .timeout
        .or(config::value(&file.staging.timeout_seconds))
        .unwrap_or_else(|| {
            (policy.budget.largest_patch_budget() * 10.0).min(limits::PG_TIMEOUT_MAX_SECONDS)
        });
    limits::STATEMENT_TIMEOUT
        .check(timeout)
        .and_then(limits::duration)
        .map_err(|e| Error::Usage(format!("statement timeout: {e}")))
}

/// Everything resolved from the config file and the command line.
pub(super) fn check_options(
    common: &CommonArgs,
    paths: &[PathBuf],
    overrides: &Overrides,
) -> Result<CheckOptions> {
    let config = config::load(common.config.as_deref())?;
    let mut policy = config.policy(overrides);
    let file = &config.file;
    let paths = if !paths.is_empty() {
        paths.to_vec()
    } else if let Some(p) = &file.patches {
        p.iter().map(|p| config.resolve(p)).collect()
    } else {
        vec![PathBuf::from(DEFAULT_PATCH_DIR)]
    };
    let signoff_file = match &file.signoff.file {
        Some(f) => config.resolve(f),
        None => paths
            .iter()
            .find(|p| p.is_dir())
            .cloned()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATCH_DIR))
            .join("signoffs.toml"),
    };
    policy.signoff_file = signoff_file.display().to_string();
    let statement_cap = statement_cap(common, file, &policy)?;
    let (backend, embedded, docker) = staging_options(common, &config)?;
    Ok(CheckOptions {
        run: RunPlan {
            paths,
            baseline: common
                .baseline
                .clone()
                .or_else(|| file.staging.baseline.as_ref().map(|p| config.resolve(p))),
            no_baseline: common.no_baseline,
            source: source(common, file)?,
            statement_cap,
            backend,
            embedded,
            docker,
            keep_going: false,
            until: None,
            max_run_seconds: common
                .max_run_seconds
                .or(config::value(&file.staging.max_run_seconds)),
            timing: crate::check::TimingOptions::default(),
            cache: (!common.no_cache).then(crate::staging::cache::default_root),
            scales: Vec::new(),
            layout: common.layout.or(file.layout),
            all: common.all,
            probe: None,
        },
        policy,
        signoff_file,
        signoff_base: config.base(),
        history_file: None,
        record_history: false,
        compare_history: None,
        prod_stats: None,
        growth: None,
    })
}

/// The staging server: which backend, and its options.
fn staging_options(
    common: &CommonArgs,
    config: &config::Config,
) -> Result<(BackendKind, EmbeddedOptions, DockerOptions)> {
    let file = &config.file;
    let pg_conf = common
        .pg_conf
        .clone()
        .or_else(|| file.staging.pg_conf.as_ref().map(|p| config.resolve(p)));
    if let Some(p) = &pg_conf {
        fsutil::check_regular(p)?;
    }
    let pg_bin = common
        .pg_bin
        .clone()
        .or_else(|| file.staging.pg_bin.as_ref().map(|p| config.resolve(p)));
    let image = common.image.clone().or_else(|| {
        // A version on the command line wins over an image in the file.
        common
            .pg_version
            .is_none()
            .then(|| file.staging.image.clone())
            .flatten()
    });
    let pg_version = common
        .pg_version
        .clone()
        .or_else(|| file.staging.pg_version.as_ref().map(|v| v.to_string()));
    if let Some(v) = &pg_version {
        image_tag(v).map_err(|e| Error::Usage(format!("pg-version: {e}")))?;
    }
    let backend = match common.backend.or(file.staging.backend) {
        Some(b) => b,
        // Asking for an image or a version means the Docker backend.
        None if common.image.is_some() || common.pg_version.is_some() => BackendKind::Docker,
        None => BackendKind::Local,
    };
    if backend == BackendKind::Local && (common.image.is_some() || common.pg_version.is_some()) {
        return Err(Error::Usage(
            "--image and --pg-version choose the container image of the Docker backend; \
             add --backend docker (the local backend uses this machine's server binaries, \
             see --pg-bin)"
                .into(),
        ));
    }
    let embedded = EmbeddedOptions {
        bin_dir: pg_bin.clone(),
        extra_conf: pg_conf.clone(),
        from_data: None,
    };
    let docker = DockerOptions {
        image,
        pg_version,
        extra_conf: pg_conf,
        client_bin_dir: pg_bin,
    };
    Ok((backend, embedded, docker))
}

/// `--from-url`, resolved as libpq resolves it and checked against the
/// production guard.
fn source(common: &CommonArgs, file: &config::ConfigFile) -> Result<Option<Source>> {
    let Some(url) = &common.from_url else {
        return Ok(None);
    };
    let source = Source::new("--from-url", url)?;
    let patterns: Vec<String> = file.staging.production_patterns.clone().unwrap_or_else(|| {
        DEFAULT_PRODUCTION_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    source.guard(&patterns, common.i_know_this_is_production)?;
    Ok(Some(source))
}
