//! What the application felt during one patch: the latency of every probe
//! query over time (blocked ones in red), the idle baseline before the
//! patch, the threshold, and the patch's statements and lock spans laid
//! over it.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{clamp, legend, secs, DrawResult, COLD, FONT, GRID, LIVE, NOT_RUN, OVER};
use crate::measure::probe::{Kind, PatchProbe};
use crate::report::PatchReport;

/// Writes, in a colour of their own.
const WRITE: RGBColor = RGBColor(39, 174, 96);

/// The extent of the chart: seconds across (idle baseline first), latency up.
fn extent(p: &PatchProbe) -> (f64, f64, f64) {
    let first = p.timeline.first().map_or(0.0, |t| t.at).min(0.0);
    let last = p
        .timeline
        .iter()
        .map(|t| t.at + t.latency)
        .chain(p.statements.iter().map(|s| s.at_seconds + s.seconds))
        .fold(p.window_seconds, f64::max);
    let top = p
        .timeline
        .iter()
        .map(|t| t.latency)
        .fold(p.threshold_seconds * 2.0, f64::max);
    let from = clamp(first, -1e6, 0.0);
    let to = secs(last).max(from + 1e-3);
    (from, to * 1.02, secs(top).max(1e-3) * 1.15)
}

pub(super) fn draw_probe<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &PatchReport,
    title: &str,
) -> DrawResult<DB> {
    let Some(p) = &report.probe else {
        return Ok(());
    };
    let (from, to, top) = extent(p);
    let mut c = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(from..to, 0.0..top)?;
    c.configure_mesh()
        .light_line_style(GRID)
        .x_desc("seconds from the start of the patch (before 0: idle baseline)")
        .y_desc("query latency (s)")
        .x_label_style((FONT, 12))
        .y_label_style((FONT, 12))
        .draw()?;
    // Statements: alternating bands, each labelled with its line.
    for (i, s) in p.statements.iter().enumerate() {
        let shade = if i % 2 == 0 { 0.10 } else { 0.05 };
        let (x0, x1) = (secs(s.at_seconds), secs(s.at_seconds + s.seconds));
        c.draw_series(std::iter::once(Rectangle::new(
            [(x0, 0.0), (x1.max(x0 + (to - from) / 800.0), top)],
            BLACK.mix(shade).filled(),
        )))?;
        if p.statements.len() <= 12 {
            c.draw_series(std::iter::once(Text::new(
                format!("line {}", s.statement_line),
                (x0, top * 0.97),
                (FONT, 11),
            )))?;
        }
    }
    // Lock spans of the patch: a bar along the top per lock that blocks.
    for (k, (start, end, mode)) in lock_spans(report, p).into_iter().enumerate() {
        let y = top * (0.90 - 0.03 * (k % 5) as f64);
        let color = if mode.blocks_reads() { OVER } else { COLD };
        c.draw_series(std::iter::once(PathElement::new(
            vec![(start, y), (end, y)],
            color.stroke_width(4),
        )))?;
    }
    c.draw_series(std::iter::once(PathElement::new(
        vec![(from, p.threshold_seconds), (to, p.threshold_seconds)],
        NOT_RUN.stroke_width(1),
    )))?
    .label(format!("threshold {:.3} s", p.threshold_seconds))
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], NOT_RUN.stroke_width(2)));
    for (label, color, pick) in [
        ("read", LIVE, Pick::Kind(Kind::Read)),
        ("write", WRITE, Pick::Kind(Kind::Write)),
        ("script", COLD, Pick::Kind(Kind::Script)),
        ("blocked by the patch", OVER, Pick::Blocked),
    ] {
        let points: Vec<(f64, f64)> = p
            .timeline
            .iter()
            .filter(|t| match pick {
                Pick::Kind(k) => t.kind == k && !t.blocked,
                Pick::Blocked => t.blocked,
            })
            .map(|t| (clamp(t.at, from, to), secs(t.latency)))
            .collect();
        if points.is_empty() {
            continue;
        }
        c.draw_series(
            points
                .into_iter()
                .map(|pt| Circle::new(pt, 3, color.filled())),
        )?
        .label(label)
        .legend(move |(x, y)| Circle::new((x + 7, y), 4, color.filled()));
    }
    legend(&mut c, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Pick {
    Kind(Kind),
    Blocked,
}

/// Each blocking lock the patch took: from the start of the statement that
/// took it (on the probe's clock) for as long as it was held.
fn lock_spans(report: &PatchReport, p: &PatchProbe) -> Vec<(f64, f64, crate::pg::LockMode)> {
    let mut out = Vec::new();
    for s in &report.statements {
        let Some(at) = p
            .statements
            .iter()
            .find(|x| x.statement_line == s.line)
            .map(|x| x.at_seconds)
        else {
            continue;
        };
        for l in s.locks.iter().filter(|l| l.mode.blocks_application()) {
            let from = secs(at + l.waited_seconds);
            out.push((from, secs(from + l.held_seconds), l.mode));
        }
    }
    out.truncate(20);
    out
}
