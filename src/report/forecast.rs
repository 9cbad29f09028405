//! The RTO forecast (`pgdrill forecast`, and a section of report.md/html and the runbook):
//! the database restore time fitted against backup size by least squares with an
//! intercept, over the drill history, one line per backend and pg_restore `-j`; the
//! projection at a size with its 95 % prediction interval, and the size at which the
//! projection crosses the `database_restore` budget.
//!
//! Only drills that count (`kind: drill`, not a tamper or fault test) and whose restore time
//! is a whole restore's (they ran, and did not fail taking or restoring the backup) are
//! points; each needs its backup's size and its `database_restore` time. A line needs
//! [`MIN_SIZES`] different backup sizes: with fewer nothing is projected.
//!
//! Sizes are read as people write them ([`parse_size`]): decimal units are powers of 1000
//! (`GB` = 10⁹ bytes), binary units powers of 1024 (`GiB` = 2³⁰ bytes).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::history::{Entry, Point};
use crate::duration::human_ms;
use crate::env::BackendKind;

/// Different backup sizes a group needs before a line is fitted: two points always lie on a
/// line, so the third is the first that can disagree with it.
pub const MIN_SIZES: usize = 3;
/// The `database_restore` budget when neither `--budget` nor the history gives one: the
/// strategy's 15 minutes.
pub const DEFAULT_BUDGET_MS: u64 = 15 * 60 * 1000;
/// The prediction interval's confidence.
pub const CONFIDENCE: f64 = 0.95;
/// The budget the forecast is about.
const BUDGET: &str = "database_restore";
const MIB: f64 = 1_048_576.0;

/// Reads a size: a number (fractions allowed) and an optional unit, `B`, `kB`/`KB`, `MB`,
/// `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), the unit's
/// letters in any case and a space allowed before it. A bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let forms = "use a number of bytes or a number with a unit, such as 50GB, 50GiB, 500MB, \
                 1.5TB (kB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024)";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => MIB,
        "gib" => MIB * 1024.0,
        "tib" => MIB * MIB,
        _ => {
            return Err(format!(
                "invalid size `{s}`: unknown unit `{unit}`; {forms}"
            ))
        }
    };
    let value: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("invalid size `{s}`: `{num}` is not a number; {forms}"))?;
    let bytes = (value * factor).round();
    if bytes < 1.0 {
        return Err(format!(
            "invalid size `{s}`: it must be at least 1 byte; {forms}"
        ));
    }
    if bytes >= u64::MAX as f64 {
        return Err(format!("invalid size `{s}`: too large; {forms}"));
    }
    Ok(bytes as u64)
}

/// A size for people, in the decimal units `--size` takes: `50.0 GB`, `512 B`.
pub fn human_size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom (`t₀.₉₇₅`): a
/// table to 30, then the Cornish–Fisher expansion around the normal quantile (within 10⁻⁶
/// there). `df` 0 has none: infinity.
pub fn t_quantile_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706_204_736,
        4.302_652_730,
        3.182_446_305,
        2.776_445_105,
        2.570_581_836,
        2.446_911_851,
        2.364_624_252,
        2.306_004_135,
        2.262_157_163,
        2.228_138_852,
        2.200_985_160,
        2.178_812_830,
        2.160_368_656,
        2.144_786_688,
        2.131_449_546,
        2.119_905_299,
        2.109_815_578,
        2.100_922_040,
        2.093_024_054,
        2.085_963_447,
        2.079_613_845,
        2.073_873_068,
        2.068_657_610,
        2.063_898_562,
        2.059_538_553,
        2.055_529_439,
        2.051_830_516,
        2.048_407_142,
        2.045_229_642,
        2.042_272_456,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let z: f64 = 1.959_963_985;
            let v = df as f64;
            let g1 = (z.powi(3) + z) / 4.0;
            let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
            let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
            let g4 = (79.0 * z.powi(9) + 776.0 * z.powi(7) + 1482.0 * z.powi(5)
                - 1920.0 * z.powi(3)
                - 945.0 * z)
                / 92160.0;
            z + g1 / v + g2 / v.powi(2) + g3 / v.powi(3) + g4 / v.powi(4)
        }
    }
}

/// The least-squares line of restore time on backup size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LineFit {
    /// The slope: restore time per MiB (2²⁰ bytes) of backup.
    pub ms_per_mib: f64,
    /// The line's restore time at size zero (the restore's fixed cost).
    pub intercept_ms: f64,
    /// The share of the restore time's variance the size explains (0 to 1).
    pub r_squared: f64,
    /// The residual standard error, √(Σ residual² / (n − 2)): how far a drill's time lies
    /// from the line, typically.
    pub residual_se_ms: f64,
    /// Drills fitted (n).
    pub points: usize,
    /// Different backup sizes among them.
    pub sizes: usize,
    /// The mean size fitted, in MiB (the interval is narrowest there).
    #[serde(skip)]
    mean_mib: f64,
    /// Σ (size − mean)², MiB².
    #[serde(skip)]
    sxx: f64,
}

impl LineFit {
    /// The fit of these points, or `None` with fewer than [`MIN_SIZES`] different sizes.
    pub fn of(points: &[Point]) -> Option<LineFit> {
        let sizes = distinct_sizes(points);
        if sizes < MIN_SIZES {
            return None;
        }
        let l = crate::report::history::LeastSquares::of(points);
        Some(LineFit {
            ms_per_mib: l.slope,
            intercept_ms: l.intercept,
            r_squared: l.r_squared,
            residual_se_ms: (l.ss_res / (points.len() as f64 - 2.0)).sqrt(),
            points: points.len(),
            sizes,
            mean_mib: l.mean_mib,
            sxx: l.sxx,
        })
    }

    /// The line's restore time at `size_bytes`.
    pub fn at(&self, size_bytes: u64) -> f64 {
        self.intercept_ms + self.ms_per_mib * size_bytes as f64 / MIB
    }

    /// The projection at `size_bytes` with the OLS prediction interval for one new drill:
    /// ŷ ± t₀.₉₇₅(n−2) · s · √(1 + 1/n + (x − x̄)² / Sxx). Its low end is never below 0.
    pub fn project(&self, size_bytes: u64) -> Projection {
        let x = size_bytes as f64 / MIB;
        let n = self.points as f64;
        let y = self.at(size_bytes);
        let half = t_quantile_975(self.points - 2)
            * self.residual_se_ms
            * (1.0 + 1.0 / n + (x - self.mean_mib).powi(2) / self.sxx).sqrt();
        Projection {
            size_bytes,
            restore_ms: y,
            low_ms: (y - half).max(0.0),
            high_ms: y + half,
            confidence: CONFIDENCE,
        }
    }

    /// The size at which the line reaches `budget_ms`: `None` when it never does (a slope of
    /// zero or less), 0 when the fixed cost alone already reaches it.
    pub fn crossing(&self, budget_ms: u64) -> Option<u64> {
        if self.ms_per_mib.is_nan() || self.ms_per_mib <= 0.0 {
            return None;
        }
        let mib = (budget_ms as f64 - self.intercept_ms) / self.ms_per_mib;
        Some((mib * MIB).clamp(0.0, u64::MAX as f64) as u64)
    }

    /// `2000 ms + 30.00 ms per MiB (R² 0.990, a good fit; residual standard error 12 ms; 6
    /// drills of 3 backup sizes)`.
    pub fn describe(&self) -> String {
        format!(
            "{:.0} ms + {:.2} ms per MiB (R² {:.3}, a {} fit; residual standard error {}; {} drills of {} backup sizes)",
            self.intercept_ms,
            self.ms_per_mib,
            self.r_squared,
            match self.r_squared {
                r if r >= 0.8 => "good",
                r if r >= 0.5 => "fair",
                _ => "poor",
            },
            human_ms(self.residual_se_ms.round() as u64),
            self.points,
            self.sizes
        )
    }
}

/// The projected restore time at one size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Projection {
    /// The size projected at.
    pub size_bytes: u64,
    /// The line's restore time there.
    pub restore_ms: f64,
    /// The prediction interval's low end (at least 0).
    pub low_ms: f64,
    /// The prediction interval's high end.
    pub high_ms: f64,
    /// The interval's confidence (0.95).
    pub confidence: f64,
}

/// Where the budget came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BudgetFrom {
    /// `--budget DUR`.
    Flag,
    /// The newest drill of the group that recorded a `database_restore` limit.
    History,
    /// Neither: the strategy's 15 minutes.
    Default,
}

/// What the projection says of the budget.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outlook {
    /// The projection and its interval's high end are within the budget.
    Within,
    /// The projection is within the budget, its interval's high end is not.
    AtRisk,
    /// The projection itself is over the budget.
    Over,
    /// Fewer than [`MIN_SIZES`] different backup sizes: nothing projected.
    NotEnough,
}

/// The forecast of one (backend, `-j`) group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// The backend its drills ran on; `None` for history lines written before pgdrill
    /// recorded it.
    pub backend: Option<BackendKind>,
    /// pg_restore's `-j`; `None` as for `backend`.
    pub jobs: Option<u32>,
    /// Its drills, oldest first.
    pub points: Vec<Point>,
    /// Different backup sizes among them.
    pub sizes: usize,
    /// The `database_restore` budget judged against.
    pub budget_ms: u64,
    /// Where that budget came from.
    pub budget_from: BudgetFrom,
    /// The line, with [`MIN_SIZES`] different sizes.
    pub fit: Option<LineFit>,
    /// The projection at the size asked, with a line.
    pub projection: Option<Projection>,
    /// The size at which the line reaches the budget; `None` without a line or when it never
    /// does.
    pub crosses_budget_at_bytes: Option<u64>,
    /// What the projection says of the budget.
    pub outlook: Outlook,
    /// All of it in words ([`Group::lines`]), as every rendering says it.
    #[serde(default)]
    pub summary: Vec<String>,
}

/// The forecast at one size, every group of the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Forecast {
    /// The size projected at.
    pub size_bytes: u64,
    /// One group per (backend, `-j`), the group of the newest drill first.
    pub groups: Vec<Group>,
}

fn distinct_sizes(points: &[Point]) -> usize {
    let mut sizes: Vec<u64> = points.iter().map(|p| p.size_bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes.len()
}

/// The drill's point, when it is one: it counts, its restore time is a whole restore's, and
/// both its size and its `database_restore` time are known.
fn point(e: &Entry) -> Option<Point> {
    if !(e.counts() && e.restored()) {
        return None;
    }
    Some(Point {
        drill_id: e.drill_id.clone(),
        size_bytes: e.backup_size_bytes?,
        restore_ms: e.used(BUDGET)?.used_ms,
    })
}

impl Group {
    /// The group of `entries` (oldest first) with this backend and `-j`, projected at
    /// `size_bytes`; `budget_ms` overrides the history's budget.
    fn of(
        entries: &[&Entry],
        backend: Option<BackendKind>,
        jobs: Option<u32>,
        size_bytes: u64,
        budget_ms: Option<u64>,
    ) -> Group {
        let mine: Vec<&Entry> = entries
            .iter()
            .copied()
            .filter(|e| e.backend == backend && e.jobs == jobs)
            .collect();
        let points: Vec<Point> = mine.iter().copied().filter_map(point).collect();
        let (budget_ms, budget_from) = match budget_ms {
            Some(b) => (b, BudgetFrom::Flag),
            None => match mine.iter().rev().find_map(|e| e.used(BUDGET)) {
                Some(b) if b.limit_ms > 0 => (b.limit_ms, BudgetFrom::History),
                _ => (DEFAULT_BUDGET_MS, BudgetFrom::Default),
            },
        };
        let fit = LineFit::of(&points);
        let projection = fit.as_ref().map(|f| f.project(size_bytes));
        let outlook = match &projection {
            None => Outlook::NotEnough,
            Some(p) if p.restore_ms > budget_ms as f64 => Outlook::Over,
            Some(p) if p.high_ms > budget_ms as f64 => Outlook::AtRisk,
            Some(_) => Outlook::Within,
        };
        let mut g = Group {
            backend,
            jobs,
            sizes: distinct_sizes(&points),
            crosses_budget_at_bytes: fit.as_ref().and_then(|f| f.crossing(budget_ms)),
            points,
            budget_ms,
            budget_from,
            fit,
            projection,
            outlook,
            summary: Vec::new(),
        };
        g.summary = g.lines();
        g
    }

    /// `native -j 2`; `backend not recorded, no -j recorded` for lines written before the
    /// fields (and `native, no -j recorded` for a drill without pg_restore, a point-in-time
    /// recovery).
    pub fn label(&self) -> String {
        let backend = self
            .backend
            .map_or("backend not recorded".to_string(), |b| b.to_string());
        match self.jobs {
            Some(j) => format!("{backend} -j {j}"),
            None => format!("{backend}, no -j recorded"),
        }
    }

    /// The forecast for a terminal, report.md and the runbook, as lines of text.
    pub fn lines(&self) -> Vec<String> {
        let mut o = Vec::new();
        let budget = format!(
            "database_restore budget of {} ({})",
            human_ms(self.budget_ms),
            match self.budget_from {
                BudgetFrom::Flag => "--budget",
                BudgetFrom::History => "the newest drill's",
                BudgetFrom::Default => "the strategy's default",
            }
        );
        let (Some(fit), Some(p)) = (&self.fit, &self.projection) else {
            o.push(format!(
                "not enough drills to forecast: {} drill{} of {} backup size{} ({}); {MIN_SIZES} different sizes are needed, nothing is projected",
                self.points.len(),
                if self.points.len() == 1 { "" } else { "s" },
                self.sizes,
                if self.sizes == 1 { "" } else { "s" },
                self.label()
            ));
            return o;
        };
        let largest = self.points.iter().map(|p| p.size_bytes).max().unwrap_or(0);
        let beyond = if p.size_bytes > largest.saturating_mul(2) {
            format!(
                "; an extrapolation to {:.0}× the largest backup drilled ({}): drill nearer that size to trust it",
                p.size_bytes as f64 / largest.max(1) as f64,
                human_size(largest)
            )
        } else {
            String::new()
        };
        o.push(format!(
            "projected database restore at {}: {} ({:.0} % prediction interval {} to {}{beyond})",
            human_size(p.size_bytes),
            human_ms(p.restore_ms.max(0.0).round() as u64),
            p.confidence * 100.0,
            human_ms(p.low_ms.round() as u64),
            human_ms(p.high_ms.round() as u64),
        ));
        o.push(format!("fit ({}): {}", self.label(), fit.describe()));
        let crossing = match self.crosses_budget_at_bytes {
            Some(0) => "the fixed cost alone reaches it at any size".to_string(),
            Some(b) => format!("the projection reaches it at {}", human_size(b)),
            None => {
                "the projection never reaches it (restore time does not grow with size)".to_string()
            }
        };
        o.push(match self.outlook {
            Outlook::Over => format!("WARNING: the projection is over the {budget}; {crossing}"),
            Outlook::AtRisk => format!(
                "warning: within the {budget}, but the interval's high end is over it; {crossing}"
            ),
            _ => format!("within the {budget}; {crossing}"),
        });
        o
    }
}

impl Forecast {
    /// The forecast at `size_bytes` over `entries` (any order), one group per (backend,
    /// `-j`) among the drills that count; `budget_ms` (`--budget`) overrides each group's.
    pub fn of(entries: &[Entry], size_bytes: u64, budget_ms: Option<u64>) -> Forecast {
        let mut counted: Vec<&Entry> = entries.iter().filter(|e| e.counts()).collect();
        counted.sort_by_key(|e| e.at());
        let mut keys: Vec<(Option<BackendKind>, Option<u32>)> = Vec::new();
        for e in counted.iter().rev() {
            if !keys.contains(&(e.backend, e.jobs)) {
                keys.push((e.backend, e.jobs));
            }
        }
        Forecast {
            size_bytes,
            groups: keys
                .into_iter()
                .map(|(b, j)| Group::of(&counted, b, j, size_bytes, budget_ms))
                .collect(),
        }
    }

    /// The group asked for: the newest with this backend and `-j` where they are given, else
    /// the newest drill's. `None` when no group matches (or the history has no drill).
    pub fn pick(&self, backend: Option<BackendKind>, jobs: Option<u32>) -> Option<&Group> {
        self.groups.iter().find(|g| {
            backend.is_none_or(|b| g.backend == Some(b)) && jobs.is_none_or(|j| g.jobs == Some(j))
        })
    }
}

/// The forecast section of a drill's own report: this drill's group (its backend and `-j`)
/// over `history` and this drill, projected at its backup's size; `None` unless the group
/// has a line, and for a test drill (`--tamper-sql`, `--fault`).
pub fn for_report(mut history: Vec<Entry>, this: Entry) -> Option<Group> {
    if !this.counts() {
        return None;
    }
    let size = this.backup_size_bytes.filter(|s| *s > 0)?;
    let (backend, jobs) = (this.backend, this.jobs);
    history.push(this);
    let f = Forecast::of(&history, size, None);
    f.groups
        .into_iter()
        .find(|g| g.backend == backend && g.jobs == jobs)
        .filter(|g| g.fit.is_some())
}

/// The forecast as report.md's section.
pub fn markdown(g: &Group) -> String {
    let mut s = String::from(
        "## RTO forecast\n\nThe database restore time fitted against backup size over the drill history (least squares, this drill's backend and `-j`; `pgdrill forecast --size SIZE` projects at any size):\n\n",
    );
    for l in &g.summary {
        let _ = writeln!(s, "- {l}");
    }
    s.push('\n');
    s
}

#[cfg(test)]
#[path = "forecast_tests.rs"]
mod tests;
