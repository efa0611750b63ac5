//! Apply time over the recorded runs: one line per patch.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{legend, secs, short, DrawResult, COLD, FONT, GRID, LIVE, OVER};
use crate::report::{Report, Status};

const SERIES: [RGBColor; 8] = [
    LIVE,
    COLD,
    OVER,
    RGBColor(39, 174, 96),
    RGBColor(142, 68, 173),
    RGBColor(22, 160, 133),
    RGBColor(127, 140, 141),
    RGBColor(241, 196, 15),
];

/// Per patch with a history, its recorded runs then this one; the slowest
/// now first, as many as there are colours.
fn trend_series(report: &Report) -> Vec<(&str, Vec<f64>)> {
    let mut series: Vec<(&str, Vec<f64>)> = report
        .patches
        .iter()
        .filter(|p| p.status == Status::Ok && !p.history.is_empty())
        .map(|p| {
            let mut v: Vec<f64> = p.history.iter().map(|h| secs(h.seconds)).collect();
            v.push(secs(p.seconds));
            (p.id.as_str(), v)
        })
        .collect();
    series.sort_by(|a, b| {
        b.1.last()
            .unwrap_or(&0.0)
            .total_cmp(a.1.last().unwrap_or(&0.0))
    });
    series.truncate(SERIES.len());
    series
}

/// One line per patch (the eight slowest now): its recorded runs, then this one.
pub(super) fn draw_trend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    title: &str,
) -> DrawResult<DB> {
    let series = trend_series(report);
    let points = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.15;
    let mut c = ChartBuilder::on(root)
        .caption(format!("{title} (seconds)"), (FONT, 20))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..(points - 1) as f64, 0.0..max)?;
    c.configure_mesh()
        .light_line_style(GRID)
        .x_desc("run (oldest first; the last is this one)")
        .x_label_style((FONT, 12))
        .y_label_style((FONT, 12))
        .draw()?;
    for ((id, values), color) in series.iter().zip(SERIES) {
        // Right-align series of different lengths on this run.
        let offset = points - values.len();
        let pts: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + offset) as f64, *v))
            .collect();
        c.draw_series(std::iter::once(PathElement::new(
            pts.clone(),
            color.stroke_width(2),
        )))?
        .label(short(id, 24))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(3)));
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
