//! The lock timeline of a cold patch: one bar per lock, from the start of the
//! statement that took it for as long as it was held.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{horizontal, legend, secs, short, DrawResult, COLD, LIVE, OVER};
use crate::pg::LockMode;
use crate::report::PatchReport;

/// One lock bar: label, start and end (seconds from the patch's start), mode.
pub(super) struct LockRow {
    label: String,
    start: f64,
    end: f64,
    mode: LockMode,
}

/// The patch's locks in the order its statements took them, at most 20.
pub(super) fn lock_rows(p: &PatchReport) -> Vec<LockRow> {
    let mut rows = Vec::new();
    let mut offset = 0.0;
    for s in &p.statements {
        for l in &s.locks {
            rows.push(LockRow {
                label: format!(
                    "{} {} (line {})",
                    crate::escape::visible(&l.relation),
                    l.mode,
                    s.line
                ),
                start: secs(offset + secs(l.waited_seconds)),
                end: secs(offset + secs(l.waited_seconds) + secs(l.held_seconds)),
                mode: l.mode,
            });
        }
        offset = secs(offset + secs(s.seconds));
    }
    rows.truncate(20);
    rows
}

/// The colour of a lock: what it blocks.
fn lock_color(mode: LockMode) -> RGBColor {
    if mode.blocks_reads() {
        OVER
    } else if mode.blocks_application() {
        COLD
    } else {
        LIVE
    }
}

/// The bar of the `i`th lock, at least `min_width` wide so that a lock held
/// for no measurable time still shows.
fn lock_bar(
    i: usize,
    r: &LockRow,
    min_width: f64,
    color: RGBColor,
) -> Rectangle<(f64, SegmentValue<usize>)> {
    let mut rect = Rectangle::new(
        [
            (r.start, SegmentValue::Exact(i)),
            (r.end.max(r.start + min_width), SegmentValue::Exact(i + 1)),
        ],
        color.filled(),
    );
    rect.set_margin(4, 4, 0, 0);
    rect
}

pub(super) fn draw_locks<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &PatchReport,
    title: &str,
) -> DrawResult<DB> {
    let rows = lock_rows(p);
    let labels: Vec<String> = rows.iter().map(|r| short(&r.label, 44)).collect();
    let max = rows
        .iter()
        .map(|r| r.end)
        .fold(secs(p.seconds), f64::max)
        .max(1e-3)
        * 1.45; // room on the right for the legend
    let mut c = horizontal(root, title, rows.len(), max, &labels)?;
    for (label, color) in [
        ("blocks reads and writes", OVER),
        ("blocks writes", COLD),
        ("does not block", LIVE),
    ] {
        c.draw_series(
            rows.iter()
                .enumerate()
                .filter(|(_, r)| lock_color(r.mode) == color)
                .map(|(i, r)| lock_bar(i, r, max / 500.0, color)),
        )?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    legend(&mut c, SeriesLabelPosition::UpperRight)?;
    Ok(())
}
