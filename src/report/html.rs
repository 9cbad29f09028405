//! report.html: one self-contained page for auditors, rendered by minijinja from the
//! *serialized* report, so the page shows exactly what report.json says and keeps working
//! when the Rust types behind it grow new fields.

use minijinja::{context, Environment};
use serde::Serialize;
use serde_json::Value;

/// Width of the timeline's drawing area in SVG user units.
const WIDTH: f64 = 900.0;
/// Left margin of the timeline, where the phase names go.
const LABEL: f64 = 150.0;
/// Right margin, where the budgets' use and the failure mark go.
const RIGHT: f64 = 200.0;

/// The timeline's geometry, computed from report.json's phases and budgets.
#[derive(Debug, Serialize)]
struct Timeline {
    width: f64,
    height: f64,
    label: f64,
    /// Where the drawing ends and the right margin begins.
    plot_end: f64,
    span_ms: u64,
    phases: Vec<Bar>,
    bands: Vec<Band>,
    ticks: Vec<Tick>,
}

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

#[derive(Debug, Serialize)]
struct Band {
    name: String,
    x: f64,
    y: f64,
    w: f64,
    used_ms: u64,
    limit_ms: u64,
    verdict: String,
    /// Where the limit falls, when it falls inside the drawing.
    limit_x: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Tick {
    x: f64,
    ms: u64,
}

/// SVG coordinates to a tenth of a unit: finer is invisible and only makes the page noisy.
fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn timeline(report: &Value) -> Timeline {
    let empty = Vec::new();
    let phases = report["phases"].as_array().unwrap_or(&empty);
    let budgets = report["budgets"].as_array().unwrap_or(&empty);
    let span_ms = phases
        .iter()
        .map(|p| u(p, "started_ms") + u(p, "duration_ms"))
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = (WIDTH - LABEL - RIGHT) / span_ms as f64;
    let x = |ms: u64| r1(LABEL + ms as f64 * scale);
    let row = 22.0;
    let top = 24.0;
    let bars: Vec<Bar> = phases
        .iter()
        .enumerate()
        .map(|(i, p)| Bar {
            name: s(p, "name"),
            status: s(p, "status"),
            budget: s(p, "budget"),
            detail: s(p, "detail"),
            x: x(u(p, "started_ms")),
            y: top + i as f64 * row,
            // A phase of 0 ms still gets a visible sliver.
            w: r1(u(p, "duration_ms") as f64 * scale).max(1.5),
            started_ms: u(p, "started_ms"),
            duration_ms: u(p, "duration_ms"),
        })
        .collect();
    let bands_top = top + bars.len() as f64 * row + 12.0;
    let bands: Vec<Band> = budgets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let name = s(b, "name");
            // `total` covers every budgeted phase; the others their own phases.
            let members: Vec<&Value> = phases
                .iter()
                .filter(|p| match p["budget"].as_str() {
                    Some(pb) => name == "total" || pb == name,
                    None => false,
                })
                .collect();
            let start = members
                .iter()
                .map(|p| u(p, "started_ms"))
                .min()
                .unwrap_or(0);
            let end = members
                .iter()
                .map(|p| u(p, "started_ms") + u(p, "duration_ms"))
                .max()
                .unwrap_or(start);
            let limit_ms = u(b, "limit_ms");
            let limit_at = start.saturating_add(limit_ms);
            Band {
                name,
                x: x(start),
                y: bands_top + i as f64 * row,
                w: r1((end - start) as f64 * scale).max(1.5),
                used_ms: u(b, "used_ms"),
                limit_ms,
                verdict: s(b, "verdict"),
                limit_x: (limit_at <= span_ms).then(|| x(limit_at)),
            }
        })
        .collect();
    let ticks = (0..=4)
        .map(|i| {
            let ms = span_ms * i / 4;
            Tick { x: x(ms), ms }
        })
        .collect();
    Timeline {
        width: WIDTH,
        height: bands_top + bands.len() as f64 * row + 24.0,
        label: LABEL,
        plot_end: WIDTH - RIGHT,
        span_ms,
        phases: bars,
        bands,
        ticks,
    }
}

/// Milliseconds for people: `850 ms`, `12.3 s`, `4m 5s` ([`crate::duration::human_ms`]).
fn human_ms(ms: u64) -> String {
    crate::duration::human_ms(ms)
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
    env.add_filter("ms", human_ms);
    env.add_filter("bytes", human_bytes);
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
    tmpl.render(context! {
        r => report,
        timeline => timeline(report),
        sequence_column => super::markdown::SEQUENCE_COLUMN,
        sequence_rule => super::markdown::SEQUENCE_RULE,
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
        assert_eq!(t.span_ms, 400);
        assert!((t.phases[1].w - 3.0 * t.phases[0].w).abs() < 1e-9);
        assert_eq!(
            t.bands[0].limit_x,
            Some(LABEL + 300.0 * (WIDTH - LABEL - RIGHT) / 400.0)
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(12_345), "12 s");
        assert_eq!(human_ms(245_000), "4m 05s");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
