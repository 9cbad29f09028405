use super::*;

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

fn entry(id: &str, time: &str, verdict: Verdict, restore: u64, size: u64) -> Entry {
    Entry {
        drill_id: id.into(),
        time: time.into(),
        kind: DrillKind::Drill,
        scope: ScopeKind::Database,
        backup_file: Some("b.dump".into()),
        backup_size_bytes: Some(size),
        backup_sha256: Some(format!("{id:0>64}")),
        backup_age_ms: None,
        verdict,
        failed: match verdict {
            Verdict::Pass => None,
            Verdict::Fail => Some("compare: integrity_mismatch".into()),
            Verdict::Error => Some("provision: environment".into()),
        },
        budgets: vec![
            BudgetUse {
                name: "database_restore".into(),
                used_ms: restore,
                limit_ms: 900_000,
            },
            BudgetUse {
                name: "total".into(),
                used_ms: 2 * restore,
                limit_ms: 1_800_000,
            },
        ],
        integrity: None,
        rpo: None,
        report: format!("reports/{id}/report.json"),
        report_sha256: "0".into(),
        out_dir: None,
        backend: None,
        jobs: None,
    }
}

fn at(t: &str) -> DateTime<Utc> {
    crate::duration::parse_time(t).unwrap()
}

#[test]
fn window_median_and_staleness() {
    let es = vec![
        entry("a", "2026-11-01T00:00:00Z", Verdict::Pass, 1000, MIB as u64),
        entry(
            "b",
            "2026-11-08T00:00:00Z",
            Verdict::Fail,
            3000,
            2 * MIB as u64,
        ),
        entry(
            "c",
            "2026-11-15T00:00:00Z",
            Verdict::Pass,
            5000,
            3 * MIB as u64,
        ),
    ];
    let now = at("2026-11-20T00:00:00Z");
    let s = summarise(&es, now, 90 * DAY, Some(8 * DAY));
    assert_eq!((s.drills, s.passed, s.failed, s.errors), (3, 2, 1, 0));
    assert_eq!(s.pass_rate, Some(2.0 / 3.0));
    assert_eq!(s.budgets[0].median_ms, 3000);
    assert_eq!(s.fresh, Some(true));
    assert_eq!(s.max_age.as_deref(), Some("8 days"));
    assert_eq!(s.max_age_ms, Some(8 * 86_400_000));
    let later = at("2026-11-24T00:00:00Z");
    let stale = summarise(&es, later, 90 * DAY, Some(8 * DAY));
    assert_eq!(stale.fresh, Some(false));
    let text = render_text(&stale);
    assert!(
        text.contains("STALE: no drill passed within 8 days of"),
        "{text}"
    );
    let text = render_text(&s);
    assert!(
        text.contains("fresh: a drill passed within 8 days"),
        "{text}"
    );
    assert!(
        text.contains("min 1.0 s / median 3.0 s / max 5.0 s of 15m"),
        "{text}"
    );
    let s = summarise(&es, now, 13 * DAY, None);
    assert_eq!(s.drills, 2);
    assert_eq!(s.rpo, None, "no full drill, no RPO line");
}

#[test]
fn an_error_is_not_a_fail_and_test_drills_are_never_counted() {
    let mut es = vec![
        entry("pass", "2026-11-01T00:00:00Z", Verdict::Pass, 1000, 1000),
        entry("fail", "2026-11-02T00:00:00Z", Verdict::Fail, 2000, 1000),
        entry("error", "2026-11-03T00:00:00Z", Verdict::Error, 5, 0),
        entry("tamper", "2026-11-04T00:00:00Z", Verdict::Fail, 9000, 1000),
        // A fault drill whose blinded check let it pass: still not a pass of the backups.
        entry("fault", "2026-11-05T00:00:00Z", Verdict::Pass, 9000, 1000),
    ];
    es[2].backup_size_bytes = None;
    es[3].kind = DrillKind::Tamper;
    es[4].kind = DrillKind::Fault;
    let s = summarise(&es, at("2026-11-06T00:00:00Z"), 90 * DAY, Some(DAY));
    assert_eq!(
        (s.drills, s.passed, s.failed, s.errors, s.test_drills),
        (5, 1, 1, 1, 2)
    );
    assert_eq!(s.pass_rate, Some(0.5), "the error is not in the pass rate");
    assert_eq!(s.fresh, Some(false), "a fault drill's pass is not fresh");
    assert_eq!(
        s.last_pass.as_ref().map(|e| e.drill_id.as_str()),
        Some("pass")
    );
    let restore = s
        .budgets
        .iter()
        .find(|b| b.name == "database_restore")
        .unwrap();
    assert_eq!(
        (restore.min_ms, restore.max_ms),
        (1000, 2000),
        "neither the error's 5 ms nor the test drills' 9 s count"
    );
    let text = render_text(&s);
    assert!(
        text.contains("pass rate 50% (1 of 2 drills that reached a verdict passed, 1 failed)"),
        "{text}"
    );
    assert!(
        text.contains("1 could not run (environment error, exit 3)"),
        "{text}"
    );
    assert!(text.contains("2 test drills (1 tamper, 1 fault)"), "{text}");
    // Only errors: no rate at all, rather than 0%.
    let s = summarise(&es[2..3], at("2026-11-06T00:00:00Z"), 90 * DAY, None);
    assert_eq!((s.pass_rate, s.errors), (None, 1));
    assert!(render_text(&s).contains("no drill reached a verdict"));
}

#[test]
fn drills_that_never_ran_or_never_restored_add_nothing_to_the_trend() {
    let mut es: Vec<Entry> = (1..=5)
        .map(|i| {
            entry(
                &format!("d{i}"),
                &format!("2026-11-0{i}T00:00:00Z"),
                Verdict::Pass,
                1000 * i,
                i * MIB as u64,
            )
        })
        .collect();
    let mut error = entry("error", "2026-11-06T00:00:00Z", Verdict::Error, 1, 0);
    error.backup_size_bytes = Some(0);
    let mut broken = entry(
        "broken",
        "2026-11-07T00:00:00Z",
        Verdict::Fail,
        1500,
        9 * MIB as u64,
    );
    broken.failed = Some("pg_restore: restore_failed".into());
    es.extend([error, broken]);
    let s = summarise(&es, at("2026-11-08T00:00:00Z"), 90 * DAY, None);
    assert_eq!(s.trend.len(), 5, "{:?}", s.trend);
    let restore = s
        .budgets
        .iter()
        .find(|b| b.name == "database_restore")
        .unwrap();
    assert_eq!(restore.min_ms, 1000, "the error's 1 ms is not a minimum");
    match s.fit {
        Fit::Fitted {
            points,
            sizes,
            ms_per_mib,
            intercept_ms,
            r_squared,
        } => {
            assert_eq!((points, sizes), (5, 5));
            assert!((ms_per_mib - 1000.0).abs() < 1e-6, "{ms_per_mib}");
            assert!(intercept_ms.abs() < 1e-6, "{intercept_ms}");
            assert!((r_squared - 1.0).abs() < 1e-9);
        }
        ref f => panic!("{f:?}"),
    }
    assert!(
        render_text(&s).contains(
            "size trend: 1000 ms per MiB (R² 1.00, a good fit over 5 drills of 5 backup sizes)"
        ),
        "{}",
        render_text(&s)
    );
}

#[test]
fn the_size_trend_needs_five_drills_of_two_sizes() {
    let p = |i: u64, size: u64, ms: u64| Point {
        drill_id: format!("d{i}"),
        size_bytes: size,
        restore_ms: ms,
    };
    let four: Vec<Point> = (1..=4).map(|i| p(i, i * 1000, i * 10)).collect();
    assert_eq!(
        Fit::of(&four),
        Fit::NotEnough {
            points: 4,
            sizes: 4
        }
    );
    let one_size: Vec<Point> = (1..=6).map(|i| p(i, 1000, i * 10)).collect();
    assert_eq!(
        Fit::of(&one_size),
        Fit::NotEnough {
            points: 6,
            sizes: 1
        }
    );
    assert_eq!(
        Fit::of(&one_size).describe(),
        "not enough drills to fit (6 that restored, of 1 backup size; 5 of at least 2 sizes needed)"
    );
    // Restore times that do not follow the size: a slope, and an R² that says so.
    let noisy: Vec<Point> = [(1, 900), (1, 100), (2, 500), (2, 400), (3, 200)]
        .into_iter()
        .enumerate()
        .map(|(i, (mib, ms))| p(i as u64, mib * MIB as u64, ms))
        .collect();
    let f = Fit::of(&noisy);
    let Fit::Fitted { r_squared, .. } = f else {
        panic!("{f:?}")
    };
    assert!(r_squared < 0.5, "{r_squared}");
    assert!(
        f.describe().ends_with("a poor fit over 5 drills of 3 backup sizes; the size explains little of the restore time)"),
        "{}",
        f.describe()
    );
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["status"], "fitted");
    assert!(json["r_squared"].is_f64());
}

#[test]
fn the_rpo_of_full_drills_is_summarised_and_older_lines_still_read() {
    let rpo = |achieved_ms, lost_commits, verdict| RpoUse {
        objective_ms: 900_000,
        achieved_ms,
        lost_commits,
        worst_case_ms: 2 * achieved_ms,
        verdict,
    };
    use crate::rpo::RpoVerdict::{Fail, Pass};
    let mut es = vec![
        entry("a", "2026-11-01T00:00:00Z", Verdict::Pass, 1000, 1),
        entry("b", "2026-11-02T00:00:00Z", Verdict::Pass, 1000, 1),
        entry("c", "2026-11-03T00:00:00Z", Verdict::Fail, 1000, 1),
        entry("d", "2026-11-04T00:00:00Z", Verdict::Pass, 1000, 1),
    ];
    es[1].rpo = Some(rpo(300_000, 12, Pass));
    es[2].rpo = Some(rpo(1_200_000, 40, Fail));
    es[3].rpo = Some(rpo(60_000, 3, Pass));
    let s = summarise(&es, at("2026-11-05T00:00:00Z"), 30 * DAY, None);
    assert_eq!(
        s.rpo,
        Some(RpoSpread {
            drills: 3,
            within: 2,
            objective_ms: 900_000,
            min_ms: 60_000,
            median_ms: 300_000,
            max_ms: 1_200_000,
            worst_case_ms: 2_400_000,
            lost_commits: 55,
        })
    );
    let text = render_text(&s);
    assert!(
        text.contains("rpo: 2 of 3 full drills within 15m; data lost min 1m / median 5m / max 20m"),
        "{text}"
    );
    // A line written before the rpo, kind, backup_sha256 and out_dir fields still reads.
    let mut old = serde_json::to_value(&es[0]).unwrap();
    for field in ["rpo", "kind", "backup_sha256", "out_dir"] {
        old.as_object_mut().unwrap().remove(field);
    }
    let back: Entry = serde_json::from_value(old).unwrap();
    assert_eq!(
        (back.rpo, back.kind, back.backup_sha256, back.out_dir),
        (None, DrillKind::Drill, None, None)
    );
    let line = serde_json::to_value(&es[0]).unwrap();
    assert!(line.get("rpo").is_none());
    assert_eq!(line["kind"], "drill");
}

#[test]
fn a_missing_history_file_is_a_usage_error_naming_it_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nonexistent.ndjson");
    let e = read(&path).unwrap_err();
    assert_eq!(e.exit(), crate::error::Exit::Usage);
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("--history FILE"), "{msg}");
}

#[test]
fn a_drill_kind_comes_from_its_test_hooks() {
    assert_eq!(DrillKind::of(false, false), DrillKind::Drill);
    assert_eq!(DrillKind::of(true, false), DrillKind::Tamper);
    assert_eq!(DrillKind::of(true, true), DrillKind::Tamper);
    assert_eq!(DrillKind::of(false, true), DrillKind::Fault);
}

#[test]
fn periods_start_on_their_first_day_and_stay_few() {
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    // 2026-11-05 is a Thursday.
    assert_eq!(Period::Week.start(d("2026-11-05")), d("2026-11-02"));
    assert_eq!(Period::Month.start(d("2026-11-05")), d("2026-11-01"));
    assert_eq!(Period::Month.next(d("2026-12-01")), Some(d("2027-01-01")));
    assert_eq!(
        Period::for_span(d("2026-11-01"), d("2026-11-20")),
        Period::Day
    );
    assert_eq!(
        Period::for_span(d("2026-09-01"), d("2026-11-30")),
        Period::Week
    );
    assert_eq!(
        Period::for_span(d("2024-01-01"), d("2026-11-30")),
        Period::Month
    );
    assert_eq!(
        Period::for_span(d("1900-01-01"), d("2026-11-30")),
        Period::Year
    );
}

// ---- The page's charts, read back as SVG -----------------------------------------------

/// The `<svg id=ID>` of the page, parsed.
fn svg<'a>(html: &'a str, id: &str) -> roxmltree::Document<'a> {
    let start = html
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("no svg {id}"));
    let end = start + html[start..].find("</svg>").unwrap() + "</svg>".len();
    roxmltree::Document::parse(&html[start..end])
        .unwrap_or_else(|e| panic!("svg {id} is not well-formed XML: {e}"))
}

fn num(n: roxmltree::Node, attr: &str) -> f64 {
    n.attribute(attr)
        .unwrap_or_else(|| panic!("{n:?} has no {attr}"))
        .parse()
        .unwrap()
}

fn has_class(n: roxmltree::Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

/// An axis read back from its ticks: the value (in the ticks' unit) at each coordinate.
struct ReadAxis {
    unit: String,
    /// (coordinate, value) of the first and the last tick.
    ends: ((f64, f64), (f64, f64)),
}

impl ReadAxis {
    /// The ticks of class `class` (`y-tick` or `x-tick`): every label in one unit, at round
    /// steps from zero, evenly spaced.
    fn of(doc: &roxmltree::Document, class: &str) -> ReadAxis {
        let coord = if class == "y-tick" { "y1" } else { "x1" };
        let ticks: Vec<(f64, f64, String)> = doc
            .descendants()
            .filter(|n| has_class(*n, class))
            .map(|g| {
                let line = g.children().find(|c| c.has_tag_name("line")).unwrap();
                let label = g
                    .children()
                    .find(|c| c.has_tag_name("text"))
                    .and_then(|t| t.text())
                    .unwrap()
                    .to_string();
                let (n, unit) = label.split_once(' ').unwrap_or((&label, ""));
                (
                    num(line, coord),
                    n.parse::<f64>().unwrap(),
                    unit.to_string(),
                )
            })
            .collect();
        assert!(ticks.len() >= 2, "{ticks:?}");
        assert!(
            ticks.iter().all(|t| t.2 == ticks[0].2),
            "one unit on the axis: {ticks:?}"
        );
        assert_eq!(ticks[0].1, 0.0, "the axis starts at zero: {ticks:?}");
        let step = ticks[1].1;
        let mag = 10f64.powf(step.log10().floor());
        assert!(
            [1.0, 2.0, 5.0]
                .iter()
                .any(|m| (step / mag - m).abs() < 1e-9),
            "a round step: {ticks:?}"
        );
        let gap = ticks[1].0 - ticks[0].0;
        for (i, t) in ticks.iter().enumerate() {
            assert!((t.1 - i as f64 * step).abs() < 1e-9, "{ticks:?}");
            assert!(
                (t.0 - ticks[0].0 - i as f64 * gap).abs() < 0.15,
                "{ticks:?}"
            );
        }
        let last = ticks.last().unwrap();
        ReadAxis {
            unit: ticks[0].2.clone(),
            ends: ((ticks[0].0, 0.0), (last.0, last.1)),
        }
    }

    /// The value at coordinate `c`.
    fn value(&self, c: f64) -> f64 {
        let ((c0, v0), (c1, v1)) = self.ends;
        v0 + (c - c0) * (v1 - v0) / (c1 - c0)
    }

    /// The value a length of `len` stands for.
    fn length(&self, len: f64) -> f64 {
        self.value(self.ends.0 .0 + len.copysign(self.ends.1 .0 - self.ends.0 .0))
    }

    /// How many ms (or bytes) one unit of the axis is.
    fn unit_size(&self) -> f64 {
        match self.unit.as_str() {
            "ms" | "B" | "" => 1.0,
            "s" => 1000.0,
            "min" => 60_000.0,
            "KiB" => 1024.0,
            "MiB" => MIB,
            u => panic!("unexpected unit {u}"),
        }
    }
}

fn bars<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("rect") && has_class(*n, "bar"))
        .collect()
}

/// Six weeks of weekly drills: five real ones that ran (restore time 10 s per MiB of
/// backup), one that could not run, one tamper test.
fn six_weeks() -> Vec<Entry> {
    let sizes = [1.0, 2.0, 3.0, 1.5, 2.5];
    let mondays = ["10-05", "10-12", "10-19", "10-26", "11-02"];
    let mut es: Vec<Entry> = sizes
        .iter()
        .enumerate()
        .map(|(i, mib)| {
            let mut e = entry(
                &format!("d{i}"),
                &format!("2026-{}T03:00:00Z", mondays[i]),
                if i == 2 { Verdict::Fail } else { Verdict::Pass },
                (10_000.0 * mib) as u64,
                (mib * MIB) as u64,
            );
            e.budgets[1].limit_ms = 120_000;
            e
        })
        .collect();
    // In the week of a pass: the week's rate stays 100%.
    let mut error = entry("err", "2026-10-13T03:00:00Z", Verdict::Error, 2, 0);
    error.backup_size_bytes = None;
    let mut tamper = entry(
        "tamper",
        "2026-10-21T03:00:00Z",
        Verdict::Fail,
        10_000,
        MIB as u64,
    );
    tamper.kind = DrillKind::Tamper;
    es.extend([error, tamper]);
    es
}

#[test]
fn the_pass_rate_chart_stacks_passed_failed_and_could_not_run_apart() {
    let s = summarise(&six_weeks(), at("2026-11-10T00:00:00Z"), 90 * DAY, None);
    let html = render_html(&s, Path::new("/tmp/history.html"));
    let doc = svg(&html, "pass-rate-chart");
    let y = ReadAxis::of(&doc, "y-tick");
    assert_eq!(y.unit, "", "drills are counted");
    let bars = bars(&doc);
    let count = |class: &str| -> f64 {
        bars.iter()
            .filter(|b| has_class(**b, class))
            .map(|b| y.length(num(*b, "height")))
            .sum()
    };
    // Heights, read on the axis, are the numbers of drills: the tamper test is not there.
    assert!((count("pass") - 4.0).abs() < 0.05, "{}", count("pass"));
    assert!((count("fail") - 1.0).abs() < 0.05);
    assert!((count("error") - 1.0).abs() < 0.05);
    for b in &bars {
        assert!(num(*b, "width") >= MIN_BAR && num(*b, "height") >= MIN_BAR);
    }
    // Weekly columns, each labelled with its rate; the week with the error and a pass
    // shows 100%: the error is not a fail. The last week had no drill, and has no rate.
    let rates: Vec<&str> = doc
        .descendants()
        .filter(|n| has_class(*n, "rate"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(rates, ["100%", "100%", "0%", "100%", "100%"], "{html}");
    assert_eq!(
        outcome_chart(&s, Some(at("2026-11-10T00:00:00Z")))
            .unwrap()
            .period,
        "week"
    );
}

#[test]
fn the_rto_chart_draws_each_drill_that_ran_to_scale_against_the_objective() {
    let s = summarise(&six_weeks(), at("2026-11-10T00:00:00Z"), 90 * DAY, None);
    let html = render_html(&s, Path::new("/tmp/history.html"));
    let doc = svg(&html, "rto-chart");
    let y = ReadAxis::of(&doc, "y-tick");
    let bars = bars(&doc);
    let used: Vec<f64> = six_weeks()[..5]
        .iter()
        .map(|e| e.budgets[1].used_ms as f64)
        .collect();
    assert_eq!(
        bars.len(),
        used.len(),
        "the error and the tamper test are not drawn"
    );
    let bottom = y.ends.0 .0;
    for (b, ms) in bars.iter().zip(&used) {
        let h = num(*b, "height");
        assert!(
            (num(*b, "y") + h - bottom).abs() < 0.15,
            "bars stand on the axis"
        );
        let shown = y.length(h) * y.unit_size();
        assert!((shown - ms).abs() < ms * 0.01, "{shown} for {ms}");
        assert!(num(*b, "width") >= 20.0);
    }
    assert!(has_class(bars[2], "fail") && has_class(bars[0], "pass"));
    let objective: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| has_class(*n, "objective"))
        .collect();
    assert_eq!(objective.len(), 1, "one objective all along");
    let at_ms = y.value(num(objective[0], "y1")) * y.unit_size();
    assert!((at_ms - 120_000.0).abs() < 500.0, "{at_ms}");
    assert!(html.contains("RTO objective 2m"), "{html}");
}

#[test]
fn a_far_objective_is_stated_and_small_values_stay_visible() {
    let mut es = six_weeks();
    es.truncate(2);
    es[0].budgets[1].used_ms = 1;
    es[1].budgets[1].used_ms = 4_000;
    let s = summarise(&es, at("2026-11-10T00:00:00Z"), 90 * DAY, None);
    let html = render_html(&s, Path::new("/tmp/history.html"));
    let doc = svg(&html, "rto-chart");
    let y = ReadAxis::of(&doc, "y-tick");
    assert_eq!(
        y.unit, "s",
        "the axis fits the drills, not the far objective"
    );
    let bars = bars(&doc);
    assert_eq!(num(bars[0], "height"), MIN_BAR, "1 ms is still seen");
    assert!((y.length(num(bars[1], "height")) - 4.0).abs() < 0.05);
    assert!(
        html.contains("RTO objective 2m: above this scale (30× the longest drill)"),
        "{html}"
    );
}

#[test]
fn the_size_chart_places_each_drill_and_the_fitted_line() {
    let s = summarise(&six_weeks(), at("2026-11-10T00:00:00Z"), 90 * DAY, None);
    let html = render_html(&s, Path::new("/tmp/history.html"));
    let doc = svg(&html, "size-chart");
    let x = ReadAxis::of(&doc, "x-tick");
    let y = ReadAxis::of(&doc, "y-tick");
    assert_eq!((x.unit.as_str(), y.unit.as_str()), ("MiB", "s"));
    let dots: Vec<(f64, f64)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .map(|c| (x.value(num(c, "cx")), y.value(num(c, "cy"))))
        .collect();
    assert_eq!(dots.len(), 5, "the drills that restored");
    for (mib, secs) in &dots {
        assert!((secs - 10.0 * mib).abs() < 0.05, "{mib} MiB, {secs} s");
    }
    let line = doc
        .descendants()
        .find(|n| has_class(*n, "fit"))
        .expect("five drills of five sizes: a fitted line");
    let slope = (y.value(num(line, "y2")) - y.value(num(line, "y1")))
        / (x.value(num(line, "x2")) - x.value(num(line, "x1")));
    assert!((slope - 10.0).abs() < 0.1, "{slope} s per MiB");
    assert!(html.contains("10000 ms per MiB (R² 1.00"), "{html}");

    // Three drills: no line, and the page says why.
    let s = summarise(
        &six_weeks()[..3],
        at("2026-11-10T00:00:00Z"),
        90 * DAY,
        None,
    );
    let html = render_html(&s, Path::new("/tmp/history.html"));
    assert!(svg(&html, "size-chart")
        .descendants()
        .all(|n| !has_class(n, "fit")));
    assert!(html.contains("not enough drills to fit"), "{html}");
}

#[test]
fn the_table_links_each_report_relative_to_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut es = six_weeks();
    es[0].out_dir = Some(dir.path().join("drills/run 1").display().to_string());
    let s = summarise(&es, at("2026-11-10T00:00:00Z"), 90 * DAY, None);
    let page = dir.path().join("pages/history.html");
    let rows = rows(&s, page.parent().unwrap());
    assert_eq!(rows[0].href, "../drills/run%201/report.html");
    // An older line has no out_dir: its report.json's directory, from where pgdrill runs.
    let cwd = std::env::current_dir().unwrap();
    let expected = href(&cwd.join("reports/d1/report.html"), page.parent().unwrap());
    assert_eq!(rows[1].href, expected);
    assert!(
        rows[1].href.ends_with("reports/d1/report.html"),
        "{}",
        rows[1].href
    );
    assert_eq!(rows[0].sha_short.len(), 12);
    assert_eq!(rows[0].rpo, "not measured");
    assert_eq!(rows[0].rto, "20 s of 2m");
    let error = rows.iter().find(|r| r.drill_id == "err").unwrap();
    assert_eq!(error.rto, "did not run");
    let tamper = rows.iter().find(|r| r.drill_id == "tamper").unwrap();
    assert_eq!(tamper.test, "tamper");
}

#[test]
fn the_text_summary_of_six_weeks() {
    let s = summarise(
        &six_weeks(),
        at("2026-11-10T00:00:00Z"),
        90 * DAY,
        Some(8 * DAY),
    );
    insta::assert_snapshot!("history_text_six_weeks", render_text(&s));
}
