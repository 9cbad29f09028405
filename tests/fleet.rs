//! `pgdrill fleet`: each task drills the database its index names, `fleet report` gathers
//! the newest reports with the failures first, and the plans each engine runs are valid for
//! that engine (the Kubernetes manifests against Kubernetes' own schema, the workflow with
//! actionlint). The real Swarm run is in tests/docker/swarm.rs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::notify::{Answer, Hook};
use crate::support::{self, Pgdrill, TestServer};

/// A live database with names a generator would not choose.
const SCHEMA: &str = r#"
CREATE SCHEMA "Billing Dept";
CREATE TABLE "Billing Dept"."Invoice Lines" (id bigint PRIMARY KEY, "Amount €" numeric(12,2), note text);
INSERT INTO "Billing Dept"."Invoice Lines" SELECT g, g * 1.5, repeat('x', g % 7) FROM generate_series(1, 500) g;
"#;

const DSN_VAR: &str = "PGDRILL_TEST_FLEET_DSN";

/// Three databases: a live one by DSN, a good dump, and a dump cut in half.
struct Fixture {
    dir: tempfile::TempDir,
    _server: TestServer,
    dsn: String,
}

impl Fixture {
    fn new() -> Fixture {
        let rt = support::runtime();
        let (server, db) = rt.block_on(TestServer::with_db("fleet", "fleet_src", SCHEMA));
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-fleet-")
            .tempdir()
            .unwrap();
        let backups = dir.path().join("backups");
        std::fs::create_dir_all(&backups).unwrap();
        server.pg_dump(&db, &backups.join("good.dump"));
        let bytes = std::fs::read(backups.join("good.dump")).unwrap();
        std::fs::write(backups.join("bad.dump"), &bytes[..bytes.len() / 2]).unwrap();
        let dsn = format!("{} dbname={db}", server.dsn());
        Fixture {
            dir,
            _server: server,
            dsn,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn reports(&self) -> PathBuf {
        self.path().join("reports")
    }

    /// A fleet file of the three databases and `more`.
    fn fleet(&self, more: &str) -> PathBuf {
        let b = self.path().join("backups");
        let text = format!(
            r#"[fleet]
name = "test-fleet"
concurrency = 2

[defaults]
backend = "native"
app = "none"
jobs = 2

[[database]]
name = "live"
source_dsn_env = "{DSN_VAR}"

[[database]]
name = "archive"
backup_file = "{}"

[[database]]
name = "broken"
backup_file = "{}"
{more}"#,
            b.join("good.dump").display(),
            b.join("bad.dump").display()
        );
        let path = self.path().join(format!("fleet-{}.toml", more.len()));
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn fleet_run(fleet: &Path, reports: &Path) -> Pgdrill {
    Pgdrill::new([
        "fleet",
        "run",
        "--fleet",
        fleet.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ])
}

/// `pgdrill fleet report DIR` plus `extra`.
pub(crate) fn fleet_report(reports: &Path, extra: &[&str]) -> support::Run {
    let mut args = vec!["fleet", "report", reports.to_str().unwrap()];
    args.extend(extra);
    Pgdrill::new(args).run()
}

/// The drills of `db` under a fleet's reports directory (the directories with a report.json).
pub(crate) fn drills_of(reports: &Path, db: &str) -> Vec<PathBuf> {
    std::fs::read_dir(reports.join(db))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("report.json").is_file())
                .collect()
        })
        .unwrap_or_default()
}

fn report_json(out: &support::Run) -> Value {
    serde_json::from_slice(&out.output.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.text()))
}

#[test]
fn each_task_drills_the_database_its_index_names_and_the_fleet_report_names_the_failure() {
    let fx = Fixture::new();
    let fleet = fx.fleet("");
    let reports = fx.reports();

    // Kubernetes' variable, our own, and a name: each picks one database.
    let run = fleet_run(&fleet, &reports)
        .env("JOB_COMPLETION_INDEX", "0")
        .env(DSN_VAR, &fx.dsn)
        .run();
    assert_eq!(run.code(), 0, "{}", run.text());
    support::assert_mentions(&run.text(), &["database `live` (1 of 3)"]);
    let run = fleet_run(&fleet, &reports)
        .env("PGDRILL_FLEET_INDEX", "1")
        .run();
    assert_eq!(run.code(), 0, "{}", run.text());
    let run = fleet_run(&fleet, &reports)
        .push_arg("--database")
        .push_arg("broken")
        .run();
    assert_eq!(run.code(), 1, "{}", run.text());
    // The DSN never reaches a report or the console.
    let password = fx
        .dsn
        .split("password=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    for (path, _) in support::files_under(&reports) {
        if path.extension().is_some_and(|e| e == "dump") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !text.contains(password),
            "{} holds the password",
            path.display()
        );
    }

    // Each database has its own directory, history and one drill.
    for db in ["live", "archive", "broken"] {
        let dir = reports.join(db);
        assert!(dir.join("history.ndjson").is_file(), "{}", dir.display());
        let drills = drills_of(&reports, db);
        assert_eq!(drills.len(), 1, "{db}");
        let r: Value =
            serde_json::from_slice(&std::fs::read(drills[0].join("report.json")).unwrap()).unwrap();
        let note = r["notes"].to_string();
        assert!(
            note.contains(&format!("fleet test-fleet database `{db}`")),
            "{note}"
        );
    }

    let out = fleet_report(&reports, &["--fleet", fleet.to_str().unwrap(), "--json"]);
    assert_eq!(out.code(), 1, "{}", out.text());
    let r = report_json(&out);
    let rows = r["rows"].as_array().unwrap();
    let order: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row["database"].as_str().unwrap(),
                row["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("broken", "fail"), ("archive", "pass"), ("live", "pass")]
    );
    assert_eq!(
        (r["passed"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        rows[0]["why"].as_str().unwrap().contains("backup"),
        "{}",
        rows[0]
    );
    assert!(rows[2]["rto_used_ms"].as_u64().unwrap() > 0);
    assert!(rows[2]["rto_limit_ms"].as_u64() == Some(30 * 60 * 1000));
    for f in [
        "fleet-report.json",
        "fleet-report.md",
        "fleet-report.html",
        "fleet-junit.xml",
    ] {
        assert!(reports.join(f).is_file(), "{f}");
    }
    let junit = std::fs::read_to_string(reports.join("fleet-junit.xml")).unwrap();
    assert!(
        junit.contains("tests=\"3\"") && junit.contains("failures=\"1\""),
        "{junit}"
    );
    let html = std::fs::read_to_string(reports.join("fleet-report.html")).unwrap();
    assert!(html.contains("report.html\">broken</a>"), "{html}");

    // Without the fleet file: the directories are the databases; the same verdicts.
    let out = Pgdrill::new(["fleet", "report", reports.to_str().unwrap()]).run();
    assert_eq!(out.code(), 1, "{}", out.text());
    support::assert_mentions(
        &out.text(),
        &[
            "2 of 3 databases passed; not passing: broken",
            "| archive | pass |",
        ],
    );

    // A database the fleet lists and no task reported: missing, a failure.
    let bigger = fx.fleet("\n[[database]]\nname = \"later\"\nbackup_file = \"/nowhere\"\n");
    let out = fleet_report(&reports, &["--fleet", bigger.to_str().unwrap(), "--json"]);
    let r = report_json(&out);
    assert_eq!(r["rows"][1]["database"], "later", "{r}");
    assert_eq!(r["rows"][1]["outcome"], "missing", "{r}");

    // Every drill too old: stale, and the exit says so.
    let out = fleet_report(&reports, &["--max-age", "1ms", "--json"]);
    assert_eq!(out.code(), 1);
    let r = report_json(&out);
    assert_eq!(r["passed"], 0, "{r}");
    assert!(r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row["outcome"] == "stale"));

    // The fleet's outcome, notified as a drill's is.
    let hook = Hook::new(&[Answer::Status(200)]);
    let out = fleet_report(
        &reports,
        &[
            "--out",
            fx.path().join("gathered").to_str().unwrap(),
            "--notify",
            &hook.url(),
        ],
    );
    assert_eq!(out.code(), 1, "{}", out.text());
    let body = hook.body(0);
    assert_eq!(body["event"], "fleet", "{body}");
    assert_eq!(body["verdict"], "fail", "{body}");
    assert!(
        body["failure"].as_str().unwrap().starts_with("broken: "),
        "{body}"
    );
    assert!(fx.path().join("gathered/fleet-report.md").is_file());
}

#[test]
fn a_task_without_its_index_or_secret_and_a_wrong_fleet_are_refused_before_any_drill() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        "[fleet]\nname = \"f\"\n[[database]]\nname = \"a\"\nsource_dsn_env = \"PGDRILL_TEST_NOT_SET\"\n",
    )
    .unwrap();
    let f = fleet.to_str().unwrap();
    let reports = dir.path().join("reports");
    let run = fleet_run(&fleet, &reports).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), &["--index N", "JOB_COMPLETION_INDEX"]);
    let run = fleet_run(&fleet, &reports)
        .push_arg("--index")
        .push_arg("1")
        .run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), &["index 1 is past the fleet's 1 databases"]);
    let run = fleet_run(&fleet, &reports)
        .push_arg("--index")
        .push_arg("0")
        .env("PGDRILL_SECRETS_DIR", dir.path().to_str().unwrap())
        .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    support::assert_mentions(
        &run.text(),
        &[
            "$PGDRILL_TEST_NOT_SET or ",
            "docker secret create PGDRILL_TEST_NOT_SET -",
        ],
    );
    assert!(
        !reports.exists(),
        "nothing is written before the drill can start"
    );
    // Swarm's slot 0 comes as the node's ID; the others as numbers.
    let run = fleet_run(&fleet, &reports)
        .env("PGDRILL_FLEET_SLOT", "yosxrgkkspfvdqoe91jdv74by")
        .env("PGDRILL_FLEET_NODE", "yosxrgkkspfvdqoe91jdv74by")
        .env("PGDRILL_SECRETS_DIR", dir.path().to_str().unwrap())
        .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    support::assert_mentions(&run.text(), &["database `a`"]);
    let run = fleet_run(&fleet, &reports)
        .env("PGDRILL_FLEET_SLOT", "1")
        .env("PGDRILL_FLEET_NODE", "yosxrgkkspfvdqoe91jdv74by")
        .run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), &["index 1 is past"]);

    // A drill key the drill does not know fails `fleet plan`, naming the database.
    std::fs::write(
        &fleet,
        "[fleet]\nname = \"f\"\n[[database]]\nname = \"a\"\nbackup_file = \"/b\"\nbudget_restroe = \"5m\"\n",
    )
    .unwrap();
    let run = Pgdrill::new(["fleet", "plan", "--fleet", f, "--engine", "swarm"]).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(
        &run.text(),
        &["database `a`", "unknown key `budget_restroe`"],
    );
    // Flags that cannot go together, too.
    std::fs::write(
        &fleet,
        "[fleet]\nname = \"f\"\n[[database]]\nname = \"a\"\nbackup_file = \"/b\"\nrepo = \"/r\"\n",
    )
    .unwrap();
    let run = Pgdrill::new(["fleet", "plan", "--fleet", f, "--engine", "kubernetes"]).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), &["database `a`", "cannot be used with"]);
    let run = Pgdrill::new([
        "fleet",
        "plan",
        "--fleet",
        "/nonexistent/fleet.toml",
        "--engine",
        "github",
    ])
    .run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(
        &run.text(),
        &["cannot read the fleet file /nonexistent/fleet.toml"],
    );
}

fn example_fleet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("drills/fleet.toml")
}

#[test]
fn the_kubernetes_plan_validates_against_kubernetes_own_schema_and_deploy_holds_it() {
    let test = "kubernetes plan";
    // The example in deploy/ is what `fleet plan` writes, not a hand-written copy.
    let run = Pgdrill::new([
        "fleet",
        "plan",
        "--fleet",
        example_fleet().to_str().unwrap(),
        "--engine",
        "kubernetes",
    ])
    .run();
    assert_eq!(run.code(), 0, "{}", run.text());
    let plan = String::from_utf8(run.output.stdout.clone())
        .unwrap()
        .replace(example_fleet().to_str().unwrap(), "drills/fleet.toml");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/fleet.yaml");
    assert_eq!(
        std::fs::read_to_string(&deploy).unwrap_or_default(),
        plan,
        "{} is not what `pgdrill fleet plan --fleet drills/fleet.toml --engine kubernetes` writes: regenerate it",
        deploy.display()
    );
    if !support::tool_or_skip(
        "kubernetes-validate",
        &["--version"],
        "PGDRILL_REQUIRE_KUBERNETES_VALIDATE",
        test,
    ) {
        return;
    }
    let validate = |file: &Path| {
        let out = std::process::Command::new("kubernetes-validate")
            .args([
                "--strict",
                "--kubernetes-version",
                pgdrill::fleet::plan::KUBERNETES_VERSION,
            ])
            .arg(file)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, said) = validate(&deploy);
    assert!(ok, "{said}");
    assert_eq!(said.matches(" passed for resource ").count(), 3, "{said}");
    // The validator can fail: a misspelt field and a wrong type are caught.
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("completionMode:", "completionMood:"),
        ("parallelism: 2", "parallelism: two"),
    ] {
        assert!(plan.contains(from));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, plan.replacen(from, to, 1)).unwrap();
        let (ok, said) = validate(&bad);
        assert!(!ok, "{to}: {said}");
    }
}

#[test]
fn the_github_plan_passes_actionlint() {
    let test = "github plan";
    if !support::tool_or_skip(
        "actionlint",
        &["--version"],
        "PGDRILL_REQUIRE_ACTIONLINT",
        test,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = Pgdrill::new([
        "fleet",
        "plan",
        "--fleet",
        example_fleet().to_str().unwrap(),
        "--engine",
        "github",
        "--out",
        dir.path().to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code(), 0, "{}", run.text());
    let file = dir.path().join("pgdrill-fleet-shop.yml");
    let out = std::process::Command::new("actionlint")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // actionlint can fail: a job that needs one that does not exist.
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("needs: drill", "needs: dril"),
    )
    .unwrap();
    let out = std::process::Command::new("actionlint")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
