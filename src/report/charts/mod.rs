//! Charts drawn with plotters from the report alone: apply time per patch
//! against the budget, the statements of slow patches, and the lock timeline
//! of cold patches. The same drawing code renders SVG (inline in the HTML
//! report) and PNG; text uses the bundled DejaVu Sans through ab_glyph, so no
//! system font library is needed.

mod common;
mod locks;
mod patches;
mod probe;
mod scaling;
mod statements;
mod trend;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use common::{COLD, LIVE, NOT_RUN, OVER};

use super::{PatchReport, Report, Status};
use crate::escape::visible;
use crate::patch::Class;
use common::DrawResult;

/// Which chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Apply time per patch against the budget.
    Patches,
    /// Statement breakdown of one patch (index into `report.patches`).
    Statements(usize),
    /// Lock timeline of one patch.
    Locks(usize),
    /// Apply time over the recorded runs, per patch.
    Trend,
    /// Measured points, fitted curve and production estimate of one patch.
    Scaling(usize),
    /// The probe's latency timeline during one patch.
    Probe(usize),
}

/// A chart to draw: its file stem, title and size.
#[derive(Debug, Clone)]
pub struct Chart {
    pub name: String,
    pub title: String,
    pub kind: Kind,
    pub size: (u32, u32),
}

fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The patches that ran, with their index into `report.patches`.
type Ran<'a> = [(usize, &'a PatchReport)];

/// The charts worth drawing for this report.
pub fn charts(report: &Report) -> Vec<Chart> {
    let ran: Vec<(usize, &PatchReport)> = report
        .patches
        .iter()
        .enumerate()
        .filter(|(_, p)| p.status != Status::Skipped && !p.statements.is_empty())
        .collect();
    if ran.is_empty() {
        return Vec::new();
    }
    let mut out = vec![Chart {
        name: "patches".into(),
        title: "Apply time per patch".into(),
        kind: Kind::Patches,
        size: (1000, 460),
    }];
    if ran.iter().any(|(_, p)| !p.history.is_empty()) {
        out.push(Chart {
            name: "trend".into(),
            title: "Apply time over recorded runs".into(),
            kind: Kind::Trend,
            size: (1000, 420),
        });
    }
    out.extend(statement_charts(report, &ran));
    out.extend(scaling_charts(&ran));
    out.extend(lock_charts(&ran));
    out.extend(probe_charts(&ran));
    out
}

/// Patches the probe saw blocking the application (the first six), or
/// else the one it watched longest.
fn probe_charts(ran: &Ran) -> Vec<Chart> {
    let probed: Vec<&(usize, &PatchReport)> = ran
        .iter()
        .filter(|(_, p)| p.probe.as_ref().is_some_and(|pr| !pr.timeline.is_empty()))
        .collect();
    let mut chosen: Vec<&(usize, &PatchReport)> = probed
        .iter()
        .copied()
        .filter(|(_, p)| p.probe.as_ref().is_some_and(|pr| pr.blocked_queries > 0))
        .take(6)
        .collect();
    if chosen.is_empty() {
        chosen.extend(probed.iter().copied().max_by(|a, b| {
            let w = |p: &PatchReport| p.probe.as_ref().map_or(0.0, |pr| pr.window_seconds);
            w(a.1).total_cmp(&w(b.1))
        }));
    }
    chosen
        .into_iter()
        .map(|(i, p)| Chart {
            name: format!("probe-{}", file_safe(&p.id)),
            title: format!("What the application felt: {}", visible(&p.id)),
            kind: Kind::Probe(*i),
            size: (1000, 460),
        })
        .collect()
}

/// Slow patches: over budget, or the three slowest that took measurable
/// time; at most six, in report order.
fn statement_charts(report: &Report, ran: &Ran) -> Vec<Chart> {
    let mut by_time = ran.to_vec();
    by_time.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
    let mut slow: Vec<usize> = ran
        .iter()
        .filter(|(_, p)| p.over_budget)
        .map(|(i, _)| *i)
        .collect();
    for (i, p) in by_time.iter().take(3) {
        if p.seconds >= 0.01 && !slow.contains(i) {
            slow.push(*i);
        }
    }
    slow.sort();
    slow.into_iter()
        .take(6)
        .map(|i| {
            let p = &report.patches[i];
            let rows = p.statements.len().min(30) as u32;
            Chart {
                name: format!("statements-{}", file_safe(&p.id)),
                title: format!("Where the time went: {}", visible(&p.id)),
                kind: Kind::Statements(i),
                size: (1000, 110 + 26 * rows.max(3)),
            }
        })
        .collect()
}

/// Estimated patches with a dominant statement, at most eight.
fn scaling_charts(ran: &Ran) -> Vec<Chart> {
    ran.iter()
        .filter(|(_, p)| p.estimate.as_ref().is_some_and(|e| e.dominant().is_some()))
        .take(8)
        .map(|(i, p)| Chart {
            name: format!("scaling-{}", file_safe(&p.id)),
            title: format!("Scaling of {}", visible(&p.id)),
            kind: Kind::Scaling(*i),
            size: (1000, 420),
        })
        .collect()
}

/// Cold patches (the first six) that held locks.
fn lock_charts(ran: &Ran) -> Vec<Chart> {
    ran.iter()
        .filter(|(_, p)| p.classification == Some(Class::Cold))
        .take(6)
        .filter_map(|(i, p)| {
            let rows = locks::lock_rows(p).len() as u32;
            (rows > 0).then(|| Chart {
                name: format!("locks-{}", file_safe(&p.id)),
                title: format!("Locks held by {}", visible(&p.id)),
                kind: Kind::Locks(*i),
                size: (1000, 110 + 30 * rows.clamp(3, 20)),
            })
        })
        .collect()
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    chart: &Chart,
) -> DrawResult<DB> {
    common::fonts();
    root.fill(&WHITE)?;
    match chart.kind {
        Kind::Patches => patches::draw_patches(root, report, &chart.title),
        Kind::Statements(i) => statements::draw_statements(root, &report.patches[i], &chart.title),
        Kind::Locks(i) => locks::draw_locks(root, &report.patches[i], &chart.title),
        Kind::Trend => trend::draw_trend(root, report, &chart.title),
        Kind::Scaling(i) => scaling::draw_scaling(root, &report.patches[i], &chart.title),
        Kind::Probe(i) => probe::draw_probe(root, &report.patches[i], &chart.title),
    }
}

/// The chart as an SVG document.
pub fn svg(report: &Report, chart: &Chart) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, chart.size).into_drawing_area();
        draw(&root, report, chart).map_err(|e| format!("chart {}: {e}", chart.name))?;
        root.present()
            .map_err(|e| format!("chart {}: {e}", chart.name))?;
    }
    Ok(out)
}

/// The chart as a PNG file.
pub fn png(report: &Report, chart: &Chart, path: &Path) -> Result<(), String> {
    let root = BitMapBackend::new(path, chart.size).into_drawing_area();
    draw(&root, report, chart).map_err(|e| format!("chart {}: {e}", chart.name))?;
    root.present().map_err(|e| e.to_string())
}
