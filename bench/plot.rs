//! PNG plots for the corekv load generator (`corekv::bench::plot`).
//!
//! Owns: rendering latency-percentile, throughput-timeline (single or
//! multi-panel) and parameter sweep charts to ~1000x600 PNG files with
//! plotters' bitmap backend. Text is drawn with an embedded DejaVu Sans
//! (`fonts/DejaVuSans.ttf`, Bitstream Vera license in `fonts/LICENSE`)
//! registered through plotters' `ab_glyph` support, so no system font
//! discovery or native libraries are involved.
//!
//! Must not touch: measurement, report contents (it only reads
//! `super::report::LatencyHistogram`), or any file other than the PNG path it
//! is given.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use super::report::LatencyHistogram;

/// Width of every plot in pixels.
pub const PLOT_WIDTH: u32 = 1000;
/// Height of every plot in pixels.
pub const PLOT_HEIGHT: u32 = 600;

const FONT: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// Distinguishable line colours (Tableau 10).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Registers the embedded font once under plotters' `sans-serif` family.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("embedded DejaVu Sans font could not be registered"))
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// Linear f64 axis whose ticks are exactly the given key points (plotters'
/// `WithKeyPoints` cannot be used with a custom label formatter).
struct KeyAxis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

impl KeyAxis {
    fn new(lo: f64, hi: f64, keys: Vec<f64>) -> Self {
        let keys = keys.into_iter().filter(|k| *k >= lo && *k <= hi).collect();
        KeyAxis { lo, hi, keys }
    }
}

impl Ranged for KeyAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if span <= 0.0 {
            return (limit.0 + limit.1) / 2;
        }
        let frac = (v - self.lo) / span;
        limit.0 + ((limit.1 - limit.0) as f64 * frac).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Compact number for axis labels.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}").trim_end_matches(".0").to_string()
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Label for a position `x = log10(1/(1-p))` on the percentile axis.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as i64 - 2).max(0) as usize;
    format!("{p:.decimals$}%")
}

/// Finite `(x, y)` points only.
fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

fn bounds(series: &[Vec<(f64, f64)>]) -> Option<(f64, f64, f64, f64)> {
    let mut it = series.iter().flatten();
    let &(x0, y0) = it.next()?;
    Some(it.fold((x0, x0, y0, y0), |(a, b, c, d), &(x, y)| {
        (a.min(x), b.max(x), c.min(y), d.max(y))
    }))
}

/// Height of the footer strip of [`draw_footer`], pixels per line.
const FOOTER_LINE: u32 = 18;

/// Most characters of a footer line (DejaVu Sans 13 px across 1000 px).
const FOOTER_CHARS: usize = 150;

/// Splits a footer strip off the bottom of `root` and writes `footer`'s
/// lines into it (small grey text, each line cut to fit with `…`); returns
/// the area above. An empty footer leaves `root` whole.
fn draw_footer<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    footer: &str,
) -> Result<DrawingArea<DB, plotters::coord::Shift>> {
    let lines: Vec<&str> = footer.lines().filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return Ok(root);
    }
    let (_, h) = root.dim_in_pixel();
    let strip = FOOTER_LINE * lines.len() as u32 + 6;
    let (body, foot) = root.split_vertically(h.saturating_sub(strip));
    let grey = BLACK.mix(0.6);
    let style = TextStyle::from((FONT, 13).into_font()).color(&grey);
    for (i, line) in lines.iter().enumerate() {
        let text: String = if line.chars().count() > FOOTER_CHARS {
            line.chars().take(FOOTER_CHARS - 1).chain(['…']).collect()
        } else {
            line.to_string()
        };
        foot.draw_text(&text, &style, (10, 2 + (i as u32 * FOOTER_LINE) as i32))
            .map_err(plot_err)?;
    }
    Ok(body)
}

/// Latency (log y axis, in µs, or ms once the tail reaches 2 ms) against
/// percentile on the classic
/// `1/(1-p)` log x axis (ticks 50%, 90%, 99%, 99.9%, ...), one line per
/// histogram (HdrHistogram percentile iteration, 5 ticks per half distance).
pub fn plot_latency_percentiles(
    series: &[(&str, &LatencyHistogram)],
    path: impl AsRef<Path>,
    title: &str,
) -> Result<()> {
    plot_latency_percentiles_footed(series, path, title, "")
}

/// [`plot_latency_percentiles`] with `footer` lines under the chart (what
/// ran, where, when: see `cli::footer`).
pub fn plot_latency_percentiles_footed(
    series: &[(&str, &LatencyHistogram)],
    path: impl AsRef<Path>,
    title: &str,
    footer: &str,
) -> Result<()> {
    ensure_font()?;
    let mut lines: Vec<Vec<(f64, f64)>> = Vec::with_capacity(series.len());
    let max_count = series.iter().map(|(_, h)| h.count()).max().unwrap_or(0);
    // Right end of the x axis: enough nines for the sample count, 2..6.
    let x_max = ((max_count.max(1) as f64).log10().ceil()).clamp(2.0, 6.0);
    for (_, h) in series {
        let mut pts = Vec::new();
        if !h.is_empty() {
            for v in h.inner().iter_quantiles(5) {
                let q = v.quantile_iterated_to();
                if q >= 1.0 {
                    continue;
                }
                let x = (1.0 / (1.0 - q)).log10();
                if x > x_max {
                    break;
                }
                pts.push((x, v.value_iterated_to() as f64 / 1000.0));
            }
        }
        lines.push(pts);
    }
    // The axis ends just past the data, not at the next power of ten.
    let x_max = match bounds(&lines) {
        Some((_, hi, _, _)) => (hi + 0.15).clamp(2.0, x_max),
        None => x_max,
    };
    // Milliseconds once the tail reaches them, so labels stay short.
    let in_ms = bounds(&lines).is_some_and(|(_, _, _, hi)| hi >= 2000.0);
    if in_ms {
        for l in &mut lines {
            for p in l.iter_mut() {
                p.1 /= 1000.0;
            }
        }
    }
    let (y_lo, y_hi) = match bounds(&lines) {
        Some((_, _, lo, hi)) => ((lo / 1.5).max(0.001), (hi * 1.5).max(lo * 2.0).max(0.01)),
        None => (1.0, 1000.0),
    };
    for l in &mut lines {
        for p in l.iter_mut() {
            p.1 = p.1.max(y_lo);
        }
    }
    let mut key_points = vec![0.0, 2f64.log10()];
    let mut k = 1.0;
    while k <= x_max {
        key_points.push(k);
        k += 1.0;
    }

    let root = BitMapBackend::new(path.as_ref(), (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let body = draw_footer(root.clone(), footer)?;
    let mut chart = ChartBuilder::on(&body)
        .caption(title, (FONT, 26))
        .margin(20)
        .margin_right(45)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(
            KeyAxis::new(0.0, x_max, key_points),
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(log_ticks(y_lo, y_hi)),
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("Percentile")
        .y_desc(if in_ms {
            "Latency (ms, log scale)"
        } else {
            "Latency (µs, log scale)"
        })
        .axis_desc_style((FONT, 18))
        .label_style((FONT, 14))
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| fmt_num(*y))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.15))
        .draw()
        .map_err(plot_err)?;
    for (i, ((name, _), pts)) in series.iter().zip(lines).enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(plot_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Tick values for a log axis over `lo..=hi`: 1, 2 and 5 times each power of
/// ten inside it (every whole multiple when that gives fewer than four), so
/// every decade the data spans is labelled and none crowds.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let ticks = |mults: &[f64]| {
        let mut v = Vec::new();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi {
            for m in mults {
                let t = m * decade;
                if t >= lo && t <= hi {
                    v.push(t);
                }
            }
            decade *= 10.0;
        }
        v
    };
    let v = ticks(&[1.0, 2.0, 5.0]);
    if v.len() >= 4 {
        v
    } else {
        ticks(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    }
}

/// Throughput over time: one line per series of `(seconds, value)` points.
/// Values are plotted as given; scale them first (e.g. to M op/s) and say so
/// in `y_label`. The x axis is "Time (s)".
pub fn plot_timeline(
    series: &[(&str, &[(f64, f64)])],
    path: impl AsRef<Path>,
    title: &str,
    y_label: &str,
) -> Result<()> {
    plot_timeline_footed(series, path, title, y_label, "")
}

/// [`plot_timeline`] with `footer` lines under the chart.
pub fn plot_timeline_footed(
    series: &[(&str, &[(f64, f64)])],
    path: impl AsRef<Path>,
    title: &str,
    y_label: &str,
    footer: &str,
) -> Result<()> {
    ensure_font()?;
    let root = BitMapBackend::new(path.as_ref(), (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let body = draw_footer(root.clone(), footer)?;
    draw_timeline(&body, series, title, 26, y_label)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// One chart of a [`plot_timeline_panels`] figure: a title, a y-axis label
/// with its unit, and `(name, points)` lines over time.
#[derive(Debug, Clone)]
pub struct TimelinePanel<'a> {
    /// Chart title.
    pub title: &'a str,
    /// Y-axis description, with the unit.
    pub y_label: &'a str,
    /// One line per series of `(seconds, value)` points.
    pub series: Vec<(&'a str, &'a [(f64, f64)])>,
}

/// Several time-series charts in one PNG under a common `title`: two
/// columns of [`PLOT_WIDTH`]·0.7 × [`PLOT_HEIGHT`]·0.7 charts (one column for
/// a single panel), each drawn like [`plot_timeline`]. Used for the
/// per-node utilization figure of a cluster run (CPU, RSS, network).
pub fn plot_timeline_panels(
    panels: &[TimelinePanel<'_>],
    path: impl AsRef<Path>,
    title: &str,
) -> Result<()> {
    ensure_font()?;
    let n = panels.len().max(1);
    let cols = n.min(2);
    let rows = n.div_ceil(cols);
    let (w, h) = (PLOT_WIDTH * 7 / 10, PLOT_HEIGHT * 7 / 10);
    let root = BitMapBackend::new(path.as_ref(), (w * cols as u32, h * rows as u32 + 62))
        .into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    // A top margin so the title's ascenders are not cut at the edge.
    let body = root
        .margin(12, 0, 0, 0)
        .titled(title, (FONT, 26))
        .map_err(plot_err)?;
    for (panel, area) in panels.iter().zip(body.split_evenly((rows, cols))) {
        draw_timeline(&area, &panel.series, panel.title, 20, panel.y_label)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Draws one time-series chart into `area` (see [`plot_timeline`]).
fn draw_timeline<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[(&str, &[(f64, f64)])],
    title: &str,
    title_size: u32,
    y_label: &str,
) -> Result<()> {
    let lines: Vec<Vec<(f64, f64)>> = series.iter().map(|(_, p)| finite(p)).collect();
    let (x_lo, x_hi, y_hi) = match bounds(&lines) {
        Some((x0, x1, _, y1)) => (x0.min(0.0), x1.max(x0.min(0.0) + 1.0), y1.max(0.0)),
        None => (0.0, 1.0, 0.0),
    };
    let y_hi = if y_hi > 0.0 { y_hi * 1.15 } else { 1.0 };

    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, title_size))
        .margin(20)
        .margin_right(45)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("Time (s)")
        .y_desc(y_label)
        .axis_desc_style((FONT, 18))
        .label_style((FONT, 14))
        .x_label_formatter(&|x| fmt_num(*x))
        .y_label_formatter(&|y| fmt_num(*y))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.15))
        .draw()
        .map_err(plot_err)?;
    for (i, ((name, _), pts)) in series.iter().zip(lines).enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(plot_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Throughput (or any value) against a swept parameter, lines with markers.
/// With `log2_x` the x axis is log2 (ticks at powers of two, e.g. batch
/// sizes); x values must then be > 0 (others are dropped).
pub fn plot_sweep(
    series: &[(&str, &[(f64, f64)])],
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    log2_x: bool,
) -> Result<()> {
    let ranged: Vec<Vec<SweepPoint>> = series
        .iter()
        .map(|(_, p)| {
            p.iter()
                .map(|&(x, y)| SweepPoint {
                    x,
                    median: y,
                    min: y,
                    max: y,
                })
                .collect()
        })
        .collect();
    let named: Vec<(&str, &[SweepPoint])> = series
        .iter()
        .map(|(n, _)| *n)
        .zip(ranged.iter().map(|v| v.as_slice()))
        .collect();
    plot_sweep_ranges(&named, path, title, x_label, y_label, log2_x)
}

/// One point of a swept parameter measured several times: the line goes
/// through the medians, a bar spans min..max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepPoint {
    /// The parameter's value.
    pub x: f64,
    /// Median of the repeats.
    pub median: f64,
    /// Smallest repeat.
    pub min: f64,
    /// Largest repeat.
    pub max: f64,
}

/// [`plot_sweep`] for repeated points: a line through each series' medians
/// and a min–max bar at every point measured more than once.
pub fn plot_sweep_ranges(
    series: &[(&str, &[SweepPoint])],
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    log2_x: bool,
) -> Result<()> {
    ensure_font()?;
    let finite_pt = |p: &&SweepPoint| {
        p.x.is_finite() && p.median.is_finite() && p.min.is_finite() && p.max.is_finite()
    };
    let points: Vec<Vec<SweepPoint>> = series
        .iter()
        .map(|(_, p)| {
            let mut v: Vec<SweepPoint> = p
                .iter()
                .filter(finite_pt)
                .filter(|p| !log2_x || p.x > 0.0)
                .map(|p| SweepPoint {
                    x: if log2_x { p.x.log2() } else { p.x },
                    ..*p
                })
                .collect();
            v.sort_by(|a, b| a.x.total_cmp(&b.x));
            v
        })
        .collect();
    let lines: Vec<Vec<(f64, f64)>> = points
        .iter()
        .map(|v| v.iter().map(|p| (p.x, p.median)).collect())
        .collect();
    let tops: Vec<Vec<(f64, f64)>> = points
        .iter()
        .map(|v| v.iter().map(|p| (p.x, p.max)).collect())
        .collect();
    let (x_lo, x_hi, y_hi) = match bounds(&tops) {
        Some((x0, x1, _, y1)) => (x0, x1, y1.max(0.0)),
        None => (0.0, 1.0, 0.0),
    };
    let y_hi = if y_hi > 0.0 { y_hi * 1.15 } else { 1.0 };

    let root = BitMapBackend::new(path.as_ref(), (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, (FONT, 26))
        .margin(20)
        .margin_right(45)
        .x_label_area_size(55)
        .y_label_area_size(80);

    macro_rules! finish {
        ($chart:ident, $xfmt:expr) => {{
            $chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .axis_desc_style((FONT, 18))
                .label_style((FONT, 14))
                .x_label_formatter($xfmt)
                .y_label_formatter(&|y| fmt_num(*y))
                .light_line_style(WHITE.mix(0.0))
                .bold_line_style(BLACK.mix(0.15))
                .draw()
                .map_err(plot_err)?;
            for (i, ((name, _), pts)) in series.iter().zip(&lines).enumerate() {
                let c = color(i);
                $chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                    });
                $chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.filled())))
                    .map_err(plot_err)?;
                // Min–max bars with caps where a point was repeated.
                let cap = (x_hi - x_lo).max(1.0) * 0.012;
                $chart
                    .draw_series(points[i].iter().filter(|p| p.max > p.min).flat_map(|p| {
                        [
                            PathElement::new(vec![(p.x, p.min), (p.x, p.max)], c.stroke_width(2)),
                            PathElement::new(
                                vec![(p.x - cap, p.min), (p.x + cap, p.min)],
                                c.stroke_width(2),
                            ),
                            PathElement::new(
                                vec![(p.x - cap, p.max), (p.x + cap, p.max)],
                                c.stroke_width(2),
                            ),
                        ]
                    }))
                    .map_err(plot_err)?;
            }
            $chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((FONT, 16))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(plot_err)?;
        }};
    }

    if log2_x {
        let lo = x_lo.floor();
        let hi = x_hi.ceil().max(lo + 1.0);
        let mut keys = Vec::new();
        let mut k = lo;
        while k <= hi {
            keys.push(k);
            k += 1.0;
        }
        let mut chart = builder
            .build_cartesian_2d(KeyAxis::new(lo - 0.3, hi + 0.3, keys), 0.0..y_hi)
            .map_err(plot_err)?;
        finish!(chart, &|x: &f64| fmt_num(2f64.powf(x.round())));
    } else {
        let pad = ((x_hi - x_lo) * 0.05).max(0.5);
        let mut chart = builder
            .build_cartesian_2d((x_lo - pad)..(x_hi + pad), 0.0..y_hi)
            .map_err(plot_err)?;
        finish!(chart, &|x: &f64| fmt_num(*x));
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("corekv-plot-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn assert_png(p: &Path) {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            bytes.len() > 1000,
            "{} is only {} bytes",
            p.display(),
            bytes.len()
        );
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            p.display()
        );
    }

    fn hist(scale: u64) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        let mut x = 12345u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Heavy-ish tail: mostly ~10-50 µs, rare up to ms.
            let tail = match x % 1000 {
                0 => 50,
                _ => 1,
            };
            h.record(scale * (10_000 + x % 40_000) * tail);
        }
        h
    }

    #[test]
    fn labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(2f64.log10()), "50%");
        // Every decade labelled, 1-2-5 apart; short ranges get every digit.
        assert_eq!(log_ticks(3.0, 70.0), vec![5.0, 10.0, 20.0, 50.0]);
        assert_eq!(log_ticks(3.0, 9.0).len(), 7);
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(1024.0), "1024");
    }

    fn cleanup(dir: &Path) {
        if std::env::var_os("COREKV_KEEP_PLOTS").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn footed_plots_carry_the_run() {
        let dir = tmp_dir("footed");
        let a = hist(1);
        let p = dir.join("latency.png");
        let footer = format!(
            "corekv 0.1.0 (git 0123456789ab) · 2026-11-26T01:30:00Z · 2 × Test CPU, Linux 6.1\n\
             corekv bench {}",
            "--hosts 127.0.0.1:7000 ".repeat(20)
        );
        plot_latency_percentiles_footed(&[("batch", &a)], &p, "Footed latency", &footer).unwrap();
        assert_png(&p);
        let p2 = dir.join("throughput.png");
        let pts = [(1.0, 2.0), (2.0, 2.5)];
        plot_timeline_footed(&[("run", &pts[..])], &p2, "Footed", "M op/s", &footer).unwrap();
        assert_png(&p2);
        // The footer is drawn: the picture differs from the unfooted one.
        let p3 = dir.join("plain.png");
        plot_latency_percentiles(&[("batch", &a)], &p3, "Footed latency").unwrap();
        assert_ne!(std::fs::read(&p).unwrap(), std::fs::read(&p3).unwrap());
        cleanup(&dir);
    }

    #[test]
    fn writes_latency_png() {
        let dir = tmp_dir("latency");
        let a = hist(1);
        let b = hist(3);
        let p = dir.join("latency.png");
        plot_latency_percentiles(
            &[("corekv batch", &a), ("redis batch", &b)],
            &p,
            "Batch latency by percentile",
        )
        .unwrap();
        assert_png(&p);
        // Degenerate input still produces a chart.
        let p = dir.join("empty_lat.png");
        plot_latency_percentiles(&[("none", &LatencyHistogram::new())], &p, "Empty").unwrap();
        assert_png(&p);
        cleanup(&dir);
    }

    #[test]
    fn writes_timeline_png() {
        let dir = tmp_dir("timeline");
        let t1: Vec<(f64, f64)> = (1..=30)
            .map(|s| (s as f64, 2.0 + (s % 5) as f64 * 0.1))
            .collect();
        let t2: Vec<(f64, f64)> = (1..=30)
            .map(|s| (s as f64, 1.0 + (s % 3) as f64 * 0.05))
            .collect();
        let p = dir.join("timeline.png");
        plot_timeline(
            &[("corekv", &t1[..]), ("redis", &t2[..])],
            &p,
            "Throughput over time",
            "Throughput (M op/s)",
        )
        .unwrap();
        assert_png(&p);
        let p = dir.join("empty.png");
        plot_timeline(&[("none", &[][..])], &p, "Empty", "Throughput (M op/s)").unwrap();
        assert_png(&p);
        cleanup(&dir);
    }

    #[test]
    fn writes_panel_png() {
        let dir = tmp_dir("panels");
        let a: Vec<(f64, f64)> = (0..20).map(|s| (s as f64, 50.0 + s as f64)).collect();
        let b: Vec<(f64, f64)> = (0..20).map(|s| (s as f64, 10.0)).collect();
        let panel = |title| TimelinePanel {
            title,
            y_label: "CPU busy (%)",
            series: vec![("node0", &a[..]), ("node1", &b[..])],
        };
        for n in [1, 3] {
            let panels: Vec<_> = (0..n).map(|_| panel("CPU")).collect();
            let p = dir.join(format!("panels{n}.png"));
            plot_timeline_panels(&panels, &p, "Utilization").unwrap();
            assert_png(&p);
        }
        let p = dir.join("none.png");
        plot_timeline_panels(&[], &p, "Nothing").unwrap();
        assert_png(&p);
        cleanup(&dir);
    }

    #[test]
    fn writes_sweep_pngs() {
        let dir = tmp_dir("sweep");
        let s1: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
            .iter()
            .map(|&b: &f64| (b, 3.0 * (1.0 - (-b / 20.0).exp())))
            .collect();
        let s2: Vec<(f64, f64)> = s1.iter().map(|&(x, y)| (x, y * 0.4)).collect();
        let p = dir.join("sweep_log2.png");
        plot_sweep(
            &[("corekv", &s1[..]), ("redis", &s2[..])],
            &p,
            "Throughput vs batch size",
            "Batch size (ops, log2)",
            "Throughput (M op/s)",
            true,
        )
        .unwrap();
        assert_png(&p);
        let p = dir.join("sweep_lin.png");
        plot_sweep(
            &[("corekv", &s1[..])],
            &p,
            "Throughput vs sessions",
            "Sessions per worker",
            "Throughput (M op/s)",
            false,
        )
        .unwrap();
        assert_png(&p);
        cleanup(&dir);
    }
}
