//! Command-line interface. Kept thin: flags are parsed ([`args`]), resolved
//! once into a plan ([`resolve`]), handed to a library call, and the result
//! rendered ([`emit`]). Each subcommand has a file of its own.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod args;
mod cache;
mod clean;
mod emit;
mod history;
mod resolve;
mod rules;
mod runs;
mod signoff;
mod stats;

pub use args::*;
pub use emit::{emit, DEFAULT_OUTPUT_DIR};
pub use resolve::{bench_plan, check_plan, estimate_plan};
pub use rules::{rule_page, rules_markdown};

use crate::cancel::Cancel;
use crate::error::Result;

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
    /// their containers (labelled io.downtime.run), their clusters'
    /// temporary directories, the clones they asked a provisioner for, and
    /// with --url their databases on that server (downtime_<run>_...). What
    /// a running downtime still uses is kept.
    Clean {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also remove what runs that are still going use.
        #[arg(long)]
        all: bool,
        /// A server of the server backend to clean too [default: `url`
        /// under [staging] in downtime.toml, when the backend is server]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Policy file [default: downtime.toml in this directory or a parent]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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

/// Run a parsed command line; returns the exit code.
pub async fn run(cli: Cli, cancel: Cancel) -> Result<i32> {
    match cli.command {
        Command::Check(args) => runs::check(args, &cancel).await,
        Command::Bench(args) => runs::bench(args, &cancel).await,
        Command::Estimate(args) => runs::estimate(args, &cancel).await,
        Command::Stats { action } => stats::run(action).await,
        Command::Clean {
            dry_run,
            all,
            url,
            config,
        } => clean::run(dry_run, all, url, config).await,
        Command::Cache { action } => cache::run(action).await,
        Command::History { patch, file } => history::run(patch, &file),
        Command::Report(args) => runs::rerender(args),
        Command::Signoff(args) => signoff::run(args, &cancel).await,
        Command::Rules { rule, markdown } => rules::run(rule, markdown),
    }
}
