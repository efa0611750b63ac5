//! How an estimated patch scales: the measured points of its dominant
//! statement, the fitted model, and the production estimate.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{
    clamp, legend, secs, DrawResult, COLD, FONT, GRID, LIVE, OVER, ROWS_AXIS_MAX, RUN,
};
use crate::estimate::StatementEstimate;
use crate::report::PatchReport;

/// Rows across, seconds up.
type ScalingChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A row count for an axis: 800, 250k, 1.5M, 2.25G.
fn rows_label(x: f64) -> String {
    let (v, unit) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

/// Rows as the chart draws them.
fn rows(x: f64) -> f64 {
    clamp(x, 0.0, ROWS_AXIS_MAX)
}

/// A (rows, seconds) point as the chart draws it.
fn point(p: &(f64, f64)) -> (f64, f64) {
    (rows(p.0), secs(p.1))
}

/// The every-run measurements the model was fitted on.
fn runs(d: &StatementEstimate) -> &[(f64, f64)] {
    d.fit.as_ref().map_or(&[][..], |f| f.runs())
}

/// The axes' extent, and the budget when it is drawn as a line.
struct Extent {
    x_max: f64,
    y_max: f64,
    budget_drawn: Option<f64>,
}

fn extent(d: &StatementEstimate, budget: Option<f64>) -> Extent {
    let prod_rows = rows(d.production_rows.unwrap_or(0.0));
    let x_max = d
        .points
        .iter()
        .map(|p| rows(p.0))
        .fold(prod_rows, f64::max)
        .max(1.0)
        * 1.05;
    let y_max = d
        .points
        .iter()
        .chain(runs(d))
        .map(|p| secs(p.1))
        .chain([secs(d.high.unwrap_or(0.0)), secs(d.seconds.unwrap_or(0.0))])
        .fold(0.0f64, f64::max)
        .max(1e-3);
    // A budget far above the data would flatten the curve: the line is drawn
    // when it is within twice the data's height, else named in the caption.
    let budget_drawn = budget.map(secs).filter(|b| *b <= 2.0 * y_max);
    let y_max = y_max.max(budget_drawn.unwrap_or(0.0)) * 1.1;
    Extent {
        x_max,
        y_max,
        budget_drawn,
    }
}

/// The frame: caption (with the budget when it is above the chart) and axes.
fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    d: &StatementEstimate,
    budget: Option<f64>,
    extent: &Extent,
) -> Result<ScalingChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut c = ChartBuilder::on(root)
        .caption(
            format!(
                "{title}: line {} on {}{}",
                d.line,
                crate::escape::visible(d.relation.as_deref().unwrap_or("-")),
                match (budget, extent.budget_drawn) {
                    (Some(b), None) => format!(" (budget {b:.0} s, above the chart)"),
                    _ => String::new(),
                }
            ),
            (FONT, 18),
        )
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..extent.x_max, 0.0..extent.y_max)?;
    c.configure_mesh()
        .light_line_style(GRID)
        .x_desc("rows")
        .y_desc("seconds")
        .x_label_formatter(&|x| rows_label(*x))
        .x_label_style((FONT, 12))
        .y_label_style((FONT, 12))
        .draw()?;
    Ok(c)
}

/// The fitted model's curve, the runs it was fitted on (when there are more
/// than the medians), and the median per scale.
fn draw_measurements<DB: DrawingBackend>(
    c: &mut ScalingChart<'_, DB>,
    d: &StatementEstimate,
    x_max: f64,
) -> DrawResult<DB> {
    if let Some(fit) = &d.fit {
        let curve: Vec<(f64, f64)> = (0..=100)
            .map(|i| {
                let x = x_max * i as f64 / 100.0;
                (x, secs(fit.predict(x)))
            })
            .collect();
        c.draw_series(std::iter::once(PathElement::new(
            curve,
            LIVE.stroke_width(2),
        )))?
        .label("fitted model")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], LIVE.stroke_width(2)));
    }
    let runs = runs(d);
    if runs.len() > d.points.len() {
        c.draw_series(
            runs.iter()
                .map(|p| Circle::new(point(p), 3, RUN.stroke_width(1))),
        )?
        .label("each run")
        .legend(|(x, y)| Circle::new((x + 7, y), 3, RUN.stroke_width(1)));
    }
    c.draw_series(
        d.points
            .iter()
            .map(|p| Circle::new(point(p), 4, BLACK.filled())),
    )?
    .label("median per scale")
    .legend(|(x, y)| Circle::new((x + 7, y), 4, BLACK.filled()));
    Ok(())
}

/// The production estimate with its interval, and the budget line.
fn draw_prediction<DB: DrawingBackend>(
    c: &mut ScalingChart<'_, DB>,
    d: &StatementEstimate,
    extent: &Extent,
) -> DrawResult<DB> {
    let prod_rows = rows(d.production_rows.unwrap_or(0.0));
    if let Some(s) = d.seconds.map(secs) {
        if let (Some(lo), Some(hi)) = (d.low, d.high) {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(prod_rows, secs(lo)), (prod_rows, secs(hi))],
                COLD.stroke_width(3),
            )))?;
        }
        c.draw_series(std::iter::once(Circle::new(
            (prod_rows, s),
            6,
            COLD.filled(),
        )))?
        .label("production estimate (95 % interval)")
        .legend(|(x, y)| Circle::new((x + 7, y), 5, COLD.filled()));
    }
    if let Some(b) = extent.budget_drawn {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, b), (extent.x_max, b)],
            OVER.stroke_width(2),
        )))?
        .label("budget")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], OVER.stroke_width(2)));
    }
    Ok(())
}

/// The dominant statement of an estimated patch: its measured points, the
/// fitted model, the production estimate with its interval, and the budget.
pub(super) fn draw_scaling<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &PatchReport,
    title: &str,
) -> DrawResult<DB> {
    let Some(e) = &p.estimate else { return Ok(()) };
    let Some(d) = e.dominant() else { return Ok(()) };
    let extent = extent(d, p.budget_seconds);
    let mut c = frame(root, title, d, p.budget_seconds, &extent)?;
    draw_measurements(&mut c, d, extent.x_max)?;
    draw_prediction(&mut c, d, &extent)?;
    legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_on_the_axis() {
        assert_eq!(rows_label(0.0), "0");
        assert_eq!(rows_label(800.0), "800");
        assert_eq!(rows_label(250_000.0), "250k");
        assert_eq!(rows_label(1_500_000.0), "1.5M");
        assert_eq!(rows_label(2.25e9), "2.25G");
    }
}
