//! Drill history: one NDJSON line per drill, appended under a lock, and the questions asked
//! of it ("have we proven we can restore, every week?"): pass rate, RTO used per budget,
//! restore time against backup size, the last passing drill, and the staleness alarm.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Failure, Report, ScopeKind, Verdict};
use crate::error::{EnvError, Error};

/// The history file when neither `--history` nor `PGDRILL_HISTORY` names one: beside the
/// default reports directory, or in the repository when the drill has one.
pub fn default_path(repo: Option<&Path>) -> PathBuf {
    match repo {
        Some(r) => r.join("history.ndjson"),
        None => PathBuf::from("reports").join("history.ndjson"),
    }
}

/// One drill in the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The drill's id.
    pub drill_id: String,
    /// When it finished, RFC 3339 UTC.
    pub time: String,
    /// What was restored: `database`, or `full` (database, configuration and code).
    pub scope: ScopeKind,
    /// The dump restored, if there was one.
    pub backup_file: Option<String>,
    /// Its size.
    pub backup_size_bytes: Option<u64>,
    /// Its age when the drill finished, when its creation time is known.
    pub backup_age_ms: Option<u64>,
    /// The outcome.
    pub verdict: Verdict,
    /// What failed, when something did: `phase: class` (a [`Failure`]'s display). Kept as
    /// text so lines written by any earlier pgdrill still read.
    pub failed: Option<String>,
    /// Each budget's use.
    pub budgets: Vec<BudgetUse>,
    /// Integrity counts.
    pub integrity: Option<IntegrityCounts>,
    /// The recovery point measured, for a full drill; absent in lines written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RpoUse>,
    /// report.json of the drill.
    pub report: String,
    /// SHA-256 of that report.json.
    pub report_sha256: String,
}

/// One budget's use in one drill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetUse {
    /// Budget name.
    pub name: String,
    /// Time used.
    pub used_ms: u64,
    /// Allowance.
    pub limit_ms: u64,
}

/// How much the integrity comparison looked at and how much differed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntegrityCounts {
    /// Tables compared.
    pub tables: usize,
    /// Tables that differ.
    pub tables_mismatched: usize,
    /// Checks run.
    pub checks: usize,
    /// Checks that failed.
    pub checks_failed: usize,
}

/// The recovery point one full drill measured against its objective.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpoUse {
    /// The objective (`--rpo`).
    pub objective_ms: u64,
    /// The data-loss window measured.
    pub achieved_ms: u64,
    /// Acknowledged commits the restore did not have.
    pub lost_commits: u64,
    /// The worst case on the strategy's schedule (backup interval plus backup time).
    pub worst_case_ms: u64,
    /// Whether the window was within the objective.
    pub verdict: crate::rpo::RpoVerdict,
}

impl Entry {
    /// The history line of a report whose report.json is at `report_path` with `report_sha256`.
    pub fn of(r: &Report, report_path: &Path, report_sha256: String) -> Entry {
        let finished = crate::duration::parse_time(&r.finished_at).ok();
        let backup_age_ms = r.backup.as_ref().and_then(|b| {
            let created = crate::duration::parse_time(b.created_at.as_deref()?).ok()?;
            let age = finished? - created;
            u64::try_from(age.num_milliseconds()).ok()
        });
        Entry {
            drill_id: r.drill_id.clone(),
            time: r.finished_at.clone(),
            scope: r.scope.unwrap_or(ScopeKind::Database),
            backup_file: r.backup.as_ref().map(|b| b.file.clone()),
            backup_size_bytes: r.backup.as_ref().map(|b| b.size_bytes),
            backup_age_ms,
            verdict: r.verdict,
            failed: r.failure.as_ref().map(Failure::to_string),
            budgets: r
                .budgets
                .iter()
                .map(|b| BudgetUse {
                    name: b.name.as_str().into(),
                    used_ms: b.used_ms,
                    limit_ms: b.limit_ms,
                })
                .collect(),
            integrity: r.integrity.as_ref().map(|i| IntegrityCounts {
                tables: i.comparison.tables.len(),
                tables_mismatched: i
                    .comparison
                    .tables
                    .iter()
                    .filter(|t| t.matches != Some(true))
                    .count(),
                checks: i.comparison.checks.len(),
                checks_failed: i.comparison.checks.iter().filter(|c| !c.pass).count(),
            }),
            rpo: r.rpo.as_ref().map(|p| RpoUse {
                objective_ms: p.objective_ms,
                achieved_ms: p.achieved_ms,
                lost_commits: p.lost_commits,
                worst_case_ms: p.worst_case_ms,
                verdict: p.verdict,
            }),
            report: report_path.display().to_string(),
            report_sha256,
        }
    }

    fn at(&self) -> Option<DateTime<Utc>> {
        crate::duration::parse_time(&self.time).ok()
    }

    fn used(&self, budget: &str) -> Option<u64> {
        self.budgets
            .iter()
            .find(|b| b.name == budget)
            .map(|b| b.used_ms)
    }
}

fn io(path: &Path, what: &str, source: std::io::Error) -> Error {
    Error::Environment(EnvError::io(
        format!("{what} the history file {}", path.display()),
        source,
    ))
}

/// Appends one line under an exclusive lock and syncs it, so concurrent drills never
/// interleave or lose a line.
pub fn append(path: &Path, entry: &Entry) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(path, "creating the directory of", e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io(path, "opening", e))?;
    let mut locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io(path, "locking", e.into()))?;
    let mut line = serde_json::to_string(entry).expect("history entry serialises");
    line.push('\n');
    locked
        .write_all(line.as_bytes())
        .and_then(|()| locked.sync_all())
        .map_err(|e| io(path, "appending to", e))
}

/// Every entry of the file; a missing file is an empty history, a bad line a usage error
/// naming its number.
pub fn read(path: &Path) -> Result<Vec<Entry>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path, "reading", e)),
    };
    // Line by line, so that one damaged line (even one that is not UTF-8) is named by its number.
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty())
        .map(|(i, l)| {
            std::str::from_utf8(l)
                .map_err(|e| e.to_string())
                .and_then(crate::json::from_str)
                .map_err(|e| {
                    Error::Usage(format!(
                        "{} line {}: not a pgdrill history entry ({e}); fix or remove that line",
                        path.display(),
                        i + 1
                    ))
                })
        })
        .collect()
}

/// min, median, max.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spread {
    /// Budget name.
    pub name: String,
    /// Its limit in the newest drill.
    pub limit_ms: u64,
    /// Fewest ms used.
    pub min_ms: u64,
    /// Median ms used.
    pub median_ms: u64,
    /// Most ms used.
    pub max_ms: u64,
}

/// The recovery points of the window's full drills.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RpoSpread {
    /// Full drills that measured one.
    pub drills: usize,
    /// Of which within their objective.
    pub within: usize,
    /// The objective in the newest of them.
    pub objective_ms: u64,
    /// Shortest data-loss window.
    pub min_ms: u64,
    /// Median data-loss window.
    pub median_ms: u64,
    /// Longest data-loss window.
    pub max_ms: u64,
    /// Longest worst case on the schedule.
    pub worst_case_ms: u64,
    /// Acknowledged commits lost, summed.
    pub lost_commits: u64,
}

/// One drill's restore time against its backup's size.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// The drill.
    pub drill_id: String,
    /// Backup size.
    pub size_bytes: u64,
    /// `database_restore` time used.
    pub restore_ms: u64,
}

/// What `pgdrill history` reports over a window.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The moment the window ends at.
    pub at: String,
    /// The window's start.
    pub since: String,
    /// Drills in the window.
    pub drills: usize,
    /// Of which passed.
    pub passed: usize,
    /// passed / drills, 0 when there were none.
    pub pass_rate: f64,
    /// RTO used per budget.
    pub budgets: Vec<Spread>,
    /// Restore time against backup size, oldest first.
    pub trend: Vec<Point>,
    /// The recovery point measured by the full drills in the window, when there were any.
    pub rpo: Option<RpoSpread>,
    /// Least-squares slope of restore time per MiB of backup, when two sizes differ.
    pub restore_ms_per_mib: Option<f64>,
    /// The newest passing drill in the window.
    pub last_pass: Option<Entry>,
    /// Whether a passing drill is within `--max-age` of `at`, when it was asked.
    pub fresh: Option<bool>,
    /// The asked `--max-age`.
    pub max_age: Option<String>,
    /// The drills in the window, oldest first.
    pub entries: Vec<Entry>,
}

/// Summarises the entries finished in `(at - since, at]`.
pub fn summarise(
    entries: &[Entry],
    at: DateTime<Utc>,
    since: std::time::Duration,
    max_age: Option<std::time::Duration>,
) -> Summary {
    let from = crate::duration::before(at, since);
    let mut window: Vec<Entry> = entries
        .iter()
        .filter(|e| e.at().is_some_and(|t| t > from && t <= at))
        .cloned()
        .collect();
    window.sort_by_key(|e| e.at());
    let passed = window.iter().filter(|e| e.verdict == Verdict::Pass).count();
    let mut names: Vec<String> = Vec::new();
    for e in &window {
        for b in &e.budgets {
            if !names.contains(&b.name) {
                names.push(b.name.clone());
            }
        }
    }
    let budgets = names
        .into_iter()
        .map(|name| {
            let mut used: Vec<u64> = window.iter().filter_map(|e| e.used(&name)).collect();
            used.sort_unstable();
            let limit_ms = window
                .iter()
                .rev()
                .find_map(|e| e.budgets.iter().find(|b| b.name == name))
                .map_or(0, |b| b.limit_ms);
            Spread {
                limit_ms,
                min_ms: used.first().copied().unwrap_or(0),
                median_ms: used.get(used.len() / 2).copied().unwrap_or(0),
                max_ms: used.last().copied().unwrap_or(0),
                name,
            }
        })
        .collect();
    let trend: Vec<Point> = window
        .iter()
        .filter_map(|e| {
            Some(Point {
                drill_id: e.drill_id.clone(),
                size_bytes: e.backup_size_bytes?,
                restore_ms: e.used("database_restore")?,
            })
        })
        .collect();
    let last_pass = window
        .iter()
        .rev()
        .find(|e| e.verdict == Verdict::Pass)
        .cloned();
    let fresh = max_age.map(|m| {
        let oldest = crate::duration::before(at, m);
        last_pass
            .as_ref()
            .and_then(Entry::at)
            .is_some_and(|t| t >= oldest)
    });
    let rpo = rpo_spread(&window);
    Summary {
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        since: from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        drills: window.len(),
        passed,
        pass_rate: if window.is_empty() {
            0.0
        } else {
            passed as f64 / window.len() as f64
        },
        budgets,
        restore_ms_per_mib: slope(&trend),
        trend,
        rpo,
        last_pass,
        fresh,
        max_age: max_age.map(|m| humantime::format_duration(m).to_string()),
        entries: window,
    }
}

fn rpo_spread(window: &[Entry]) -> Option<RpoSpread> {
    let measured: Vec<&RpoUse> = window.iter().filter_map(|e| e.rpo.as_ref()).collect();
    let newest = measured.last()?;
    let mut achieved: Vec<u64> = measured.iter().map(|r| r.achieved_ms).collect();
    achieved.sort_unstable();
    Some(RpoSpread {
        drills: measured.len(),
        within: measured
            .iter()
            .filter(|r| r.verdict == crate::rpo::RpoVerdict::Pass)
            .count(),
        objective_ms: newest.objective_ms,
        min_ms: achieved[0],
        median_ms: achieved[achieved.len() / 2],
        max_ms: achieved[achieved.len() - 1],
        worst_case_ms: measured.iter().map(|r| r.worst_case_ms).max().unwrap_or(0),
        lost_commits: measured.iter().map(|r| r.lost_commits).sum(),
    })
}

fn slope(points: &[Point]) -> Option<f64> {
    let n = points.len() as f64;
    let xs: Vec<f64> = points
        .iter()
        .map(|p| p.size_bytes as f64 / 1_048_576.0)
        .collect();
    let ys: Vec<f64> = points.iter().map(|p| p.restore_ms as f64).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

/// The summary for a terminal.
pub fn render_text(s: &Summary) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "drills {} … {}: {} run, {} passed ({:.0}%)",
        s.since,
        s.at,
        s.drills,
        s.passed,
        s.pass_rate * 100.0
    );
    for b in &s.budgets {
        let _ = writeln!(
            o,
            "  {:<17} used min {} / median {} / max {} of {}",
            b.name,
            super::markdown::secs(b.min_ms),
            super::markdown::secs(b.median_ms),
            super::markdown::secs(b.max_ms),
            super::markdown::secs(b.limit_ms)
        );
    }
    for p in &s.trend {
        let _ = writeln!(
            o,
            "  restore {} for {} bytes ({})",
            super::markdown::secs(p.restore_ms),
            p.size_bytes,
            p.drill_id
        );
    }
    if let Some(k) = s.restore_ms_per_mib {
        let _ = writeln!(o, "  trend: {k:.0} ms of restore per MiB of backup");
    }
    if let Some(r) = &s.rpo {
        let _ = writeln!(
            o,
            "  rpo: {} of {} full drills within {}; data lost min {} / median {} / max {}, worst case on the schedule {}, {} acknowledged commits lost",
            r.within,
            r.drills,
            super::markdown::secs(r.objective_ms),
            super::markdown::secs(r.min_ms),
            super::markdown::secs(r.median_ms),
            super::markdown::secs(r.max_ms),
            super::markdown::secs(r.worst_case_ms),
            r.lost_commits
        );
    }
    match &s.last_pass {
        Some(e) => {
            let _ = writeln!(
                o,
                "last passing drill: {} at {} ({})",
                e.drill_id, e.time, e.report
            );
        }
        None => {
            let _ = writeln!(o, "last passing drill: none in this window");
        }
    }
    match (s.fresh, &s.max_age) {
        (Some(true), Some(m)) => {
            let _ = writeln!(o, "fresh: a drill passed within {m}");
        }
        (Some(false), Some(m)) => {
            let _ = writeln!(o, "STALE: no drill passed within {m} of {}; run a drill (pgdrill drill --plan drills/weekly.toml)", s.at);
        }
        _ => {}
    }
    o
}

/// The overview page with the same charts, as SVG.
pub fn render_html(s: &Summary) -> String {
    let env = super::html::environment();
    let tmpl = env.get_template("history.html").expect("template exists");
    let max_size = s
        .trend
        .iter()
        .map(|p| p.size_bytes)
        .max()
        .unwrap_or(1)
        .max(1);
    let max_restore = s
        .trend
        .iter()
        .map(|p| p.restore_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    let max_budget = s
        .budgets
        .iter()
        .map(|b| b.max_ms.max(b.limit_ms))
        .max()
        .unwrap_or(1)
        .max(1);
    tmpl.render(context! { s => s, max_size, max_restore, max_budget })
        .unwrap_or_else(|e| panic!("history.html template: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, time: &str, verdict: Verdict, restore: u64, size: u64) -> Entry {
        Entry {
            drill_id: id.into(),
            time: time.into(),
            scope: ScopeKind::Database,
            backup_file: Some("b.dump".into()),
            backup_size_bytes: Some(size),
            backup_age_ms: None,
            verdict,
            failed: None,
            budgets: vec![BudgetUse {
                name: "database_restore".into(),
                used_ms: restore,
                limit_ms: 900_000,
            }],
            integrity: None,
            rpo: None,
            report: "r.json".into(),
            report_sha256: "0".into(),
        }
    }

    #[test]
    fn window_median_slope_and_staleness() {
        let es = vec![
            entry("a", "2026-11-01T00:00:00Z", Verdict::Pass, 1000, 1_048_576),
            entry(
                "b",
                "2026-11-08T00:00:00Z",
                Verdict::Fail,
                3000,
                2 * 1_048_576,
            ),
            entry(
                "c",
                "2026-11-15T00:00:00Z",
                Verdict::Pass,
                5000,
                3 * 1_048_576,
            ),
        ];
        let at = crate::duration::parse_time("2026-11-20T00:00:00Z").unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let s = summarise(&es, at, 90 * day, Some(8 * day));
        assert_eq!((s.drills, s.passed), (3, 2));
        assert_eq!(s.budgets[0].median_ms, 3000);
        assert_eq!(s.restore_ms_per_mib, Some(2000.0));
        assert_eq!(s.fresh, Some(true));
        let later = crate::duration::parse_time("2026-11-24T00:00:00Z").unwrap();
        assert_eq!(
            summarise(&es, later, 90 * day, Some(8 * day)).fresh,
            Some(false)
        );
        let s = summarise(&es, at, 13 * day, None);
        assert_eq!(s.drills, 2);
        assert_eq!(s.rpo, None, "no full drill, no RPO line");
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
        let at = crate::duration::parse_time("2026-11-05T00:00:00Z").unwrap();
        let s = summarise(&es, at, std::time::Duration::from_secs(30 * 86_400), None);
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
        assert!(
            render_text(&s).contains("rpo: 2 of 3 full drills within"),
            "{}",
            render_text(&s)
        );
        // A line written before the rpo field existed still reads.
        let mut old = serde_json::to_value(&es[0]).unwrap();
        old.as_object_mut().unwrap().remove("rpo");
        let back: Entry = serde_json::from_value(old).unwrap();
        assert_eq!(back.rpo, None);
        assert!(!serde_json::to_string(&es[0]).unwrap().contains("\"rpo\""));
    }
}
