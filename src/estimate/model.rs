//! Scaling models for one statement: time as a function of the rows of the
//! table its work grows with. Constant (catalogue-only work), linear (rewrites,
//! scans, updates) or n·log n (index builds and sorts); fitted robustly
//! (Theil–Sen) with a non-negative intercept. The model the statement's algorithm
//! implies is kept unless another one predicts the measured points clearly
//! better (leave-one-out error); predicted with a 95 % interval.

use serde::{Deserialize, Serialize};

use crate::limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    Constant,
    Linear,
    NLogN,
}

impl Model {
    fn feature(self, n: f64) -> f64 {
        match self {
            Model::Constant => 0.0,
            Model::Linear => n,
            Model::NLogN => n * (n.max(2.0)).log2(),
        }
    }
}

/// A fitted model: `seconds = a + b · feature(rows)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub model: Model,
    pub a: f64,
    pub b: f64,
    /// Residual standard error (None with too few points to tell).
    pub residual: Option<f64>,
    /// Leave-one-out root mean square error, the selection criterion (None
    /// with too few points).
    pub loo_rmse: Option<f64>,
    points: Vec<(f64, f64)>,
}

/// Two-sided 95 % Student t quantiles for 1..=10 degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        d if d <= 10 => T[d - 1],
        _ => 1.96,
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `(a, b)` of `seconds = a + b · feature(rows)`. The slope is the median of
/// the slopes between every two points (Theil–Sen) and the intercept the
/// median of what is left: one run slowed by the machine moves neither much,
/// where least squares would follow it.
fn line_fit(model: Model, pts: &[(f64, f64)]) -> (f64, f64) {
    let mean_y = pts.iter().map(|p| p.1).sum::<f64>() / pts.len().max(1) as f64;
    if model == Model::Constant {
        return (mean_y, 0.0);
    }
    let xs: Vec<f64> = pts.iter().map(|p| model.feature(p.0)).collect();
    let mut slopes = Vec::new();
    for i in 0..pts.len() {
        for j in i + 1..pts.len() {
            if xs[j] != xs[i] {
                slopes.push((pts[j].1 - pts[i].1) / (xs[j] - xs[i]));
            }
        }
    }
    let Some(b) = median(slopes) else {
        return (mean_y, 0.0);
    };
    let a = median(xs.iter().zip(pts).map(|(x, p)| p.1 - b * x).collect()).unwrap_or(0.0);
    if a >= 0.0 {
        return (a, b);
    }
    // Work that grows with the rows has no negative fixed cost: a negative
    // intercept is noise, and it would steepen the slope. Fit through the origin.
    match median(
        xs.iter()
            .zip(pts)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, p)| p.1 / x)
            .collect(),
    ) {
        Some(b0) => (0.0, b0),
        None => (mean_y, 0.0),
    }
}

/// The distinct row counts among the points (the scales measured).
fn distinct_rows(pts: &[(f64, f64)]) -> Vec<f64> {
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

fn fit_one(model: Model, pts: &[(f64, f64)]) -> Fit {
    let (a, b) = line_fit(model, pts);
    let params = if model == Model::Constant { 1 } else { 2 };
    let rss: f64 = pts
        .iter()
        .map(|p| (p.1 - (a + b * model.feature(p.0))).powi(2))
        .sum();
    let residual = (pts.len() > params).then(|| (rss / (pts.len() - params) as f64).sqrt());
    // Leave one scale out: how well the other scales predict each one's
    // runs (leaving out a single run would keep its scale's other runs in).
    let scales = distinct_rows(pts);
    let loo_rmse = if scales.len() > params {
        let se: f64 = scales
            .iter()
            .map(|&x| {
                let rest: Vec<(f64, f64)> = pts.iter().filter(|p| p.0 != x).copied().collect();
                let (a, b) = line_fit(model, &rest);
                pts.iter()
                    .filter(|p| p.0 == x)
                    .map(|p| (p.1 - (a + b * model.feature(p.0))).powi(2))
                    .sum::<f64>()
            })
            .sum();
        Some((se / pts.len() as f64).sqrt())
    } else {
        None
    };
    Fit {
        model,
        a,
        b,
        residual,
        loo_rmse,
        points: pts.to_vec(),
    }
}

/// How much better (leave-one-out error) another model must predict the
/// measured points to replace the one the statement's algorithm implies.
pub const OVERRIDE_FACTOR: f64 = 0.5;

/// Fit every model that suits the data and keep the best: a model that
/// predicts less time for more rows is not considered. With an `expected`
/// model (a sort is n·log n, a pass over the rows linear), that one is kept
/// unless a constant predicts the points as well (the work did not show) or
/// another shape has less than half its leave-one-out error: with a few
/// noisy points the criterion alone picks a shape by chance, and the shapes
/// differ most where the prediction is made.
pub fn fit(points: &[(f64, f64)], grows: bool, expected: Option<Model>) -> Fit {
    let scales = distinct_rows(points).len();
    let candidates: &[Model] = if grows && scales > 1 {
        &[Model::Constant, Model::Linear, Model::NLogN]
    } else {
        &[Model::Constant]
    };
    if candidates.len() > 1 && scales <= 2 {
        // Too few scales to cross-validate a slope: two scales of growing
        // work are a line through them.
        let line = fit_one(Model::Linear, points);
        return if line.b >= 0.0 {
            line
        } else {
            fit_one(Model::Constant, points)
        };
    }
    let fits: Vec<Fit> = candidates
        .iter()
        .map(|m| fit_one(*m, points))
        .filter(|f| f.b >= 0.0)
        .collect();
    let loo = |f: &Fit| f.loo_rmse.unwrap_or(f64::INFINITY);
    // A tie goes to the simpler model.
    let best = fits
        .iter()
        .min_by(|x, y| loo(x).total_cmp(&(loo(y) * 0.999)))
        .cloned()
        .unwrap_or_else(|| fit_one(Model::Constant, points));
    let Some(implied) = expected.and_then(|m| fits.iter().find(|f| f.model == m && f.b > 0.0))
    else {
        return best;
    };
    // Measured time that does not grow (a check proven by a constraint, a
    // table too small for the work to show) stays constant.
    if let Some(c) = fits.iter().find(|f| f.model == Model::Constant) {
        if loo(c) <= loo(implied) {
            return c.clone();
        }
    }
    if loo(&best) < OVERRIDE_FACTOR * loo(implied) {
        best
    } else {
        implied.clone()
    }
}

impl Fit {
    /// The measured (rows, seconds) the model was fitted on: every run.
    pub fn runs(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The predicted seconds at `rows`.
    pub fn predict(&self, rows: f64) -> f64 {
        (self.a + self.b * self.model.feature(rows)).max(0.0)
    }

    /// Half-width of the 95 % prediction interval at `rows`.
    pub fn half_width(&self, rows: f64) -> Option<f64> {
        let s = self.residual?;
        let n = self.points.len();
        let params = if self.model == Model::Constant { 1 } else { 2 };
        let t = t95(n - params);
        let spread = if self.model == Model::Constant {
            1.0 + 1.0 / n as f64
        } else {
            let xs: Vec<f64> = self
                .points
                .iter()
                .map(|p| self.model.feature(p.0))
                .collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let sxx: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
            let x0 = self.model.feature(rows);
            1.0 + 1.0 / n as f64
                + if sxx > 0.0 {
                    (x0 - mean).powi(2) / sxx
                } else {
                    0.0
                }
        };
        Some(t * s * spread.sqrt())
    }
}

/// The first month (1..=120) in which `predict(growth factor)` exceeds
/// `budget`, as months from now; `Some(0)` when it does already, `None` when
/// it does not within ten years.
pub fn months_until_over(
    budget: f64,
    predict: impl Fn(f64) -> f64,
    monthly_growth: f64,
) -> Option<u32> {
    if predict(1.0) > budget {
        return Some(0);
    }
    (1..=120).find(|m| predict((1.0 + monthly_growth).powi(*m as i32)) > budget)
}

/// `YYYY-MM`, `months` after the year and month of `today` (RFC 3339).
pub fn add_months(today: &str, months: u32) -> String {
    let year: i32 = today.get(0..4).and_then(|s| s.parse().ok()).unwrap_or(2026);
    let month: i32 = today.get(5..7).and_then(|s| s.parse().ok()).unwrap_or(1);
    let total = year * 12 + (month - 1) + months as i32;
    format!("{:04}-{:02}", total / 12, total % 12 + 1)
}

/// Parse `4%/month`, `4 %/month`, `0.04/month`, `48%/year`: the monthly
/// growth, within [`limits::MONTHLY_GROWTH`].
pub fn parse_growth(s: &str) -> Result<f64, String> {
    let t = s.trim().to_ascii_lowercase().replace(' ', "");
    let (num, per) = t
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: write growth as 4%/month or 40%/year"))?;
    let (digits, scale) = match num.strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (num, 1.0),
    };
    let value = digits
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v / scale)
        .ok_or_else(|| format!("`{s}`: `{num}` is not a finite number"))?;
    let monthly = match per {
        "month" | "mo" => value,
        // Shrinking by all of it (or more) in a year has no monthly rate.
        "year" | "yr" if value > -1.0 => (1.0 + value).powf(1.0 / 12.0) - 1.0,
        "year" | "yr" => limits::MONTHLY_GROWTH.min - 1.0,
        _ => return Err(format!("`{s}`: per month or per year")),
    };
    limits::MONTHLY_GROWTH
        .check(monthly)
        .map_err(|_| format!("`{s}`: growth must be {}", limits::MONTHLY_GROWTH.range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_shape_of_the_data() {
        let lin: Vec<(f64, f64)> = [1e4, 2e4, 4e4, 8e4]
            .iter()
            .map(|&n| (n, 0.01 + n * 1e-5))
            .collect();
        let f = fit(&lin, true, None);
        assert_eq!(f.model, Model::Linear);
        assert!((f.predict(1.6e5) - (0.01 + 1.6)).abs() < 1e-6);
        let nlogn: Vec<(f64, f64)> = [1e3, 1e4, 1e5, 1e6]
            .iter()
            .map(|&n: &f64| (n, 0.002 + n * n.log2() * 1e-7))
            .collect();
        assert_eq!(fit(&nlogn, true, None).model, Model::NLogN);
        let flat = [(1e4, 0.0011), (2e4, 0.0010), (4e4, 0.0012), (8e4, 0.0011)];
        assert_eq!(fit(&flat, true, None).model, Model::Constant);
        assert_eq!(fit(&lin, false, None).model, Model::Constant);
        assert_eq!(fit(&lin[..2], true, None).model, Model::Linear);
        let noisy: Vec<(f64, f64)> = [1e4, 2e4, 4e4, 8e4]
            .iter()
            .zip([1.05, 0.95, 1.02, 0.98])
            .map(|(&n, k)| (n, n * 1e-5 * k))
            .collect();
        let f = fit(&noisy, true, None);
        let hw = f.half_width(3.2e5).unwrap();
        assert!(hw > 0.0 && (f.predict(3.2e5) - 3.2).abs() < hw + 0.5);
    }

    #[test]
    fn the_implied_model_wins_unless_the_data_clearly_disagree() {
        // A linear pass measured with noise that a sort's curve happens to
        // follow a little better: the pass stays linear.
        let pass: Vec<(f64, f64)> = [1.25e4, 2.5e4, 3.75e4, 6.25e4]
            .iter()
            .zip([1.0, 1.04, 0.97, 1.02])
            .map(|(&n, k)| (n, 0.002 + n * 2e-6 * k))
            .collect();
        assert_eq!(fit(&pass, true, Some(Model::Linear)).model, Model::Linear);
        // Flat data are flat whatever was expected.
        let flat = [(1e4, 0.0011), (2e4, 0.0010), (4e4, 0.0012), (8e4, 0.0011)];
        assert_eq!(fit(&flat, true, Some(Model::NLogN)).model, Model::Constant);
        // A sort's curve over a wide range is recognised as one.
        let sort: Vec<(f64, f64)> = [1e3, 1e4, 1e5, 1e6]
            .iter()
            .map(|&n: &f64| (n, n * n.log2() * 1e-7))
            .collect();
        assert_eq!(fit(&sort, true, Some(Model::NLogN)).model, Model::NLogN);
    }

    #[test]
    fn a_negative_intercept_is_refitted_through_the_origin() {
        // Noise at the small end would give a < 0 and a steeper slope.
        let pts = [(1e4, 0.009), (2e4, 0.021), (3e4, 0.031), (4e4, 0.041)];
        let f = fit_one(Model::Linear, &pts);
        assert_eq!(f.a, 0.0);
        // The median of seconds per row.
        let through_origin = (0.041 / 4e4 + 0.031 / 3e4) / 2.0;
        assert!((f.b - through_origin).abs() < 1e-15, "{}", f.b);
    }

    #[test]
    fn one_slow_point_does_not_swing_the_slope() {
        let mut pts: Vec<(f64, f64)> = [5e4, 1e5, 1.5e5, 2e5, 2.5e5]
            .iter()
            .map(|&n| (n, 0.001 + n * 1e-6))
            .collect();
        // The largest scale ran while the machine was busy: 2.3× slower.
        pts[4].1 *= 2.3;
        let f = fit(&pts, true, Some(Model::Linear));
        let at = 1e6;
        let truth = 0.001 + at * 1e-6;
        assert!(
            (f.predict(at) - truth).abs() / truth < 0.1,
            "{} vs {truth}",
            f.predict(at)
        );
    }

    #[test]
    fn runs_are_fitted_and_whole_scales_left_out() {
        // Three runs per scale of an n·log n cost, the machine alternating
        // between a fast and a slow mode (×0.75 / ×1.1) as a busy host does.
        let modes = [1.1, 0.75, 1.1];
        let truth = |n: f64| 0.002 + n * n.log2() * 4e-7;
        let runs: Vec<(f64, f64)> = [5e4, 1e5, 1.5e5, 2e5, 2.5e5]
            .iter()
            .enumerate()
            .flat_map(|(i, &n)| (0..3).map(move |r| (n, truth(n) * modes[(i + r) % 3])))
            .collect();
        assert_eq!(distinct_rows(&runs).len(), 5);
        let f = fit(&runs, true, Some(Model::NLogN));
        assert_eq!(f.model, Model::NLogN);
        // Left-out scales were predicted by the other four, not by their own runs.
        assert!(f.loo_rmse.unwrap() > 0.0);
        let at = 1e6;
        let err = (f.predict(at) - truth(at)) / truth(at);
        assert!(err.abs() < 0.15, "{err}");
        let hw = f.half_width(at).unwrap();
        assert!(f.predict(at) - hw < truth(at) && truth(at) < f.predict(at) + hw);
        // Two scales, however many runs: a line through them.
        assert_eq!(
            fit(&runs[..6], true, Some(Model::NLogN)).model,
            Model::Linear
        );
    }

    #[test]
    fn growth_and_months() {
        assert!((parse_growth("4%/month").unwrap() - 0.04).abs() < 1e-12);
        assert!((parse_growth("0.04/month").unwrap() - 0.04).abs() < 1e-12);
        let y = parse_growth("48%/year").unwrap();
        assert!(((1.0 + y).powi(12) - 1.48).abs() < 1e-9);
        assert!(parse_growth("4%").is_err());
        for bad in [
            "1e308%/month",
            "nan/month",
            "inf%/year",
            "-100%/year",
            "-200%/month",
            "2000%/month",
        ] {
            assert!(parse_growth(bad).is_err(), "{bad}");
        }
        assert!((parse_growth("-50%/month").unwrap() + 0.5).abs() < 1e-12);
        // Linear in rows: 10 s now, budget 15 s, 4 %/month: crosses in month 11.
        assert_eq!(months_until_over(15.0, |g| 10.0 * g, 0.04), Some(11));
        assert_eq!(months_until_over(5.0, |g| 10.0 * g, 0.04), Some(0));
        assert_eq!(months_until_over(15.0, |g| 10.0 * g, 0.0), None);
        assert_eq!(add_months("2026-11-22T00:00:00Z", 10), "2027-09");
        assert_eq!(add_months("2026-11-22T00:00:00Z", 1), "2026-12");
    }
}
