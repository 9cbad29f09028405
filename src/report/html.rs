//! report.html: one self-contained page for auditors, rendered by minijinja from the
//! *serialized* report, so the page shows exactly what report.json says and keeps working
//! when the Rust types behind it grow new fields.

use minijinja::{context, Environment};
use serde::Serialize;
use serde_json::Value;

use super::chart::r1;

/// Width of the timeline in SVG user units: the A4 page's printable width in CSS pixels
/// (210 mm less the print stylesheet's 15 mm margins, at 96 px per inch), so the drawing
/// prints at its own size and its 12 px text prints at 9 pt, not shrunk to fit.
const WIDTH: f64 = 680.0;
/// Left margin of the timeline, where the phase and budget names go.
const LABEL: f64 = 140.0;
/// Right margin, where the budgets' use against their limits and the failure mark go.
const RIGHT: f64 = 150.0;
/// Height of one row (a phase or a budget).
const ROW: f64 = 22.0;
/// Where the first row starts, below the axis labels.
const TOP: f64 = 24.0;
/// About this many steps along the axis; the round step chosen gives between 2 and 5.
const STEPS: f64 = 5.0;
/// The budget that is the sum of the others: drawn below them, exempt from their order.
const TOTAL: &str = "total";

/// The timeline's geometry, computed from report.json's phases and budgets.
#[derive(Debug, Serialize)]
struct Timeline {
    width: f64,
    height: f64,
    label: f64,
    /// Where the drawing ends and the right margin begins.
    plot_end: f64,
    /// Where the budget bands begin (their heading goes just above).
    bands_top: f64,
    /// The time the axis covers, from 0 to its last tick.
    axis_ms: u64,
    phases: Vec<Bar>,
    bands: Vec<Band>,
    ticks: Vec<Tick>,
}

/// One phase, drawn from its start for its duration.
#[derive(Debug, Serialize)]
struct Bar {
    name: String,
    status: String,
    budget: String,
    detail: String,
    x: f64,
    y: f64,
    w: f64,
    started_ms: u64,
    duration_ms: u64,
}

/// One RTO budget, drawn as long as the time it used.
#[derive(Debug, Serialize)]
struct Band {
    name: String,
    x: f64,
    y: f64,
    w: f64,
    /// Where on the drill's clock the band is drawn from.
    from_ms: u64,
    used_ms: u64,
    limit_ms: u64,
    verdict: String,
    /// Where the limit falls, when it falls inside the drawing.
    limit_x: Option<f64>,
}

/// One labelled line of the time axis.
#[derive(Debug, Serialize)]
struct Tick {
    x: f64,
    ms: u64,
    label: String,
}

/// The one unit of a timeline's axis labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AxisUnit {
    Ms,
    S,
    Min,
}

impl AxisUnit {
    /// The unit people read a span of `span_ms` in: at least two of it, so that the ticks
    /// are whole or halves, not 0.05 of it.
    fn for_span(span_ms: u64) -> Self {
        match span_ms {
            0..2_000 => AxisUnit::Ms,
            2_000..120_000 => AxisUnit::S,
            _ => AxisUnit::Min,
        }
    }

    fn ms(self) -> u64 {
        match self {
            AxisUnit::Ms => 1,
            AxisUnit::S => 1_000,
            AxisUnit::Min => 60_000,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            AxisUnit::Ms => "ms",
            AxisUnit::S => "s",
            AxisUnit::Min => "min",
        }
    }
}

/// The time axis: a round step (1, 2 or 5 × 10ⁿ of one unit) and as many steps as cover the
/// span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Axis {
    unit: AxisUnit,
    /// The step is `mantissa` × 10^`exp` units; `mantissa` is 1, 2 or 5.
    mantissa: u64,
    exp: i32,
    steps: u64,
}

impl Axis {
    /// The axis for a drawing of `span_ms` (at least 1): between 2 and 5 round steps, the last
    /// tick at or past the span's end.
    fn for_span(span_ms: u64) -> Self {
        let span_ms = span_ms.max(1);
        let unit = AxisUnit::for_span(span_ms);
        let span = span_ms as f64 / unit.ms() as f64;
        let raw = span / STEPS;
        let mut exp = raw.log10().floor() as i32;
        // Durations are whole milliseconds: no tick between two of them.
        if unit == AxisUnit::Ms {
            exp = exp.max(0);
        }
        let (mantissa, exp) = [1, 2, 5]
            .into_iter()
            .map(|m| (m, exp))
            .chain([(1, exp + 1)])
            .find(|&(m, e)| m as f64 * 10f64.powi(e) >= raw * (1.0 - 1e-9))
            .unwrap_or((1, exp + 1));
        let step = mantissa as f64 * 10f64.powi(exp);
        let steps = ((span / step) * (1.0 - 1e-9)).ceil().max(1.0) as u64;
        Axis {
            unit,
            mantissa,
            exp,
            steps,
        }
    }

    /// Tick `k`'s value in the axis unit.
    fn value(&self, k: u64) -> f64 {
        (k * self.mantissa) as f64 * 10f64.powi(self.exp)
    }

    /// Tick `k`'s place on the drill's clock.
    fn ms(&self, k: u64) -> u64 {
        (self.value(k) * self.unit.ms() as f64).round() as u64
    }

    /// Tick `k`'s label: every tick with the same decimals and the same unit.
    fn label(&self, k: u64) -> String {
        let decimals = (-self.exp).max(0) as usize;
        format!("{:.*} {}", decimals, self.value(k), self.unit.symbol())
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Where each budget's band starts on the drill's clock, in the order of `budgets`.
///
/// A band is as long as the time its budget used, which is less than the stretch from its
/// first phase to its last when other phases run in between (verification's last phases come
/// after the application's restart). Each band starts at its group's first phase, or where
/// the band before it ends if that is later, so no two bands claim the same moment; the
/// total, the sum of the others, starts at the first budgeted phase.
fn band_starts(phases: &[Value], budgets: &[Value]) -> Vec<u64> {
    let first = |name: &str| {
        phases
            .iter()
            .filter(|p| match p["budget"].as_str() {
                Some(pb) => name == TOTAL || pb == name,
                None => false,
            })
            .map(|p| u(p, "started_ms"))
            .min()
    };
    let mut order: Vec<(usize, Option<u64>)> = budgets
        .iter()
        .enumerate()
        .filter(|(_, b)| b["name"] != TOTAL)
        .map(|(i, b)| (i, first(&s(b, "name"))))
        .collect();
    // A budget none of whose phases is listed goes last, after those that ran.
    order.sort_by_key(|&(i, f)| (f.is_none(), f, i));
    let mut starts = vec![0; budgets.len()];
    let mut free_from = 0;
    for (i, f) in order {
        let at = f.unwrap_or(free_from).max(free_from);
        starts[i] = at;
        free_from = at + u(&budgets[i], "used_ms");
    }
    for (i, b) in budgets.iter().enumerate() {
        if b["name"] == TOTAL {
            starts[i] = first(TOTAL).unwrap_or(0);
        }
    }
    starts
}

fn timeline(report: &Value) -> Timeline {
    let empty = Vec::new();
    let phases = report["phases"].as_array().unwrap_or(&empty);
    let budgets = report["budgets"].as_array().unwrap_or(&empty);
    let starts = band_starts(phases, budgets);
    let span_ms = phases
        .iter()
        .map(|p| u(p, "started_ms") + u(p, "duration_ms"))
        .chain(
            budgets
                .iter()
                .zip(&starts)
                .map(|(b, at)| at + u(b, "used_ms")),
        )
        .max()
        .unwrap_or(0)
        .max(1);
    let axis = Axis::for_span(span_ms);
    let axis_ms = axis.ms(axis.steps);
    let scale = (WIDTH - LABEL - RIGHT) / axis_ms as f64;
    let x = |ms: u64| r1(LABEL + ms as f64 * scale);
    let bars: Vec<Bar> = phases
        .iter()
        .enumerate()
        .map(|(i, p)| Bar {
            name: s(p, "name"),
            status: s(p, "status"),
            budget: s(p, "budget"),
            detail: s(p, "detail"),
            x: x(u(p, "started_ms")),
            y: TOP + i as f64 * ROW,
            // A phase of 0 ms still gets a visible sliver; the table has its number.
            w: r1(u(p, "duration_ms") as f64 * scale).max(1.5),
            started_ms: u(p, "started_ms"),
            duration_ms: u(p, "duration_ms"),
        })
        .collect();
    // Room for the bands' heading between the phases and the bands.
    let bands_top = TOP + bars.len() as f64 * ROW + 20.0;
    let bands: Vec<Band> = budgets
        .iter()
        .zip(&starts)
        .enumerate()
        .map(|(i, (b, &from_ms))| {
            let used_ms = u(b, "used_ms");
            let limit_ms = u(b, "limit_ms");
            let limit_at = from_ms.saturating_add(limit_ms);
            Band {
                name: s(b, "name"),
                x: x(from_ms),
                y: bands_top + i as f64 * ROW,
                // Exactly the time used, on the phases' scale: no sliver for 0 ms here, the
                // text beside it says "0 ms".
                w: r1(used_ms as f64 * scale),
                from_ms,
                used_ms,
                limit_ms,
                verdict: s(b, "verdict"),
                limit_x: (limit_at <= axis_ms).then(|| x(limit_at)),
            }
        })
        .collect();
    let ticks = (0..=axis.steps)
        .map(|k| Tick {
            x: x(axis.ms(k)),
            ms: axis.ms(k),
            label: axis.label(k),
        })
        .collect();
    Timeline {
        width: WIDTH,
        height: bands_top + bands.len() as f64 * ROW + 12.0,
        label: LABEL,
        plot_end: WIDTH - RIGHT,
        bands_top,
        axis_ms,
        phases: bars,
        bands,
        ticks,
    }
}

/// An identifier (`invariant:payments.sum_amount_cents[status=succeeded]`) escaped for HTML,
/// with a line-break opportunity after each separator: a long one wraps in its table cell
/// rather than widening the table past the printed page (which Chromium then shrinks to fit).
fn breakable(s: &str) -> minijinja::Value {
    let mut out = String::with_capacity(s.len() * 2);
    let mut buf = [0u8; 4];
    for c in s.chars() {
        out.push_str(&minijinja::HtmlEscape(c.encode_utf8(&mut buf)).to_string());
        if matches!(c, '.' | ':' | '_' | '/' | '[' | '=' | ',' | '-') {
            out.push_str("<wbr>");
        }
    }
    minijinja::Value::from_safe_string(out)
}

/// Bytes for people, binary units.
pub(super) fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// The template environment shared by report.html and the history overview.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // The one duration style of every rendering.
    env.add_filter("ms", crate::duration::human_ms);
    env.add_filter("bytes", human_bytes);
    env.add_filter("breakable", breakable);
    env.add_template("report.html", include_str!("templates/report.html"))
        .expect("report.html template parses");
    env.add_template("history.html", include_str!("templates/history.html"))
        .expect("history.html template parses");
    env.add_template("style.css", include_str!("templates/style.css"))
        .expect("style.css template parses");
    env.add_template(
        "objective_row.html",
        include_str!("templates/objective_row.html"),
    )
    .expect("objective_row.html template parses");
    env
}

/// Renders report.html from report.json's value.
pub fn render(report: &Value) -> String {
    let env = environment();
    let tmpl = env.get_template("report.html").expect("template exists");
    // Whom to call, in the words of every other rendering (a report from before contacts
    // has none, and gets the line that says so only when it failed).
    let contacts: Vec<crate::contacts::Contact> = report
        .get("contacts")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    tmpl.render(context! {
        r => report,
        call => crate::contacts::call_line(&contacts),
        timeline => timeline(report),
        sequence_column => super::vocab::SEQUENCE_COLUMN,
        sequence_rule => super::vocab::SEQUENCE_RULE,
    })
    .unwrap_or_else(|e| panic!("report.html template: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_draws_every_phase_to_scale_and_budget_bands() {
        let r = serde_json::json!({
            "phases": [
                {"name": "a", "status": "pass", "budget": null, "started_ms": 0, "duration_ms": 100, "detail": "x"},
                {"name": "b", "status": "fail", "budget": "database_restore", "started_ms": 100, "duration_ms": 300, "detail": "y"},
            ],
            "budgets": [{"name": "database_restore", "limit_ms": 200, "used_ms": 300, "verdict": "fail"}],
        });
        let t = timeline(&r);
        assert_eq!(t.phases.len(), 2);
        assert_eq!(t.axis_ms, 400, "4 steps of 100 ms");
        assert!((t.phases[1].w - 3.0 * t.phases[0].w).abs() < 1e-9);
        assert_eq!(t.bands[0].w, t.phases[1].w);
        assert_eq!(
            t.bands[0].limit_x,
            Some(LABEL + 300.0 * (WIDTH - LABEL - RIGHT) / 400.0)
        );
    }

    #[test]
    fn the_axis_steps_are_round_in_one_unit() {
        let labels = |span_ms| {
            let a = Axis::for_span(span_ms);
            (0..=a.steps).map(|k| a.label(k)).collect::<Vec<_>>()
        };
        assert_eq!(labels(1), ["0 ms", "1 ms"]);
        assert_eq!(labels(1_500), ["0 ms", "500 ms", "1000 ms", "1500 ms"]);
        assert_eq!(labels(2_000), ["0.0 s", "0.5 s", "1.0 s", "1.5 s", "2.0 s"]);
        assert_eq!(labels(4_600), ["0 s", "1 s", "2 s", "3 s", "4 s", "5 s"]);
        assert_eq!(
            labels(24_193),
            ["0 s", "5 s", "10 s", "15 s", "20 s", "25 s"]
        );
        assert_eq!(
            labels(600_000),
            ["0 min", "2 min", "4 min", "6 min", "8 min", "10 min"]
        );
        assert_eq!(
            labels(150_000),
            ["0.0 min", "0.5 min", "1.0 min", "1.5 min", "2.0 min", "2.5 min"]
        );
        let a = Axis::for_span(24_193);
        assert_eq!((a.ms(1), a.ms(a.steps)), (5_000, 25_000));
    }

    #[test]
    fn bands_start_at_their_first_phase_unless_the_band_before_still_runs() {
        let p = |budget: Option<&str>, start: u64, ms: u64| serde_json::json!({"budget": budget, "started_ms": start, "duration_ms": ms});
        let b = |name: &str, used: u64| serde_json::json!({"name": name, "used_ms": used});
        // Verification runs before and after the app's restart: 400 ms used over 1000 ms.
        let phases = [
            p(None, 0, 100),
            p(Some("database_restore"), 100, 200),
            p(Some("verification"), 300, 300),
            p(Some("app_restart"), 600, 300),
            p(Some("verification"), 900, 100),
        ];
        let budgets = [
            b("database_restore", 200),
            b("app_restart", 300),
            b("verification", 400),
            b("total", 900),
        ];
        assert_eq!(band_starts(&phases, &budgets), [100, 700, 300, 100]);
    }

    #[test]
    fn human_units() {
        use crate::duration::human_ms;
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(12_345), "12 s");
        assert_eq!(human_ms(245_000), "4m 05s");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
