//! Charts drawn with plotters from the report alone: apply time per patch
//! against the budget, the statements of slow patches, and the lock timeline
//! of cold patches. The same drawing code renders SVG (inline in the HTML
//! report) and PNG; text uses the bundled DejaVu Sans through ab_glyph, so no
//! system font library is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordusize;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{PatchReport, Report, Status};
use crate::patch::Class;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub const LIVE: RGBColor = RGBColor(46, 134, 193);
pub const COLD: RGBColor = RGBColor(230, 126, 34);
pub const OVER: RGBColor = RGBColor(192, 57, 43);
pub const NOT_RUN: RGBColor = RGBColor(149, 165, 166);
const GRID: RGBColor = RGBColor(220, 220, 220);
const RUN: RGBColor = RGBColor(150, 150, 150);

fn fonts() {
    REGISTER.call_once(|| {
        // The bytes are the bundled font: registering cannot fail on them.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

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
    // Slow patches: over budget, or the three slowest that took measurable time.
    let mut by_time = ran.clone();
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
    for i in slow.into_iter().take(6) {
        let p = &report.patches[i];
        let rows = p.statements.len().min(30) as u32;
        out.push(Chart {
            name: format!("statements-{}", file_safe(&p.id)),
            title: format!("Where the time went: {}", p.id),
            kind: Kind::Statements(i),
            size: (1000, 110 + 26 * rows.max(3)),
        });
    }
    for (i, p) in ran
        .iter()
        .filter(|(_, p)| p.estimate.as_ref().is_some_and(|e| e.dominant().is_some()))
        .take(8)
    {
        out.push(Chart {
            name: format!("scaling-{}", file_safe(&p.id)),
            title: format!("Scaling of {}", p.id),
            kind: Kind::Scaling(*i),
            size: (1000, 420),
        });
    }
    for (i, p) in ran
        .iter()
        .filter(|(_, p)| p.classification == Some(Class::Cold))
        .take(6)
    {
        let rows = lock_rows(p).len() as u32;
        if rows > 0 {
            out.push(Chart {
                name: format!("locks-{}", file_safe(&p.id)),
                title: format!("Locks held by {}", p.id),
                kind: Kind::Locks(*i),
                size: (1000, 110 + 30 * rows.clamp(3, 20)),
            });
        }
    }
    out
}

/// One lock bar: label, start and end (seconds from the patch's start), mode.
struct LockRow {
    label: String,
    start: f64,
    end: f64,
    mode: crate::pg::locks::LockMode,
}

fn lock_rows(p: &PatchReport) -> Vec<LockRow> {
    let mut rows = Vec::new();
    let mut offset = 0.0;
    for s in &p.statements {
        for l in &s.locks {
            rows.push(LockRow {
                label: format!("{} {} (line {})", l.relation, l.mode, s.line),
                start: offset,
                end: offset + l.held_seconds.max(0.0),
                mode: l.mode,
            });
        }
        offset += s.seconds;
    }
    rows.truncate(20);
    rows
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    } else {
        s.to_string()
    }
}

fn bar_color(p: &PatchReport) -> RGBColor {
    if p.status == Status::Failed || p.over_budget || !p.failures.is_empty() {
        OVER
    } else if p.classification == Some(Class::Cold) {
        COLD
    } else {
        LIVE
    }
}

/// `n` category slots (plotters' segmented range over `0..k` has `k + 1`
/// slots; an empty range draws nothing, so one category gets two slots).
fn segments(n: usize) -> plotters::coord::ranged1d::SegmentedCoord<RangedCoordusize> {
    (0..(n.max(2) - 1)).into_segmented()
}

/// The legend every chart draws, at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    c: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    c.configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .position(position)
        .draw()
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    chart: &Chart,
) -> DrawResult<DB> {
    fonts();
    root.fill(&WHITE)?;
    match chart.kind {
        Kind::Patches => draw_patches(root, report, &chart.title),
        Kind::Statements(i) => draw_statements(root, &report.patches[i], &chart.title),
        Kind::Locks(i) => draw_locks(root, &report.patches[i], &chart.title),
        Kind::Trend => draw_trend(root, report, &chart.title),
        Kind::Scaling(i) => draw_scaling(root, &report.patches[i], &chart.title),
    }
}

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

/// The dominant statement of an estimated patch: its measured points, the
/// fitted model, the production estimate with its interval, and the budget.
fn draw_scaling<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &PatchReport,
    title: &str,
) -> DrawResult<DB> {
    let Some(e) = &p.estimate else { return Ok(()) };
    let Some(d) = e.dominant() else { return Ok(()) };
    let prod_rows = d.production_rows.unwrap_or(0.0);
    let x_max = d
        .points
        .iter()
        .map(|p| p.0)
        .fold(prod_rows, f64::max)
        .max(1.0)
        * 1.05;
    let budget = p.budget_seconds;
    let runs = d.fit.as_ref().map_or(&[][..], |f| f.runs());
    let y_max = d
        .points
        .iter()
        .chain(runs)
        .map(|p| p.1)
        .chain([d.high.unwrap_or(0.0), d.seconds.unwrap_or(0.0)])
        .fold(0.0f64, f64::max)
        .max(1e-3);
    // A budget far above the data would flatten the curve: the line is drawn
    // when it is within twice the data's height, else named in the caption.
    let budget_drawn = budget.filter(|b| *b <= 2.0 * y_max);
    let y_max = y_max.max(budget_drawn.unwrap_or(0.0)) * 1.1;
    let mut c = ChartBuilder::on(root)
        .caption(
            format!(
                "{title}: line {} on {}{}",
                d.line,
                d.relation.as_deref().unwrap_or("-"),
                match (budget, budget_drawn) {
                    (Some(b), None) => format!(" (budget {b:.0} s, above the chart)"),
                    _ => String::new(),
                }
            ),
            (FONT, 18),
        )
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    c.configure_mesh()
        .light_line_style(GRID)
        .x_desc("rows")
        .y_desc("seconds")
        .x_label_formatter(&|x| rows_label(*x))
        .x_label_style((FONT, 12))
        .y_label_style((FONT, 12))
        .draw()?;
    if let Some(fit) = &d.fit {
        let curve: Vec<(f64, f64)> = (0..=100)
            .map(|i| {
                let x = x_max * i as f64 / 100.0;
                (x, fit.predict(x))
            })
            .collect();
        c.draw_series(std::iter::once(PathElement::new(
            curve,
            LIVE.stroke_width(2),
        )))?
        .label("fitted model")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], LIVE.stroke_width(2)));
    }
    if runs.len() > d.points.len() {
        c.draw_series(runs.iter().map(|p| Circle::new(*p, 3, RUN.stroke_width(1))))?
            .label("each run")
            .legend(|(x, y)| Circle::new((x + 7, y), 3, RUN.stroke_width(1)));
    }
    c.draw_series(d.points.iter().map(|p| Circle::new(*p, 4, BLACK.filled())))?
        .label("median per scale")
        .legend(|(x, y)| Circle::new((x + 7, y), 4, BLACK.filled()));
    if let Some(s) = d.seconds {
        if let (Some(lo), Some(hi)) = (d.low, d.high) {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(prod_rows, lo), (prod_rows, hi)],
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
    if let Some(b) = budget_drawn {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, b), (x_max, b)],
            OVER.stroke_width(2),
        )))?
        .label("budget")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], OVER.stroke_width(2)));
    }
    legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

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

/// One line per patch (the eight slowest now): its recorded runs, then this one.
fn draw_trend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    title: &str,
) -> DrawResult<DB> {
    let mut series: Vec<(&str, Vec<f64>)> = report
        .patches
        .iter()
        .filter(|p| p.status == Status::Ok && !p.history.is_empty())
        .map(|p| {
            let mut v: Vec<f64> = p.history.iter().map(|h| h.seconds).collect();
            v.push(p.seconds);
            (p.id.as_str(), v)
        })
        .collect();
    series.sort_by(|a, b| {
        b.1.last()
            .unwrap_or(&0.0)
            .total_cmp(a.1.last().unwrap_or(&0.0))
    });
    series.truncate(SERIES.len());
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

fn draw_patches<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    title: &str,
) -> DrawResult<DB> {
    let ran: Vec<&PatchReport> = report
        .patches
        .iter()
        .filter(|p| p.status != Status::Skipped)
        .collect();
    let n = ran.len().max(1);
    let budgets = ran.iter().filter_map(|p| p.budget_seconds);
    let max = ran
        .iter()
        .map(|p| p.seconds)
        .chain(budgets)
        .fold(0.0f64, f64::max)
        .max(0.01);
    let min_positive = ran
        .iter()
        .map(|p| p.seconds)
        .filter(|s| *s > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if min_positive.is_finite() {
        (min_positive / 2.0).clamp(1e-5, 0.001)
    } else {
        1e-4
    };
    let top = max * 2.0;
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
    let bar = |i: usize, p: &PatchReport, color: RGBColor| {
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), floor),
                (SegmentValue::Exact(i + 1), p.seconds.max(floor)),
            ],
            color.filled(),
        );
        r.set_margin(0, 0, 4, 4);
        r
    };
    for (label, color) in [
        ("live", LIVE),
        ("cold", COLD),
        ("over budget / failed", OVER),
    ] {
        c.draw_series(
            ran.iter()
                .enumerate()
                .filter(|(_, p)| bar_color(p) == color)
                .map(|(i, p)| bar(i, p, color)),
        )?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    // Each patch's budget as a mark across its bar.
    c.draw_series(ran.iter().enumerate().filter_map(|(i, p)| {
        p.budget_seconds.map(|b| {
            PathElement::new(
                vec![(SegmentValue::Exact(i), b), (SegmentValue::Exact(i + 1), b)],
                OVER.stroke_width(3),
            )
        })
    }))?
    .label("budget")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], OVER.stroke_width(3)));
    legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// A chart with seconds across and one row per category.
type HorizontalChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<
        plotters::coord::types::RangedCoordf64,
        plotters::coord::ranged1d::SegmentedCoord<RangedCoordusize>,
    >,
>;

fn horizontal<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    rows: usize,
    x_max: f64,
    labels: &'a [String],
) -> Result<HorizontalChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut c = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..x_max, segments(rows))?;
    c.configure_mesh()
        .disable_y_mesh()
        .light_line_style(GRID)
        .y_labels(rows.max(1))
        .y_label_style((FONT, 12))
        .x_label_style((FONT, 12))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("seconds")
        .draw()?;
    Ok(c)
}

fn draw_statements<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &PatchReport,
    title: &str,
) -> DrawResult<DB> {
    let stmts: Vec<_> = p.statements.iter().take(30).collect();
    let labels: Vec<String> = stmts
        .iter()
        .map(|s| {
            short(
                &format!(
                    "line {}: {}",
                    s.line,
                    s.sql.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
                42,
            )
        })
        .collect();
    let max = stmts
        .iter()
        .map(|s| s.seconds)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.15;
    let mut c = horizontal(root, title, stmts.len(), max, &labels)?;
    c.draw_series(stmts.iter().enumerate().map(|(i, s)| {
        let color = if s.rewrites.is_empty() && s.locks.iter().all(|l| !l.mode.blocks_application())
        {
            LIVE
        } else {
            COLD
        };
        let mut r = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (s.seconds, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        );
        r.set_margin(3, 3, 0, 0);
        r
    }))?;
    Ok(())
}

fn draw_locks<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &PatchReport,
    title: &str,
) -> DrawResult<DB> {
    let rows = lock_rows(p);
    let labels: Vec<String> = rows.iter().map(|r| short(&r.label, 44)).collect();
    let max = rows
        .iter()
        .map(|r| r.end)
        .fold(p.seconds, f64::max)
        .max(1e-3)
        * 1.45; // room on the right for the legend
    let mut c = horizontal(root, title, rows.len(), max, &labels)?;
    for (label, color) in [
        ("blocks reads and writes", OVER),
        ("blocks writes", COLD),
        ("does not block", LIVE),
    ] {
        c.draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            let this = if r.mode.blocks_reads() {
                OVER
            } else if r.mode.blocks_application() {
                COLD
            } else {
                LIVE
            };
            (this == color).then(|| {
                let mut rect = Rectangle::new(
                    [
                        (r.start, SegmentValue::Exact(i)),
                        (r.end.max(r.start + max / 500.0), SegmentValue::Exact(i + 1)),
                    ],
                    color.filled(),
                );
                rect.set_margin(4, 4, 0, 0);
                rect
            })
        }))?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    legend(&mut c, SeriesLabelPosition::UpperRight)?;
    Ok(())
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
    root.present()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
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
