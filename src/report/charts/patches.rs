//! Apply time per patch against its budget, on a log scale.

use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::RangedCoordusize;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{
    clamp, legend, secs, segments, short, DrawResult, COLD, FONT, GRID, LIVE, OVER,
};
use crate::patch::Class;
use crate::report::{PatchReport, Report, Status};

/// One bar per patch across, seconds on a log scale up.
type PatchChart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<SegmentedCoord<RangedCoordusize>, LogCoord<f64>>>;

fn bar_color(p: &PatchReport) -> RGBColor {
    if p.status == Status::Failed || p.over_budget || !p.failures.is_empty() {
        OVER
    } else if p.classification == Some(Class::Cold) {
        COLD
    } else {
        LIVE
    }
}

/// The log axis' bottom and top: below the fastest patch, above the slowest
/// patch and the largest budget.
fn log_range(ran: &[&PatchReport]) -> (f64, f64) {
    let budgets = ran.iter().filter_map(|p| p.budget_seconds);
    let max = ran
        .iter()
        .map(|p| secs(p.seconds))
        .chain(budgets.map(secs))
        .fold(0.0f64, f64::max)
        .max(0.01);
    let min_positive = ran
        .iter()
        .map(|p| secs(p.seconds))
        .filter(|s| *s > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if min_positive.is_finite() {
        (min_positive / 2.0).clamp(1e-5, 0.001)
    } else {
        1e-4
    };
    (floor, max * 2.0)
}

/// The frame: caption, axes and the patch ids under their bars.
fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    ran: &[&PatchReport],
    (floor, top): (f64, f64),
) -> Result<PatchChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let n = ran.len().max(1);
    let label_every = n.div_ceil(24).max(1);
    let mut c = ChartBuilder::on(root)
        .caption(format!("{title} (seconds, log scale)"), (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(segments(n), (floor..top).log_scale())?;
    let ids: Vec<String> = ran.iter().map(|p| short(&p.id, 16)).collect();
    c.configure_mesh()
        .disable_x_mesh()
        .light_line_style(GRID)
        .x_labels(n.min(24))
        .x_label_style((FONT, 11))
        .y_label_style((FONT, 13))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % label_every == 0 => {
                ids.get(*i).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .y_desc("seconds")
        .draw()?;
    Ok(c)
}

/// The bar of the `i`th patch, from the axis' floor to its seconds.
fn bar(
    i: usize,
    p: &PatchReport,
    (floor, top): (f64, f64),
    color: RGBColor,
) -> Rectangle<(SegmentValue<usize>, f64)> {
    let mut r = Rectangle::new(
        [
            (SegmentValue::Exact(i), floor),
            (SegmentValue::Exact(i + 1), clamp(p.seconds, floor, top)),
        ],
        color.filled(),
    );
    r.set_margin(0, 0, 4, 4);
    r
}

/// The bars, one series (and legend entry) per colour.
fn draw_bars<DB: DrawingBackend>(
    c: &mut PatchChart<'_, DB>,
    ran: &[&PatchReport],
    range: (f64, f64),
) -> DrawResult<DB> {
    for (label, color) in [
        ("live", LIVE),
        ("cold", COLD),
        ("over budget / failed", OVER),
    ] {
        c.draw_series(
            ran.iter()
                .enumerate()
                .filter(|(_, p)| bar_color(p) == color)
                .map(|(i, p)| bar(i, p, range, color)),
        )?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    Ok(())
}

/// Each patch's budget as a mark across its bar.
fn draw_budgets<DB: DrawingBackend>(
    c: &mut PatchChart<'_, DB>,
    ran: &[&PatchReport],
    (floor, top): (f64, f64),
) -> DrawResult<DB> {
    c.draw_series(ran.iter().enumerate().filter_map(|(i, p)| {
        p.budget_seconds.map(|b| {
            let b = clamp(b, floor, top);
            PathElement::new(
                vec![(SegmentValue::Exact(i), b), (SegmentValue::Exact(i + 1), b)],
                OVER.stroke_width(3),
            )
        })
    }))?
    .label("budget")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], OVER.stroke_width(3)));
    Ok(())
}

pub(super) fn draw_patches<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    title: &str,
) -> DrawResult<DB> {
    let ran: Vec<&PatchReport> = report
        .patches
        .iter()
        .filter(|p| p.status != Status::Skipped)
        .collect();
    let range = log_range(&ran);
    let mut c = frame(root, title, &ran, range)?;
    draw_bars(&mut c, &ran, range)?;
    draw_budgets(&mut c, &ran, range)?;
    legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
