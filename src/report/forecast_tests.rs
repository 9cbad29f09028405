use super::*;
use crate::report::history::{BudgetUse, DrillKind};
use crate::report::{ScopeKind, Verdict};

const MIB_U: u64 = 1_048_576;

/// A counted, passing drill of `size` bytes restored in `ms`, on `backend -j jobs`, on day `i`.
fn entry(i: usize, size: u64, ms: u64, backend: BackendKind, jobs: u32) -> Entry {
    Entry {
        drill_id: format!("d{i}"),
        time: format!("2026-11-01T{:02}:{:02}:00Z", i / 60, i % 60),
        kind: DrillKind::Drill,
        scope: ScopeKind::Database,
        backup_file: Some("b.dump".into()),
        backup_size_bytes: Some(size),
        backup_sha256: None,
        backup_age_ms: None,
        verdict: Verdict::Pass,
        failed: None,
        budgets: vec![BudgetUse {
            name: "database_restore".into(),
            used_ms: ms,
            limit_ms: 900_000,
        }],
        integrity: None,
        rpo: None,
        report: "r.json".into(),
        report_sha256: "0".into(),
        out_dir: None,
        backend: Some(backend),
        jobs: Some(jobs),
    }
}

/// The known line: 2000 ms plus 30 ms per MiB.
fn truth(size: u64) -> f64 {
    2000.0 + 30.0 * size as f64 / MIB_U as f64
}

fn exact(sizes_mib: &[u64]) -> Vec<Entry> {
    sizes_mib
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let b = m * MIB_U;
            entry(i, b, truth(b) as u64, BackendKind::Native, 2)
        })
        .collect()
}

/// A fixed pseudo-random noise in [-amp, amp] (a linear congruential sequence).
fn noise(seed: &mut u64, amp: f64) -> f64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amp
}

fn noisy(rounds: usize, amp: f64) -> Vec<Entry> {
    let mut seed = 7;
    let mut v = Vec::new();
    for r in 0..rounds {
        for m in [100, 250, 400, 700] {
            let b = m * MIB_U;
            let y = (truth(b) + noise(&mut seed, amp)).round() as u64;
            v.push(entry(v.len() + r, b, y, BackendKind::Native, 2));
        }
    }
    v
}

#[test]
fn t_quantiles_match_the_table_and_the_expansion_meets_it() {
    assert!((t_quantile_975(1) - 12.7062).abs() < 1e-4);
    assert!((t_quantile_975(2) - 4.3027).abs() < 1e-4);
    assert!((t_quantile_975(10) - 2.2281).abs() < 1e-4);
    assert!((t_quantile_975(30) - 2.0423).abs() < 1e-4);
    // Beyond the table, the expansion: R's qt(0.975, df).
    for (df, t) in [
        (31, 2.039513),
        (40, 2.021075),
        (60, 2.000298),
        (120, 1.979930),
        (1000, 1.962339),
    ] {
        assert!(
            (t_quantile_975(df) - t).abs() < 1e-5,
            "df {df}: {}",
            t_quantile_975(df)
        );
    }
    assert!(t_quantile_975(0).is_infinite());
    // It falls with df, towards the normal's 1.96.
    for df in 1..200 {
        assert!(t_quantile_975(df) > t_quantile_975(df + 1), "df {df}");
    }
    assert!(t_quantile_975(1_000_000) > 1.95996 && t_quantile_975(1_000_000) < 1.96);
}

#[test]
fn sizes_read_decimal_and_binary_units() {
    assert_eq!(parse_size("50GB"), Ok(50_000_000_000));
    assert_eq!(parse_size("50GiB"), Ok(50 * 1024 * MIB_U));
    assert_eq!(parse_size("500MB"), Ok(500_000_000));
    assert_eq!(parse_size("1.5TB"), Ok(1_500_000_000_000));
    assert_eq!(parse_size("2 MiB"), Ok(2 * MIB_U));
    assert_eq!(parse_size("50gb"), Ok(50_000_000_000));
    assert_eq!(parse_size("12kB"), Ok(12_000));
    assert_eq!(parse_size("3KiB"), Ok(3072));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("4096B"), Ok(4096));
    for bad in ["", "GB", "50XB", "-5GB", "0", "1..5GB", "fifty", "0.1B"] {
        let e = parse_size(bad).unwrap_err();
        assert!(e.contains("50GB") && e.contains("GiB"), "{bad}: {e}");
    }
    assert_eq!(human_size(50_000_000_000), "50.0 GB");
    assert_eq!(human_size(999), "999 B");
}

#[test]
fn an_exact_line_is_found_exactly_and_projected_without_spread() {
    let f = Forecast::of(&exact(&[100, 200, 400, 800, 200]), 50_000_000_000, None);
    assert_eq!(f.groups.len(), 1);
    let g = &f.groups[0];
    let fit = g.fit.as_ref().expect("three sizes and more");
    assert!((fit.ms_per_mib - 30.0).abs() < 1e-9, "{fit:?}");
    assert!((fit.intercept_ms - 2000.0).abs() < 1e-6, "{fit:?}");
    assert!((fit.r_squared - 1.0).abs() < 1e-12);
    assert!(fit.residual_se_ms < 1e-6);
    assert_eq!((fit.points, fit.sizes), (5, 4));
    let p = g.projection.as_ref().unwrap();
    let want = truth(50_000_000_000);
    assert!((p.restore_ms - want).abs() < 1e-3, "{p:?}");
    assert!(
        (p.high_ms - p.low_ms).abs() < 1e-3,
        "no noise, no spread: {p:?}"
    );
    // 50 GB at 30 ms/MiB is about 24 min: over the 15 min budget from the history.
    assert_eq!(g.budget_ms, 900_000);
    assert_eq!(g.budget_from, BudgetFrom::History);
    assert_eq!(g.outlook, Outlook::Over);
    let cross = g.crosses_budget_at_bytes.unwrap();
    let want_cross = (900_000.0 - 2000.0) / 30.0 * MIB_U as f64;
    assert!((cross as f64 - want_cross).abs() <= 1.0, "{cross}");
    assert!(g.lines()[2].starts_with("WARNING"), "{:?}", g.lines());
    // 50 GB is 60 times the 800 MiB drilled: said.
    assert!(
        g.lines()[0].contains("an extrapolation to 60× the largest backup drilled (838.9 MB)"),
        "{:?}",
        g.lines()
    );
    assert!(g.lines()[2].contains(&human_size(cross)), "{:?}", g.lines());
    // Below the crossing: within.
    let small = Forecast::of(&exact(&[100, 200, 400]), 10 * 1024 * MIB_U, None);
    assert_eq!(small.groups[0].outlook, Outlook::Within);
    let near = Forecast::of(&exact(&[100, 200, 400]), 700 * MIB_U, None);
    assert!(!near.groups[0].summary[0].contains("extrapolation"));
    // --budget wins over the history's.
    let big = Forecast::of(&exact(&[100, 200, 400]), 50_000_000_000, Some(3_600_000));
    assert_eq!(big.groups[0].budget_from, BudgetFrom::Flag);
    assert_eq!(big.groups[0].outlook, Outlook::Within);
}

#[test]
fn with_noise_the_interval_holds_the_truth_and_narrows_with_more_drills() {
    let size = 2 * 1024 * MIB_U;
    let few = Forecast::of(&noisy(1, 300.0), size, None);
    let many = Forecast::of(&noisy(6, 300.0), size, None);
    let (pf, pm) = (
        few.groups[0].projection.clone().unwrap(),
        many.groups[0].projection.clone().unwrap(),
    );
    let want = truth(size);
    for p in [&pf, &pm] {
        assert!(p.low_ms < want && want < p.high_ms, "{p:?} against {want}");
        assert!(p.low_ms < p.restore_ms && p.restore_ms < p.high_ms);
    }
    assert!(
        pm.high_ms - pm.low_ms < pf.high_ms - pf.low_ms,
        "{pm:?} narrower than {pf:?}"
    );
    let fit = many.groups[0].fit.as_ref().unwrap();
    assert!((fit.ms_per_mib - 30.0).abs() < 1.0, "{fit:?}");
    assert!((fit.intercept_ms - 2000.0).abs() < 300.0, "{fit:?}");
    assert!(fit.r_squared > 0.99 && fit.r_squared < 1.0, "{fit:?}");
    // Uniform noise of ±300 ms has a standard deviation of 300/√3 ≈ 173 ms.
    assert!(
        fit.residual_se_ms > 100.0 && fit.residual_se_ms < 250.0,
        "{fit:?}"
    );
    // The interval is narrowest at the mean size and widens away from it.
    let near = fit.project(400 * MIB_U);
    let far = fit.project(100 * 1024 * MIB_U);
    assert!(near.high_ms - near.low_ms < far.high_ms - far.low_ms);
}

#[test]
fn two_sizes_project_nothing_and_say_so() {
    let f = Forecast::of(
        &exact(&[100, 200, 100, 200, 200, 100]),
        50_000_000_000,
        None,
    );
    let g = &f.groups[0];
    assert_eq!((g.points.len(), g.sizes), (6, 2));
    assert!(g.fit.is_none() && g.projection.is_none() && g.crosses_budget_at_bytes.is_none());
    assert_eq!(g.outlook, Outlook::NotEnough);
    let lines = g.lines();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("not enough drills")
            && lines[0].contains("6 drills of 2 backup sizes")
            && lines[0].contains("3 different sizes"),
        "{lines:?}"
    );
    // And none at all: no group.
    assert!(Forecast::of(&[], 1, None).groups.is_empty());
}

#[test]
fn groups_are_per_backend_and_jobs_and_only_counted_whole_restores_are_points() {
    let mut h = exact(&[100, 200, 400]);
    // A docker -j 4 group, newer, twice as fast per MiB.
    for (i, m) in [100u64, 300, 500].into_iter().enumerate() {
        let b = m * MIB_U;
        h.push(entry(
            100 + i,
            b,
            (1000.0 + 15.0 * m as f64) as u64,
            BackendKind::Docker,
            4,
        ));
    }
    // Never points: a tamper drill, one that could not run, one whose restore failed.
    let mut tamper = entry(200, 900 * MIB_U, 1, BackendKind::Native, 2);
    tamper.kind = DrillKind::Tamper;
    let mut error = entry(201, 900 * MIB_U, 1, BackendKind::Native, 2);
    error.verdict = Verdict::Error;
    let mut broken = entry(202, 900 * MIB_U, 1, BackendKind::Native, 2);
    broken.verdict = Verdict::Fail;
    broken.failed = Some("pg_restore: restore_failed".into());
    // One that failed its comparison still restored: a point, exactly on the line.
    let mut mismatch = entry(
        203,
        800 * MIB_U,
        truth(800 * MIB_U) as u64,
        BackendKind::Native,
        2,
    );
    mismatch.verdict = Verdict::Fail;
    mismatch.failed = Some("compare: integrity_mismatch".into());
    h.extend([tamper, error, broken, mismatch]);
    let f = Forecast::of(&h, 1024 * MIB_U, None);
    assert_eq!(f.groups.len(), 2);
    // The newest counted drill (the mismatch) is native -j 2: its group first.
    let native = f.pick(None, None).unwrap();
    assert_eq!(native.label(), "native -j 2");
    assert_eq!(native.points.len(), 4, "{:?}", native.points);
    assert!((native.fit.as_ref().unwrap().ms_per_mib - 30.0).abs() < 1e-9);
    let docker = f.pick(Some(BackendKind::Docker), None).unwrap();
    assert_eq!(docker.jobs, Some(4));
    assert!((docker.fit.as_ref().unwrap().ms_per_mib - 15.0).abs() < 1e-9);
    assert_eq!(f.pick(None, Some(4)), Some(docker));
    assert!(f.pick(Some(BackendKind::Docker), Some(2)).is_none());
}

#[test]
fn a_falling_line_never_crosses_and_old_lines_are_their_own_group() {
    let mut h: Vec<Entry> = [(100u64, 9000u64), (200, 8000), (300, 7000)]
        .into_iter()
        .enumerate()
        .map(|(i, (m, ms))| entry(i, m * MIB_U, ms, BackendKind::Native, 1))
        .collect();
    for e in &mut h {
        e.backend = None;
        e.jobs = None;
        e.budgets.clear();
    }
    let f = Forecast::of(&h, 1024 * MIB_U, None);
    let g = &f.groups[0];
    assert_eq!(g.label(), "backend not recorded, no -j recorded");
    assert_eq!(g.budget_from, BudgetFrom::Default);
    assert_eq!(g.budget_ms, DEFAULT_BUDGET_MS);
    // Without a database_restore time, no points.
    assert_eq!(g.outlook, Outlook::NotEnough);
    for e in &mut h {
        let ms = 10_000 - e.backup_size_bytes.unwrap() / MIB_U * 10;
        e.budgets.push(BudgetUse {
            name: "database_restore".into(),
            used_ms: ms,
            limit_ms: 0,
        });
    }
    let g = Forecast::of(&h, 1024 * MIB_U, None).groups.remove(0);
    assert!(g.fit.as_ref().unwrap().ms_per_mib < 0.0);
    assert_eq!(g.crosses_budget_at_bytes, None);
    assert_eq!(g.budget_from, BudgetFrom::Default, "a limit of 0 is none");
    assert!(g.lines()[2].contains("never reaches it"), "{:?}", g.lines());
}

#[test]
fn the_report_s_forecast_includes_the_drill_itself_and_needs_a_line() {
    let h = exact(&[100, 200]);
    let this = entry(
        50,
        400 * MIB_U,
        truth(400 * MIB_U) as u64,
        BackendKind::Native,
        2,
    );
    let g = for_report(h.clone(), this.clone()).expect("three sizes with this drill");
    assert_eq!(g.points.len(), 3);
    assert_eq!(g.projection.as_ref().unwrap().size_bytes, 400 * MIB_U);
    assert!(markdown(&g).starts_with("## RTO forecast"));
    // A test drill gets none.
    let mut tamper = this.clone();
    tamper.kind = DrillKind::Tamper;
    assert!(for_report(h.clone(), tamper).is_none());
    // Another group's drills do not help.
    let mut other = this;
    other.jobs = Some(8);
    assert!(for_report(h, other).is_none());
}
