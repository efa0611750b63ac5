//! Command-line interface: argument definitions and dispatch. Kept thin: each
//! command maps its flags onto a library call and renders the result.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod signoff;

use crate::cancel::Cancel;
use crate::check::CacheChoice;
use crate::check::{self, CheckOptions, DEFAULT_PATCH_DIR};
use crate::config::{self, Overrides};
use crate::error::{Error, Result, EXIT_PASS, EXIT_VERDICT};
use crate::measure::stats::Statistic;
use crate::report::{self, ChartFormat, Format, Report};
use crate::staging::docker::DockerOptions;
use crate::staging::embedded::EmbeddedOptions;
use crate::staging::BackendKind;
use crate::ui;
use crate::verdict::{Profile, RULES};

const ABOUT: &str = "Apply PostgreSQL patches to throwaway staging copies, time them, \
classify each as live or cold, and fail the build when a patch goes over budget.";

const AFTER_HELP: &str = "\
Exit status: 0 every patch within budget; 1 a patch over budget, failed, or \
declared live but cold; 2 usage, input or infrastructure error; 130/143 \
interrupted by SIGINT/SIGTERM.";

#[derive(Debug, Parser)]
#[command(name = "downtime", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Print only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply patches to a fresh staging copy, time and classify each, and gate on the budget.
    #[command(after_help = CHECK_AFTER_HELP)]
    Check(CheckArgs),
    /// Time patches over several runs on fresh copies: min, median, max,
    /// MAD and a 95 % confidence interval of the median, per patch and statement.
    Bench(BenchArgs),
    /// Re-render a saved JSON report in other formats.
    Report(ReportArgs),
    /// Predict each patch's time at production size from runs on scaled-down
    /// copies and a `stats export` file, with a growth forecast.
    Estimate(EstimateCmdArgs),
    /// Production statistics for `estimate`.
    Stats {
        #[command(subcommand)]
        action: StatsAction,
    },
    /// Remove what runs killed outright (SIGKILL, power loss) left behind:
    /// their containers (labelled io.downtime.run) and their clusters'
    /// temporary directories. What a running downtime still uses is kept.
    Clean {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also remove containers and directories of runs that are still going.
        #[arg(long)]
        all: bool,
    },
    /// Manage the baseline cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Show the recorded timings of patches, oldest first.
    History {
        /// A patch id or path [default: every patch]
        patch: Option<String>,
        /// The history file.
        #[arg(long, value_name = "FILE", default_value = crate::verdict::history::DEFAULT_FILE)]
        file: PathBuf,
    },
    /// Record a reviewer's sign-off for a patch over its budget, or list sign-offs.
    Signoff(SignoffArgs),
    /// List the classification rules with their safer recipes, or explain one.
    Rules {
        /// A rule id to explain: what it detects, the PostgreSQL behaviour
        /// behind it, and the safer recipe.
        rule: Option<String>,
        /// Print the rules as the Markdown of docs/rules.md.
        #[arg(long, conflicts_with = "rule")]
        markdown: bool,
    },
}

const CHECK_AFTER_HELP: &str = "\
Patch layouts (one per run, ordered by version): patch-MAJOR-MINOR-LEVEL.sql \
(Launchpad), 0001-name.sql / 20240101120000_name.sql (numbered), V2__name.sql / \
V2_1__name.sql (Flyway; U and R scripts skipped), 000002_name.up.sql \
(golang-migrate, sqlx; .down.sql skipped), 2019-02-26-002946_name/up.sql (diesel).

Each patch runs in one transaction, statement by statement; statements PostgreSQL \
forbids in a transaction (CREATE INDEX CONCURRENTLY, VACUUM, ...) run outside it, \
in order, and a patch's own BEGIN/COMMIT is honoured. Patch N is measured on the \
copy that already has patches 1..N-1. The baseline is loaded once into a template \
database that is never patched.

A patch may declare `-- downtime: live` or `-- downtime: cold` in its header; a \
patch declared live but classified cold fails the check.

Exit status: 0 pass; 1 a patch over budget, failed, or declared live but cold; \
2 usage, input or infrastructure error.";

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Patch files and folders [default: `patches` from downtime.toml, else patches/]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,

    /// Seconds each patch may take [default: from the profile; standard: 15]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub budget: Option<f64>,

    /// Seconds all patches together may take [default: from the profile; off]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub total_budget: Option<f64>,

    /// Seconds all cold patches together may take: the downtime window [default: off]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub cold_window_budget: Option<f64>,

    /// Budgets and rules: standard (15 s per patch), launchpad (15 s per cold
    /// patch, warn at 10 s, Launchpad's live-patch rules), gitlab (180 s,
    /// post-deploy 600 s, total 3600 s), strict (live patches only)
    /// [default: from downtime.toml, else standard]
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,

    /// A lock that blocks the application, held longer than this, makes a patch cold [default: 1]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub live_lock_threshold: Option<f64>,

    /// An UPDATE/DELETE touching at least this fraction of a table makes a patch cold [default: 0.1]
    #[arg(long, value_name = "FRACTION", value_parser = fraction)]
    pub bulk_write_fraction: Option<f64>,

    /// Fail live patches that take a blocking lock with lock_timeout off
    /// (instead of warning).
    #[arg(long)]
    pub require_lock_timeout: bool,

    /// Go on with later patches after one fails (the failed one is rolled back).
    #[arg(long)]
    pub keep_going: bool,

    #[command(flatten)]
    pub timing: TimingArgs,

    #[command(flatten)]
    pub estimate: EstimateArgs,

    #[command(flatten)]
    pub out: OutputArgs,

    /// Also write the JSON report to this file.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Repeated, statistically summarised timing.
#[derive(Debug, Clone, clap::Args)]
pub struct TimingArgs {
    /// Timed runs, each on a fresh copy with the earlier patches applied
    /// [default: check 1, bench 5]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: Option<u32>,

    /// Untimed runs first [default: check 0, bench 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub warmup: Option<u32>,

    /// The figure over the runs that decides the budget.
    #[arg(long, value_enum, default_value_t = Statistic::Median)]
    pub decide: Statistic,

    /// Caches at the start of each timed run: warm, cold (server restarted,
    /// OS page cache dropped where permitted), or both side by side.
    #[arg(long, value_enum, default_value_t = CacheChoice::Warm)]
    pub cache: CacheChoice,

    /// Same as --cache cold.
    #[arg(long, conflicts_with = "cache")]
    pub cold_cache: bool,

    /// Fail a patch that is slower than its last recorded run with the same
    /// server settings by more than --regression-threshold, with the
    /// confidence intervals apart.
    #[arg(long)]
    pub compare_history: bool,

    /// Percent slower that counts as a regression.
    #[arg(long, value_name = "PERCENT", default_value_t = 20.0, value_parser = positive_seconds)]
    pub regression_threshold: f64,

    /// The history file every run appends to [default: reports/history.jsonl]
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Do not record this run in the history (it is still read for
    /// --compare-history and the trend chart).
    #[arg(long)]
    pub no_history: bool,
}

impl TimingArgs {
    fn apply(&self, opts: &mut CheckOptions, runs: u32, warmup: u32) {
        opts.timing = self.options(runs, warmup);
        opts.history_file = Some(
            self.history
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::verdict::history::DEFAULT_FILE)),
        );
        opts.record_history = !self.no_history;
        opts.compare_history = self.compare_history.then_some(self.regression_threshold);
    }

    fn options(&self, runs: u32, warmup: u32) -> crate::check::TimingOptions {
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

/// Estimating at production size.
#[derive(Debug, Clone, clap::Args)]
pub struct EstimateArgs {
    /// Production statistics from `downtime stats export`: predict each
    /// patch's time at production size (use --decide estimate to gate on it).
    #[arg(long, value_name = "FILE")]
    pub prod_stats: Option<PathBuf>,

    /// Fractions of the staging rows to measure at, comma-separated. Each is
    /// measured --runs times, the scales taking turns; a scaled copy of the
    /// baseline per fraction is kept meanwhile (disk: the fractions' sum
    /// times the baseline) [default: check 0.25,0.5,1; estimate 0.1,0.25,0.5,1]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = fraction)]
    pub scales: Vec<f64>,

    /// Data growth for the forecast, e.g. 4%/month or 40%/year [default: the
    /// modification rates in the stats file]
    #[arg(long, value_name = "RATE", value_parser = crate::estimate::model::parse_growth)]
    pub growth: Option<f64>,
}

impl EstimateArgs {
    fn apply(&self, opts: &mut CheckOptions, default_scales: &[f64]) -> Result<()> {
        if let Some(path) = &self.prod_stats {
            let stats = crate::estimate::ProdStats::load(path)?;
            opts.prod_stats = Some((path.clone(), stats));
            opts.scales = if self.scales.is_empty() {
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
        if opts.timing.statistic == Statistic::Estimate && opts.prod_stats.is_none() {
            return Err(Error::Usage(
                "--decide estimate needs --prod-stats FILE".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, clap::Args)]
pub struct EstimateCmdArgs {
    /// Patch files and folders [default: `patches` from downtime.toml, else patches/]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub timing: TimingArgs,

    #[command(flatten)]
    pub estimate: EstimateArgs,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum StatsAction {
    /// Write per-table row counts, sizes and modification rates of a
    /// database. Safe against production: the connection is read-only
    /// (default_transaction_read_only=on) and reads only catalogue and
    /// statistics views (pg_class, pg_stat_user_tables), never table rows,
    /// so the production guard does not apply.
    Export {
        /// The database (a password in it is never printed).
        #[arg(long, value_name = "URL")]
        url: String,
        /// Where to write the JSON.
        #[arg(short, long, value_name = "FILE", default_value = "prod-stats.json")]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Remove every cached baseline.
    Clear,
    /// Print the cache directory.
    Dir,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Patch files and folders [default: `patches` from downtime.toml, else patches/]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub timing: TimingArgs,

    #[command(flatten)]
    pub out: OutputArgs,
}

/// Where and how reports are written.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Report formats, comma-separated (text, json, markdown, html, junit,
    /// github). One format other than html goes to stdout; with several, or
    /// with --output-dir, each is written to the output directory (text
    /// still goes to stdout).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "text")]
    pub format: Vec<Format>,

    /// Directory for report files and charts [default: reports/]
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Also write the charts as image files (png, svg; comma-separated) to the output directory.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub charts: Vec<ChartFormat>,

    /// Do not print GitHub annotations (printed on stderr when GITHUB_ACTIONS=true).
    #[arg(long)]
    pub no_annotations: bool,
}

/// The default output directory.
pub const DEFAULT_OUTPUT_DIR: &str = "reports";

/// Print and write a report as the output options ask.
pub fn emit(report: &Report, out: &OutputArgs) -> Result<()> {
    let formats = &out.format;
    let to_stdout = out.output_dir.is_none() && formats.len() == 1 && formats[0] != Format::Html;
    let dir = out
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUTPUT_DIR));
    if to_stdout {
        print!("{}", report::render(report, formats[0]));
    } else {
        for f in formats {
            if *f == Format::Text {
                print!("{}", report::render(report, *f));
                continue;
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let path = dir.join(f.file_name());
            std::fs::write(&path, report::render(report, *f)).map_err(|e| Error::io(&path, e))?;
            ui::note(&format!("wrote {}", path.display()));
        }
    }
    if !out.charts.is_empty() {
        for path in report::write_charts(report, &dir, &out.charts)? {
            ui::note(&format!("wrote {}", path.display()));
        }
    }
    let on_github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if on_github && !out.no_annotations && !formats.contains(&Format::Github) {
        eprint!("{}", report::render(report, Format::Github));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A JSON report written by `check` (--format json or --output).
    pub file: PathBuf,

    #[command(flatten)]
    pub out: OutputArgs,
}

/// Options shared by the commands that apply patches.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Policy file [default: downtime.toml in this directory or a parent, up to the repository root]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Staging data: a SQL script (run with psql) or a pg_dump custom/directory
    /// archive (pg_restore) [default: from downtime.toml, else baseline.sql beside the patches]
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Start from an empty database even when a baseline is configured or found.
    #[arg(long, conflicts_with = "baseline")]
    pub no_baseline: bool,

    /// Copy an existing database as the baseline: a read-only pg_dump
    /// (default_transaction_read_only=on); no statement is ever sent to it.
    /// Passwords in the URL are never printed.
    #[arg(long, value_name = "URL", conflicts_with_all = ["baseline", "no_baseline"])]
    pub from_url: Option<String>,

    /// Allow --from-url to read a source whose host or database name looks
    /// like production (the words prod, production, live; `[staging]
    /// production-patterns` in downtime.toml). Access stays read-only.
    #[arg(long)]
    pub i_know_this_is_production: bool,

    /// Cancel any statement running longer than this [default: 10 × the largest per-patch budget]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub timeout: Option<f64>,

    /// Load the baseline again instead of starting from the cached, loaded
    /// cluster ($XDG_CACHE_HOME/downtime, by the baseline's sha256, the
    /// PostgreSQL version and the settings).
    #[arg(long)]
    pub no_cache: bool,

    /// Stop the whole run after this long: the running statement is cancelled
    /// and the report names it [default: off]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub max_run_seconds: Option<f64>,

    /// Where the staging copies run: `local`, a private cluster from this
    /// machine's PostgreSQL server binaries, or `docker`, a container started
    /// with testcontainers [default: from downtime.toml, else local]
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub backend: Option<crate::staging::BackendKind>,

    /// With the Docker backend: run the official image `postgres:VERSION`
    /// (mirror production's major version) [default: the local psql's major version]
    #[arg(long, value_name = "VERSION", value_parser = image_tag)]
    pub pg_version: Option<String>,

    /// With the Docker backend: the image to run instead of `postgres:VERSION`.
    /// It must behave like the official image (POSTGRES_USER/POSTGRES_PASSWORD,
    /// `-c name=value` arguments). Pulled when not present locally.
    #[arg(long, value_name = "REPO:TAG", conflicts_with = "pg_version")]
    pub image: Option<String>,

    /// Directory with the PostgreSQL binaries: initdb and postgres for the
    /// local backend; psql and pg_restore (which load the baseline) for both
    /// [default: PATH, then the newest /usr/lib/postgresql/*/bin]
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,

    /// postgresql.conf lines for the staging server (mirror production's
    /// shared_buffers, maintenance_work_mem, ...). fsync and full_page_writes
    /// are on unless this file turns them off.
    #[arg(long, value_name = "FILE")]
    pub pg_conf: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = SIGNOFF_AFTER_HELP)]
pub struct SignoffArgs {
    /// The patch to sign off.
    #[arg(required_unless_present = "list")]
    pub patch: Option<PathBuf>,

    /// Who signs off (name or handle).
    #[arg(long, required_unless_present = "list")]
    pub by: Option<String>,

    /// Why the patch may take longer than its budget.
    #[arg(long, required_unless_present = "list")]
    pub reason: Option<String>,

    /// The longest the patch may take [default: measured now, with 50 % headroom, rounded up]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub max_seconds: Option<f64>,

    /// Show every sign-off and its state (valid, stale, exceeded, orphaned).
    #[arg(long, conflicts_with_all = ["patch", "by", "reason", "max_seconds"])]
    pub list: bool,

    /// With --list: a JSON report of `check` whose times decide `exceeded`.
    #[arg(long, value_name = "FILE", requires = "list")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,
}

const SIGNOFF_AFTER_HELP: &str = "\
A sign-off lets a patch over its budget pass `check`, as long as the patch's \
content is unchanged (sha256) and it stays within the approved maximum. \
Sign-offs are kept in `patches/signoffs.toml` (or `[signoff] file` in \
downtime.toml); commit that file with the patch.";

fn positive_seconds(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("`{s}`: seconds must be greater than 0"))
    }
}

fn image_tag(s: &str) -> std::result::Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a version or image tag (letters, digits, `.`, `_`, `-`)"
        ))
    }
}

fn fraction(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("`{s}`: a fraction must be in (0, 1]"))
    }
}

/// Everything resolved from the config file and the command line.
fn check_options(
    common: &CommonArgs,
    paths: &[PathBuf],
    overrides: &Overrides,
) -> Result<CheckOptions> {
    let config = config::load(common.config.as_deref())?;
    let policy = config.policy(overrides);
    let file = &config.file;
    let paths = if !paths.is_empty() {
        paths.to_vec()
    } else if let Some(p) = &file.patches {
        p.iter().map(|p| config.resolve(p)).collect()
    } else {
        vec![PathBuf::from(DEFAULT_PATCH_DIR)]
    };
    let baseline = common
        .baseline
        .clone()
        .or_else(|| file.staging.baseline.as_ref().map(|p| config.resolve(p)));
    let pg_conf = common
        .pg_conf
        .clone()
        .or_else(|| file.staging.pg_conf.as_ref().map(|p| config.resolve(p)));
    if let Some(p) = &pg_conf {
        std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
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
    let source = match &common.from_url {
        Some(url) => {
            let source = crate::staging::source::Source::new(url)?;
            let patterns: Vec<String> =
                file.staging.production_patterns.clone().unwrap_or_else(|| {
                    crate::staging::source::DEFAULT_PRODUCTION_PATTERNS
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                });
            source.guard(&patterns, common.i_know_this_is_production)?;
            Some(source)
        }
        None => None,
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
    let mut policy = policy;
    policy.signoff_file = signoff_file.display().to_string();
    Ok(CheckOptions {
        paths,
        baseline,
        no_baseline: common.no_baseline,
        source,
        policy,
        timeout_seconds: common.timeout.or(file.staging.timeout_seconds),
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
        keep_going: false,
        signoff_file,
        signoff_base: config.base(),
        until: None,
        max_run_seconds: common.max_run_seconds.or(file.staging.max_run_seconds),
        timing: crate::check::TimingOptions::default(),
        history_file: None,
        record_history: false,
        compare_history: None,
        cache: (!common.no_cache).then(crate::staging::cache::default_root),
        prod_stats: None,
        scales: Vec::new(),
        growth: None,
    })
}

/// `downtime clean`: leftover containers, then leftover cluster directories.
async fn clean(dry_run: bool, all: bool) -> Result<i32> {
    use crate::staging::{docker, embedded};
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut removed = 0;
    let mut kept = 0;
    match docker::engine().await {
        Ok(engine) => {
            for c in docker::leftovers(&engine).await? {
                let what = format!(
                    "container {} ({}, {}, started by pid {} on {})",
                    docker::short_id(&c.id),
                    c.image,
                    c.status,
                    c.pid.map_or("?".to_string(), |p| p.to_string()),
                    if c.host.is_empty() { "?" } else { &c.host }
                );
                if c.in_use && !all {
                    println!("kept {what}: that run is still going (--all removes it)");
                    kept += 1;
                    continue;
                }
                if !dry_run {
                    docker::remove_leftover(&engine, &c.id).await?;
                }
                println!("{verb} {what}");
                removed += 1;
            }
        }
        Err(e) => ui::note(&format!("containers not checked: {e}")),
    }
    for d in embedded::leftover_dirs(&std::env::temp_dir()) {
        if d.in_use && !all {
            println!(
                "kept {}: its run is still going (--all removes it)",
                d.path.display()
            );
            kept += 1;
            continue;
        }
        if !dry_run {
            embedded::remove_leftover(&d).await?;
        }
        println!("{verb} {}", d.path.display());
        removed += 1;
    }
    if removed == 0 && kept == 0 {
        println!("nothing to clean");
    }
    Ok(EXIT_PASS)
}

/// Run a parsed command line; returns the exit code.
/// The exit status a report calls for.
fn exit_code(report: &Report) -> i32 {
    match &report.aborted {
        Some(a) => a.reason.exit_code().unwrap_or(EXIT_VERDICT),
        None if report.passed() => EXIT_PASS,
        None => EXIT_VERDICT,
    }
}

pub async fn run(cli: Cli, cancel: Cancel) -> Result<i32> {
    match cli.command {
        Command::Check(args) => {
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
            opts.keep_going = args.keep_going;
            args.timing.apply(&mut opts, 1, 0);
            args.estimate.apply(&mut opts, &[0.25, 0.5, 1.0])?;
            let report = check::run(&opts, &cancel).await?;
            if let Some(path) = &args.output {
                std::fs::write(path, report.to_json() + "\n").map_err(|e| Error::io(path, e))?;
            }
            emit(&report, &args.out)?;
            Ok(exit_code(&report))
        }
        Command::Bench(args) => {
            let mut opts = check_options(&args.common, &args.paths, &Overrides::default())?;
            opts.keep_going = true;
            args.timing.apply(&mut opts, 5, 1);
            let report = check::run(&opts, &cancel).await?;
            if args.out.format == [Format::Text] && args.out.output_dir.is_none() {
                print!("{}", report::text::render_bench(&report));
            } else {
                emit(&report, &args.out)?;
            }
            Ok(match &report.aborted {
                Some(a) => a.reason.exit_code().unwrap_or(EXIT_VERDICT),
                None if report
                    .patches
                    .iter()
                    .any(|p| p.status == report::Status::Failed) =>
                {
                    EXIT_VERDICT
                }
                None => EXIT_PASS,
            })
        }
        Command::Estimate(args) => {
            if args.estimate.prod_stats.is_none() {
                return Err(Error::Usage(
                    "estimate needs --prod-stats FILE (from `downtime stats export`)".into(),
                ));
            }
            let mut opts = check_options(&args.common, &args.paths, &Overrides::default())?;
            opts.keep_going = true;
            args.timing.apply(&mut opts, 1, 0);
            args.estimate.apply(&mut opts, &[0.1, 0.25, 0.5, 1.0])?;
            let report = check::run(&opts, &cancel).await?;
            if args.out.format == [Format::Text] && args.out.output_dir.is_none() {
                print!("{}", report::text::render_estimate(&report));
            } else {
                emit(&report, &args.out)?;
            }
            Ok(exit_code(&report))
        }
        Command::Stats { action } => match action {
            StatsAction::Export { url, output } => {
                let stats = crate::estimate::prod_stats::export(&url).await?;
                let text = serde_json::to_string_pretty(&stats).unwrap_or_default();
                std::fs::write(&output, text + "\n").map_err(|e| Error::io(&output, e))?;
                println!(
                    "wrote {} tables of {} to {}",
                    stats.tables.len(),
                    stats.source,
                    output.display()
                );
                Ok(EXIT_PASS)
            }
        },
        Command::Clean { dry_run, all } => clean(dry_run, all).await,
        Command::Cache { action } => {
            let cache = crate::staging::cache::Cache {
                root: crate::staging::cache::default_root(),
            };
            match action {
                CacheAction::Clear => {
                    let n = cache.clear()?;
                    println!(
                        "removed {n} cached baseline(s) from {}",
                        cache.root.display()
                    );
                }
                CacheAction::Dir => println!("{}", cache.root.display()),
            }
            Ok(EXIT_PASS)
        }
        Command::History { patch, file } => {
            let entries = crate::verdict::history::load(&file)?;
            let wanted = |e: &&crate::verdict::history::Entry| match &patch {
                None => true,
                Some(p) => {
                    e.patch == *p
                        || e.path == *p
                        || std::path::Path::new(p)
                            .file_stem()
                            .is_some_and(|s| s.to_string_lossy() == e.patch)
                }
            };
            let shown: Vec<_> = entries.iter().filter(wanted).collect();
            if shown.is_empty() {
                println!(
                    "no recorded runs{} in {}",
                    patch.map(|p| format!(" of {p}")).unwrap_or_default(),
                    file.display()
                );
                return Ok(EXIT_PASS);
            }
            println!(
                "{:<24} {:<20} {:>9} {:>21} {:>4} {:<5} {:<9} {:<16}",
                "patch", "at", "seconds", "95% CI", "runs", "cache", "commit", "settings"
            );
            for e in shown {
                println!(
                    "{:<24} {:<20} {:>9.4} {:>21} {:>4} {:<5} {:<9} {:<16}",
                    e.patch,
                    e.at,
                    e.seconds,
                    format!("[{:.4}, {:.4}]", e.ci_low, e.ci_high),
                    e.runs,
                    match e.cache {
                        report::CacheMode::Warm => "warm",
                        report::CacheMode::Cold => "cold",
                    },
                    e.commit
                        .as_deref()
                        .map(|c| &c[..c.len().min(9)])
                        .unwrap_or("-"),
                    e.fingerprint
                );
            }
            Ok(EXIT_PASS)
        }
        Command::Report(args) => {
            let report = report::load(&args.file)?;
            emit(&report, &args.out)?;
            Ok(exit_code(&report))
        }
        Command::Signoff(args) => signoff::run(args, &cancel).await,
        Command::Rules { rule, markdown } => {
            match rule {
                Some(id) => {
                    let r = crate::verdict::rules::rule(&id).ok_or_else(|| {
                        let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
                        Error::Usage(format!("no rule `{id}`; the rules are: {}", ids.join(", ")))
                    })?;
                    print!(
                        "{} ({})\n\n{}\n\nWhy: {}\n\nFix: {}\n",
                        r.id,
                        r.severity.word(),
                        r.summary,
                        r.why,
                        r.recipe
                    );
                }
                None if markdown => print!("{}", rules_markdown()),
                None => print!("{}", rules_text()),
            }
            Ok(EXIT_PASS)
        }
    }
}

fn rules_text() -> String {
    let mut out = String::new();
    for r in RULES {
        out.push_str(&format!(
            "{:<24} {:<7} {}\n{:<32} fix: {}\n",
            r.id,
            r.severity.word(),
            r.summary,
            "",
            r.recipe
        ));
    }
    out
}

/// The Markdown page of one rule, with its fixture patches as examples
/// (`(file name, SQL)`, bad ones first).
pub fn rule_page(r: &crate::verdict::RuleInfo, examples: &[(String, String)]) -> String {
    let mut out = format!(
        "# `{}`\n\nSeverity: **{}**. {}\n\n## Why\n\n{}\n\n## Safer recipe\n\n{}\n",
        r.id,
        r.severity.word(),
        r.summary,
        r.why,
        r.recipe
    );
    for (name, sql) in examples {
        let title = if name.contains("bad") {
            "Triggers the rule"
        } else {
            "Does not"
        };
        out.push_str(&format!(
            "\n## {title}: `{name}`\n\n```sql\n{}\n```\n",
            sql.trim_end()
        ));
    }
    out.push_str(&format!(
        "\nThese examples are the rule's test fixtures (`tests/fixtures/rules/{}/`); `downtime rules {}` prints this page's text.\n",
        r.id, r.id
    ));
    out
}

/// The Markdown of docs/rules.md, generated from the rule registry.
pub fn rules_markdown() -> String {
    let mut out = String::from(
        "# Classification rules\n\n\
         Generated by `downtime rules --markdown`; each rule lives in \
         `src/verdict/rules/` and has a bad/good fixture pair in \
         `tests/fixtures/rules/<id>/`.\n\n\
         Severity: **cold** makes the patch cold (it needs a downtime window), \
         **warning** leaves it live but risky, **error** fails the check, \
         **note** is context.\n\n\
         | rule | severity | what it detects | safer recipe |\n|---|---|---|---|\n",
    );
    for r in RULES {
        out.push_str(&format!(
            "| [`{0}`](rules/{0}.md) | {1} | {2} | {3} |\n",
            r.id,
            r.severity.word(),
            r.summary.replace('|', "\\|"),
            r.recipe.replace('|', "\\|")
        ));
    }
    out
}
