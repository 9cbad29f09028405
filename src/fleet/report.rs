//! `pgdrill fleet report DIR`: the newest report of every database of a fleet, one row each,
//! the failures first. A database the fleet file lists without a report, or with one older
//! than `--max-age`, is a failure too: a task that never ran proves nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Fleet, FleetError};
use crate::plan::BudgetName;
use crate::report::{Report, Verdict};

/// What the fleet report says of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its drill failed: the backup or the recovery is wrong.
    Fail,
    /// Its drill could not run (the machine, not the backup).
    Error,
    /// The fleet file lists it and no report of it is there.
    Missing,
    /// Its newest report is older than `--max-age`.
    Stale,
    /// Its report.json cannot be read.
    Unreadable,
    /// Its newest drill passed.
    Pass,
}

impl Outcome {
    /// Whether the database passed.
    pub fn passed(self) -> bool {
        self == Outcome::Pass
    }

    /// The word in the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Missing => "missing",
            Outcome::Stale => "stale",
            Outcome::Unreadable => "unreadable",
            Outcome::Pass => "pass",
        }
    }
}

/// One database's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The database (its directory under the reports).
    pub database: String,
    /// What the row says.
    pub outcome: Outcome,
    /// Why it is not a pass, for people: the failing phase and message, or what is missing.
    pub why: Option<String>,
    /// The newest drill's id.
    pub drill_id: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// The RTO used, ms.
    pub rto_used_ms: Option<u64>,
    /// The RTO budget, ms.
    pub rto_limit_ms: Option<u64>,
    /// The RPO achieved, ms (drills that measure it).
    pub rpo_ms: Option<u64>,
    /// The backup's age when the drill finished, ms.
    pub backup_age_ms: Option<u64>,
    /// Its report.json, relative to the reports directory.
    pub report: Option<PathBuf>,
    /// How many reports of it the directory holds.
    pub drills: usize,
}

/// The fleet report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetReport {
    /// The fleet's name, when its file was given.
    pub fleet: Option<String>,
    /// The reports directory read.
    pub dir: PathBuf,
    /// When this report was made.
    pub generated_at: String,
    /// The oldest report that still counts, when `--max-age` was given.
    pub max_age_ms: Option<u64>,
    /// One row a database, the failures first.
    pub rows: Vec<Row>,
    /// Databases that passed.
    pub passed: usize,
    /// Databases that did not.
    pub failed: usize,
}

impl FleetReport {
    /// The fleet's verdict: a pass only when every database passed.
    pub fn verdict(&self) -> Verdict {
        if self.failed == 0 && !self.rows.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// Reads `dir/<database>/*/report.json` (what `fleet run` writes) into the fleet report. With
/// the fleet file, its databases are the rows (and one without a report is missing);
/// without it, every subdirectory holding a report is one.
pub fn gather(
    dir: &Path,
    fleet: Option<&Fleet>,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<FleetReport, FleetError> {
    let unreadable = |path: &Path, e: &dyn std::fmt::Display| FleetError::Reports {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if !dir.is_dir() {
        return Err(FleetError::Reports {
            path: dir.to_path_buf(),
            message: "not a directory: give the directory the fleet's tasks write their reports into (the fleet file's [reports] path)".into(),
        });
    }
    let names: Vec<String> = match fleet {
        Some(f) => f.databases.iter().map(|d| d.name.clone()).collect(),
        None => {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, &e))? {
                let entry = entry.map_err(|e| unreadable(dir, &e))?;
                if entry.path().is_dir() && !reports_of(&entry.path()).is_empty() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            if names.is_empty() {
                return Err(FleetError::Reports {
                    path: dir.to_path_buf(),
                    message: "no <database>/<time>/report.json under it: is it the fleet's reports directory? (give --fleet FILE to list the databases that should be there)".into(),
                });
            }
            names.sort();
            names
        }
    };
    let mut rows: Vec<Row> = names
        .iter()
        .map(|name| row(dir, name, max_age, now))
        .collect();
    rows.sort_by(|a, b| (a.outcome, &a.database).cmp(&(b.outcome, &b.database)));
    let passed = rows.iter().filter(|r| r.outcome.passed()).count();
    Ok(FleetReport {
        fleet: fleet.map(|f| f.settings.name.clone()),
        dir: dir.to_path_buf(),
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        max_age_ms: max_age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        failed: rows.len() - passed,
        passed,
        rows,
    })
}

/// The report.json files of one database's drills.
fn reports_of(db_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(db_dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("report.json"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn row(dir: &Path, name: &str, max_age: Option<Duration>, now: DateTime<Utc>) -> Row {
    let mut row = Row {
        database: name.to_string(),
        outcome: Outcome::Missing,
        why: None,
        drill_id: None,
        started_at: None,
        rto_used_ms: None,
        rto_limit_ms: None,
        rpo_ms: None,
        backup_age_ms: None,
        report: None,
        drills: 0,
    };
    let files = reports_of(&dir.join(name));
    row.drills = files.len();
    if files.is_empty() {
        row.why = Some(format!(
            "no report under {}: its task did not run or did not finish",
            dir.join(name).display()
        ));
        return row;
    }
    // The newest by its own start time; an unreadable one is a finding, never skipped.
    let mut newest: Option<(DateTime<Utc>, Report, PathBuf)> = None;
    for file in &files {
        let rel = file.strip_prefix(dir).unwrap_or(file).to_path_buf();
        let parsed = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Report>(&b).map_err(|e| e.to_string()))
            .and_then(|r| {
                crate::duration::parse_time(&r.started_at)
                    .map(|t| (t, r))
                    .map_err(|e| format!("started_at: {e}"))
            });
        match parsed {
            Ok((t, r)) => {
                if newest.as_ref().is_none_or(|(n, _, _)| t > *n) {
                    newest = Some((t, r, rel));
                }
            }
            Err(e) => {
                row.outcome = Outcome::Unreadable;
                row.why = Some(format!("{} cannot be read: {e}", rel.display()));
                row.report = Some(rel);
                return row;
            }
        }
    }
    let Some((started, r, rel)) = newest else {
        return row;
    };
    let total = r.budgets.iter().find(|b| b.name == BudgetName::Total);
    row.drill_id = Some(r.drill_id.clone());
    row.started_at = Some(r.started_at.clone());
    row.rto_used_ms = total.map(|b| b.used_ms);
    row.rto_limit_ms = total.map(|b| b.limit_ms);
    row.rpo_ms = r.rpo.as_ref().map(|p| p.achieved_ms);
    row.backup_age_ms = r.backup_age_ms();
    row.report = Some(rel);
    row.outcome = match r.verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
        Verdict::Error => Outcome::Error,
    };
    row.why = r
        .failure
        .as_ref()
        .map(|f| format!("{} ({}): {}", f.phase, f.class, first_line(&f.message)));
    if let Some(max) = max_age {
        let age = (now - started).to_std().unwrap_or_default();
        if age > max {
            row.why = Some(format!(
                "its newest drill started {} ago, more than --max-age {}{}",
                crate::duration::human(age),
                crate::duration::human(max),
                row.why
                    .as_deref()
                    .map(|w| format!("; it said {w}"))
                    .unwrap_or_default()
            ));
            row.outcome = Outcome::Stale;
        }
    }
    row
}

/// A message's first line, and the next when the first only announces it (`…corrupted:`).
fn first_line(s: &str) -> String {
    let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    match lines.next() {
        Some(next) if first.ends_with(':') => format!("{first} {next}"),
        _ => first.to_string(),
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "–".into(), crate::duration::human_ms)
}

/// The cells of a row, in the tables' order.
fn cells(r: &Row) -> [String; 6] {
    [
        r.database.clone(),
        r.outcome.as_str().to_string(),
        match (r.rto_used_ms, r.rto_limit_ms) {
            (Some(u), Some(l)) => format!("{} of {}", ms(Some(u)), ms(Some(l))),
            _ => "–".into(),
        },
        ms(r.rpo_ms),
        ms(r.backup_age_ms),
        r.why.clone().unwrap_or_default(),
    ]
}

const HEADINGS: [&str; 6] = [
    "database",
    "verdict",
    "RTO used",
    "RPO",
    "backup age",
    "why",
];

/// One line for the console and notifications.
pub fn summary(f: &FleetReport) -> String {
    let failing: Vec<&str> = f
        .rows
        .iter()
        .filter(|r| !r.outcome.passed())
        .map(|r| r.database.as_str())
        .collect();
    format!(
        "fleet{}: {} of {} databases passed{}",
        f.fleet
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default(),
        f.passed,
        f.rows.len(),
        if failing.is_empty() {
            String::new()
        } else {
            format!("; not passing: {}", failing.join(", "))
        }
    )
}

/// The Markdown report (and the console's table).
pub fn render_markdown(f: &FleetReport) -> String {
    let mut out = format!("# pgdrill fleet report\n\n{}\n\n", summary(f));
    out.push_str(&format!(
        "Reports read from `{}` at {}{}.\n\n",
        f.dir.display(),
        f.generated_at,
        f.max_age_ms
            .map(|m| format!("; a drill older than {} counts as stale", ms(Some(m))))
            .unwrap_or_default()
    ));
    out.push_str(&format!("| {} |\n", HEADINGS.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADINGS.len())));
    for r in &f.rows {
        let c = cells(r).map(|c| c.replace('|', "\\|"));
        out.push_str(&format!("| {} |\n", c.join(" | ")));
    }
    out
}

const HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pgdrill fleet report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
.pass { color: #17692b; } .fail, .error, .missing, .stale, .unreadable { color: #a11; font-weight: bold; }
</style></head><body>
<h1>pgdrill fleet report</h1>
<p>{{ summary }}</p>
<p>Reports read from <code>{{ dir }}</code> at {{ generated_at }}.</p>
<table><thead><tr>{% for h in headings %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for r in rows %}<tr>{% for c in r.cells %}<td{% if loop.index == 2 %} class="{{ c }}"{% endif %}>{% if loop.index == 1 and r.link %}<a href="{{ r.link }}">{{ c }}</a>{% else %}{{ c }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
</body></html>
"#;

/// The HTML page, each database linked to its report.html.
pub fn render_html(f: &FleetReport) -> String {
    let mut env = minijinja::Environment::new();
    env.add_template("fleet.html", HTML)
        .expect("the fleet template parses");
    let rows: Vec<minijinja::Value> = f
        .rows
        .iter()
        .map(|r| {
            minijinja::context! {
                cells => cells(r).to_vec(),
                link => r.report.as_ref().map(|p| p.with_file_name("report.html").display().to_string()),
            }
        })
        .collect();
    env.get_template("fleet.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                summary => summary(f),
                dir => f.dir.display().to_string(),
                generated_at => f.generated_at.clone(),
                headings => HEADINGS.to_vec(),
                rows => rows,
            })
        })
        .expect("the fleet template renders strings")
}

/// junit.xml: one test case a database, failed unless it passed.
pub fn render_junit(f: &FleetReport) -> String {
    use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};
    let name = format!("pgdrill fleet {}", f.fleet.as_deref().unwrap_or(""));
    let mut suite = TestSuite::new(name.trim_end().to_string());
    for r in &f.rows {
        let status = if r.outcome.passed() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_type(r.outcome.as_str());
            s.set_message(r.why.clone().unwrap_or_else(|| r.outcome.as_str().into()));
            s
        };
        let mut case = TestCase::new(r.database.clone(), status);
        case.set_classname("fleet");
        if let Some(ms) = r.rto_used_ms {
            case.set_time(Duration::from_millis(ms));
        }
        suite.add_test_case(case);
    }
    let mut report = JUnit::new("pgdrill");
    report.add_test_suite(suite);
    report
        .to_string()
        .expect("a junit report of strings serialises")
}
