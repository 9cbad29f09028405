//! Drill history: one NDJSON line per drill, appended under a lock, and the questions asked
//! of it ("have we proven we can restore, every week?"): pass rate, RTO used per budget,
//! restore time against backup size, the last passing drill, and the staleness alarm.
//!
//! Only real drills (`kind: drill`) that ran count: a drill that could not run (verdict
//! `error`) is counted apart from one that failed, and a test drill (`--tamper-sql`,
//! `--fault`), which exists to fail, is listed but never counted.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::chart::{r1, Axis, Quantity};
use super::{Failure, FailureClass, Report, ScopeKind, Verdict};
use crate::duration::human_ms;
use crate::env::BackendKind;
use crate::error::{EnvError, Error};

/// The history file when neither `--history` nor `PGDRILL_HISTORY` names one: beside the
/// default reports directory, or in the repository when the drill has one.
pub fn default_path(repo: Option<&Path>) -> PathBuf {
    match repo {
        Some(r) => r.join("history.ndjson"),
        None => PathBuf::from("reports").join("history.ndjson"),
    }
}

/// Why a drill was run: to prove the backups restore, or to prove pgdrill catches a fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillKind {
    /// A real drill: it counts in the pass rate, the RTO and the trends.
    #[default]
    Drill,
    /// A drill with `--tamper-sql`: the restored data was changed on purpose, so it must fail.
    Tamper,
    /// A drill with `--fault`: a fault injected (a config tampered with, the comparison
    /// blinded) that the drill's checks or its negative controls must catch.
    Fault,
}

impl DrillKind {
    /// The kind of a drill run with `--tamper-sql` (`tamper`) and `--fault` (`fault`).
    pub fn of(tamper_sql: bool, faults: bool) -> DrillKind {
        match (tamper_sql, faults) {
            (true, _) => DrillKind::Tamper,
            (false, true) => DrillKind::Fault,
            (false, false) => DrillKind::Drill,
        }
    }

    /// Its name in history.ndjson.
    pub fn as_str(self) -> &'static str {
        match self {
            DrillKind::Drill => "drill",
            DrillKind::Tamper => "tamper",
            DrillKind::Fault => "fault",
        }
    }
}

/// One drill in the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The drill's id.
    pub drill_id: String,
    /// When it finished, RFC 3339 UTC.
    pub time: String,
    /// `drill`, or a test drill (`tamper`, `fault`) that is never counted; lines written
    /// before the field are `drill`.
    #[serde(default)]
    pub kind: DrillKind,
    /// What was restored: `database`, or `full` (database, configuration and code).
    pub scope: ScopeKind,
    /// The dump restored, if there was one.
    pub backup_file: Option<String>,
    /// Its size.
    pub backup_size_bytes: Option<u64>,
    /// Its SHA-256, hex; absent in lines written before the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_sha256: Option<String>,
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
    /// The drill's `--out` directory, absolute (report.html is in it); absent in lines
    /// written before the field, whose `report` names the directory instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_dir: Option<String>,
    /// The backend the restore ran on (`native`, `docker`); absent in lines written before
    /// the field, and for a restore onto a named server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    /// The `-j` pg_restore ran with (1 for a tar archive, which restores serially); absent
    /// in lines written before the field and when pg_restore did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
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
    /// The history line of a `kind` drill whose report.json is at `report_path` with
    /// `report_sha256`.
    pub fn of(r: &Report, report_path: &Path, report_sha256: String, kind: DrillKind) -> Entry {
        let backup_age_ms = r.backup_age_ms();
        // Absolute, so that `pgdrill history --html` links the report from wherever it runs.
        let out_dir = report_path
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| std::path::absolute(d).ok())
            .map(|d| d.display().to_string());
        Entry {
            drill_id: r.drill_id.clone(),
            time: r.finished_at.clone(),
            kind,
            scope: r.scope.unwrap_or(ScopeKind::Database),
            backup_file: r.backup.as_ref().map(|b| b.file.clone()),
            backup_size_bytes: r.backup.as_ref().map(|b| b.size_bytes),
            backup_sha256: r.backup.as_ref().map(|b| b.sha256.clone()),
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
            out_dir,
            backend: (r.restore.is_none() && r.environment.backend != BackendKind::Auto)
                .then_some(r.environment.backend),
            jobs: restore_jobs(r),
        }
    }

    /// When it finished, when `time` reads as one.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        crate::duration::parse_time(&self.time).ok()
    }

    /// The `budget`'s use in this drill, when it was measured.
    pub fn used(&self, budget: &str) -> Option<&BudgetUse> {
        self.budgets.iter().find(|b| b.name == budget)
    }

    /// Whether it counts: a real drill, not a test drill.
    pub fn counts(&self) -> bool {
        self.kind == DrillKind::Drill
    }

    /// Whether it ran: not an environment error, and a backup of some bytes was there to
    /// restore. A drill that never ran adds nothing to minimums, medians or fits.
    pub fn ran(&self) -> bool {
        self.verdict != Verdict::Error && self.backup_size_bytes.is_some_and(|b| b > 0)
    }

    /// The class of its failure, read back from `failed` (`phase: class`).
    fn failure_class(&self) -> Option<FailureClass> {
        let (_, class) = self.failed.as_deref()?.rsplit_once(": ")?;
        serde_json::from_value(serde_json::Value::from(class)).ok()
    }

    /// Whether its restore time is a whole restore's: it ran, and it did not fail in taking
    /// or restoring the backup (a failed pg_restore's time says nothing of the size's).
    pub fn restored(&self) -> bool {
        self.ran()
            && !matches!(
                self.failure_class(),
                Some(
                    FailureClass::BackupFailed
                        | FailureClass::BackupUnusable
                        | FailureClass::BackupIncomplete
                        | FailureClass::RestoreFailed
                )
            )
    }

    /// The directory its report.html is in: `out_dir`, else `report`'s directory (relative
    /// to the directory pgdrill runs in, as the drill wrote it).
    fn report_dir(&self) -> PathBuf {
        match &self.out_dir {
            Some(d) => PathBuf::from(d),
            None => Path::new(&self.report)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        }
    }
}

/// The `-j` of the report's pg_restore phase, read from the command it records
/// (`pg_restore --exit-on-error -j N …`): the parallelism the restore time was measured at.
pub fn restore_jobs(r: &Report) -> Option<u32> {
    let detail = r
        .phases
        .iter()
        .find(|p| p.name == super::PhaseId::PgRestore && p.status == super::Status::Pass)?
        .detail
        .as_str();
    let mut words = detail.split_whitespace();
    words.by_ref().find(|w| *w == "-j")?;
    words.next()?.parse().ok()
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

/// Every entry of the file. A missing file is a usage error naming the path and the fix (a
/// mistyped path must not read as "no drill ever ran"); a bad line one naming its number.
pub fn read(path: &Path) -> Result<Vec<Entry>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "no history file at {}: name the history.ndjson your drills append to with \
                 --history FILE (or PGDRILL_HISTORY), or a repository's with --repo DIR; a \
                 drill creates the file with its first line (pgdrill drill --history FILE)",
                path.display()
            )))
        }
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Point {
    /// The drill.
    pub drill_id: String,
    /// Backup size.
    pub size_bytes: u64,
    /// `database_restore` time used.
    pub restore_ms: u64,
}

/// Drills that ran needed before the size trend is fitted.
pub const FIT_MIN_DRILLS: usize = 5;
/// Distinct backup sizes needed among them: one size has no slope.
pub const FIT_MIN_SIZES: usize = 2;

/// The least-squares line of restore time (ms) on backup size (MiB), with an intercept: the
/// one fit behind `pgdrill history`'s trend and `pgdrill forecast`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeastSquares {
    /// ms per MiB.
    pub slope: f64,
    /// ms at size zero.
    pub intercept: f64,
    /// The share of the variance the size explains (0 to 1; 1 when every time is the same).
    pub r_squared: f64,
    /// Σ residual².
    pub ss_res: f64,
    /// The mean size, MiB.
    pub mean_mib: f64,
    /// Σ (size − mean)², MiB².
    pub sxx: f64,
}

impl LeastSquares {
    /// The line through `points` (at least two different sizes, or the slope is not finite).
    pub(crate) fn of(points: &[Point]) -> LeastSquares {
        let n = points.len() as f64;
        let xs: Vec<f64> = points.iter().map(|p| p.size_bytes as f64 / MIB).collect();
        let ys: Vec<f64> = points.iter().map(|p| p.restore_ms as f64).collect();
        let mx = xs.iter().sum::<f64>() / n;
        let my = ys.iter().sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let syy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
        let slope = sxy / sxx;
        let intercept = my - slope * mx;
        let ss_res: f64 = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| (y - (intercept + slope * x)).powi(2))
            .sum();
        LeastSquares {
            slope,
            intercept,
            // Every drill took the same time: the flat line explains all there is.
            r_squared: if syy > 0.0 {
                (1.0 - ss_res / syy).clamp(0.0, 1.0)
            } else {
                1.0
            },
            ss_res,
            mean_mib: mx,
            sxx,
        }
    }
}

/// The size trend: restore time as a straight line of backup size, when there are enough
/// drills for one to mean anything.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Fit {
    /// The least-squares line of restore time on backup size.
    Fitted {
        /// Drills fitted.
        points: usize,
        /// Distinct backup sizes among them.
        sizes: usize,
        /// The slope: restore time per MiB of backup.
        ms_per_mib: f64,
        /// The line's restore time at size zero.
        intercept_ms: f64,
        /// The share of the restore time's variance the size explains (0 to 1).
        r_squared: f64,
    },
    /// Too few drills, or too few sizes, for a line ("not enough drills to fit").
    NotEnough {
        /// Drills that ran and restored.
        points: usize,
        /// Distinct backup sizes among them.
        sizes: usize,
    },
}

impl Fit {
    /// The size trend of these points.
    pub fn of(points: &[Point]) -> Fit {
        let mut sizes: Vec<u64> = points.iter().map(|p| p.size_bytes).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let (n, k) = (points.len(), sizes.len());
        if n < FIT_MIN_DRILLS || k < FIT_MIN_SIZES {
            return Fit::NotEnough {
                points: n,
                sizes: k,
            };
        }
        let l = LeastSquares::of(points);
        Fit::Fitted {
            points: n,
            sizes: k,
            ms_per_mib: l.slope,
            intercept_ms: l.intercept,
            r_squared: l.r_squared,
        }
    }

    /// For people: `-1586 ms per MiB (R² 0.12, a poor fit over …)`, or `not enough drills to
    /// fit (…)`.
    pub fn describe(&self) -> String {
        match *self {
            Fit::Fitted {
                points,
                sizes,
                ms_per_mib,
                r_squared,
                ..
            } => format!(
                "{ms_per_mib:.0} ms per MiB (R² {r_squared:.2}, a {} fit over {points} drills of {sizes} backup sizes{})",
                match r_squared {
                    r if r >= 0.8 => "good",
                    r if r >= 0.5 => "fair",
                    _ => "poor",
                },
                if r_squared < 0.5 {
                    "; the size explains little of the restore time"
                } else {
                    ""
                }
            ),
            Fit::NotEnough { points, sizes } => format!(
                "not enough drills to fit ({points} that restored, of {sizes} backup size{}; \
                 {FIT_MIN_DRILLS} of at least {FIT_MIN_SIZES} sizes needed)",
                if sizes == 1 { "" } else { "s" }
            ),
        }
    }
}

const MIB: f64 = 1_048_576.0;

/// What `pgdrill history` reports over a window.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The moment the window ends at.
    pub at: String,
    /// The window's start.
    pub since: String,
    /// Drills in the window, of every kind.
    pub drills: usize,
    /// Real drills that passed.
    pub passed: usize,
    /// Real drills that ran and failed: a verdict on the backup or the recovery.
    pub failed: usize,
    /// Real drills that could not run (verdict `error`, exit 3): no verdict on the backup,
    /// so neither a pass nor a fail.
    pub errors: usize,
    /// Test drills (`tamper`, `fault`): made to fail, listed, never counted.
    pub test_drills: usize,
    /// passed / (passed + failed); absent when no real drill reached a verdict.
    pub pass_rate: Option<f64>,
    /// RTO used per budget, by the real drills that ran.
    pub budgets: Vec<Spread>,
    /// Restore time against backup size, oldest first: the real drills that restored.
    pub trend: Vec<Point>,
    /// The size trend over `trend`.
    pub fit: Fit,
    /// The recovery point measured by the full drills in the window, when there were any.
    pub rpo: Option<RpoSpread>,
    /// The newest passing real drill in the window.
    pub last_pass: Option<Entry>,
    /// Whether a real drill passed within `--max-age` of `at`, when it was asked.
    pub fresh: Option<bool>,
    /// The asked `--max-age`, as a person says it (`8 days`).
    pub max_age: Option<String>,
    /// The asked `--max-age`, in ms.
    pub max_age_ms: Option<u64>,
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
    let real: Vec<&Entry> = window.iter().filter(|e| e.counts()).collect();
    let with = |v: Verdict| real.iter().filter(|e| e.verdict == v).count();
    let (passed, failed, errors) = (
        with(Verdict::Pass),
        with(Verdict::Fail),
        with(Verdict::Error),
    );
    let ran: Vec<&Entry> = real.iter().copied().filter(|e| e.ran()).collect();
    let mut names: Vec<String> = Vec::new();
    for e in &ran {
        for b in &e.budgets {
            if !names.contains(&b.name) {
                names.push(b.name.clone());
            }
        }
    }
    let budgets = names
        .into_iter()
        .map(|name| {
            let mut used: Vec<u64> = ran
                .iter()
                .filter_map(|e| e.used(&name))
                .map(|b| b.used_ms)
                .collect();
            used.sort_unstable();
            let limit_ms = ran
                .iter()
                .rev()
                .find_map(|e| e.used(&name))
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
    let trend: Vec<Point> = ran
        .iter()
        .filter(|e| e.restored())
        .filter_map(|e| {
            Some(Point {
                drill_id: e.drill_id.clone(),
                size_bytes: e.backup_size_bytes?,
                restore_ms: e.used("database_restore")?.used_ms,
            })
        })
        .collect();
    let last_pass = real
        .iter()
        .rev()
        .find(|e| e.verdict == Verdict::Pass)
        .map(|e| (*e).clone());
    let fresh = max_age.map(|m| {
        let oldest = crate::duration::before(at, m);
        last_pass
            .as_ref()
            .and_then(Entry::at)
            .is_some_and(|t| t >= oldest)
    });
    Summary {
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        since: from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        drills: window.len(),
        passed,
        failed,
        errors,
        test_drills: window.len() - real.len(),
        pass_rate: (passed + failed > 0).then(|| passed as f64 / (passed + failed) as f64),
        budgets,
        fit: Fit::of(&trend),
        trend,
        rpo: rpo_spread(&ran),
        last_pass,
        fresh,
        max_age: max_age.map(crate::duration::human),
        max_age_ms: max_age.map(|m| u64::try_from(m.as_millis()).unwrap_or(u64::MAX)),
        entries: window,
    }
}

fn rpo_spread(ran: &[&Entry]) -> Option<RpoSpread> {
    let measured: Vec<&RpoUse> = ran.iter().filter_map(|e| e.rpo.as_ref()).collect();
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

/// `67% (2 of 3 drills that reached a verdict)`, or that none did.
fn pass_rate_text(s: &Summary) -> String {
    match s.pass_rate {
        Some(r) => format!(
            "pass rate {:.0}% ({} of {} drills that reached a verdict passed, {} failed)",
            r * 100.0,
            s.passed,
            s.passed + s.failed,
            s.failed
        ),
        None => "pass rate: no drill reached a verdict".into(),
    }
}

/// `1 could not run (…)`, when any could not.
fn errors_text(s: &Summary) -> Option<String> {
    (s.errors > 0).then(|| {
        format!(
            "{} could not run (environment error, exit 3): no verdict on the backup, not in the pass rate",
            s.errors
        )
    })
}

/// `2 test drills (1 tamper, 1 fault): …`, when there were any.
fn tests_text(s: &Summary) -> Option<String> {
    (s.test_drills > 0).then(|| {
        let of = |k: DrillKind| s.entries.iter().filter(|e| e.kind == k).count();
        let kinds: Vec<String> = [DrillKind::Tamper, DrillKind::Fault]
            .into_iter()
            .filter(|k| of(*k) > 0)
            .map(|k| format!("{} {}", of(k), k.as_str()))
            .collect();
        format!(
            "{} test drill{} ({}): made to fail, to test the tester; not counted",
            s.test_drills,
            if s.test_drills == 1 { "" } else { "s" },
            kinds.join(", ")
        )
    })
}

/// The summary for a terminal.
pub fn render_text(s: &Summary) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "drills {} … {}: {} in the window",
        s.since, s.at, s.drills
    );
    let _ = writeln!(o, "  {}", pass_rate_text(s));
    for line in [errors_text(s), tests_text(s)].into_iter().flatten() {
        let _ = writeln!(o, "  {line}");
    }
    if !s.budgets.is_empty() {
        let _ = writeln!(o, "  RTO used by the drills that ran:");
    }
    for b in &s.budgets {
        let _ = writeln!(
            o,
            "    {:<17} min {} / median {} / max {} of {}",
            b.name,
            human_ms(b.min_ms),
            human_ms(b.median_ms),
            human_ms(b.max_ms),
            human_ms(b.limit_ms)
        );
    }
    for p in &s.trend {
        let _ = writeln!(
            o,
            "  restore {} for {} ({})",
            human_ms(p.restore_ms),
            super::html::human_bytes(p.size_bytes),
            p.drill_id
        );
    }
    let _ = writeln!(o, "  size trend: {}", s.fit.describe());
    if let Some(r) = &s.rpo {
        let _ = writeln!(
            o,
            "  rpo: {} of {} full drills within {}; data lost min {} / median {} / max {}, worst case on the schedule {}, {} acknowledged commits lost",
            r.within,
            r.drills,
            human_ms(r.objective_ms),
            human_ms(r.min_ms),
            human_ms(r.median_ms),
            human_ms(r.max_ms),
            human_ms(r.worst_case_ms),
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

// ---- The overview page's charts -------------------------------------------------------

/// Width of every chart, SVG user units.
const WIDTH: f64 = 900.0;
/// Height of every chart.
const HEIGHT: f64 = 290.0;
/// Where the plot starts (the y axis' labels are left of it).
const LEFT: f64 = 80.0;
/// Where the plot ends.
const RIGHT: f64 = 880.0;
/// The plot's top.
const TOP: f64 = 24.0;
/// The x axis.
const BOTTOM: f64 = 236.0;
/// The least a bar of a non-zero value is drawn, wide or high, so that it is seen.
const MIN_BAR: f64 = 3.0;
/// The least room between two labels of the x axis.
const LABEL_ROOM: f64 = 76.0;

/// One tick mark of a chart: where, and its label.
#[derive(Debug, Serialize)]
struct Mark {
    at: f64,
    label: String,
}

/// A chart's frame: the plot area, the axes' ticks and titles.
#[derive(Debug, Serialize)]
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    y_title: String,
    x_title: String,
    y_ticks: Vec<Mark>,
    x_ticks: Vec<Mark>,
}

impl Frame {
    fn new(y: &Axis, y_title: &str, x_title: &str, x_ticks: Vec<Mark>) -> Frame {
        Frame {
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right: RIGHT,
            top: TOP,
            bottom: BOTTOM,
            y_title: y_title.into(),
            x_title: x_title.into(),
            y_ticks: y
                .ticks
                .iter()
                .map(|t| Mark {
                    at: y_at(y, t.value),
                    label: t.label.clone(),
                })
                .collect(),
            x_ticks,
        }
    }
}

/// The y coordinate of `v` on axis `a`.
fn y_at(a: &Axis, v: f64) -> f64 {
    r1(BOTTOM - (BOTTOM - TOP) * a.frac(v))
}

/// The height of a bar of `v` on axis `a`: to scale, and never less than [`MIN_BAR`].
fn bar_height(a: &Axis, v: f64) -> f64 {
    if v <= 0.0 {
        0.0
    } else {
        r1((BOTTOM - TOP) * a.frac(v)).max(MIN_BAR)
    }
}

/// `n` slots across the plot: a slot's width, and the width of the bar centred in it.
fn slots(n: usize) -> (f64, f64) {
    let slot = (RIGHT - LEFT) / n.max(1) as f64;
    (slot, r1(slot * 0.7).max(MIN_BAR))
}

/// The x labels of `n` slots: every one that has room, the first and the last.
fn slot_marks(labels: Vec<String>) -> Vec<Mark> {
    let n = labels.len();
    let (slot, _) = slots(n);
    let every = ((LABEL_ROOM / slot).ceil() as usize).max(1);
    labels
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, label)| Mark {
            at: r1(LEFT + slot * (i as f64 + 0.5)),
            label,
        })
        .collect()
}

/// The calendar period the pass-rate chart counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Day,
    Week,
    Month,
    Year,
}

/// The most columns the pass-rate chart draws before it counts by a longer period.
const MAX_COLUMNS: i64 = 60;

impl Period {
    /// The shortest period that spans `first..=last` in at most [`MAX_COLUMNS`] columns.
    fn for_span(first: NaiveDate, last: NaiveDate) -> Period {
        let days = (last - first).num_days();
        let months = i64::from(last.year() - first.year()) * 12 + i64::from(last.month())
            - i64::from(first.month());
        if days < 31 {
            Period::Day
        } else if days / 7 + 1 < MAX_COLUMNS {
            Period::Week
        } else if months < MAX_COLUMNS {
            Period::Month
        } else {
            Period::Year
        }
    }

    /// The first day of the period `d` is in (weeks start on Monday).
    fn start(self, d: NaiveDate) -> NaiveDate {
        let first = match self {
            Period::Day => Some(d),
            Period::Week => d.checked_sub_days(chrono::Days::new(u64::from(
                d.weekday().num_days_from_monday(),
            ))),
            Period::Month => d.with_day(1),
            Period::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1),
        };
        first.unwrap_or(d)
    }

    /// The first day of the next period, when the calendar has one.
    fn next(self, d: NaiveDate) -> Option<NaiveDate> {
        match self {
            Period::Day => d.checked_add_days(chrono::Days::new(1)),
            Period::Week => d.checked_add_days(chrono::Days::new(7)),
            Period::Month => d.checked_add_months(chrono::Months::new(1)),
            Period::Year => d.checked_add_months(chrono::Months::new(12)),
        }
    }

    /// The period's name in the chart's words.
    fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// The label of the period starting on `d`.
    fn label(self, d: NaiveDate) -> String {
        match self {
            Period::Day | Period::Week => d.format("%Y-%m-%d").to_string(),
            Period::Month => d.format("%Y-%m").to_string(),
            Period::Year => d.format("%Y").to_string(),
        }
    }
}

/// A part of an outcome column: the drills of one outcome.
#[derive(Debug, Serialize)]
struct Segment {
    /// `pass`, `fail` or `error`.
    outcome: &'static str,
    y: f64,
    h: f64,
    count: usize,
}

/// One period's drills, stacked by outcome.
#[derive(Debug, Serialize)]
struct Column {
    x: f64,
    w: f64,
    label: String,
    /// The period's pass rate over its drills that reached a verdict, or `–`.
    rate: String,
    rate_y: f64,
    title: String,
    segments: Vec<Segment>,
}

/// The pass rate over time: real drills per period, passed, failed and could-not-run
/// stacked apart.
#[derive(Debug, Serialize)]
struct OutcomeChart {
    frame: Frame,
    period: &'static str,
    columns: Vec<Column>,
}

fn outcome_chart(s: &Summary, at: Option<DateTime<Utc>>) -> Option<OutcomeChart> {
    let real: Vec<(NaiveDate, Verdict)> = s
        .entries
        .iter()
        .filter(|e| e.counts())
        .filter_map(|e| Some((e.at()?.date_naive(), e.verdict)))
        .collect();
    let first = real.first()?.0;
    let last = at.map_or(real.last()?.0, |t| t.date_naive()).max(first);
    let period = Period::for_span(first, last);
    let mut buckets: Vec<(NaiveDate, [usize; 3])> = Vec::new();
    let mut day = Some(period.start(first));
    while let Some(d) = day.filter(|d| *d <= last) {
        let end = period.next(d);
        let mut n = [0usize; 3];
        for (_, v) in real
            .iter()
            .filter(|(t, _)| *t >= d && end.is_none_or(|e| *t < e))
        {
            n[match v {
                Verdict::Pass => 0,
                Verdict::Fail => 1,
                Verdict::Error => 2,
            }] += 1;
        }
        buckets.push((d, n));
        day = end;
    }
    let most = buckets.iter().map(|(_, n)| n.iter().sum::<usize>()).max()?;
    let y = Axis::new(Quantity::Count, most as f64);
    let (slot, w) = slots(buckets.len());
    let columns = buckets
        .iter()
        .enumerate()
        .map(|(i, (d, n))| {
            let mut top = BOTTOM;
            let segments: Vec<Segment> = [("pass", n[0]), ("fail", n[1]), ("error", n[2])]
                .into_iter()
                .filter(|(_, c)| *c > 0)
                .map(|(outcome, count)| {
                    let h = bar_height(&y, count as f64);
                    top = r1(top - h);
                    Segment {
                        outcome,
                        y: top,
                        h,
                        count,
                    }
                })
                .collect();
            let rate = (n[0] + n[1] > 0)
                .then(|| format!("{:.0}%", 100.0 * n[0] as f64 / (n[0] + n[1]) as f64));
            Column {
                x: r1(LEFT + slot * i as f64 + (slot - w) / 2.0),
                w,
                label: period.label(*d),
                title: format!(
                    "{} of {}: {} passed, {} failed, {} could not run{}",
                    period.name(),
                    period.label(*d),
                    n[0],
                    n[1],
                    n[2],
                    rate.as_deref()
                        .map(|r| format!("; pass rate {r}"))
                        .unwrap_or_default()
                ),
                rate: rate.unwrap_or_else(|| {
                    if n[2] > 0 {
                        "–".into()
                    } else {
                        String::new()
                    }
                }),
                rate_y: r1(top - 5.0),
                segments,
            }
        })
        .collect();
    let labels = buckets.iter().map(|(d, _)| period.label(*d)).collect();
    Some(OutcomeChart {
        frame: Frame::new(
            &y,
            "drills",
            &format!("{} starting", period.name()),
            slot_marks(labels),
        ),
        period: period.name(),
        columns,
    })
}

/// One drill's RTO used.
#[derive(Debug, Serialize)]
struct RtoBar {
    x: f64,
    w: f64,
    y: f64,
    h: f64,
    verdict: Verdict,
    title: String,
}

/// A stretch of the objective line: drills in a row with the same objective.
#[derive(Debug, Serialize)]
struct Objective {
    x1: f64,
    x2: f64,
    y: f64,
    label: String,
}

/// The RTO used over time, one bar per drill that ran, against the objective.
#[derive(Debug, Serialize)]
struct RtoChart {
    frame: Frame,
    bars: Vec<RtoBar>,
    /// The objective's line, when it is on the scale.
    objective: Vec<Objective>,
    /// What the chart says of an objective too far above the bars to share their scale.
    above: Option<String>,
}

/// How far above the longest drill an objective may be and still share its scale: beyond,
/// the bars would shrink to slivers, and the objective is stated instead of drawn.
const OBJECTIVE_ON_SCALE: f64 = 4.0;

fn rto_chart(s: &Summary) -> Option<RtoChart> {
    let drills: Vec<(&Entry, &BudgetUse)> = s
        .entries
        .iter()
        .filter(|e| e.counts() && e.ran())
        .filter_map(|e| Some((e, e.used("total")?)))
        .collect();
    let used = drills.iter().map(|(_, b)| b.used_ms).max()? as f64;
    let limit = drills.iter().map(|(_, b)| b.limit_ms).max().unwrap_or(0) as f64;
    let on_scale = used == 0.0 || limit <= OBJECTIVE_ON_SCALE * used;
    let y = Axis::new(
        Quantity::Millis,
        if on_scale { used.max(limit) } else { used },
    );
    let (slot, w) = slots(drills.len());
    let bars = drills
        .iter()
        .enumerate()
        .map(|(i, (e, b))| {
            let h = bar_height(&y, b.used_ms as f64);
            RtoBar {
                x: r1(LEFT + slot * i as f64 + (slot - w) / 2.0),
                w,
                y: r1(BOTTOM - h),
                h,
                verdict: e.verdict,
                title: format!(
                    "{} ({}): RTO used {} of {}",
                    e.drill_id,
                    e.time,
                    human_ms(b.used_ms),
                    human_ms(b.limit_ms)
                ),
            }
        })
        .collect();
    let mut objective: Vec<Objective> = Vec::new();
    if on_scale {
        for (i, (_, b)) in drills.iter().enumerate() {
            let x2 = r1(LEFT + slot * (i + 1) as f64);
            match objective.last_mut() {
                Some(o) if o.y == y_at(&y, b.limit_ms as f64) => o.x2 = x2,
                _ => objective.push(Objective {
                    x1: r1(LEFT + slot * i as f64),
                    x2,
                    y: y_at(&y, b.limit_ms as f64),
                    label: format!("RTO objective {}", human_ms(b.limit_ms)),
                }),
            }
        }
    }
    let labels = drills
        .iter()
        .map(|(e, _)| {
            e.at()
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        })
        .collect();
    Some(RtoChart {
        frame: Frame::new(&y, "RTO used", "drill, by date", slot_marks(labels)),
        bars,
        objective,
        above: (!on_scale).then(|| {
            format!(
                "RTO objective {}: above this scale ({:.0}× the longest drill)",
                human_ms(limit as u64),
                limit / used
            )
        }),
    })
}

/// One drill on the size chart.
#[derive(Debug, Serialize)]
struct Dot {
    cx: f64,
    cy: f64,
    title: String,
}

/// A straight line on a chart.
#[derive(Debug, Serialize)]
struct Line {
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
}

/// Restore time against backup size, with the fitted line when there is one.
#[derive(Debug, Serialize)]
struct SizeChart {
    frame: Frame,
    dots: Vec<Dot>,
    line: Option<Line>,
    caption: String,
}

fn size_chart(s: &Summary) -> Option<SizeChart> {
    let biggest = s.trend.iter().map(|p| p.size_bytes).max()? as f64;
    let line_at = |bytes: f64| match s.fit {
        Fit::Fitted {
            ms_per_mib,
            intercept_ms,
            ..
        } => Some(intercept_ms + ms_per_mib * bytes / MIB),
        Fit::NotEnough { .. } => None,
    };
    let smallest = s.trend.iter().map(|p| p.size_bytes).min()? as f64;
    let slowest = s.trend.iter().map(|p| p.restore_ms).max()? as f64;
    let line_top = [line_at(smallest), line_at(biggest)]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max);
    let x = Axis::new(Quantity::Bytes, biggest);
    let y = Axis::new(Quantity::Millis, slowest.max(line_top));
    let x_at = |b: f64| r1(LEFT + (RIGHT - LEFT) * x.frac(b));
    let dots = s
        .trend
        .iter()
        .map(|p| Dot {
            cx: x_at(p.size_bytes as f64),
            cy: y_at(&y, p.restore_ms as f64),
            title: format!(
                "{}: restore {} for {}",
                p.drill_id,
                human_ms(p.restore_ms),
                super::html::human_bytes(p.size_bytes)
            ),
        })
        .collect();
    // The fitted line over the sizes drilled, cut where it would go below zero.
    let line = match (line_at(smallest), line_at(biggest)) {
        (Some(a), Some(b)) if a >= 0.0 || b >= 0.0 => {
            let (mut x1, mut y1, mut x2, mut y2) = (smallest, a, biggest, b);
            if y1 < 0.0 {
                x1 += (x2 - x1) * (-y1) / (y2 - y1);
                y1 = 0.0;
            }
            if y2 < 0.0 {
                x2 -= (x2 - x1) * (-y2) / (y1 - y2);
                y2 = 0.0;
            }
            Some(Line {
                x1: x_at(x1),
                y1: y_at(&y, y1),
                x2: x_at(x2),
                y2: y_at(&y, y2),
            })
        }
        _ => None,
    };
    let x_ticks = x
        .ticks
        .iter()
        .map(|t| Mark {
            at: x_at(t.value),
            label: t.label.clone(),
        })
        .collect();
    Some(SizeChart {
        frame: Frame::new(&y, "database restore time", "backup size", x_ticks),
        dots,
        line,
        caption: format!("Size trend: {}.", s.fit.describe()),
    })
}

/// One drill in the page's table.
#[derive(Debug, Serialize)]
struct Row {
    date: String,
    time: String,
    drill_id: String,
    /// `tamper` or `fault` for a test drill; empty for a real one.
    test: &'static str,
    verdict: Verdict,
    failed: Option<String>,
    rto: String,
    rto_over: bool,
    rpo: String,
    sha_short: String,
    sha: String,
    href: String,
    report_html: String,
}

/// Characters a path segment of an `href` must not carry as they are.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The link from a page in `page_dir` to `target`: relative, so that the page and the
/// drills' directories can move together (a CI artifact, a copy to an audit share).
fn href(target: &Path, page_dir: &Path) -> String {
    let rel = pathdiff::diff_paths(target, page_dir).unwrap_or_else(|| target.to_path_buf());
    let segments: Vec<String> = rel
        .components()
        .map(|c| match c {
            std::path::Component::RootDir => String::new(),
            c => percent_encoding::utf8_percent_encode(&c.as_os_str().to_string_lossy(), SEGMENT)
                .to_string(),
        })
        .collect();
    let joined = segments.join("/");
    if rel.is_absolute() {
        format!("file://{joined}")
    } else {
        joined
    }
}

fn rows(s: &Summary, page_dir: &Path) -> Vec<Row> {
    s.entries
        .iter()
        .map(|e| {
            let at = e.at();
            let total = e.used("total").filter(|_| e.ran());
            let target = std::path::absolute(e.report_dir())
                .unwrap_or_else(|_| e.report_dir())
                .join("report.html");
            let sha = e.backup_sha256.clone().unwrap_or_default();
            Row {
                date: at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| e.time.clone()),
                time: e.time.clone(),
                drill_id: e.drill_id.clone(),
                test: if e.counts() { "" } else { e.kind.as_str() },
                verdict: e.verdict,
                failed: e.failed.clone(),
                rto: match total {
                    Some(b) => format!("{} of {}", human_ms(b.used_ms), human_ms(b.limit_ms)),
                    None => "did not run".into(),
                },
                rto_over: total.is_some_and(|b| b.used_ms > b.limit_ms),
                rpo: match &e.rpo {
                    Some(r) => format!(
                        "{} lost of {}{}",
                        human_ms(r.achieved_ms),
                        human_ms(r.objective_ms),
                        if r.verdict == crate::rpo::RpoVerdict::Pass {
                            ""
                        } else {
                            " (exceeded)"
                        }
                    ),
                    None => "not measured".into(),
                },
                sha_short: sha.chars().take(12).collect(),
                sha,
                href: href(&target, page_dir),
                report_html: target.display().to_string(),
            }
        })
        .collect()
}

/// The overview page, to be written at `page`: the pass rate over time, the RTO used over
/// time against its objective, restore time against backup size (inline SVG), the budgets
/// and the RPO, and every drill with a link to its report.html (relative to `page`).
pub fn render_html(s: &Summary, page: &Path) -> String {
    let mut env = super::html::environment();
    env.add_filter("dur", human_ms);
    let tmpl = env.get_template("history.html").expect("template exists");
    let page_dir = page
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let page_dir = std::path::absolute(page_dir).unwrap_or_else(|_| page_dir.to_path_buf());
    let at = crate::duration::parse_time(&s.at).ok();
    tmpl.render(context! {
        s => s,
        pass_rate => pass_rate_text(s),
        errors => errors_text(s),
        tests => tests_text(s),
        outcomes => outcome_chart(s, at),
        rto => rto_chart(s),
        sizes => size_chart(s),
        rows => rows(s, &page_dir),
    })
    .unwrap_or_else(|e| panic!("history.html template: {e:#}"))
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
