//! Command-line interface: argument definitions and dispatch. Kept thin: each
//! command maps its flags onto a library call and renders the result.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::check::{self, CheckOptions, DEFAULT_PATCH_DIR};
use crate::error::{Error, Result, EXIT_PASS, EXIT_VERDICT};
use crate::report::text;
use crate::staging::embedded::EmbeddedOptions;
use crate::verdict::{Budget, ClassifyOptions, Profile, RULES};

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
    /// List the classification rules with their safer recipes.
    Rules {
        /// Print the rules as the Markdown of docs/rules.md.
        #[arg(long)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people (default).
    Text,
    /// The JSON report, schema version 1.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Patch files and folders [default: patches/]
    pub paths: Vec<PathBuf>,

    /// Staging data: a SQL script (run with psql) or a pg_dump custom/directory
    /// archive (pg_restore). Default: baseline.sql beside the patches, if any.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Start from an empty database even when a baseline.sql is found.
    #[arg(long, conflicts_with = "baseline")]
    pub no_baseline: bool,

    /// Seconds each patch may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0, value_parser = positive_seconds)]
    pub budget: f64,

    /// Seconds all patches together may take [default: off]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub total_budget: Option<f64>,

    /// Cancel any statement running longer than this [default: 10 × --budget]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub timeout: Option<f64>,

    /// Extra rules for live patches on top of the mechanism-based classification.
    #[arg(long, value_enum, default_value_t = Profile::Standard)]
    pub profile: Profile,

    /// A lock that blocks the application, held longer than this, makes a patch cold.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = positive_seconds)]
    pub live_lock_threshold: f64,

    /// An UPDATE/DELETE touching at least this fraction of a table makes a patch cold.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1, value_parser = fraction)]
    pub bulk_write_fraction: f64,

    /// Directory with the PostgreSQL server binaries (initdb, postgres)
    /// [default: PATH, then the newest /usr/lib/postgresql/*/bin]
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,

    /// postgresql.conf lines for the staging server (mirror production's
    /// shared_buffers, maintenance_work_mem, ...). fsync and full_page_writes
    /// are on unless this file turns them off.
    #[arg(long, value_name = "FILE")]
    pub pg_conf: Option<PathBuf>,

    /// Go on with later patches after one fails (the failed one is rolled back).
    #[arg(long)]
    pub keep_going: bool,

    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write the JSON report to this file.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

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

fn fraction(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("`{s}`: a fraction must be in (0, 1]"))
    }
}

impl CheckArgs {
    pub fn options(&self) -> CheckOptions {
        CheckOptions {
            paths: if self.paths.is_empty() {
                vec![PathBuf::from(DEFAULT_PATCH_DIR)]
            } else {
                self.paths.clone()
            },
            baseline: self.baseline.clone(),
            no_baseline: self.no_baseline,
            budget: Budget {
                per_patch_seconds: self.budget,
                total_seconds: self.total_budget,
            },
            timeout_seconds: self.timeout,
            classify: ClassifyOptions {
                profile: self.profile,
                live_lock_threshold_seconds: self.live_lock_threshold,
                bulk_write_fraction: self.bulk_write_fraction,
            },
            embedded: EmbeddedOptions {
                bin_dir: self.pg_bin.clone(),
                extra_conf: self.pg_conf.clone(),
            },
            keep_going: self.keep_going,
        }
    }
}

/// Run a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Check(args) => {
            if let Some(p) = &args.pg_conf {
                std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            }
            let report = check::run(&args.options()).await?;
            if let Some(path) = &args.output {
                std::fs::write(path, report.to_json() + "\n").map_err(|e| Error::io(path, e))?;
            }
            match args.format {
                Format::Text => print!("{}", text::render(&report)),
                Format::Json => println!("{}", report.to_json()),
            }
            Ok(if report.passed() {
                EXIT_PASS
            } else {
                EXIT_VERDICT
            })
        }
        Command::Rules { markdown } => {
            print!(
                "{}",
                if markdown {
                    rules_markdown()
                } else {
                    rules_text()
                }
            );
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
            format!("{:?}", r.severity).to_lowercase(),
            r.summary,
            "",
            r.recipe
        ));
    }
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
            "| `{}` | {} | {} | {} |\n",
            r.id,
            format!("{:?}", r.severity).to_lowercase(),
            r.summary.replace('|', "\\|"),
            r.recipe.replace('|', "\\|")
        ));
    }
    out
}
