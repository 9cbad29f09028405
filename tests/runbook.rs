//! The emergency contacts in a drill's reports and failure messages, and `pgdrill runbook`
//! from a real repository (real `pgdrill backup` and `config backup` runs) and the history a
//! real drill of it wrote.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{copy_backup, redact, runtime, Pgdrill, Run, TestServer};

const SMALL: &str = "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
INSERT INTO users SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 40) g;
CREATE TABLE subscriptions (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, plan text NOT NULL);
INSERT INTO subscriptions SELECT g, g, 'basic' FROM generate_series(1, 30) g;
CREATE TABLE payments (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, cents int NOT NULL);
INSERT INTO payments SELECT g, 1 + g % 40, g * 100 FROM generate_series(1, 60) g;";

const DBA: &str = "Database Admin=Jane Doe <jane@example.com>, +1 555 0100";
const DEVOPS: &str = "DevOps Lead=Sam Roe <sam@example.com>, +1 555 0101";
const ONCALL: &str = "On-Call Engineer=PagerDuty service db-oncall";

fn run(args: &[&str]) -> Run {
    Pgdrill::new(args.iter().map(|s| s.to_string())).run()
}

fn stdout(r: &Run) -> String {
    String::from_utf8_lossy(&r.output.stdout).into_owned()
}

/// The runbook with what varies from run to run redacted: the temp directory, the drill's id,
/// then digits (times, ages, ports, sizes, the pid in the database's name) and durations,
/// whose unit changes with their size.
fn for_snapshot(md: &str, tmp: &Path, drill_id: &str) -> String {
    let text = md
        .replace(&tmp.display().to_string(), "<tmp>")
        .replace(drill_id, "<drill-id>");
    let mut s = redact(&text);
    for d in ["#m #s", "#h #m", "# days #h", "# day #h", "# ms", "# s"] {
        s = s.replace(d, "<duration>");
    }
    s
}

#[test]
fn runbook_from_a_real_repository_and_the_history_of_a_real_drill_of_it() {
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db("runbook", "runbook", SMALL));
    let dsn = format!("{} dbname={db}", server.dsn());
    let password = server.endpoint.password().unwrap_or_default().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    let backup = run(&["backup", "--source-dsn", &dsn, "--repo", r]);
    assert_eq!(backup.code(), 0, "{}", backup.text());
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let env_file = app.join(".env");
    std::fs::write(&env_file, "DATABASE_URL=postgres://x\nAPI_KEY=k\n").unwrap();
    let config = run(&[
        "config",
        "backup",
        "--repo",
        r,
        "--file",
        env_file.to_str().unwrap(),
        "--insecure-plaintext",
    ]);
    assert_eq!(config.code(), 0, "{}", config.text());

    // A real drill of the repository, with the contacts: its history line and its reports.
    let history = tmp.path().join("history.ndjson");
    let h = history.to_str().unwrap();
    let drill = Pgdrill::native([
        "--repo",
        r,
        "--history",
        h,
        "--contact",
        DBA,
        "--contact",
        DEVOPS,
        "--contact",
        ONCALL,
    ])
    .run();
    let report = drill.assert_pass();
    assert_eq!(
        report["contacts"],
        json!([
            {"role": "Database Admin", "reach": "Jane Doe <jane@example.com>, +1 555 0100"},
            {"role": "DevOps Lead", "reach": "Sam Roe <sam@example.com>, +1 555 0101"},
            {"role": "On-Call Engineer", "reach": "PagerDuty service db-oncall"},
        ])
    );
    assert_eq!(
        report["warnings"],
        json!([]),
        "every role has a real contact"
    );
    let md = std::fs::read_to_string(drill.out.path().join("report.md")).unwrap();
    assert!(md.contains("## Emergency contacts"), "{md}");
    assert!(
        md.contains("| Database Admin | Jane Doe <jane@example.com>, +1 555 0100 |"),
        "{md}"
    );
    assert!(!md.contains("## Warnings"), "{md}");
    let html = std::fs::read_to_string(drill.out.path().join("report.html")).unwrap();
    assert!(
        html.contains("<table id=\"contacts\">"),
        "contacts in report.html"
    );
    let drill_id = report["drill_id"].as_str().unwrap().to_string();

    // The plan: this deployment's commands, the database (with its password, which the
    // runbook must never show), the contacts as the strategy's [contacts] table.
    let plan = tmp.path().join("production.toml");
    std::fs::write(
        &plan,
        format!(
            r#"source_dsn = "{dsn}"
app_start = "systemctl start shop"
app_stop = "systemctl stop shop"
app_health_url = "http://127.0.0.1:8080/health"
app_log = "/var/log/shop/app.log"
code_repo = "/srv/shop"
deploy = "/srv/shop/bin/deploy"
require = ["DATABASE_URL", "API_KEY"]

[contacts]
"Database Admin" = "Jane Doe <jane@example.com>, +1 555 0100"
"DevOps Lead" = "Sam Roe <sam@example.com>, +1 555 0101"
"On-Call Engineer" = "PagerDuty service db-oncall"
"#
        ),
    )
    .unwrap();
    let p = plan.to_str().unwrap();
    let book = run(&["runbook", "--plan", p, "--repo", r, "--history", h]);
    assert_eq!(book.code(), 0, "{}", book.text());
    let md = stdout(&book);
    assert!(
        !md.contains(&password),
        "the password must never be in the runbook"
    );
    let dump = std::fs::read_dir(repo.join("database"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "dump"))
        .unwrap();
    for needle in [
        format!(
            "pg_restore -h 127.0.0.1 -p {} -U {}",
            server.endpoint.port, server.endpoint.user
        ),
        format!("{}", dump.display()),
        format!("--confirm {db}"),
        "--app-stop 'systemctl stop shop'".into(),
        format!(
            "--target-dsn \"postgresql://{}:$PGPASSWORD@127.0.0.1:{}/{db}\"",
            server.endpoint.user, server.endpoint.port
        ),
        "| Database Admin | Jane Doe <jane@example.com>, +1 555 0100 |".into(),
        format!("Drill `{drill_id}` finished"),
        format!("cp -p /tmp/config-restore/.env {}", env_file.display()),
        "git -C /srv/shop checkout".into(),
        "| `public.payments` | 60 |".into(),
    ] {
        assert!(md.contains(&needle), "no {needle:?} in the runbook:\n{md}");
    }
    assert!(
        md.find("pgdrill restore").unwrap() < md.find("--confirm").unwrap(),
        "the dry run comes first"
    );
    insta::assert_snapshot!("runbook_markdown", for_snapshot(&md, tmp.path(), &drill_id));

    // --out: the Markdown and the HTML page beside it, saying the same.
    let out = tmp.path().join("runbook.md");
    let written = run(&[
        "runbook",
        "--plan",
        p,
        "--repo",
        r,
        "--history",
        h,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(written.code(), 0, "{}", written.text());
    let page = std::fs::read_to_string(tmp.path().join("runbook.html")).unwrap();
    assert!(page.contains("<h2>1. Database restore</h2>"), "{page}");
    assert!(page.contains(&format!("--confirm {db}")), "{page}");
    assert!(!page.contains(&password));
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .starts_with("# Restore runbook"));
}

/// A failing drill ends its failure message with whom to call, on the console and in
/// report.md; a placeholder contact and a strategy role without one are warnings in every
/// report and on the console.
#[test]
fn a_failure_names_whom_to_call_and_contacts_left_out_are_warnings() {
    let (_server, db) = runtime().block_on(TestServer::with_db("contacts", "contacts", SMALL));
    let tmp = tempfile::tempdir().unwrap();
    let backup = run(&[
        "backup",
        "--source-dsn",
        &format!("{} dbname={db}", _server.dsn()),
        "--repo",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(backup.code(), 0, "{}", backup.text());
    let good = std::fs::read_dir(tmp.path().join("database"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "dump"))
        .unwrap();
    // A dump cut to half its size: the precheck fails it at once.
    let damaged = tempfile::tempdir().unwrap();
    let dump = copy_backup(&good, damaged.path(), true);
    let len = std::fs::metadata(&dump).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dump)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let fail = Pgdrill::native([
        "--backup-file",
        dump.to_str().unwrap(),
        "--contact",
        DBA,
        "--contact",
        "DevOps Lead=[contact]",
    ])
    .run();
    assert_eq!(fail.code(), 1, "{}", fail.text());
    let text = fail.text();
    assert!(
        text.contains("  Call: Database Admin: Jane Doe <jane@example.com>, +1 555 0100\n"),
        "the console's failure summary names whom to call:\n{text}"
    );
    let r: &Value = fail.report();
    let kinds: Vec<(&str, &str)> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["kind"].as_str().unwrap(), w["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("contact_placeholder", "DevOps Lead"),
            ("contact_missing", "On-Call Engineer")
        ]
    );
    assert!(
        text.contains(
            "warning: emergency contact DevOps Lead is still the strategy's placeholder [contact]"
        ),
        "{text}"
    );
    assert!(
        text.contains("warning: no emergency contact for the strategy's role On-Call Engineer"),
        "{text}"
    );
    let md = std::fs::read_to_string(fail.out.path().join("report.md")).unwrap();
    let failure = &md[md.find("## Failure").unwrap()..];
    assert!(
        failure.contains("Call: Database Admin: Jane Doe <jane@example.com>, +1 555 0100"),
        "{failure}"
    );
    assert!(
        md.contains("## Warnings\n\n- emergency contact DevOps Lead is still"),
        "{md}"
    );
    let html = std::fs::read_to_string(fail.out.path().join("report.html")).unwrap();
    assert!(html.contains("id=\"warnings\""), "warnings in report.html");
    assert!(
        html.contains("Call: Database Admin: Jane Doe &lt;jane@example.com&gt;, +1 555 0100"),
        "the failure box names whom to call"
    );

    // The runbook says the same of the same contacts, from a plan file's list.
    let plan = tmp.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!("contact = [{:?}, \"DevOps Lead=[contact]\"]\n", DBA),
    )
    .unwrap();
    let book = run(&["runbook", "--plan", plan.to_str().unwrap()]);
    assert_eq!(book.code(), 0, "{}", book.text());
    let md = stdout(&book);
    assert!(md.contains("no repository given"), "{md}");
    assert!(md.contains("No drill history at"), "{md}");
    assert!(
        md.contains("- no emergency contact for the strategy's role On-Call Engineer"),
        "{md}"
    );
    assert!(book
        .text()
        .contains("pgdrill: warning: emergency contact DevOps Lead is still"));
}

/// Bad input is exit 2 naming the fix: a plan file that is not there, a repository that is
/// not one, a plan key that is no flag, a contact without a role.
#[test]
fn bad_input_to_the_runbook_and_to_contacts_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = run(&["runbook", "--plan", "/nonexistent/plan.toml"]);
    assert_eq!(missing.code(), 2, "{}", missing.text());
    assert!(missing
        .text()
        .contains("--plan /nonexistent/plan.toml: cannot read it"));
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let not_repo = run(&["runbook", "--repo", empty.to_str().unwrap()]);
    assert_eq!(not_repo.code(), 2, "{}", not_repo.text());
    assert!(
        not_repo.text().contains("not a backup repository"),
        "{}",
        not_repo.text()
    );
    let plan = tmp.path().join("bad.toml");
    std::fs::write(&plan, "contacts = 5\n").unwrap();
    let bad = run(&["runbook", "--plan", plan.to_str().unwrap()]);
    assert_eq!(bad.code(), 2, "{}", bad.text());
    std::fs::write(&plan, "[contacts]\n\"CTO\" = \"\"\n").unwrap();
    let empty_reach = run(&["runbook", "--plan", plan.to_str().unwrap()]);
    assert_eq!(empty_reach.code(), 2, "{}", empty_reach.text());
    assert!(
        empty_reach.text().contains("ROLE=NAME"),
        "{}",
        empty_reach.text()
    );
    let drill = run(&["drill", "--contact", "nobody"]);
    assert_eq!(drill.code(), 2, "{}", drill.text());
    assert!(drill.text().contains("--contact"), "{}", drill.text());
}
