//! Where a slow patch's time went: one bar per statement.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{horizontal, secs, short, DrawResult, COLD, LIVE};
use crate::report::{PatchReport, StatementReport};

/// A statement's row label: its line and its SQL on one line, cut short.
fn statement_label(s: &StatementReport) -> String {
    short(
        &format!(
            "line {}: {}",
            s.line,
            s.sql.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        42,
    )
}

/// Cold when the statement rewrote storage or held a lock that blocks the
/// application, else live.
fn statement_color(s: &StatementReport) -> RGBColor {
    if s.rewrites.is_empty() && s.locks.iter().all(|l| !l.mode.blocks_application()) {
        LIVE
    } else {
        COLD
    }
}

pub(super) fn draw_statements<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &PatchReport,
    title: &str,
) -> DrawResult<DB> {
    let stmts: Vec<_> = p.statements.iter().take(30).collect();
    let labels: Vec<String> = stmts.iter().map(|s| statement_label(s)).collect();
    let max = stmts
        .iter()
        .map(|s| secs(s.seconds))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.15;
    let mut c = horizontal(root, title, stmts.len(), max, &labels)?;
    c.draw_series(stmts.iter().enumerate().map(|(i, s)| {
        let mut r = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (secs(s.seconds), SegmentValue::Exact(i + 1)),
            ],
            statement_color(s).filled(),
        );
        r.set_margin(3, 3, 0, 0);
        r
    }))?;
    Ok(())
}
