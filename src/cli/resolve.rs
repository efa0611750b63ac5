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
use crate::staging::command::CommandOptions;
use crate::staging::docker::DockerOptions;
use crate::staging::embedded::EmbeddedOptions;
use crate::staging::server::ServerOptions;
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
            // The verdict judges work at production's sizes.
            opts.policy.classify.sizes.production = Some(std::sync::Arc::new(stats.clone()));
            opts.run.measure_costs = true;
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
        bulk_write_rows: args.bulk_write_rows,
        require_lock_timeout: args.require_lock_timeout,
    };
    let mut opts = check_options(&args.common, &args.paths, &overrides)?;
    opts.run.keep_going = args.keep_going;
    args.timing.apply(&mut opts, 1, 0);
    let config = config::load(args.common.config.as_deref())?;
    let mut estimate = args.estimate.clone();
    if estimate.prod_stats.is_none() {
        estimate.prod_stats = config.file.prod_stats.as_ref().map(|p| config.resolve(p));
    }
    estimate.apply(&mut opts, &[0.25, 0.5, 1.0])?;
    opts.run.probe = probe_options(&args.probe, &config, opts.run.statement_cap)?;
    restart_fits(&opts)?;
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
    restart_fits(&opts)?;
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
    restart_fits(&opts)?;
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
    policy.classify.sizes.small = file.tables.small.clone().unwrap_or_default();
    let paths = if !paths.is_empty() {
        paths.to_vec()
    } else if let Some(p) = &file.patches {
        p.iter().map(|p| config.resolve(p)).collect()
    } else {
        vec![PathBuf::from(DEFAULT_PATCH_DIR)]
    };
    let signoff_file = match (&common.signoff_file, &file.signoff.file) {
        (Some(f), _) => f.clone(),
        (None, Some(f)) => config.resolve(f),
        (None, None) => paths
            .iter()
            .find(|p| p.is_dir())
            .cloned()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATCH_DIR))
            .join("signoffs.toml"),
    };
    policy.signoff_file = signoff_file.display().to_string();
    let statement_cap = statement_cap(common, file, &policy)?;
    let staging = staging_options(common, &config)?;
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
            backend: staging.backend,
            embedded: staging.embedded,
            docker: staging.docker,
            server: staging.server,
            command: staging.command,
            keep_going: false,
            until: None,
            max_run_seconds: common
                .max_run_seconds
                .or(config::value(&file.staging.max_run_seconds)),
            timing: crate::check::TimingOptions::default(),
            cache: if common.no_cache {
                None
            } else {
                Some(crate::staging::cache::root()?)
            },
            scales: Vec::new(),
            layout: common.layout.or(file.layout),
            all: common.all,
            probe: None,
            measure_costs: false,
            notes: staging.notes,
        },
        policy,
        signoff_file,
        signoff_base: config.base(),
        config_flag: common.config.clone(),
        history_file: None,
        record_history: false,
        compare_history: None,
        prod_stats: None,
        growth: None,
    })
}

/// A cold cache restarts the server: only one downtime starts itself.
fn restart_fits(opts: &CheckOptions) -> Result<()> {
    let backend = opts.run.backend;
    if backend.owns_server() || opts.run.timing.cache == CacheChoice::Warm {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "--cache cold and both restart the staging server before each run, and the {} \
         backend's server is not downtime's to restart: use --cache warm, or --backend local \
         or docker",
        backend.report_name()
    )))
}

/// The staging server, resolved: which backend, its options, and what the
/// report is to note.
struct Staging {
    backend: BackendKind,
    embedded: EmbeddedOptions,
    docker: DockerOptions,
    server: Option<ServerOptions>,
    command: Option<CommandOptions>,
    notes: Vec<String>,
}

/// The staging server: which backend, and its options.
fn staging_options(common: &CommonArgs, config: &config::Config) -> Result<Staging> {
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
    // Asking for an image or a version means the Docker backend; a server
    // URL the server backend.
    let implied = if common.image.is_some() || common.pg_version.is_some() {
        Some(BackendKind::Docker)
    } else {
        common.url.as_ref().map(|_| BackendKind::Server)
    };
    let backend = common
        .backend
        .or(implied)
        .or(file.staging.backend)
        .unwrap_or(BackendKind::Local);
    if backend != BackendKind::Docker && (common.image.is_some() || common.pg_version.is_some()) {
        return Err(Error::Usage(format!(
            "--image and --pg-version choose the container image of the Docker backend; \
             add --backend docker (the {} backend {})",
            backend.report_name(),
            match backend {
                BackendKind::Local => "uses this machine's server binaries, see --pg-bin",
                _ => "uses a server that is there already",
            }
        )));
    }
    if backend != BackendKind::Server && common.url.is_some() {
        return Err(Error::Usage(format!(
            "--url names the server of the server backend, and this run's backend is {}: add \
             --backend server (or drop --url)",
            backend.report_name()
        )));
    }
    let mut notes = Vec::new();
    if !backend.owns_server() {
        if common.pg_conf.is_some() {
            return Err(Error::Usage(format!(
                "--pg-conf sets the settings of a server downtime starts; the {} backend's \
                 server keeps its own (read and recorded in the report): set them there, or \
                 use --backend local or docker",
                backend.report_name()
            )));
        }
        if let Some(p) = &pg_conf {
            notes.push(format!(
                "{} (`pg-conf` under [staging]) not applied: the {} backend's server keeps its \
                 own settings, recorded in this report",
                p.display(),
                backend.report_name()
            ));
        }
    }
    let patterns = production_patterns(file);
    let server = match backend {
        BackendKind::Server => Some(ServerOptions {
            url: server_source(common.url.as_deref(), file)?.ok_or_else(|| {
                Error::Usage(
                    "--backend server needs --url URL (or `url` under [staging] in \
                     downtime.toml): the server to make the staging databases on"
                        .into(),
                )
            })?,
            client_bin_dir: pg_bin.clone(),
            needs_clients: true,
        }),
        _ => None,
    };
    let command = match backend {
        BackendKind::Command => Some(command_options(common, config, patterns)?),
        _ => None,
    };
    Ok(Staging {
        backend,
        embedded: EmbeddedOptions {
            bin_dir: pg_bin.clone(),
            extra_conf: pg_conf.clone(),
            from_data: None,
        },
        docker: DockerOptions {
            image,
            pg_version,
            extra_conf: pg_conf,
            client_bin_dir: pg_bin,
        },
        server,
        command,
        notes,
    })
}

/// `[staging] production-patterns`, else downtime's own.
fn production_patterns(file: &config::ConfigFile) -> Vec<String> {
    file.staging.production_patterns.clone().unwrap_or_else(|| {
        DEFAULT_PRODUCTION_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect()
    })
}

/// The server backend's server: `url` (a flag), else `url` under
/// [staging]; resolved as libpq resolves it and refused when it looks like
/// production.
fn server_source(url: Option<&str>, file: &config::ConfigFile) -> Result<Option<Source>> {
    let (arg, text) = match (url, &file.staging.url) {
        (Some(u), _) => ("--url", u),
        (None, Some(u)) => ("[staging] url", u.as_str()),
        (None, None) => return Ok(None),
    };
    let source = Source::writable(arg, text)?;
    source.guard(&production_patterns(file), false)?;
    Ok(Some(source))
}

/// The server of `clean` and `cache clear`: `url` (a flag), else the one
/// the policy file (`config`, or the one found) names for the server
/// backend; `None` when neither names one.
pub(super) fn server_named(url: Option<&str>, config: Option<PathBuf>) -> Result<Option<Source>> {
    let config = match config::load(config.as_deref()) {
        Ok(c) => c,
        // Nothing asked of the file: one that cannot be read is no reason
        // to leave the rest uncleaned.
        Err(_) if url.is_none() && config.is_none() => return Ok(None),
        Err(e) => return Err(e),
    };
    let named_in_file = config.file.staging.backend == Some(BackendKind::Server);
    if url.is_none() && !named_in_file {
        return Ok(None);
    }
    server_source(url, &config.file)
}

/// `[staging.command]`, both commands given; the command backend loads no
/// baseline, so one asked for is an error.
fn command_options(
    common: &CommonArgs,
    config: &config::Config,
    production_patterns: Vec<String>,
) -> Result<CommandOptions> {
    let where_ = config
        .path
        .as_ref()
        .map_or("downtime.toml".to_string(), |p| p.display().to_string());
    let section = config.file.staging.command.as_ref();
    let command = |name: &str, value: Option<&String>| {
        value
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--backend command needs `{name}` under [staging.command] in {where_}: the \
                 command (run with sh -c, DOWNTIME_CLONE naming the clone) that {}",
                    if name == "create" {
                        "makes a clone and prints its connection URL as its last line"
                    } else {
                        "removes the clone"
                    }
                ))
            })
    };
    let timeout = match section.and_then(|s| config::value(&s.timeout_seconds)) {
        Some(seconds) => crate::limits::duration(seconds).map_err(|e| {
            Error::Usage(format!(
                "[staging.command] timeout-seconds in {where_}: {e}"
            ))
        })?,
        None => crate::staging::command::DEFAULT_TIMEOUT,
    };
    let opts = CommandOptions {
        create: command("create", section.and_then(|s| s.create.as_ref()))?,
        destroy: command("destroy", section.and_then(|s| s.destroy.as_ref()))?,
        production_patterns,
        timeout,
    };
    if common.baseline.is_some() || common.from_url.is_some() {
        return Err(Error::Usage(
            "--baseline and --from-url load a baseline, and the command backend loads none: \
             each clone is the starting point"
                .into(),
        ));
    }
    Ok(opts)
}

/// `--from-url`, resolved as libpq resolves it and checked against the
/// production guard.
fn source(common: &CommonArgs, file: &config::ConfigFile) -> Result<Option<Source>> {
    let Some(url) = &common.from_url else {
        return Ok(None);
    };
    let source = Source::new("--from-url", url)?;
    source.guard(&production_patterns(file), common.i_know_this_is_production)?;
    Ok(Some(source))
}
