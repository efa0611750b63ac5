//! The flags of every subcommand, as clap parses them. What they mean once
//! combined with downtime.toml is decided in [`super::resolve`].

use std::path::PathBuf;

use clap::Subcommand;

use crate::check::CacheChoice;
use crate::limits;
use crate::measure::stats::Statistic;
use crate::report::{ChartFormat, Format};
use crate::verdict::Profile;

pub(super) const CHECK_AFTER_HELP: &str = "\
Patch layouts (one per run), each read and ordered as its tool does: \
patch-MAJOR-MINOR-LEVEL.sql (launchpad), 0001-name.sql (numbered), \
20210101120000_name.sql / 1_name.up.sql (sqlx), 000002_name.up.sql \
(golang-migrate), V2__name.sql / V2_1__name.sql / R__name.sql (flyway; U undo \
not applied), V1__name.sql / U2__name.sql (refinery), VERSION_name/up.sql \
(diesel, every version format). --layout chooses where names fit several. \
Where the tool keeps books (__diesel_schema_migrations, _sqlx_migrations, \
schema_migrations, flyway_schema_history, refinery_schema_history, \
LaunchpadDatabaseRevision), migrations the baseline records are skipped \
(--all applies them anyway) and applied ones are recorded as the tool does.

In downtime's own layouts (numbered, launchpad) each patch runs in one \
transaction, statement by statement; statements PostgreSQL forbids in a \
transaction (CREATE INDEX CONCURRENTLY, VACUUM, ...) run outside it, in order, \
and a patch's own BEGIN/COMMIT is honoured. A tool's migrations are sent as the \
tool sends them (its transaction, one query, or statement by statement), so \
what fails under the tool fails here. Patch N is measured on the \
copy that already has patches 1..N-1. The baseline is loaded once into a template \
database that is never patched.

A patch may declare `-- downtime: live` or `-- downtime: cold` in its header; a \
patch declared live but classified cold fails the check.

Exit status: 0 pass; 1 a patch over budget, failed, or declared live but cold; \
2 usage, input or infrastructure error (also: a tool's bookkeeping table that \
contradicts the migration files, refused in the tool's words).";

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Patch files and folders [default: `patches` from downtime.toml, else patches/]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,

    /// Seconds each patch may take [default: from the profile; standard: 15]
    #[arg(long, value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    pub budget: Option<f64>,

    /// Seconds all patches together may take [default: from the profile; off]
    #[arg(long, value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    pub total_budget: Option<f64>,

    /// Seconds all cold patches together may take: the downtime window [default: off]
    #[arg(long, value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    pub cold_window_budget: Option<f64>,

    /// Budgets and rules: standard (15 s per patch), launchpad (15 s per cold
    /// patch, warn at 10 s, Launchpad's live-patch rules), gitlab (180 s,
    /// post-deploy 600 s, total 3600 s), strict (live patches only)
    /// [default: from downtime.toml, else standard]
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,

    /// A lock that blocks the application, held longer than this, makes a patch cold [default: 1]
    #[arg(long, value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    pub live_lock_threshold: Option<f64>,

    /// An UPDATE/DELETE touching at least this fraction of a table makes a patch cold [default: 0.1]
    #[arg(long, value_name = "FRACTION", value_parser = fraction, allow_hyphen_values = true)]
    pub bulk_write_fraction: Option<f64>,

    /// An UPDATE/DELETE touching fewer rows than this where the patch will
    /// run (production's, with --prod-stats) is no bulk write, whatever the
    /// fraction [default: 1000]
    #[arg(long, value_name = "ROWS", value_parser = rows, allow_hyphen_values = true)]
    pub bulk_write_rows: Option<f64>,

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
    pub probe: ProbeArgs,

    #[command(flatten)]
    pub out: OutputArgs,

    /// Also write the JSON report to this file.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Simulated application traffic while each patch applies.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Application probe")]
pub struct ProbeArgs {
    /// While each patch applies, run application traffic on the copy (a
    /// reader and a rolled-back writer per table with rows) and report how
    /// long it waited, on which relation, behind which lock; a live patch
    /// that blocks it past the threshold becomes cold (measured-blocking)
    #[arg(long)]
    pub probe: bool,

    /// Turn the probe off (overrides `[probe] enabled` in downtime.toml).
    #[arg(long, conflicts_with = "probe")]
    pub no_probe: bool,

    /// The application's own queries: one statement per line, or a
    /// pgbench-style script (`\set id random(1, 1000)`, `:id`); `-- rate: N`
    /// before a query sets its rate. Repeatable; implies --probe
    #[arg(long, value_name = "FILE")]
    pub probe_sql: Vec<PathBuf>,

    /// Send only the --probe-sql queries (none derived from the schema).
    #[arg(long)]
    pub probe_sql_only: bool,

    /// When each patch starts, hold a reader on every table it names for
    /// this long, as a long report query would: shows the queue of
    /// application queries behind a statement that waits for it; implies --probe
    #[arg(long, value_name = "SECONDS", value_parser = long_query, allow_hyphen_values = true)]
    pub probe_long_query: Option<f64>,

    /// A query that waits on the patch's lock longer than this is blocked [default: 0.05]
    #[arg(long, value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    pub probe_threshold: Option<f64>,

    /// Queries per second, for each query of the workload [default: 10]
    #[arg(long, value_name = "N", value_parser = probe_rate, allow_hyphen_values = true)]
    pub probe_rate: Option<f64>,

    /// Application sessions sending the queries [default: 8]
    #[arg(long, value_name = "N", value_parser = probe_sessions, allow_hyphen_values = true)]
    pub probe_sessions: Option<u32>,

    /// At most this many tables get derived queries, the ones the patches
    /// name first [default: 16]
    #[arg(long, value_name = "N", value_parser = probe_tables, allow_hyphen_values = true)]
    pub probe_tables: Option<u32>,
}

/// Repeated, statistically summarised timing.
#[derive(Debug, Clone, clap::Args)]
pub struct TimingArgs {
    /// Timed runs, each on a fresh copy with the earlier patches applied
    /// [default: check 1, bench 5]
    #[arg(long, value_name = "N", value_parser = runs, allow_hyphen_values = true)]
    pub runs: Option<u32>,

    /// Untimed runs first [default: check 0, bench 1]
    #[arg(long, value_name = "N", value_parser = warmup, allow_hyphen_values = true)]
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
    #[arg(long, value_name = "PERCENT", default_value_t = 20.0, value_parser = percent, allow_hyphen_values = true)]
    pub regression_threshold: f64,

    /// The history file every run appends to [default: reports/history.jsonl]
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Do not record this run in the history (it is still read for
    /// --compare-history and the trend chart).
    #[arg(long)]
    pub no_history: bool,
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
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = fraction, allow_hyphen_values = true)]
    pub scales: Vec<f64>,

    /// Data growth for the forecast, e.g. 4%/month or 40%/year [default: the
    /// modification rates in the stats file]
    #[arg(long, value_name = "RATE", value_parser = crate::estimate::model::parse_growth, allow_hyphen_values = true)]
    pub growth: Option<f64>,
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

    /// Also write the JSON report to this file.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum StatsAction {
    /// Write per-table row counts, sizes, indexes, modification rates and
    /// column statistics of a database. Safe against production: the
    /// connection is read-only (default_transaction_read_only=on) and reads
    /// only catalogue and statistics views (pg_class, pg_index, pg_stats,
    /// pg_stat_user_tables), never table rows, so the production guard does
    /// not apply.
    Export {
        /// The database: a URL, a key/value connection string or a database
        /// name, completed as libpq completes it (service file, PG*
        /// variables, defaults). A password in it is never printed.
        /// TLS as libpq: sslmode (prefer by default; verify-ca and verify-full
        /// check the server's certificate against sslrootcert, by default
        /// ~/.postgresql/root.crt, `system` for the system's roots),
        /// sslcert/sslkey for a client certificate.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Where to write the JSON.
        #[arg(short, long, value_name = "FILE", default_value = "prod-stats.json")]
        output: PathBuf,
        /// Also write each column's most common values and histogram bounds
        /// (pg_stats): this copies production data values into the file.
        /// Off by default: the file then holds only counts, sizes and
        /// fractions.
        #[arg(long)]
        with_values: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Remove every cached baseline: the local ones, and with --url (or
    /// `url` under [staging] in downtime.toml) those the server keeps
    /// (databases downtime_cache_...).
    Clear {
        /// A server of the server backend whose cached baselines go too.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Policy file [default: downtime.toml in this directory or a parent]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
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

    /// Also write the JSON report to this file.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Where and how reports are written.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Reports")]
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

    /// The sign-off file, read by `check` and written by `signoff`
    /// [default: `[signoff] file` in downtime.toml, else signoffs.toml in the first patch folder]
    #[arg(long, value_name = "FILE")]
    pub signoff_file: Option<PathBuf>,

    /// Staging data: a SQL script (run with psql) or a pg_dump custom/directory
    /// archive (pg_restore) [default: from downtime.toml, else baseline.sql beside the patches]
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Start from an empty database even when a baseline is configured or found.
    #[arg(long, conflicts_with = "baseline")]
    pub no_baseline: bool,

    /// Copy an existing database as the baseline: a read-only pg_dump
    /// (default_transaction_read_only=on, last, so no `options` can undo
    /// it); no statement is ever sent to it. A URL, a key/value connection
    /// string or a database name, completed as libpq completes it (service
    /// file, PG* variables, defaults): the production guard judges that
    /// target. Passwords are never printed nor put on a command line.
    /// TLS as libpq: sslmode (prefer by default; verify-ca and verify-full
    /// check the server's certificate against sslrootcert, by default
    /// ~/.postgresql/root.crt, `system` for the system's roots),
    /// sslcert/sslkey for a client certificate.
    #[arg(long, value_name = "URL", conflicts_with_all = ["baseline", "no_baseline"])]
    pub from_url: Option<String>,

    /// Allow --from-url to read a source whose host or database name looks
    /// like production (the words prod, production, live; `[staging]
    /// production-patterns` in downtime.toml). Access stays read-only.
    #[arg(long)]
    pub i_know_this_is_production: bool,

    /// Cancel any statement running longer than this [default: 10 × the largest per-patch budget]
    #[arg(long, value_name = "SECONDS", value_parser = statement_timeout, allow_hyphen_values = true)]
    pub timeout: Option<f64>,

    /// Load the baseline again instead of starting from the cached, loaded
    /// cluster ($XDG_CACHE_HOME/downtime, by the baseline's sha256, the
    /// PostgreSQL version and the settings).
    #[arg(long)]
    pub no_cache: bool,

    /// Stop the whole run after this long: the running statement is cancelled
    /// and the report names it [default: off]
    #[arg(long, value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    pub max_run_seconds: Option<f64>,

    /// Where the staging copies run: `local`, a private cluster from this
    /// machine's PostgreSQL server binaries; `docker`, a container started
    /// with testcontainers; `server`, databases made and dropped on the
    /// server --url names; `command`, clones made and destroyed by the
    /// commands of [staging.command] in downtime.toml [default: from
    /// downtime.toml, else server with --url, else local]
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub backend: Option<crate::staging::BackendKind>,

    /// The server of the server backend: a URL, a key/value connection
    /// string or a database name, completed as libpq completes it
    /// (PGPASSWORD, ~/.pgpass, service file). Its database is where
    /// downtime connects to make and drop databases of its own
    /// (downtime_<run>_...); nothing else on the server is touched. The
    /// role must be a superuser; a production-looking name is refused
    /// (`[staging] production-patterns`). The password is never printed
    /// nor put on a command line. TLS as libpq: sslmode (prefer by
    /// default; verify-ca and verify-full check the server's certificate
    /// against sslrootcert, by default ~/.postgresql/root.crt, `system`
    /// for the system's roots), sslcert/sslkey for a client certificate
    /// [default: `url` under [staging]]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

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

    /// Read the patches as this tool lays them out and keeps its books
    /// (where names fit several, e.g. V1__x.sql is Flyway and refinery)
    /// [default: `layout` in downtime.toml, else what the names and the
    /// baseline's bookkeeping table show]
    #[arg(long, value_enum, value_name = "LAYOUT")]
    pub layout: Option<crate::patch::Layout>,

    /// Apply every migration, also those the baseline's bookkeeping table
    /// records as applied [default: only the pending ones, as the tool would]
    #[arg(long)]
    pub all: bool,

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
    #[arg(long, value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
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
A sign-off lets a patch over its budget pass `check`, as long as the patch \
keeps its path and content (sha256) and stays within the approved maximum. \
Sign-offs are kept in `patches/signoffs.toml` (or `--signoff-file`, or \
`[signoff] file` in downtime.toml); commit that file with the patch. A \
failing `check` prints the command that signs off in the file it reads.";

// The numbers of every flag, checked against the ranges of
// `crate::limits`, the same ones downtime.toml's keys are checked against.

fn seconds(s: &str) -> std::result::Result<f64, String> {
    limits::SECONDS.parse(s)
}

fn statement_timeout(s: &str) -> std::result::Result<f64, String> {
    limits::STATEMENT_TIMEOUT.parse(s)
}

fn rows(s: &str) -> std::result::Result<f64, String> {
    limits::ROWS.parse(s)
}

fn fraction(s: &str) -> std::result::Result<f64, String> {
    limits::FRACTION.parse(s)
}

fn percent(s: &str) -> std::result::Result<f64, String> {
    limits::PERCENT.parse(s)
}

fn long_query(s: &str) -> std::result::Result<f64, String> {
    limits::STATEMENT_TIMEOUT.parse(s)
}

fn probe_rate(s: &str) -> std::result::Result<f64, String> {
    limits::PROBE_RATE.parse(s)
}

fn probe_sessions(s: &str) -> std::result::Result<u32, String> {
    limits::PROBE_SESSIONS.parse_count(s)
}

fn probe_tables(s: &str) -> std::result::Result<u32, String> {
    limits::PROBE_TABLES.parse_count(s)
}

fn runs(s: &str) -> std::result::Result<u32, String> {
    limits::RUNS.parse_count(s)
}

fn warmup(s: &str) -> std::result::Result<u32, String> {
    limits::WARMUP.parse_count(s)
}

pub(super) fn image_tag(s: &str) -> std::result::Result<String, String> {
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
