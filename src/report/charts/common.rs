//! What every chart shares: the bundled font, the colours, the legend and the
//! horizontal bar layout.

use std::sync::Once;

use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::coord::Shift;
use plotters::prelude::*;

pub(super) const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub const LIVE: RGBColor = RGBColor(46, 134, 193);
pub const COLD: RGBColor = RGBColor(230, 126, 34);
pub const OVER: RGBColor = RGBColor(192, 57, 43);
pub const NOT_RUN: RGBColor = RGBColor(149, 165, 166);
pub(super) const GRID: RGBColor = RGBColor(220, 220, 220);
pub(super) const RUN: RGBColor = RGBColor(150, 150, 150);

/// The largest number of seconds an axis reaches (about 31 years): a
/// larger value (only an edited report holds one) is drawn at the edge, so
/// every axis has a finite range and a bounded number of ticks.
pub(super) const SECONDS_AXIS_MAX: f64 = 1e9;

/// The largest row count an axis reaches.
pub(super) const ROWS_AXIS_MAX: f64 = 1e15;

/// `v` within `lo..=hi` (NaN as `lo`): what a chart can draw.
pub(super) fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() {
        lo
    } else {
        v.clamp(lo, hi)
    }
}

/// Seconds as a chart draws them: within `0..=SECONDS_AXIS_MAX`.
pub(super) fn secs(v: f64) -> f64 {
    clamp(v, 0.0, SECONDS_AXIS_MAX)
}

/// Registers the bundled font under [`FONT`], once.
pub(super) fn fonts() {
    REGISTER.call_once(|| {
        // The bytes are the bundled font: registering cannot fail on them.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// What drawing a chart returns.
pub(super) type DrawResult<DB> =
    Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// `s` cut to `n` characters, the last one an ellipsis when cut.
pub(super) fn short(s: &str, n: usize) -> String {
    let s = &crate::escape::visible(s);
    if s.chars().count() > n {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    } else {
        s.to_string()
    }
}

/// `n` category slots (plotters' segmented range over `0..k` has `k + 1`
/// slots; an empty range draws nothing, so one category gets two slots).
pub(super) fn segments(n: usize) -> plotters::coord::ranged1d::SegmentedCoord<RangedCoordusize> {
    (0..(n.max(2) - 1)).into_segmented()
}

/// The legend every chart draws, at `position`.
pub(super) fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
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

/// A chart with seconds across and one row per category.
pub(super) type HorizontalChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<RangedCoordf64, plotters::coord::ranged1d::SegmentedCoord<RangedCoordusize>>,
>;

/// The frame of a horizontal chart: `rows` labelled rows, seconds up to `x_max`.
pub(super) fn horizontal<'a, DB: DrawingBackend>(
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
