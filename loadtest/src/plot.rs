//! Number formatting and small inline-SVG charts for the HTML reports.
//!
//! Why hand-written: the reports must open with no network and no script, so
//! the charts are SVG text written into the page. Plotting crates (plotters
//! and the like) write whole documents with their own fonts and layout and
//! weigh more than the four chart shapes we need: lines over time (with an
//! optional second y axis), a cumulative distribution on a logarithmic axis,
//! grouped bars, and spans per row (the stall timeline). What matters for a
//! reader is here and unit-tested: axis ticks at 1-2-5 steps, tick labels
//! with only the decimals the step needs, and numbers that never show more
//! than four decimals.

use std::fmt::Write as _;

/// Series colours (colour-blind safe, Okabe-Ito), used in order.
pub const COLOURS: [&str; 7] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#555555",
];

/// Escapes text for HTML and SVG (text and attribute values).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for people: three significant digits, never more than four
/// decimals, no trailing zeros, no exponent (`1234`, `38.4`, `0.973`,
/// `0.0012`, `0`).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else {
        // Three significant digits.
        (2 - a.log10().floor() as i32).clamp(0, 4) as usize
    };
    trim(format!("{v:.decimals$}"))
}

/// A number with exactly `decimals` decimals (at most four), trailing zeros
/// removed.
pub fn fixed(v: f64, decimals: usize) -> String {
    trim(format!("{v:.*}", decimals.min(4)))
}

fn trim(s: String) -> String {
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// A ratio (0..=1) as a percentage for people: `100 %` only when it is
/// exactly 1; two decimals from 99 % up (where cache hit ratios differ),
/// rounded down so that 0.99996 never reads as 100; one decimal below.
pub fn pct(ratio: f64) -> String {
    if !ratio.is_finite() {
        return "–".into();
    }
    let p = ratio * 100.0;
    if ratio == 1.0 {
        "100 %".into()
    } else if (99.0..100.0).contains(&p) {
        format!("{:.2} %", (p * 100.0).floor() / 100.0)
    } else {
        format!("{p:.1} %")
    }
}

/// Bytes with a binary-free SI unit (`512 B`, `38.4 MB`).
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    for (unit, scale) in [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] {
        if b >= scale {
            return format!("{} {unit}", num(b / scale));
        }
    }
    format!("{b} B")
}

/// The 1-2-5 step that cuts `span` into about `target` intervals.
pub fn nice_step(span: f64, target: usize) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// An axis from `lo` to `hi` (extended to whole steps) and its ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    pub ticks: Vec<f64>,
}

impl Axis {
    /// A linear axis covering `lo..=hi` with about `target` intervals; `hi`
    /// is rounded up and `lo` down to whole steps. An empty range becomes
    /// `lo..lo+1`.
    pub fn linear(lo: f64, hi: f64, target: usize) -> Axis {
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
        let step = nice_step(hi - lo, target);
        let first = (lo / step).floor();
        // A value a hair past a whole step (a 30.02 s run on a 5 s step)
        // does not cost a whole step of empty axis; it is drawn at the end.
        let last = (hi / step - 0.02).ceil();
        let ticks: Vec<f64> = (0..=((last - first) as i64).clamp(1, 100))
            .map(|i| snap((first + i as f64) * step, step))
            .collect();
        Axis {
            lo: ticks[0],
            hi: *ticks.last().unwrap(),
            step,
            ticks,
        }
    }

    /// A linear axis with fixed ends (e.g. a ratio's 0..=1), ticks at a
    /// nice step inside.
    pub fn fixed(lo: f64, hi: f64, target: usize) -> Axis {
        let step = nice_step(hi - lo, target);
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        Axis {
            lo,
            hi,
            step,
            ticks: (first..=last).map(|i| snap(i as f64 * step, step)).collect(),
        }
    }

    /// Decimals a tick label needs to tell the ticks apart.
    pub fn decimals(&self) -> usize {
        if self.step >= 1.0 {
            0
        } else {
            ((-self.step.log10()).ceil() as usize).min(4)
        }
    }

    /// A tick's label.
    pub fn label(&self, v: f64) -> String {
        fixed(v, self.decimals())
    }

    /// `v`'s position along the axis, 0 at `lo` and 1 at `hi`.
    pub fn frac(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Removes float noise from `k * step` (0.30000000000000004 -> 0.3).
fn snap(v: f64, step: f64) -> f64 {
    let scale = 10f64.powi(((-step.log10()).ceil() as i32).max(0) + 1);
    (v * scale).round() / scale
}

/// A base-10 logarithmic axis from the decade below `lo` to the decade above
/// `hi` (both positive), ticks at 1, 2 and 5 times each power of ten (at 1
/// only when that gives more than a dozen ticks).
#[derive(Debug, Clone, PartialEq)]
pub struct LogAxis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
}

impl LogAxis {
    pub fn new(lo: f64, hi: f64) -> LogAxis {
        let lo = lo.max(1e-4);
        let hi = hi.max(lo * 10.0);
        let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        let mults: &[f64] = if d1 - d0 > 4 { &[1.0] } else { &[1.0, 2.0, 5.0] };
        let mut ticks = Vec::new();
        for d in d0..=d1 {
            for m in mults {
                let t = m * 10f64.powi(d);
                if t <= 10f64.powi(d1) * 1.0001 {
                    ticks.push(snap(t, 10f64.powi(d.min(0))));
                }
            }
        }
        LogAxis {
            lo: 10f64.powi(d0),
            hi: 10f64.powi(d1),
            ticks,
        }
    }

    pub fn frac(&self, v: f64) -> f64 {
        ((v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())).clamp(0.0, 1.0)
    }

    pub fn label(&self, v: f64) -> String {
        num(v)
    }
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn against the right-hand axis.
    pub right: bool,
    pub dashed: bool,
}

impl Series {
    pub fn new(name: &str, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            right: false,
            dashed: false,
        }
    }
    pub fn on_right(mut self) -> Series {
        self.right = true;
        self
    }
    pub fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }
}

/// How a line chart's y axis is chosen.
#[derive(Clone, Copy)]
pub enum YRange {
    /// From zero to the largest value, rounded up to a nice step.
    FromZero,
    /// A ratio, shown in percent: from the nice step below the smallest value
    /// (so 97-100 % is readable) up to exactly 100 %.
    Ratio,
    /// A share, from exactly 0 to exactly 100 %.
    Percent,
}

/// A line chart (x linear, one or two y axes).
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub y_range: YRange,
    /// Label and range of the right-hand axis, when a series uses it.
    pub y2: Option<(&'a str, YRange)>,
    /// The x axis's extent (time charts share the run's length).
    pub x_max: Option<f64>,
    /// The x axis is logarithmic (distributions of times).
    pub x_log: bool,
    pub series: Vec<Series>,
}

const W: f64 = 880.0;
const H: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 46.0;

/// What an x or y axis needs to place and label values.
enum AnyAxis {
    Lin(Axis, bool),
    Log(LogAxis),
}

impl AnyAxis {
    fn frac(&self, v: f64) -> f64 {
        match self {
            AnyAxis::Lin(a, _) => a.frac(v),
            AnyAxis::Log(a) => a.frac(v),
        }
    }
    fn ticks(&self) -> &[f64] {
        match self {
            AnyAxis::Lin(a, _) => &a.ticks,
            AnyAxis::Log(a) => &a.ticks,
        }
    }
    fn label(&self, v: f64) -> String {
        match self {
            // A ratio axis is labelled in percent.
            AnyAxis::Lin(a, true) => {
                let pa = Axis {
                    lo: a.lo * 100.0,
                    hi: a.hi * 100.0,
                    step: a.step * 100.0,
                    ticks: vec![],
                };
                pa.label(v * 100.0)
            }
            AnyAxis::Lin(a, false) => a.label(v),
            AnyAxis::Log(a) => a.label(v),
        }
    }
}

fn y_axis(range: YRange, values: impl Iterator<Item = f64>) -> AnyAxis {
    let values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    match range {
        YRange::FromZero => {
            let max = values.iter().copied().fold(0.0, f64::max);
            AnyAxis::Lin(Axis::linear(0.0, if max > 0.0 { max } else { 1.0 }, 5), false)
        }
        YRange::Ratio if values.is_empty() => AnyAxis::Lin(Axis::fixed(0.0, 1.0, 5), true),
        YRange::Ratio => {
            let min = values.iter().copied().fold(1.0, f64::min).clamp(0.0, 1.0);
            // Steps of 1, 2, 5, 10, 20 or 50 points; the floor a whole step.
            let span = (1.0 - min).max(0.01);
            let step = nice_step(span, 4);
            // At least one step below 100 % (values all at 100 %, or none).
            let lo = ((min / step).floor() * step).clamp(0.0, 1.0 - step);
            AnyAxis::Lin(Axis::fixed(snap(lo, step), 1.0, 4), true)
        }
        YRange::Percent => AnyAxis::Lin(Axis::fixed(0.0, 1.0, 5), true),
    }
}

fn svg_open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(title)
    );
}

/// Axis frame, grid, ticks and the x/y axis labels.
fn frame(out: &mut String, x: &AnyAxis, x_label: &str, y: &AnyAxis, y_label: &str, y2: Option<(&AnyAxis, &str)>) {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    for &t in x.ticks() {
        let px = x0 + x.frac(t) * (x1 - x0);
        let _ = write!(
            out,
            r##"<line class="grid" x1="{px:.1}" y1="{y1:.1}" x2="{px:.1}" y2="{y0:.1}"/><text class="tick" x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y0 + 14.0,
            x.label(t)
        );
    }
    for &t in y.ticks() {
        let py = y0 - y.frac(t) * (y0 - y1);
        let _ = write!(
            out,
            r##"<line class="grid" x1="{x0:.1}" y1="{py:.1}" x2="{x1:.1}" y2="{py:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 5.0,
            py + 4.0,
            y.label(t)
        );
    }
    let _ = write!(
        out,
        r##"<line class="axis" x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y0:.1}"/><line class="axis" x1="{x0:.1}" y1="{y1:.1}" x2="{x0:.1}" y2="{y0:.1}"/>"##
    );
    let _ = write!(
        out,
        r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        H - 8.0,
        esc(x_label)
    );
    let _ = write!(
        out,
        r#"<text class="axis-label" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (y0 + y1) / 2.0,
        esc(y_label)
    );
    if let Some((y2, label)) = y2 {
        for &t in y2.ticks() {
            let py = y0 - y2.frac(t) * (y0 - y1);
            let _ = write!(
                out,
                r#"<text class="tick" x="{:.1}" y="{:.1}">{}</text>"#,
                x1 + 5.0,
                py + 4.0,
                y2.label(t)
            );
        }
        let _ = write!(
            out,
            r##"<line class="axis" x1="{x1:.1}" y1="{y1:.1}" x2="{x1:.1}" y2="{y0:.1}"/><text class="axis-label" transform="translate({:.1} {:.1}) rotate(90)" text-anchor="middle">{}</text>"##,
            W - 12.0,
            (y0 + y1) / 2.0,
            esc(label)
        );
    }
}

/// A legend along the top edge: a swatch and a name per entry.
fn legend(out: &mut String, entries: &[(&str, &str, bool)]) {
    let mut x = LEFT;
    for (name, colour, dashed) in entries {
        let dash = if *dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="14" x2="{:.1}" y2="14" stroke="{colour}" stroke-width="3"{dash}/><text class="legend" x="{:.1}" y="18">{}</text>"#,
            x + 18.0,
            x + 22.0,
            esc(name)
        );
        x += 30.0 + 7.0 * name.chars().count() as f64;
    }
}

impl LineChart<'_> {
    pub fn svg(&self) -> String {
        let xs = || self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let x = if self.x_log {
            let lo = xs().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
            let hi = xs().fold(0.0, f64::max);
            AnyAxis::Log(LogAxis::new(if lo.is_finite() { lo } else { 0.1 }, hi))
        } else {
            let hi = self.x_max.unwrap_or_else(|| xs().fold(0.0, f64::max));
            AnyAxis::Lin(Axis::linear(0.0, hi, 8), false)
        };
        let on = |right: bool| {
            self.series
                .iter()
                .filter(move |s| s.right == right)
                .flat_map(|s| s.points.iter().map(|p| p.1))
        };
        let y = y_axis(self.y_range, on(false));
        let y2 = self.y2.map(|(label, range)| (y_axis(range, on(true)), label));
        let mut out = String::new();
        svg_open(&mut out, self.title);
        frame(
            &mut out,
            &x,
            self.x_label,
            &y,
            self.y_label,
            y2.as_ref().map(|(a, l)| (a, *l)),
        );
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
        let mut entries = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            entries.push((s.name.as_str(), colour, s.dashed));
            let axis = match (&y2, s.right) {
                (Some((a, _)), true) => a,
                _ => &y,
            };
            let pts: Vec<String> = s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(px, py)| {
                    format!(
                        "{:.1},{:.1}",
                        x0 + x.frac(px) * (x1 - x0),
                        y0 - axis.frac(py) * (y0 - y1)
                    )
                })
                .collect();
            let dash = if s.dashed { r#" stroke-dasharray="5 3""# } else { "" };
            if pts.len() == 1 {
                let (cx, cy) = pts[0].split_once(',').unwrap();
                let _ = write!(out, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#);
            } else if !pts.is_empty() {
                let _ = write!(
                    out,
                    r#"<polyline class="line" stroke="{colour}"{dash} points="{}"/>"#,
                    pts.join(" ")
                );
            }
        }
        if self.series.iter().all(|s| s.points.is_empty()) {
            no_data(&mut out, "no samples");
        }
        legend(&mut out, &entries);
        out.push_str("</svg>");
        out
    }
}

fn no_data(out: &mut String, what: &str) {
    let _ = write!(
        out,
        r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        esc(what)
    );
}

/// Grouped bars: one group per category (e.g. a viewer step), one bar per
/// member (e.g. a cache); a missing value leaves a gap marked "n/a".
pub struct BarChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub ratio: bool,
    pub categories: Vec<String>,
    pub members: Vec<String>,
    /// `values[category][member]`.
    pub values: Vec<Vec<Option<f64>>>,
}

impl BarChart<'_> {
    pub fn svg(&self) -> String {
        let all = self.values.iter().flatten().flatten().copied();
        let y = if self.ratio {
            y_axis(YRange::Ratio, all)
        } else {
            y_axis(YRange::FromZero, all)
        };
        let mut out = String::new();
        svg_open(&mut out, self.title);
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
        // The frame without x ticks: categories are labelled under groups.
        let x = AnyAxis::Lin(
            Axis {
                lo: 0.0,
                hi: 1.0,
                step: 1.0,
                ticks: vec![],
            },
            false,
        );
        frame(&mut out, &x, self.x_label, &y, self.y_label, None);
        let n = self.categories.len().max(1) as f64;
        let group = (x1 - x0) / n;
        let m = self.members.len().max(1) as f64;
        let bar = (group * 0.8 / m).min(60.0);
        for (ci, cat) in self.categories.iter().enumerate() {
            let gx = x0 + group * ci as f64 + (group - bar * m) / 2.0;
            let _ = write!(
                out,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x0 + group * (ci as f64 + 0.5),
                y0 + 14.0,
                esc(cat)
            );
            for mi in 0..self.members.len() {
                let bx = gx + bar * mi as f64;
                let colour = COLOURS[mi % COLOURS.len()];
                match self.values.get(ci).and_then(|r| r.get(mi)).copied().flatten() {
                    Some(v) => {
                        let top = y0 - y.frac(v) * (y0 - y1);
                        let _ = write!(
                            out,
                            r#"<rect x="{bx:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {}</title></rect><text class="value" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                            bar - 2.0,
                            (y0 - top).max(0.5),
                            esc(&self.members[mi]),
                            if self.ratio { pct(v) } else { num(v) },
                            bx + bar / 2.0 - 1.0,
                            top - 3.0,
                            if self.ratio { fixed(v * 100.0, 1) } else { num(v) }
                        );
                    }
                    None => {
                        let _ = write!(
                            out,
                            r#"<text class="value" x="{:.1}" y="{:.1}" text-anchor="middle">n/a</text>"#,
                            bx + bar / 2.0 - 1.0,
                            y0 - 3.0
                        );
                    }
                }
            }
        }
        let entries: Vec<(&str, &str, bool)> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), COLOURS[i % COLOURS.len()], false))
            .collect();
        legend(&mut out, &entries);
        out.push_str("</svg>");
        out
    }
}

/// Spans on a time axis, one row per subject (the stall timeline: one row
/// per viewer that stalled, a bar from each stall's start for its length).
pub struct SpanChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_max: f64,
    /// (row label, spans as (start, length)).
    pub rows: Vec<(String, Vec<(f64, f64)>)>,
    pub empty: &'a str,
}

impl SpanChart<'_> {
    pub fn svg(&self) -> String {
        let x = AnyAxis::Lin(Axis::linear(0.0, self.x_max, 8), false);
        let n = self.rows.len();
        // Rows stack from the bottom: row i spans [i, i+1] on the y axis.
        // A few rows are labelled with their names; many are counted.
        // (At most 28 px a row: one stalled viewer is a bar, not a wall.)
        let row_h = ((H - BOTTOM - TOP) / n.max(1) as f64).min(28.0);
        let mut out = String::new();
        svg_open(&mut out, self.title);
        let (x0, x1, y0) = (LEFT, W - RIGHT, H - BOTTOM);
        if n <= 12 {
            for (i, (label, _)) in self.rows.iter().enumerate() {
                let py = y0 - (i as f64 + 0.5) * row_h;
                let _ = write!(
                    out,
                    r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    x0 - 5.0,
                    py + 4.0,
                    esc(label)
                );
            }
            let none = AnyAxis::Lin(
                Axis {
                    lo: 0.0,
                    hi: 1.0,
                    step: 1.0,
                    ticks: vec![],
                },
                false,
            );
            frame(&mut out, &x, self.x_label, &none, self.y_label, None);
        } else {
            let y = AnyAxis::Lin(Axis::fixed(0.0, n as f64, 5), false);
            frame(&mut out, &x, self.x_label, &y, self.y_label, None);
        }
        for (i, (label, spans)) in self.rows.iter().enumerate() {
            let top = y0 - (i as f64 + 1.0) * row_h + row_h * 0.15;
            for &(start, len) in spans {
                let sx = x0 + x.frac(start) * (x1 - x0);
                let ex = x0 + x.frac(start + len) * (x1 - x0);
                let _ = write!(
                    out,
                    r#"<rect x="{sx:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} s at {} s</title></rect>"#,
                    (ex - sx).max(1.5),
                    (row_h * 0.7).max(1.0),
                    COLOURS[1],
                    esc(label),
                    num(len),
                    num(start)
                );
            }
        }
        if n == 0 {
            no_data(&mut out, self.empty);
        }
        out.push_str("</svg>");
        out
    }
}

/// The longest run of decimals of any number in `text` (the reports keep it
/// at four or fewer).
pub fn max_decimals(text: &str) -> usize {
    let b = text.as_bytes();
    let mut longest = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' && i > 0 && b[i - 1].is_ascii_digit() {
            let run = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            longest = longest.max(run);
            i += run;
        }
        i += 1;
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_sensible_precision() {
        assert_eq!(num(0.9773381629051732), "0.977");
        assert_eq!(num(384.40018423193084), "384");
        assert_eq!(num(38.440018), "38.4");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.00001), "0");
        assert_eq!(num(0.00123456), "0.0012");
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(fixed(2.6, 0), "3");
        assert_eq!(fixed(0.123456789, 9), "0.1235");
        for v in [1e-9, 0.333333333, 7.77777777, 1e12, 123.456789] {
            assert!(max_decimals(&num(v)) <= 4, "{v}: {}", num(v));
        }
    }

    #[test]
    fn percentages_never_claim_perfection() {
        assert_eq!(pct(0.9773381629051732), "97.7 %");
        assert_eq!(pct(0.99996), "99.99 %");
        assert_eq!(pct(0.995), "99.50 %");
        assert_eq!(pct(1.0), "100 %");
        assert_eq!(pct(0.0), "0.0 %");
        assert_eq!(bytes(38_440_018), "38.4 MB");
        assert_eq!(bytes(512), "512 B");
    }

    #[test]
    fn steps_are_one_two_five() {
        assert_eq!(nice_step(10.0, 5), 2.0);
        assert_eq!(nice_step(384.4, 5), 100.0);
        assert_eq!(nice_step(1.0, 4), 0.5);
        assert_eq!(nice_step(0.03, 4), 0.01);
        assert_eq!(nice_step(7.0, 8), 1.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
    }

    #[test]
    fn linear_axis_covers_the_data_with_round_ticks() {
        // The old report topped its hit-ratio axis at 1.085.
        let a = Axis::linear(0.0, 384.4, 5);
        assert_eq!(a.ticks, vec![0.0, 100.0, 200.0, 300.0, 400.0]);
        assert_eq!((a.lo, a.hi), (0.0, 400.0));
        assert_eq!(a.label(300.0), "300");
        let a = Axis::linear(0.0, 0.7, 5);
        assert_eq!(a.ticks, vec![0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(a.decimals(), 1);
        assert_eq!(a.label(0.6000000000000001), "0.6");
        let a = Axis::linear(0.0, 30.0, 8);
        assert_eq!(a.ticks.first(), Some(&0.0));
        assert_eq!(a.hi, 30.0);
        assert_eq!(a.step, 5.0);
        // A run that took a hair longer than asked keeps its round end.
        assert_eq!(Axis::linear(0.0, 30.04, 8).hi, 30.0);
        assert_eq!(Axis::linear(0.0, 31.0, 8).hi, 35.0);
        // Empty data still gives an axis.
        let a = Axis::linear(0.0, 0.0, 5);
        assert!(a.hi > a.lo && a.ticks.len() >= 2);
        for t in Axis::linear(0.0, 0.0123, 5).ticks {
            assert!(max_decimals(&Axis::linear(0.0, 0.0123, 5).label(t)) <= 4);
        }
    }

    #[test]
    fn ratio_axis_ends_at_one_hundred_percent() {
        let AnyAxis::Lin(a, true) = y_axis(YRange::Ratio, [0.985, 0.999, 1.0].into_iter()) else {
            panic!()
        };
        assert_eq!(a.hi, 1.0);
        assert!(a.lo <= 0.985 && a.lo >= 0.9, "{a:?}");
        let y = AnyAxis::Lin(a.clone(), true);
        let labels: Vec<String> = a.ticks.iter().map(|t| y.label(*t)).collect();
        assert_eq!(labels.last().map(String::as_str), Some("100"));
        for values in [vec![], vec![1.0, 1.0]] {
            let AnyAxis::Lin(a, _) = y_axis(YRange::Ratio, values.into_iter()) else {
                panic!()
            };
            assert!(a.lo < a.hi && a.hi == 1.0 && a.ticks.len() >= 2, "{a:?}");
        }
        let AnyAxis::Lin(a, _) = y_axis(YRange::Ratio, [0.2, 0.9].into_iter()) else {
            panic!()
        };
        assert!(a.lo <= 0.2 && a.hi == 1.0, "{a:?}");
    }

    #[test]
    fn log_axis_spans_decades() {
        let a = LogAxis::new(0.3, 45.0);
        assert_eq!((a.lo, a.hi), (0.1, 100.0));
        assert_eq!(a.ticks, vec![0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(a.label(0.2), "0.2");
        assert!((a.frac(1.0) - 1.0 / 3.0).abs() < 1e-9);
        // Wide ranges tick at powers of ten only.
        let a = LogAxis::new(0.01, 5000.0);
        assert_eq!(a.ticks, vec![0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]);
    }

    #[test]
    fn charts_label_axes_and_keep_numbers_short() {
        let svg = LineChart {
            title: "t",
            x_label: "time (s)",
            y_label: "viewers",
            y_range: YRange::FromZero,
            y2: Some(("requests/s", YRange::FromZero)),
            x_max: Some(30.0),
            x_log: false,
            series: vec![
                Series::new("viewers", vec![(0.0, 1.0 / 3.0), (1.0 / 7.0, 200.0)]),
                Series::new("requests/s", vec![(0.5, 1234.56789)]).on_right(),
            ],
        }
        .svg();
        assert!(svg.contains(">time (s)</text>") && svg.contains(">requests/s</text>"));
        assert!(svg.contains(r#"class="tick""#));
        assert!(max_decimals(&svg) <= 4, "{svg}");
        let bars = BarChart {
            title: "b",
            x_label: "viewers",
            y_label: "hit ratio (%)",
            ratio: true,
            categories: vec!["100".into(), "200".into()],
            members: vec!["edge".into(), "nginx".into()],
            values: vec![vec![Some(0.999), None], vec![Some(0.98), Some(0.97)]],
        }
        .svg();
        assert_eq!(bars.matches("<rect").count(), 3);
        assert!(bars.contains("n/a") && bars.contains("99.90 %"));
        let spans = SpanChart {
            title: "s",
            x_label: "time (s)",
            y_label: "viewer",
            x_max: 30.0,
            rows: vec![],
            empty: "no stalls",
        }
        .svg();
        assert!(spans.contains("no stalls"));
        // A few rows by name; many counted on a y axis; a bar per span.
        let chart = |rows: usize| {
            SpanChart {
                title: "s",
                x_label: "time (s)",
                y_label: "viewer",
                x_max: 30.0,
                rows: (0..rows)
                    .map(|i| (format!("#{i}"), vec![(1.0, 0.5), (20.0, 2.0)]))
                    .collect(),
                empty: "no stalls",
            }
            .svg()
        };
        let few = chart(3);
        assert_eq!(few.matches("<rect").count(), 6);
        assert!(few.contains(">#2</text>") && !few.contains("NaN"));
        let many = chart(40);
        assert_eq!(many.matches("<rect").count(), 80);
        assert!(!many.contains(">#2</text>") && many.contains(">40</text>"));
        assert!(max_decimals(&many) <= 4);
    }

    #[test]
    fn finds_long_decimals() {
        assert_eq!(max_decimals("a 0.9773381629051732 b"), 16);
        assert_eq!(max_decimals("127.0.0.1 and 1.5"), 1);
        assert_eq!(max_decimals("v. 3"), 0);
    }
}
