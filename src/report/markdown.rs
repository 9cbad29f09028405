//! report.md: the report for people and auditors, and the stdout summary.

use std::fmt::Write;

use super::{BudgetVerdict, ObjectiveVerdict, Report, Status, Verdict};
use crate::rpo::{RpoReport, RpoVerdict};

/// Milliseconds as a person says them (`350 ms`, `4.5 s`, `1m 12s`): the one duration style
/// of every rendering ([`crate::duration::human_ms`]); report.json keeps integer ms.
pub fn secs(ms: u64) -> String {
    crate::duration::human_ms(ms)
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "**FAIL**",
        Status::Skipped => "skipped",
    }
}

fn budget_verdict(v: BudgetVerdict) -> &'static str {
    match v {
        BudgetVerdict::Pass => "pass",
        BudgetVerdict::Fail => "**FAIL**",
        BudgetVerdict::Incomplete => "**incomplete**",
        BudgetVerdict::Skipped => "skipped",
    }
}

fn objective_verdict(v: ObjectiveVerdict) -> &'static str {
    match v {
        ObjectiveVerdict::Pass => "pass",
        ObjectiveVerdict::Fail => "**FAIL**",
        ObjectiveVerdict::NotMeasured => "not measured",
    }
}

pub use super::vocab::{SEQUENCE_COLUMN, SEQUENCE_RULE};

/// The objectives against the achievements: one table, the RTO rows then the RPO, the top
/// of the report.
fn objectives_section(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "## Objectives\n\n| Objective | Target | Achieved | Verdict |\n|---|---:|---:|---|"
    );
    let total = r
        .budgets
        .iter()
        .filter(|b| b.name == crate::plan::BudgetName::Total);
    let groups = r
        .budgets
        .iter()
        .filter(|b| b.name != crate::plan::BudgetName::Total);
    for b in total.chain(groups) {
        let label = match b.name {
            crate::plan::BudgetName::Total => "RTO total".to_string(),
            n => format!("RTO: {}", n.as_str().replace('_', " ")),
        };
        let achieved = match b.verdict {
            BudgetVerdict::Skipped => "-".to_string(),
            BudgetVerdict::Incomplete => format!("{} (unfinished)", secs(b.used_ms)),
            _ => secs(b.used_ms),
        };
        let verdict = match &b.reason {
            Some(why) => format!("{}: {}", budget_verdict(b.verdict), cell(why)),
            None => budget_verdict(b.verdict).to_string(),
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {achieved} | {verdict} |",
            secs(b.limit_ms)
        );
    }
    let Some(o) = &r.objectives else {
        return;
    };
    let p = &o.rpo;
    let _ = writeln!(
        s,
        "| RPO (data lost) | {} | {} | {} |",
        secs(p.objective_ms),
        p.achieved_ms
            .map(secs)
            .unwrap_or_else(|| "not measured in this drill".into()),
        objective_verdict(p.verdict)
    );
    let _ = writeln!(
        s,
        "| Backup age at the disaster | {} | {} | {} |",
        secs(p.objective_ms),
        p.backup_age_ms
            .map(secs)
            .unwrap_or_else(|| "unknown".into()),
        objective_verdict(p.backup_age_verdict)
    );
    let _ = writeln!(s, "\n{}\n\n{}\n", o.rto_clock, p.note);
}

/// The record of the exercise: who, why, under which ticket, what was found.
fn record_section(s: &mut String, r: &Report) {
    let Some(rec) = &r.record else {
        return;
    };
    let _ = writeln!(s, "## Record\n\n| | |\n|---|---|");
    let _ = writeln!(s, "| Operator | {} |", cell(&rec.operator));
    let rows = [
        ("Approver", &rec.approver),
        ("Ticket", &rec.ticket),
        ("Purpose", &rec.purpose),
        ("Environment", &rec.environment),
        ("Next scheduled test", &rec.next_scheduled_test),
        ("CI run", &rec.ci_run_url),
        ("pgdrill commit", &rec.pgdrill_commit),
    ];
    for (name, v) in rows {
        let _ = writeln!(
            s,
            "| {name} | {} |",
            v.as_deref().map(cell).unwrap_or_else(|| "not given".into())
        );
    }
    let _ = writeln!(s, "\n### Issues found\n");
    if rec.issues_found.is_empty() {
        let _ = writeln!(s, "None.");
    }
    for i in &rec.issues_found {
        let _ = writeln!(s, "- {}", cell(i));
    }
    s.push('\n');
}

/// The warnings every reader must see (a strategy role without a real contact): first, so
/// that they are not missed.
fn warnings_section(s: &mut String, r: &Report) {
    let warnings = r.warning_messages();
    if warnings.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Warnings\n");
    for w in warnings {
        let _ = writeln!(s, "- {}", cell(w));
    }
    s.push('\n');
}

/// The restore target's settings beside the RTO: the measured time is this server's.
fn server_settings_section(s: &mut String, r: &Report) {
    let Some(info) = &r.server_settings else {
        return;
    };
    let _ = writeln!(
        s,
        "## Restore target's settings\n\nThe RTO above is this server's: its settings as it reported them after the restore (`SHOW`). *Set by* is `default` where pgdrill set nothing (PostgreSQL's default or the server's own configuration), `--server-setting`, or `copied` (`--server-settings-from`{}).\n\n| Setting | Value | Set by | Server's source |\n|---|---|---|---|",
        info.copied_from
            .as_deref()
            .map(|f| format!(" {}", cell(f)))
            .unwrap_or_default()
    );
    for e in &info.settings {
        let given = match &e.requested {
            Some(v) if *v != e.value => format!(" (given as {})", cell(v)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "| `{}` | {}{given} | {} | {} |",
            e.name,
            cell(&e.value),
            e.origin.as_str(),
            cell(&e.source)
        );
    }
    s.push('\n');
}

/// The emergency contacts: whom to call when a restore fails. Absent from reports written
/// before contacts were (no contacts and no warnings).
fn contacts_section(s: &mut String, r: &Report) {
    if r.contacts.is_empty() && r.warnings.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Emergency contacts\n");
    if r.contacts.is_empty() {
        let _ = writeln!(s, "None given (see the warnings above).\n");
        return;
    }
    let _ = writeln!(s, "| Role | How to reach |\n|---|---|");
    for c in &r.contacts {
        let _ = writeln!(s, "| {} | {} |", cell(&c.role), cell(&c.reach));
    }
    s.push('\n');
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR (drill could not run)",
    }
}

/// The point-in-time recovery: the stanza or server, the backup restored, the WAL range, the target
/// and where recovery stopped.
fn pitr_section(s: &mut String, r: &Report) {
    let Some(p) = &r.pitr else {
        return;
    };
    let _ = writeln!(s, "\n## Point-in-time recovery\n\n| | |\n|---|---|");
    let tool = p
        .tool_version
        .clone()
        .unwrap_or_else(|| p.tool.program().to_string());
    let _ = writeln!(s, "| Tool | {} |", cell(&tool));
    let (what, name) = match (&p.stanza, &p.server) {
        (Some(n), _) => ("Stanza", n.as_str()),
        (None, Some(n)) => ("Server", n.as_str()),
        (None, None) => ("Stanza", "-"),
    };
    let _ = writeln!(
        s,
        "| {what} | `{}` ({} backups) |",
        name, p.backups_in_stanza
    );
    if let Some(b) = &p.backup {
        let lsn =
            |l: Option<crate::pitr::Lsn>| l.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| Backup | `{}` ({:?}, {} bytes, {} in the repository), {} – {} |",
            b.label,
            b.kind,
            b.size_bytes,
            b.repo_size_bytes,
            b.started_at.to_rfc3339(),
            b.stopped_at.to_rfc3339()
        );
        let _ = writeln!(
            s,
            "| Backup LSN | {} – {} |",
            lsn(b.lsn_start),
            lsn(b.lsn_stop)
        );
    }
    let _ = writeln!(
        s,
        "| WAL archived | {} – {} |",
        p.wal_min.as_deref().unwrap_or("-"),
        p.wal_max.as_deref().unwrap_or("-")
    );
    let _ = writeln!(s, "| Target | {} |", p.target);
    if let Some(rec) = &p.recovery {
        let _ = writeln!(
            s,
            "| Recovery stopped | LSN {}, last commit replayed {} |",
            rec.stopped_lsn
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into()),
            rec.stopped_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".into())
        );
        if let Some(line) = &rec.stop_line {
            let _ = writeln!(s, "| Server log | {} |", cell(line));
        }
        if let (Some(ended), Some(new)) = (rec.timeline, rec.promoted_timeline) {
            let _ = writeln!(
                s,
                "| Timeline | recovery ended on {ended}, promotion began {new} |"
            );
        }
        let _ = writeln!(s, "| Replay | {} ms until promotion |", rec.replay_ms);
    }
    if let Some(db) = &p.database {
        let _ = writeln!(s, "| Verified database | `{db}` |");
    }
}

/// Renders the whole report as Markdown.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let title = match r.kind {
        super::ReportKind::Rollback => "Code rollback",
        _ => "Restore drill",
    };
    let _ = writeln!(s, "# {title} {}: {}\n", r.drill_id, verdict(r.verdict));
    warnings_section(&mut s, r);
    objectives_section(&mut s, r);
    server_settings_section(&mut s, r);
    if let Some(g) = &r.forecast {
        s.push_str(&super::forecast::markdown(g));
    }
    record_section(&mut s, r);
    contacts_section(&mut s, r);
    let _ = writeln!(s, "## Drill\n\n| | |\n|---|---|");
    let _ = writeln!(s, "| Started | {} |", r.started_at);
    let _ = writeln!(s, "| Finished | {} |", r.finished_at);
    let _ = writeln!(
        s,
        "| Run by | {} on {} |",
        r.environment.run_by, r.environment.host
    );
    let _ = writeln!(s, "| Backend | {} |", r.environment.backend);
    let _ = writeln!(s, "| Server | {} |", r.environment.server_version);
    for (tool, v) in &r.environment.tools {
        let _ = writeln!(s, "| {tool} | {v} |");
    }
    let _ = writeln!(s, "| pgdrill | {} |", r.environment.pgdrill_version);
    let src = &r.source;
    let mut src_line = src.kind.to_string();
    if let (Some(rows), Some(seed)) = (src.rows, src.seed) {
        let _ = write!(src_line, " ({rows} users, seed {seed})");
    }
    if let Some(d) = &src.dsn {
        let _ = write!(src_line, " {d}");
    }
    if let Some(l) = &src.location {
        let _ = write!(src_line, " `{l}`");
    }
    if !src.database.is_empty() {
        let _ = write!(src_line, ", database `{}`", src.database);
    }
    let _ = writeln!(s, "| Source | {src_line} |");
    let _ = writeln!(
        s,
        "| Disaster | {}: {} |",
        r.disaster.kind, r.disaster.detail
    );
    if let Some(f) = &r.failure {
        let _ = writeln!(
            s,
            "\n## Failure\n\nPhase `{}` failed ({}):\n\n```\n{}\n```\n\n{}",
            f.phase,
            f.class,
            f.message,
            cell(&r.call_line())
        );
    }
    pitr_section(&mut s, r);
    if let Some(b) = &r.backup {
        let _ = writeln!(s, "\n## Backup\n\n| | |\n|---|---|");
        let _ = writeln!(s, "| File | `{}` |", b.file);
        let _ = writeln!(s, "| Size | {} bytes |", b.size_bytes);
        let _ = writeln!(s, "| SHA-256 | `{}` |", b.sha256);
        if let Some(c) = &b.created_at {
            let _ = writeln!(s, "| Taken at | {c} |");
        }
        let _ = writeln!(s, "| Took | {} |", secs(b.duration_ms));
        if let Some(m) = &b.manifest {
            let _ = writeln!(s, "| Manifest | `{m}` |");
        }
        if let Some(g) = &b.globals {
            let _ = writeln!(s, "| Roles (globals) | `{g}` |");
        }
        if let Some(h) = &b.manifest_sha256 {
            let _ = writeln!(s, "| Manifest SHA-256 | `{h}` |");
        }
        if let Some(n) = b.database_size_bytes {
            let _ = writeln!(s, "| Database size (restored) | {n} bytes |");
        }
        for (name, n) in [("Previous backup", &b.previous), ("Next backup", &b.next)] {
            if let Some(n) = n {
                let _ = writeln!(
                    s,
                    "| {name} | `{}`{} |",
                    n.file,
                    n.taken_at
                        .as_deref()
                        .map(|t| format!(", taken {t}"))
                        .unwrap_or_default()
                );
            }
        }
        if let Some(t) = &b.retention {
            let _ = writeln!(s, "| Retention | {} |", cell(t));
        }
        if let Some(v) = &b.repo_last_verify {
            let _ = writeln!(s, "| Repository's last verify | {} |", cell(v));
        }
    }
    let _ = writeln!(
        s,
        "\n## Phases\n\n| Phase | Budget | Status | Duration | Detail |\n|---|---|---|---:|---|"
    );
    for p in &r.phases {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            p.name,
            p.budget.map(|b| b.as_str()).unwrap_or("-"),
            status(p.status),
            secs(p.duration_ms),
            cell(&p.detail)
        );
    }
    let _ = writeln!(
        s,
        "\n## Recovery time budgets\n\n| Budget | Limit | Used | Verdict | Why |\n|---|---:|---:|---|---|"
    );
    for b in &r.budgets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            b.name.as_str(),
            secs(b.limit_ms),
            secs(b.used_ms),
            budget_verdict(b.verdict),
            b.reason.as_deref().map(cell).unwrap_or_default()
        );
    }
    if let Some(i) = &r.integrity {
        let c = &i.comparison;
        let _ = writeln!(
            s,
            "\n## Integrity: {}\n\nCompared with: {}\n",
            if c.verdict == crate::snapshot::Verdict::Pass {
                "pass"
            } else {
                "**FAIL**"
            },
            i.basis
        );
        let _ = writeln!(s, "| Table | Rows before | Rows after | Fingerprint before | Fingerprint after | Match |\n|---|---:|---:|---|---|---|");
        for t in &c.tables {
            let _ = writeln!(
                s,
                "| {} | {} | {} | `{}` | `{}` | {} |",
                t.name,
                opt(&t.rows_before),
                opt(&t.rows_after),
                short(t.fingerprint_before.as_deref()),
                short(t.fingerprint_after.as_deref()),
                tri(t.matches)
            );
        }
        if !c.sequences.is_empty() {
            let _ = writeln!(
                s,
                "\n{SEQUENCE_RULE}\n\n| Sequence | Before | After | {SEQUENCE_COLUMN} |\n|---|---:|---:|---|"
            );
            for q in &c.sequences {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    q.name,
                    opt(&q.before),
                    opt(&q.after),
                    tri(q.matches)
                );
            }
        }
        let _ = writeln!(
            s,
            "\nSchema fingerprint: `{}` → `{}`: {}",
            short(c.schema.before.as_deref()),
            short(c.schema.after.as_deref()),
            match c.schema.matches {
                Some(true) => "match",
                Some(false) => "**differs**",
                None => "not compared",
            }
        );
        for d in &c.schema.differences {
            let _ = writeln!(s, "- {d}");
        }
        if !c.warnings.is_empty() {
            let _ = writeln!(
                s,
                "\n### Integrity warnings\n\nKnown pg_dump transformations and problems the source already had: they do not fail the drill (`--strict-schema` fails the transformations).\n\n| Kind | Object | Why |\n|---|---|---|"
            );
            for w in &c.warnings {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    w.kind.as_str(),
                    cell(&w.object),
                    cell(&w.reason)
                );
            }
        }
        if !c.not_compared.is_empty() {
            let _ = writeln!(s, "\n### Not compared\n\n| Relation | Why |\n|---|---|");
            for n in &c.not_compared {
                let _ = writeln!(s, "| {} | {} |", cell(&n.name), cell(&n.reason));
            }
        }
        let _ = writeln!(
            s,
            "\n| Check | Expected | Actual | Pass |\n|---|---|---|---|"
        );
        for k in &c.checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                k.name,
                cell(k.expected.as_deref().unwrap_or("-")),
                cell(k.actual.as_deref().unwrap_or("-")),
                yes(k.pass)
            );
        }
    }
    super::full::markdown(&mut s, r.config.as_ref(), r.rollback.as_ref(), r.kind);
    if let Some(rpo) = &r.rpo {
        rpo_section(&mut s, rpo);
    }
    if let Some(d) = &r.detection {
        detection_section(&mut s, d);
    }
    let _ = writeln!(
        s,
        "\n## Verification checklist\n\n| Item | Status | Evidence |\n|---|---|---|"
    );
    for c in &r.checklist {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            c.item,
            status(c.status),
            cell(&c.evidence)
        );
    }
    if let Some(x) = &r.restore {
        restore_section(&mut s, x);
    }
    if let Some(x) = &r.config_restore {
        config_restore_section(&mut s, x);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// Lines of a failure message the console shows after its headline.
const SHOWN: usize = 4;
/// Characters of one line the console shows: a program may write its whole error on one.
const LINE_CHARS: usize = 400;

/// A failure message as the console shows it, ending in a newline: its headline, then up to
/// [`SHOWN`] lines of what followed (each after `indent`), then how many more lines there
/// are in `full_text_in`. A program's failure is a headline and then what the program said:
/// the headline alone ("pg_restore failed (exit status: 1).") would leave out the reason,
/// and all of a program's 600 lines would bury it.
pub fn cut_message(message: &str, indent: &str, full_text_in: &str) -> String {
    let line = |l: &str| match l.char_indices().nth(LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &l[..cut]),
        None => l.to_string(),
    };
    let mut lines = message.lines().filter(|l| !l.trim().is_empty());
    let mut s = format!("{}\n", line(lines.next().unwrap_or("")));
    let rest: Vec<&str> = lines.collect();
    for l in rest.iter().take(SHOWN) {
        let _ = writeln!(s, "{indent}{}", line(l));
    }
    if rest.len() > SHOWN {
        let _ = writeln!(
            s,
            "{indent}… {} more line(s) in {full_text_in}",
            rest.len() - SHOWN
        );
    }
    s
}

/// A few lines for stdout.
pub fn summary(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "pgdrill {}: {}", r.drill_id, verdict(r.verdict));
    if let Some(f) = &r.failure {
        let _ = write!(
            s,
            "  failed at {}: {}",
            f.phase,
            cut_message(&f.message, "    ", "report.md")
        );
        let _ = writeln!(s, "  {}", r.call_line());
    }
    for b in &r.budgets {
        let _ = writeln!(
            s,
            "  {:<17} {:>12} of {:>12}  {}",
            b.name.as_str(),
            secs(b.used_ms),
            secs(b.limit_ms),
            b.verdict.as_str()
        );
    }
    if let Some(i) = &r.integrity {
        let c = &i.comparison;
        let ok = c.tables.iter().filter(|t| t.matches == Some(true)).count();
        let _ = writeln!(
            s,
            "  integrity: {} ({}/{} tables identical, {} checks)",
            if c.verdict == crate::snapshot::Verdict::Pass {
                "pass"
            } else {
                "FAIL"
            },
            ok,
            c.tables.len(),
            c.checks.len()
        );
        for w in &c.warnings {
            let _ = writeln!(s, "  integrity warning: {}", w.line());
        }
    }
    if let Some(c) = &r.config {
        let _ = writeln!(
            s,
            "  config: {} restored, {} checks passed ({})",
            c.backup,
            c.checks.len(),
            c.files.join(", ")
        );
    }
    if let Some(rb) = &r.rollback {
        let _ = writeln!(
            s,
            "  code: {} rolled back to {}{}",
            rb.from.as_ref().map(|f| f.tag.as_str()).unwrap_or("-"),
            rb.to.tag,
            match &rb.reported {
                Some(v) => format!(", the app reports {}", v.release.as_deref().unwrap_or("-")),
                None => String::new(),
            }
        );
    }
    if let Some(p) = &r.rpo {
        let _ = writeln!(s, "  {}", rpo_line(p));
    }
    if let Some(d) = &r.detection {
        let _ = writeln!(s, "  {}", detection_line(d));
    }
    if let Some(info) = &r.server_settings {
        let _ = writeln!(s, "  restore target: {}", info.line());
    }
    for w in r.warning_messages() {
        let _ = writeln!(s, "  warning: {w}");
    }
    s
}

/// The negative controls: each damage, the class its check had to give and gave, the time
/// (apart from the budgets), and the coverage.
fn detection_section(s: &mut String, d: &super::Detection) {
    let _ = writeln!(
        s,
        "\n## Detection: {}\n\nNegative controls (`--negative-controls {}`): damaged copies the drill's own checks must fail. Coverage {}; {} spent on them, not counted in any RTO budget.\n",
        detection_verdict(d),
        d.mode.as_str(),
        d.coverage_text(),
        secs(d.duration_ms)
    );
    if let Some(n) = &d.note {
        let _ = writeln!(s, "{}\n", cell(n));
    }
    if d.controls.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "| Control | Injected | Expected | Produced | Outcome | Time | Detail |\n|---|---|---|---|---|---:|---|"
    );
    for c in &d.controls {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.control,
            cell(&c.injected),
            c.expected,
            opt(&c.produced),
            control_outcome(c.outcome),
            secs(c.duration_ms),
            cell(&c.detail)
        );
    }
}

fn control_outcome(o: super::vocab::ControlOutcome) -> &'static str {
    use super::vocab::ControlOutcome as O;
    match o {
        O::Detected => "detected",
        O::Missed => "**MISSED**",
        O::NotApplicable => "not applicable",
    }
}

/// `pass`, `**FAIL**` (a control missed) or `not run`.
fn detection_verdict(d: &super::Detection) -> &'static str {
    match d.coverage {
        Some(_) if d.detected == d.run => "pass",
        Some(_) => "**FAIL**",
        None => "not run",
    }
}

/// The summary's line on the negative controls.
pub fn detection_line(d: &super::Detection) -> String {
    let missed: Vec<&str> = d
        .controls
        .iter()
        .filter(|c| c.outcome == super::vocab::ControlOutcome::Missed)
        .map(|c| c.control.name())
        .collect();
    format!(
        "detection: {} (negative controls {}: {} detected{}, {} apart from the budgets)",
        detection_verdict(d).trim_matches('*').to_lowercase(),
        d.mode.as_str(),
        d.coverage_text(),
        if missed.is_empty() {
            String::new()
        } else {
            format!(", missed {}", missed.join(", "))
        },
        secs(d.duration_ms)
    )
}

/// The recovery point: the measured data-loss window against the objective, the lost commits,
/// and the schedule's worst case.
fn rpo_section(s: &mut String, p: &RpoReport) {
    let _ = writeln!(
        s,
        "\n## Recovery point: {}\n\n| | |\n|---|---|",
        rpo_verdict(p.verdict)
    );
    let _ = writeln!(s, "| Objective | {} |", secs(p.objective_ms));
    let newest = match &p.newest_restored_at {
        Some(t) => format!("newest restored commit acknowledged at {t}"),
        None => "no ledger commit restored: counted from the snapshot".into(),
    };
    let _ = writeln!(
        s,
        "| Achieved (data-loss window) | {}: {newest}, disaster at {} |",
        secs(p.achieved_ms),
        p.disaster_at
    );
    let lost = match p.lost_ids {
        Some(ids) if ids.first == ids.last => format!(" (id {})", ids.first),
        Some(ids) => format!(" (ids {}–{})", ids.first, ids.last),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "| Lost commits | {}{lost} of {} acknowledged; {} restored |",
        p.lost_commits, p.acknowledged_commits, p.restored_commits
    );
    let fits = if p.worst_case_fits {
        "within the objective"
    } else {
        "**longer than the objective**"
    };
    match p.archive_timeout_ms {
        Some(0) => {
            let _ = writeln!(
                s,
                "| Worst case with WAL archiving | **unbounded**: archive_timeout is off on the source |"
            );
        }
        Some(t) => {
            let _ = writeln!(
                s,
                "| Worst case with WAL archiving | {} = {} archive_timeout + {} archiving: {fits} |",
                secs(p.worst_case_ms),
                secs(t),
                secs(p.backup_duration_ms),
            );
        }
        None => {
            let _ = writeln!(
                s,
                "| Worst case on the schedule | {} = {} interval + {} backup: {fits} |",
                secs(p.worst_case_ms),
                secs(p.backup_interval_ms),
                secs(p.backup_duration_ms),
            );
            let _ = writeln!(s, "| Backups taken | {} |", p.backups_taken);
        }
    }
    let _ = writeln!(
        s,
        "| Snapshot taken | between {} and {}; commits in flight meanwhile (the only ones that may go either way): {} |",
        p.snapshot_taken[0], p.snapshot_taken[1], p.in_flight_at_snapshot
    );
    let _ = writeln!(
        s,
        "| Ledger | `{}`, {} commits/s, {} failed |",
        p.ledger, p.rate_per_sec, p.failed_commits
    );
    let _ = writeln!(s, "\n{}", cell(&p.note));
}

fn rpo_verdict(v: RpoVerdict) -> &'static str {
    match v {
        RpoVerdict::Pass => "pass",
        RpoVerdict::Fail => "**FAIL**",
    }
}

/// The summary's line on the recovery point.
pub fn rpo_line(p: &RpoReport) -> String {
    format!(
        "rpo: {} (data-loss window {} of {} objective, {} acknowledged commits lost; worst case {} {})",
        rpo_verdict(p.verdict).trim_matches('*').to_lowercase(),
        secs(p.achieved_ms),
        secs(p.objective_ms),
        p.lost_commits,
        secs(p.worst_case_ms),
        if p.worst_case_fits {
            "fits"
        } else {
            "exceeds the objective"
        }
    )
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

fn short(v: Option<&str>) -> String {
    v.map(|v| v.chars().take(16).collect())
        .unwrap_or_else(|| "-".into())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**NO**"
    }
}

fn tri(b: Option<bool>) -> &'static str {
    match b {
        Some(b) => yes(b),
        None => "not compared",
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

/// The short Markdown a CI job shows on its run page (`$GITHUB_STEP_SUMMARY`): verdict,
/// budgets, what failed, and the link to the run's artifacts when there is one.
pub fn step_summary(r: &Report, artifacts: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### pgdrill {}: {}\n", r.drill_id, verdict(r.verdict));
    if let Some(f) = &r.failure {
        // The whole message, never cut: a CI page is where the on-call reads it first. A
        // tilde fence, as a program's message may hold backticks.
        let _ = writeln!(
            s,
            "**Failed at `{}` ({}):**\n\n~~~~\n{}\n~~~~\n\n{}\n",
            f.phase,
            f.class,
            f.message,
            cell(&r.call_line())
        );
    }
    objectives_section(&mut s, r);
    if let Some(p) = &r.rpo {
        let _ = writeln!(s, "\n{}", rpo_line(p));
    }
    if let Some(d) = &r.detection {
        let _ = writeln!(s, "\n{}", detection_line(d));
    }
    if let Some(url) = artifacts {
        let _ = writeln!(
            s,
            "\nEvidence (report.html, report.json, junit.xml, SHA256SUMS): [artifacts of this run]({url})"
        );
    }
    s.push('\n');
    s
}

/// A real restore's own section: what was replaced, how, and how to go back.
fn restore_section(s: &mut String, x: &crate::report::RestoreInfo) {
    let _ = writeln!(s, "\n## The real restore\n");
    let _ = writeln!(
        s,
        "- target: {} (PostgreSQL {}), database {} (confirmed as {})",
        x.target, x.server_version, x.database, x.confirmed
    );
    let _ = writeln!(
        s,
        "- mode: {}",
        match x.mode {
            crate::report::RestoreModeKind::Side => "side restore, then swap",
            crate::report::RestoreModeKind::InPlace => "in place (dropdb, createdb, pg_restore)",
        }
    );
    if let Some(reason) = &x.reason {
        let _ = writeln!(s, "- reason: {reason}");
    }
    if let Some(side) = &x.side {
        let what = if x.swapped {
            "swapped in"
        } else if x.side_dropped {
            "dropped; the live database was not touched"
        } else {
            "not created"
        };
        let _ = writeln!(s, "- side database {side}: {what}");
    }
    if let Some(prev) = &x.previous {
        let kept = if x.previous_dropped {
            "dropped"
        } else {
            "kept"
        };
        let _ = writeln!(s, "- the replaced database: {prev} ({kept})");
    }
    if let Some(sql) = &x.swap_back {
        let _ = writeln!(s, "- to swap back: `{sql}`");
    }
    if let Some(d) = &x.safety_dump {
        let _ = writeln!(
            s,
            "- safety dump: {} ({} bytes, sha256 {})",
            d.file, d.size_bytes, d.sha256
        );
    }
    let terminated: Vec<String> = x
        .sessions_terminated
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(
        s,
        "- sessions terminated: {}",
        if terminated.is_empty() {
            "none".to_string()
        } else {
            terminated.join(", ")
        }
    );
    app_line(
        s,
        x.app_stop.as_deref(),
        x.app_start.as_deref(),
        x.app_restarted_by_cleanup,
    );
}

/// The team's application as a real restore or configuration restore left it: the commands
/// that stopped and started it, and whether the cleanup had to start it again.
fn app_line(s: &mut String, stop: Option<&str>, start: Option<&str>, by_cleanup: bool) {
    if let Some(stop) = stop {
        let _ = writeln!(
            s,
            "- application: stopped with `{stop}`{}{}",
            start
                .map(|c| format!(", started with `{c}`"))
                .unwrap_or_default(),
            if by_cleanup {
                "; started again by the cleanup"
            } else {
                ""
            }
        );
    }
}

/// A configuration restore's own section: the backup, the directory, every file with its
/// SHA-256, where the previous files are kept, the application's commands.
fn config_restore_section(s: &mut String, x: &crate::report::ConfigRestoreInfo) {
    let _ = writeln!(s, "\n## The configuration restore\n");
    let _ = writeln!(
        s,
        "- backup: {} (confirmed as {}){}",
        x.backup,
        x.confirmed,
        x.archive_sha256
            .as_deref()
            .map(|h| format!(", archive sha256 {h}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "- target: {}: {}",
        x.target,
        if x.restored {
            "the checked files were put in place"
        } else {
            "nothing was changed"
        }
    );
    if let Some(reason) = &x.reason {
        let _ = writeln!(s, "- reason: {reason}");
    }
    if let Some(p) = &x.previous {
        let _ = writeln!(s, "- the previous files are kept in {p}");
    }
    app_line(
        s,
        x.app_stop.as_deref(),
        x.app_start.as_deref(),
        x.app_restarted_by_cleanup,
    );
    if !x.health_urls.is_empty() {
        let _ = writeln!(s, "- health asked at: {}", x.health_urls.join(", "));
    }
    if !x.files.is_empty() {
        let _ = writeln!(s, "\n| File | Change | Mode | SHA-256 (restored) | SHA-256 (before) |\n|---|---|---|---|---|");
        for f in &x.files {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                cell(&f.name),
                f.kind.as_str(),
                f.mode.as_deref().unwrap_or("-"),
                f.sha256.as_deref().unwrap_or("-"),
                f.current_sha256.as_deref().unwrap_or("-")
            );
        }
    }
    if !x.checks.is_empty() {
        let _ = writeln!(s);
    }
    for c in &x.checks {
        let _ = writeln!(s, "- ok: {c}");
    }
}
