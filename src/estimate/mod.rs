//! Estimating a patch's time at production size: measure it on copies scaled
//! down to fractions of the staging data, fit a model per statement against
//! the rows of the table its work grows with, and predict at the production
//! row counts of a `downtime stats export` file. A growth rate turns the
//! prediction into the month it stops fitting the budget.

pub mod model;
pub mod prod_stats;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::Result;
use crate::report::{PatchReport, Status};
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
    /// Every statement could be predicted (no table missing from the stats).
    pub complete: bool,
    pub missing_tables: Vec<String>,
    /// Monthly growth used for the forecast (fraction).
    pub monthly_growth: Option<f64>,
    /// "2027-06": the last month it fits its budget; "over budget now";
    /// "beyond ten years"; null without a budget or growth.
    pub fits_until: Option<String>,
    pub statements: Vec<StatementEstimate>,
}

impl PatchEstimate {
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

/// Keep about `fraction` of the database's rows: sample the tables that
/// reference no other table, delete the rows left without their parent
/// (foreign key triggers off meanwhile), then settle it as the baseline
/// template is settled: VACUUM FULL (sizes match the smaller data), VACUUM
/// ANALYZE (visibility map and statistics) and CHECKPOINT. Deterministic
/// (`setseed`). Runs on a scaled template that the timed copies are made from.
pub async fn scale_copy(client: &Client, fraction: f64) -> Result<()> {
    if fraction >= 1.0 {
        return Ok(());
    }
    const USER: &str = "n.nspname not in ('pg_catalog', 'information_schema') \
                        and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp'";
    let tables = client
        .query(
            &format!(
                "/*downtime*/ select c.oid::regclass::text, \
                   exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'f' and k.confrelid <> c.oid) \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where c.relkind = 'r' and {USER}"
            ),
            &[],
        )
        .await?;
    // One orphan-deleting statement per foreign key.
    let fks = client
        .query(
            "/*downtime*/ select k.conrelid::regclass::text, k.confrelid::regclass::text, \
               array(select quote_ident(a.attname) from unnest(k.conkey) with ordinality u(n, i) \
                     join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i), \
               array(select quote_ident(a.attname) from unnest(k.confkey) with ordinality u(n, i) \
                     join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i) \
             from pg_constraint k where k.contype = 'f'",
            &[],
        )
        .await?;
    client
        .batch_execute("/*downtime*/ set session_replication_role = replica")
        .await?;
    client
        .simple_query(&format!("/*downtime*/ select setseed({})", 0.42))
        .await?;
    for t in &tables {
        let name: String = t.get(0);
        let references: bool = t.get(1);
        if !references {
            client
                .execute(
                    &format!("/*downtime*/ delete from {name} where random() >= $1"),
                    &[&fraction],
                )
                .await?;
        }
    }
    let orphans: Vec<String> = fks
        .iter()
        .map(|r| {
            let (child, parent): (String, String) = (r.get(0), r.get(1));
            let (ccols, pcols): (Vec<String>, Vec<String>) = (r.get(2), r.get(3));
            let join: Vec<String> = ccols
                .iter()
                .zip(&pcols)
                .map(|(c, p)| format!("p.{p} = c.{c}"))
                .collect();
            let present: Vec<String> = ccols.iter().map(|c| format!("c.{c} is not null")).collect();
            format!(
                "/*downtime*/ delete from {child} c where {} and not exists (select 1 from {parent} p where {})",
                present.join(" and "),
                join.join(" and ")
            )
        })
        .collect();
    for _ in 0..10 {
        let mut deleted = 0;
        for sql in &orphans {
            deleted += client.execute(sql.as_str(), &[]).await?;
        }
        if deleted == 0 {
            break;
        }
    }
    client
        .batch_execute("/*downtime*/ reset session_replication_role")
        .await?;
    client.batch_execute("/*downtime*/ vacuum (full)").await?;
    client
        .batch_execute("/*downtime*/ vacuum (analyze)")
        .await?;
    client.batch_execute("/*downtime*/ checkpoint").await?;
    Ok(())
}

/// Estimates for every patch from runs at several scales: `(scale, reports)`.
pub fn estimate(
    scaled: &[(f64, Vec<PatchReport>)],
    stats: &ProdStats,
    growth: Option<f64>,
    budget_of: impl Fn(&PatchReport) -> Option<f64>,
    today: &str,
) -> Vec<Option<PatchEstimate>> {
    let Some((_, first)) = scaled.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let runs: Vec<&PatchReport> = scaled
                .iter()
                .filter_map(|(_, rs)| rs.get(i))
                .filter(|p| p.status == Status::Ok)
                .collect();
            let base = runs.first()?;
            let mut statements = Vec::new();
            let mut missing = Vec::new();
            for (j, st) in base.statements.iter().enumerate() {
                let samples: Vec<(&crate::report::StatementReport, f64)> = runs
                    .iter()
                    .filter_map(|p| p.statements.get(j))
                    .map(|s| (s, s.seconds))
                    .collect();
                let relation = samples
                    .iter()
                    .find_map(|(s, _)| s.work.as_ref().map(|w| w.relation.clone()));
                let expected = samples
                    .iter()
                    .find_map(|(s, _)| s.work.as_ref().and_then(|w| w.kind))
                    .map(WorkKind::expected_model);
                let rows_of =
                    |s: &crate::report::StatementReport| s.work.as_ref().map_or(0.0, |w| w.rows);
                let points: Vec<(f64, f64)> = samples
                    .iter()
                    .map(|(s, secs)| (rows_of(s), *secs))
                    .collect();
                // The fit sees every run, not only each scale's median.
                let runs_at_scales: Vec<(f64, f64)> = samples
                    .iter()
                    .flat_map(|(s, secs)| match &s.stats {
                        Some(st) if !st.samples.is_empty() => {
                            st.samples.iter().map(|y| (rows_of(s), *y)).collect()
                        }
                        _ => vec![(rows_of(s), *secs)],
                    })
                    .collect();
                let fit = model::fit(&runs_at_scales, relation.is_some(), expected);
                let production_rows = relation
                    .as_ref()
                    .and_then(|r| stats.table(r))
                    .map(|t| t.rows);
                let (seconds, low, high, note) = match (&relation, production_rows) {
                    (Some(r), None) => {
                        missing.push(r.clone());
                        (
                            None,
                            None,
                            None,
                            Some(format!("{r} is not in the stats file")),
                        )
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
                statements.push(StatementEstimate {
                    line: st.line,
                    relation,
                    production_rows,
                    model: fit.model,
                    points,
                    seconds,
                    low,
                    high,
                    note,
                    fit: Some(fit),
                });
            }
            let seconds: f64 = statements.iter().filter_map(|s| s.seconds).sum();
            let half: f64 = statements
                .iter()
                .filter_map(|s| Some((s.high? - s.seconds?).powi(2)))
                .sum::<f64>()
                .sqrt();
            missing.sort();
            missing.dedup();
            let mut est = PatchEstimate {
                seconds,
                low: (seconds - half).max(0.0),
                high: seconds + half,
                complete: missing.is_empty(),
                missing_tables: missing,
                monthly_growth: None,
                fits_until: None,
                statements,
            };
            let g = growth.or_else(|| {
                est.dominant()
                    .and_then(|d| d.relation.as_ref())
                    .and_then(|r| stats.table(r))
                    .and_then(|t| t.monthly_growth)
            });
            est.monthly_growth = g;
            if let (Some(budget), Some(g)) = (budget_of(base), g) {
                let predict = |factor: f64| -> f64 {
                    est.statements
                        .iter()
                        .filter_map(|s| {
                            let fit = s.fit.as_ref()?;
                            Some(fit.predict(s.production_rows.unwrap_or(0.0) * factor))
                        })
                        .sum()
                };
                est.fits_until = Some(match model::months_until_over(budget, predict, g) {
                    Some(0) => "over budget now".to_string(),
                    Some(m) => model::add_months(today, m - 1),
                    None => "beyond ten years".to_string(),
                });
            }
            Some(est)
        })
        .collect()
}
