//! Estimating a patch's time at production size: measure it on copies scaled
//! down to fractions of the staging data, fit a model per statement against
//! the rows of the table its work grows with, and predict at the production
//! row counts of a `downtime stats export` file. A growth rate turns the
//! prediction into the month it stops fitting the budget.

pub mod model;
pub mod prod_stats;
pub mod work;

use serde::{Deserialize, Serialize};

use crate::measure::PatchRun;
use crate::outcome::{Outcome, PatchOutcome};
use crate::patch::Patch;
use model::Fit;
pub use prod_stats::ProdStats;

/// The table a statement's work grows with, and its rows before it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Work {
    pub relation: String,
    pub rows: f64,
    /// What the statement does with those rows, which says how its time
    /// should grow (absent in reports of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkKind>,
}

/// What a statement does with the rows of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkKind {
    /// Writes a new copy of the table (and rebuilds its indexes).
    Rewrite,
    /// Sorts the rows into a new index.
    IndexBuild,
    /// Deletes rows, or updates rows of a table without indexes.
    Write,
    /// Updates rows of a table with indexes: each new row version is
    /// inserted into every index (a B-tree descent per row).
    Update,
    /// Reads every row (validation, a scan under a lock).
    Scan,
}

impl WorkKind {
    /// The model PostgreSQL's algorithm implies: a sort, or a B-tree descent
    /// per row, is n·log n; a pass over the rows is linear.
    pub fn expected_model(self) -> model::Model {
        match self {
            WorkKind::IndexBuild | WorkKind::Update => model::Model::NLogN,
            WorkKind::Rewrite | WorkKind::Write | WorkKind::Scan => model::Model::Linear,
        }
    }
}

/// One statement's estimate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementEstimate {
    pub line: usize,
    pub relation: Option<String>,
    /// Rows of `relation` in production (from the stats file).
    pub production_rows: Option<f64>,
    pub model: model::Model,
    /// Measured (rows, seconds), one per scale (the median of its runs; the
    /// model is fitted on every run).
    pub points: Vec<(f64, f64)>,
    pub seconds: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Why there is no prediction, when there is none.
    pub note: Option<String>,
    /// The chosen model's parameters (`seconds = a + b·f(rows)`).
    #[serde(default)]
    pub fit: Option<Fit>,
}

/// A patch's estimate at production size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchEstimate {
    /// Predicted seconds in production (the sum over its statements).
    pub seconds: f64,
    /// 95 % prediction interval.
    pub low: f64,
    pub high: f64,
    /// Every statement could be predicted (no table missing from the stats,
    /// none without a row estimate there).
    pub complete: bool,
    /// Tables the statements' work grows with that the stats file lacks.
    pub missing_tables: Vec<String>,
    /// Tables the stats file has without a row estimate (never analysed or
    /// vacuumed in production).
    #[serde(default)]
    pub unknown_rows: Vec<String>,
    /// Tables staging holds none of the rows of, whose work could be told
    /// neither from a fit nor from this server's costs (a write by a WHERE
    /// clause; costs not measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmeasured: Vec<String>,
    /// Monthly growth used for the forecast (fraction).
    pub monthly_growth: Option<f64>,
    /// "2027-06": the last month it fits its budget; "over budget now";
    /// "beyond ten years"; null without a budget or growth.
    pub fits_until: Option<String>,
    pub statements: Vec<StatementEstimate>,
}

impl PatchEstimate {
    /// The tables whose statements have no prediction: missing from the
    /// stats file or without a row estimate there.
    pub fn unpredicted(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .missing_tables
            .iter()
            .chain(&self.unknown_rows)
            .chain(&self.unmeasured)
            .cloned()
            .collect();
        all.sort();
        all
    }

    /// The statement that dominates the prediction, for the scaling chart.
    pub fn dominant(&self) -> Option<&StatementEstimate> {
        self.statements
            .iter()
            .filter(|s| s.seconds.is_some() && s.relation.is_some())
            .max_by(|a, b| {
                a.seconds
                    .unwrap_or(0.0)
                    .total_cmp(&b.seconds.unwrap_or(0.0))
            })
    }
}

/// Run-level facts of an estimate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EstimateInfo {
    pub stats_file: String,
    pub stats_exported_at: String,
    pub scales: Vec<f64>,
    /// `--growth`, per month (fraction); null: the stats file's modification rates.
    pub growth_per_month: Option<f64>,
    /// The budget is decided on the estimate (`--decide estimate`).
    pub decides: bool,
}

/// Estimates for every patch from the outcome's runs at several scales.
/// `budget_of` gives a patch's budget from its run at the smallest scale.
pub fn estimate(
    outcome: &Outcome,
    stats: &ProdStats,
    growth: Option<f64>,
    budget_of: impl Fn(&Patch, &PatchRun) -> Option<f64>,
    today: &str,
) -> Vec<Option<PatchEstimate>> {
    outcome
        .patches
        .iter()
        .enumerate()
        .map(|(i, patch)| {
            let runs: Vec<(&PatchOutcome, &PatchRun)> = outcome
                .scales
                .iter()
                .filter_map(|s| s.results.get(i))
                .filter(|r| r.ok())
                .filter_map(|r| Some((r, r.run()?)))
                .collect();
            let (_, base) = runs.first()?;
            let mut unresolved = Unresolved::default();
            let statements: Vec<StatementEstimate> = (0..base.statements.len())
                .map(|j| {
                    let at = (stats, outcome.costs.as_ref());
                    statement_estimate(patch, &runs, j, at, &mut unresolved)
                })
                .collect();
            let mut est = patch_estimate(statements, unresolved);
            let g = growth.or_else(|| {
                est.dominant()
                    .and_then(|d| d.relation.as_ref())
                    .and_then(|r| stats.table(r))
                    .and_then(|t| t.monthly_growth)
            });
            est.monthly_growth = g;
            if let (Some(budget), Some(g)) = (budget_of(patch, base), g) {
                est.fits_until = Some(fits_until(&est, budget, g, today));
            }
            Some(est)
        })
        .collect()
}

/// The tables of a patch's statements that cannot be predicted at.
#[derive(Default)]
struct Unresolved {
    /// Not in the stats file.
    missing: Vec<String>,
    /// In it without a row estimate.
    unknown_rows: Vec<String>,
    /// Without rows on staging to measure on.
    unmeasured: Vec<String>,
}

/// One statement's fit over the scales, and its prediction.
fn statement_estimate(
    patch: &Patch,
    runs: &[(&PatchOutcome, &PatchRun)],
    j: usize,
    (stats, costs): (&ProdStats, Option<&crate::measure::calibrate::Costs>),
    unresolved: &mut Unresolved,
) -> StatementEstimate {
    // (work, seconds, every run's seconds) at each scale
    let samples: Vec<(Option<Work>, f64, Vec<f64>)> = runs
        .iter()
        .filter_map(|(r, run)| {
            let figures = r.statements.get(j)?;
            let sr = run.statements.get(j)?;
            let every = figures
                .stats
                .as_ref()
                .filter(|s| !s.samples.is_empty())
                .map_or_else(|| vec![figures.seconds], |s| s.samples.clone());
            Some((work::work_of(patch, run, sr), figures.seconds, every))
        })
        .collect();
    let relation = samples
        .iter()
        .find_map(|(w, _, _)| w.as_ref().map(|w| w.relation.clone()));
    let expected = samples
        .iter()
        .find_map(|(w, _, _)| w.as_ref().and_then(|w| w.kind))
        .map(WorkKind::expected_model);
    let rows_of = |w: &Option<Work>| w.as_ref().map_or(0.0, |w| w.rows);
    let points: Vec<(f64, f64)> = samples.iter().map(|(w, s, _)| (rows_of(w), *s)).collect();
    // The fit sees every run, not only each scale's median.
    let every_run: Vec<(f64, f64)> = samples
        .iter()
        .flat_map(|(w, _, every)| every.iter().map(|y| (rows_of(w), *y)).collect::<Vec<_>>())
        .collect();
    let fit = model::fit(&every_run, relation.is_some(), expected);
    let table = relation.as_ref().map(|r| (r, stats.table(r)));
    let production_rows = table.and_then(|(_, t)| t?.rows);
    let (seconds, low, high, note) = match table {
        Some((r, None)) => {
            unresolved.missing.push(r.clone());
            (
                None,
                None,
                None,
                Some(format!("{r} is not in the stats file")),
            )
        }
        Some((r, Some(t))) if t.rows.is_none() => {
            unresolved.unknown_rows.push(r.clone());
            (
                None,
                None,
                None,
                Some(format!(
                    "{r} has no row estimate in the stats file (never analysed or vacuumed)"
                )),
            )
        }
        // Staging holds none of the table's rows: nothing to fit; this
        // server's cost of such work, at production's size, when measured.
        Some((r, Some(t)))
            if production_rows.is_some_and(|p| p > 0.0)
                && samples.iter().all(|(w, _, _)| rows_of(w) <= 0.0) =>
        {
            let kind = samples.iter().find_map(|(w, _, _)| w.as_ref()?.kind);
            let here = samples.iter().map(|(_, s, _)| *s).fold(0.0, f64::max);
            let filtered = filtered_write(patch, runs, j);
            let rows = production_rows.unwrap_or(0.0);
            let table = (r, t.table_bytes as f64, rows);
            from_costs(table, kind, here, filtered, costs, unresolved)
        }
        _ => {
            let at = production_rows.unwrap_or(0.0);
            let s = fit.predict(at);
            let hw = fit.half_width(at);
            (
                Some(s),
                hw.map(|h| (s - h).max(0.0)),
                hw.map(|h| s + h),
                hw.is_none()
                    .then(|| "too few scales for an interval".to_string()),
            )
        }
    };
    StatementEstimate {
        line: patch.statements[runs[0].1.statements[j].index].line,
        relation,
        production_rows,
        model: fit.model,
        points,
        seconds,
        low,
        high,
        note,
        fit: Some(fit),
    }
}

/// Statement `j` writes by a WHERE clause: how many rows it touches where
/// staging holds none is not known.
fn filtered_write(patch: &Patch, runs: &[(&PatchOutcome, &PatchRun)], j: usize) -> bool {
    runs.first()
        .and_then(|(_, run)| run.statements.get(j))
        .is_some_and(|sr| {
            patch.statements[sr.index].analysis.facts.iter().any(|f| {
                matches!(
                    f,
                    crate::patch::Fact::Writes {
                        whole_table: false,
                        ..
                    }
                )
            })
        })
}

/// (seconds, low, high, note) of work of `kind` over a table staging holds
/// none of the rows of (`(name, production bytes, production rows)`): from
/// this server's costs, or unmeasured.
fn from_costs(
    (r, bytes, rows): (&String, f64, f64),
    kind: Option<WorkKind>,
    here: f64,
    filtered: bool,
    costs: Option<&crate::measure::calibrate::Costs>,
    unresolved: &mut Unresolved,
) -> (Option<f64>, Option<f64>, Option<f64>, Option<String>) {
    match (costs, kind) {
        (Some(c), Some(kind)) if !filtered => (
            Some(here + work::at_costs(c, kind, rows, bytes)),
            None,
            None,
            Some(format!(
                "staging holds none of {r}'s rows: from this server's cost of such work"
            )),
        ),
        _ => {
            unresolved.unmeasured.push(r.clone());
            let why = if filtered {
                ", nor a fraction its WHERE clause touches"
            } else {
                ""
            };
            (
                None,
                None,
                None,
                Some(format!(
                    "staging holds none of {r}'s rows: nothing to fit{why}"
                )),
            )
        }
    }
}

/// The patch's prediction: the sum over its statements, with their
/// intervals combined.
fn patch_estimate(statements: Vec<StatementEstimate>, unresolved: Unresolved) -> PatchEstimate {
    let Unresolved {
        mut missing,
        mut unknown_rows,
        mut unmeasured,
    } = unresolved;
    let seconds: f64 = statements.iter().filter_map(|s| s.seconds).sum();
    let half: f64 = statements
        .iter()
        .filter_map(|s| Some((s.high? - s.seconds?).powi(2)))
        .sum::<f64>()
        .sqrt();
    for tables in [&mut missing, &mut unknown_rows, &mut unmeasured] {
        tables.sort();
        tables.dedup();
    }
    PatchEstimate {
        seconds,
        low: (seconds - half).max(0.0),
        high: seconds + half,
        complete: missing.is_empty() && unknown_rows.is_empty() && unmeasured.is_empty(),
        missing_tables: missing,
        unknown_rows,
        unmeasured,
        monthly_growth: None,
        fits_until: None,
        statements,
    }
}

/// The last month the patch fits `budget` as its tables grow by `growth` a month.
fn fits_until(est: &PatchEstimate, budget: f64, growth: f64, today: &str) -> String {
    let predict = |factor: f64| -> f64 {
        est.statements
            .iter()
            .filter_map(|s| {
                // A statement without a prediction today has none later.
                s.seconds?;
                let fit = s.fit.as_ref()?;
                Some(fit.predict(s.production_rows.unwrap_or(0.0) * factor))
            })
            .sum()
    };
    match model::months_until_over(budget, predict, growth) {
        Some(0) => "over budget now".to_string(),
        Some(m) => model::add_months(today, m - 1),
        None => "beyond ten years".to_string(),
    }
}
