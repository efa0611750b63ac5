//! The run report. JSON (schema version 1) is the source; every other format
//! is rendered from the same [`Report`].

mod build;
pub mod charts;
pub mod github;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod text;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::outcome::{
    excerpt, CacheMode, CacheState, FailedRun, PatchTiming, RunTiming, SQL_EXCERPT_CHARS,
};
pub use crate::time::now_rfc3339;
pub use crate::verdict::signoff::SignoffRecord as SignoffReport;
pub use crate::verdict::VerdictKind;
pub use build::{build, Assessed};

use crate::measure::PatchError;
use crate::patch::Class;
use crate::pg::locks::LockMode;
use crate::rule_id::RuleId;
use crate::verdict::{Budget, Policy, Reason};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool_version: String,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    pub postgres: Postgres,
    pub baseline: BaselineInfo,
    pub budget: Budget,
    /// The effective policy: profile, every limit, classifier settings,
    /// config file and sign-off file.
    pub policy: Policy,
    /// "pass", "fail" or "aborted".
    pub verdict: VerdictKind,
    /// Why the verdict failed, one line each.
    pub failures: Vec<String>,
    /// What passed but deserves a look (warn-at, notify thresholds).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub total_seconds: f64,
    /// Seconds of the cold patches: the downtime window they need.
    pub cold_seconds: f64,
    pub patches: Vec<PatchReport>,
    /// Files passed over during discovery and other context.
    pub notes: Vec<String>,
    /// Set when the run stopped early (signal or whole-run cap).
    #[serde(default)]
    pub aborted: Option<AbortReport>,
    /// Repeated runs: how many, which statistic decides, which caches.
    /// null for a single warm run.
    #[serde(default)]
    pub timing: Option<RunTiming>,
    /// Production-size estimates: the stats file, scales and growth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<crate::estimate::EstimateInfo>,
    /// The layout the patches were read as, and so the tool whose books were
    /// kept (`diesel`, `sqlx`, `golang-migrate`, `flyway`, `refinery`,
    /// `launchpad`, `numbered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<crate::patch::Layout>,
    /// The simulated application traffic and its settings (`--probe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::measure::probe::ProbeInfo>,
}

/// Where a run stopped early.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbortReport {
    /// `sigint`, `sigterm`, `runcap`, `broken` (a patch left the staging
    /// server unfit to go on) or `infrastructure` (the server or a
    /// connection to it failed).
    pub reason: crate::cancel::Abort,
    /// What the run was doing: "starting the server", "loading the baseline", "applying patches".
    pub phase: String,
    /// The patch and statement that were running, if any.
    pub patch: Option<String>,
    pub line: Option<usize>,
    pub statement: Option<String>,
    /// How the running statement was ended: `cancel`, `terminate` or
    /// `server-stop` (null when none was running).
    #[serde(default)]
    pub ended_by: Option<crate::cancel::Ended>,
    /// What failed, for `broken` and `infrastructure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Postgres {
    pub version: String,
    pub backend: String,
    /// Where the server is, for the server backend: `host:port/dbname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The container image, for the Docker backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::staging::docker::ImageInfo>,
    pub settings: BTreeMap<String, String>,
}

impl Postgres {
    /// The backend, with the image and its id or the server's address
    /// when there is one.
    pub fn describe_backend(&self) -> String {
        if let Some(address) = &self.address {
            return format!("{} at {address}", self.backend);
        }
        match &self.image {
            Some(i) => format!(
                "{} {} ({})",
                self.backend,
                i.reference,
                crate::staging::docker::short_id(&i.id)
            ),
            None => self.backend.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineInfo {
    pub source: String,
    pub load_seconds: f64,
    /// The baseline cache: "off", "miss" (loaded and stored) or "hit".
    #[serde(default = "cache_off")]
    pub cache: CacheState,
    /// From the start of the run to the first patch being applied.
    #[serde(default)]
    pub first_statement_seconds: f64,
}

fn cache_off() -> CacheState {
    CacheState::Off
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
    /// Applied on staging, but production's statistics prove it fails there
    /// (`predicted-failure`).
    #[serde(rename = "predicted-failure")]
    PredictedFailure,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchReport {
    pub path: String,
    pub id: String,
    pub sha256: String,
    pub status: Status,
    pub seconds: f64,
    /// This patch's budget under the policy; null when none applies (a live
    /// patch under a cold-only budget).
    #[serde(default)]
    pub budget_seconds: Option<f64>,
    pub over_budget: bool,
    /// A post-deployment patch (folder or `-- downtime: post-deploy`).
    #[serde(default)]
    pub post_deploy: bool,
    /// The reviewer sign-off covering this patch, if any.
    #[serde(default)]
    pub signoff: Option<SignoffReport>,
    /// `-- downtime: allow …` waivers in the patch.
    #[serde(default)]
    pub waivers: Vec<WaiverReport>,
    /// Why this patch fails the verdict (empty when it passes).
    #[serde(default)]
    pub failures: Vec<String>,
    /// What passed but deserves a look.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Statistics over repeated runs (null for a single run).
    #[serde(default)]
    pub timing: Option<PatchTiming>,
    /// Earlier runs with the same settings fingerprint, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<crate::verdict::history::HistoryPoint>,
    /// The predicted time at production size (`--prod-stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<crate::estimate::PatchEstimate>,
    /// The comparison with the last recorded run (`--compare-history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<crate::verdict::history::Regression>,
    /// null when the patch did not run.
    pub classification: Option<Class>,
    pub declared: Option<Class>,
    pub reasons: Vec<Reason>,
    pub error: Option<ErrorReport>,
    /// Over repeated runs, every run (warm-ups included) in which the patch
    /// failed; any one fails it. Absent when it failed in none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_runs: Vec<FailedRun>,
    /// Seconds in COMMITs issued by downtime (part of `seconds`).
    pub commit_seconds: f64,
    /// Sum of the statements' server-side times, when the server records them.
    #[serde(default)]
    pub server_seconds: Option<f64>,
    /// Wall-clock seconds downtime spent on the patch, tracing included:
    /// `wall_seconds - seconds` is the tool's own overhead.
    #[serde(default)]
    pub wall_seconds: f64,
    /// Why a patch was skipped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skipped_because: Option<String>,
    /// Seconds spent keeping the tool's books (its table) for this patch:
    /// not part of `seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookkeeping_seconds: Option<f64>,
    /// What the simulated application traffic felt while the patch applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::measure::probe::PatchProbe>,
    pub statements: Vec<StatementReport>,
}

impl PatchReport {
    /// "12.3 s [10.1, 14.5] in production, fits until 2027-06", when estimated.
    pub fn estimate_text(&self) -> Option<String> {
        let e = self.estimate.as_ref()?;
        let mut t = format!(
            "{:.3} s [{:.3}, {:.3}] in production",
            e.seconds, e.low, e.high
        );
        if let Some(f) = &e.fits_until {
            t.push_str(&format!(", fits until {f}"));
        }
        if !e.missing_tables.is_empty() {
            t.push_str(&format!(
                " (incomplete: {} not in the stats)",
                e.missing_tables.join(", ")
            ));
        }
        if !e.unknown_rows.is_empty() {
            t.push_str(&format!(
                " (incomplete: no row estimate for {} in the stats)",
                e.unknown_rows.join(", ")
            ));
        }
        if !e.unmeasured.is_empty() {
            t.push_str(&format!(
                " (incomplete: staging holds none of the rows of {})",
                e.unmeasured.join(", ")
            ));
        }
        Some(t)
    }

    /// What the application probe saw, in lines: the totals against the
    /// idle baseline, where queries were blocked, the queue behind a long
    /// reader, failed queries. Empty without a probe.
    pub fn probe_lines(&self) -> Vec<String> {
        let Some(p) = &self.probe else {
            return Vec::new();
        };
        if let Some(problem) = p.problem.as_deref().filter(|_| p.queries == 0) {
            return vec![format!("application probe: {problem}")];
        }
        let queued = if p.queued_queries > 0 {
            format!(" ({} waiting for a session)", p.queued_queries)
        } else {
            String::new()
        };
        let mut out = vec![format!(
            "application probe: {} queries, {} blocked past {:.3} s{queued}, worst wait {:.3} s; p50 {:.4} s, p99 {:.4} s (idle: {:.4} s, {:.4} s)",
            p.queries,
            p.blocked_queries,
            p.threshold_seconds,
            p.max_wait_seconds,
            p.p50_seconds,
            p.p99_seconds,
            p.idle_p50_seconds,
            p.idle_p99_seconds
        )];
        for r in p.by_relation.iter().take(3) {
            let behind = r
                .lock_mode
                .map(|m| format!(" behind the patch's {m}"))
                .unwrap_or_else(|| " behind rows the patch locked".into());
            let line = r
                .statement_line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            out.push(format!(
                "  blocked on {}: {} reads up to {:.3} s, {} writes up to {:.3} s{behind}{line}",
                r.relation,
                r.reads_blocked,
                r.reads_blocked_seconds,
                r.writes_blocked,
                r.writes_blocked_seconds
            ));
        }
        if let Some(q) = &p.long_query {
            out.push(format!(
                "  lock queue: {}",
                crate::verdict::rules::measured_blocking::queue(q)
            ));
        }
        if self.classification == Some(Class::Cold) && p.blocked_queries == 0 {
            out.push(format!(
                "  observed: {}",
                crate::verdict::rules::measured_blocking::observed(p)
            ));
        }
        for (message, n) in &p.errors {
            out.push(format!("  {n} queries failed: {message}"));
        }
        if let Some(problem) = &p.problem {
            out.push(format!("  probe: {problem}"));
        }
        out
    }

    /// One line per run the patch failed in: "run 2 of 3: line 4: …".
    pub fn failed_run_lines(&self) -> Vec<String> {
        self.failed_runs
            .iter()
            .map(|r| {
                format!(
                    "failed in {}: line {}: {}{}",
                    r.describe(),
                    r.error.line,
                    r.error.message,
                    r.error
                        .sqlstate
                        .as_deref()
                        .map(|s| format!(" (SQLSTATE {s})"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    /// The statement that took longest, if any ran.
    pub fn slowest_statement(&self) -> Option<&StatementReport> {
        self.statements
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaiverReport {
    pub rule: RuleId,
    pub line: usize,
    pub because: String,
    /// Whether it covered a reason in this run.
    pub used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReport {
    pub message: String,
    pub sqlstate: Option<String>,
    pub line: usize,
    pub statement_line: usize,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub partially_applied: bool,
    /// downtime stopped the statement: `cancel`, `terminate` or
    /// `server-stop`, the step that ended it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ended_by: Option<crate::cancel::Ended>,
}

impl From<PatchError> for ErrorReport {
    fn from(e: PatchError) -> Self {
        ErrorReport {
            message: e.message,
            sqlstate: e.sqlstate,
            line: e.line,
            statement_line: e.statement_line,
            detail: e.detail,
            hint: e.hint,
            partially_applied: e.partially_applied,
            ended_by: e.ended_by,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementReport {
    pub line: usize,
    /// First 200 characters.
    pub sql: String,
    pub seconds: f64,
    /// pg_query node name.
    pub kind: String,
    pub rows_affected: Option<u64>,
    /// Ran outside a transaction block.
    pub outside_transaction: bool,
    pub locks: Vec<LockReport>,
    pub rewrites: Vec<RewriteReport>,
    /// Statistics over repeated runs (then `seconds` is their median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<crate::measure::stats::Stats>,
    /// The table the statement's work grows with, and its rows before it ran
    /// (null for catalogue-only work).
    #[serde(default)]
    pub work: Option<crate::estimate::Work>,
    /// The execution time the server recorded (pg_stat_statements); the
    /// difference to `seconds` is client and network overhead. null when the
    /// server cannot say.
    #[serde(default)]
    pub server_seconds: Option<f64>,
    /// The probe's queries while this statement ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::measure::probe::StatementProbe>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockReport {
    pub relation: String,
    pub mode: LockMode,
    pub held_seconds: f64,
    /// How long the statement waited for the lock before it was granted
    /// (measured only behind the probe's long reader).
    #[serde(default, skip_serializing_if = "crate::measure::is_zero")]
    pub waited_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewriteReport {
    pub relation: String,
    pub kind: String,
    pub rows: i64,
    pub bytes: i64,
}

/// An output format rendered from the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// The JSON report, schema version 1: the source of every other format.
    Json,
    /// A merge-request comment.
    Markdown,
    /// One self-contained page with charts.
    Html,
    /// JUnit XML for CI test reports.
    Junit,
    /// GitHub Actions annotations.
    Github,
}

impl Format {
    /// The file name a format is written to in the output directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Text => "report.txt",
            Format::Json => "report.json",
            Format::Markdown => "report.md",
            Format::Html => "report.html",
            Format::Junit => "junit.xml",
            Format::Github => "annotations.txt",
        }
    }
}

/// Image formats for chart files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChartFormat {
    Png,
    Svg,
}

/// Render `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Json => report.to_json() + "\n",
        Format::Markdown => markdown::render(report),
        Format::Html => html::render(report),
        Format::Junit => junit::render(report),
        Format::Github => github::render(report),
    }
}

/// Write every chart of the report to `dir` in the given image formats;
/// returns the files written.
pub fn write_charts(
    report: &Report,
    dir: &std::path::Path,
    formats: &[ChartFormat],
) -> Result<Vec<std::path::PathBuf>, crate::Error> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::write("output directory", dir, e))?;
    let mut written = Vec::new();
    for chart in charts::charts(report) {
        for f in formats {
            let path = dir.join(format!(
                "{}.{}",
                chart.name,
                match f {
                    ChartFormat::Png => "png",
                    ChartFormat::Svg => "svg",
                }
            ));
            // Drawn into a new file beside it, renamed over it: never
            // through a link.
            crate::fsutil::replace_with(&path, "chart", |file, tmp| match f {
                ChartFormat::Png => charts::png(report, &chart, tmp),
                ChartFormat::Svg => charts::svg(report, &chart).and_then(|svg| {
                    std::io::Write::write_all(file, svg.as_bytes()).map_err(|e| e.to_string())
                }),
            })?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Read a saved JSON report. A number no run can produce is an error naming
/// its place in the report.
pub fn load(path: &std::path::Path) -> Result<Report, crate::Error> {
    let text = crate::fsutil::read_text(path, crate::fsutil::REPORTS)?;
    let at_line = |e: serde_json::Error| crate::Error::InputAt {
        path: path.to_path_buf(),
        line: e.line(),
        message: format!("not a downtime JSON report: {e}"),
    };
    let report: Report = serde_json::from_str(&text).map_err(at_line)?;
    if report.schema_version != SCHEMA_VERSION {
        return Err(crate::Error::input(
            path,
            format!(
                "report schema version {} is not supported (this downtime reads {SCHEMA_VERSION})",
                report.schema_version
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(&text).map_err(at_line)?;
    validate::check(&value).map_err(|why| {
        crate::Error::input(path, format!("impossible value in the report: {why}"))
    })?;
    Ok(report)
}

impl Report {
    pub fn to_json(&self) -> String {
        // Serializing plain data cannot fail. Foreign text in strings keeps
        // no terminal control and no workflow command (`escape::json`).
        crate::escape::json(
            &serde_json::to_string_pretty(self)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        )
    }

    pub fn passed(&self) -> bool {
        self.verdict == VerdictKind::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_on_characters() {
        let long = "é".repeat(300);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), SQL_EXCERPT_CHARS + 1);
        assert_eq!(excerpt("select 1"), "select 1");
    }
}
