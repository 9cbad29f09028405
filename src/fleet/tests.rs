use std::path::Path;
use std::time::Duration;

use super::plan::{plan, Engine};
use super::*;

const SHOP: &str = r#"
[fleet]
name = "shop"
concurrency = 2
schedule = "0 3 * * 0"

[defaults]
backend = "native"
app = "none"
budget_total = "20m"

[reports]
swarm = "/srv/pgdrill/reports"

[[mount]]
path = "/backups"
swarm = "/srv/backups"
kubernetes = "shop-backups"

[[database]]
name = "billing"
source_dsn_env = "BILLING_DSN"
budget_total = "45m"

[[database]]
name = "ledger"
backup_file = "/backups/ledger"

[[database]]
name = "audit-log"
source_dsn_file = "/run/secrets/audit"
app = "sample"
"#;

fn shop() -> Fleet {
    Fleet::parse(Path::new("drills/fleet.toml"), SHOP.to_string()).unwrap()
}

fn refused(text: &str) -> String {
    Fleet::parse(Path::new("f.toml"), text.to_string())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_fleet_file_gives_each_database_its_drill_over_the_defaults() {
    let f = shop();
    assert_eq!(f.settings.name, "shop");
    assert_eq!(f.settings.concurrency, 2);
    assert_eq!(f.settings.image, DEFAULT_IMAGE);
    assert_eq!(f.waves(), 2);
    let names: Vec<&str> = f.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["billing", "ledger", "audit-log"]);
    let billing = &f.databases[0];
    assert_eq!(billing.drill["budget_total"].as_str(), Some("45m"));
    assert_eq!(billing.drill["backend"].as_str(), Some("native"));
    assert!(!billing.drill.contains_key("source_dsn_env"));
    assert_eq!(
        billing.secrets,
        [Secret {
            key: "source_dsn".into(),
            source: SecretSource::Env {
                var: "BILLING_DSN".into()
            }
        }]
    );
    assert_eq!(f.databases[2].drill["app"].as_str(), Some("sample"));
    // Twice the longest RTO total: 2 × 45 min.
    assert_eq!(f.settings.task_deadline, Duration::from_secs(90 * 60));
    assert_eq!(f.secret_vars(), ["BILLING_DSN"]);
    assert_eq!(f.named("ledger").unwrap().0, 1);
    assert!(f.at(3).unwrap_err().to_string().contains("0 to 2"));
    assert!(f
        .named("nope")
        .unwrap_err()
        .to_string()
        .contains("billing, ledger, audit-log"));
}

#[test]
fn a_credential_written_inline_is_refused_with_the_way_to_give_it() {
    let e = refused("[fleet]\nname = \"x\"\n[[database]]\nname = \"a\"\nsource_dsn = \"postgresql://u:secret@h/db\"\n");
    assert!(e.contains("source_dsn_env = \"VAR\""), "{e}");
    assert!(!e.contains("secret@h"), "{e}");
    let e = refused("[fleet]\nname = \"x\"\n[defaults]\nnotify = \"https://hooks/T0K3N\"\n[[database]]\nname = \"a\"\n");
    assert!(e.contains("`notify` holds a credential"), "{e}");
    let e = refused("[fleet]\nname = \"x\"\n[[database]]\nname = \"a\"\n[database.server]\nsettings_from = \"postgresql://u:pw@h/db\"\n");
    assert!(e.contains("server.settings_from"), "{e}");
    let e = refused("[fleet]\nname = \"x\"\n[[database]]\nname = \"a\"\nsource_dsn_env = \"A\"\nsource_dsn_file = \"/f\"\n");
    assert!(e.contains("both source_dsn_env and source_dsn_file"), "{e}");
    let e =
        refused("[fleet]\nname = \"x\"\n[[database]]\nname = \"a\"\nsource_dsn_env = \"1BAD\"\n");
    assert!(e.contains("environment variable's name"), "{e}");
}

#[test]
fn wrong_fleet_files_name_the_key_and_the_fix() {
    for (text, needle) in [
        ("[[database]]\nname = \"a\"\n", "[fleet] needs `name`"),
        (
            "[fleet]\nname = \"Shop\"\n[[database]]\nname = \"a\"\n",
            "lower-case",
        ),
        ("[fleet]\nname = \"x\"\n", "no [[database]]"),
        (
            "[fleet]\nname = \"x\"\n[[database]]\nname = \"a\"\n[[database]]\nname = \"a\"\n",
            "two databases are named `a`",
        ),
        (
            "[fleet]\nname = \"x\"\nconcurrency = 0\n[[database]]\nname = \"a\"\n",
            "at least 1",
        ),
        (
            "[fleet]\nname = \"x\"\nschedule = \"weekly\"\n[[database]]\nname = \"a\"\n",
            "five fields",
        ),
        (
            "[fleet]\nname = \"x\"\n[cron]\n[[database]]\nname = \"a\"\n",
            "unknown table `cron`",
        ),
        (
            "[fleet]\nname = \"x\"\nparallel = 2\n[[database]]\nname = \"a\"\n",
            "unknown key `parallel`",
        ),
        (
            "[fleet]\nname = \"x\"\n[[database]]\nname = \"a\"\nout = \"r\"\n",
            "chosen by the fleet",
        ),
        (
            "[fleet]\nname = \"x\"\n[reports]\npath = \"reports\"\n[[database]]\nname = \"a\"\n",
            "must be absolute",
        ),
        (
            "[fleet]\nname = \"x\"\n[[database]]\nname = \"a\"\nbudget_total = \"soon\"\n",
            "budget_total = \"soon\"",
        ),
        ("[fleet\nname = \"x\"\n", "line 1: not valid TOML"),
    ] {
        let e = refused(text);
        assert!(e.contains(needle), "{text:?}: {e}");
        assert!(e.starts_with("fleet file f.toml: "), "{e}");
    }
}

#[test]
fn a_secret_comes_from_the_environment_then_docker_s_secrets_directory() {
    let f = shop();
    let dir = tempfile::tempdir().unwrap();
    let billing = &f.databases[0];
    let t = billing
        .resolved(
            |v| (v == "BILLING_DSN").then(|| "host=a".to_string()),
            dir.path(),
        )
        .unwrap();
    assert_eq!(t["source_dsn"].as_str(), Some("host=a"));
    // Not in the environment: the Swarm secret of the same name, its newline trimmed.
    std::fs::write(dir.path().join("BILLING_DSN"), "host=b\n").unwrap();
    let t = billing.resolved(|_| None, dir.path()).unwrap();
    assert_eq!(t["source_dsn"].as_str(), Some("host=b"));
    std::fs::remove_file(dir.path().join("BILLING_DSN")).unwrap();
    let e = billing.resolved(|_| None, dir.path()).unwrap_err();
    assert!(!e.is_usage());
    let e = e.to_string();
    assert!(e.contains("$BILLING_DSN or "), "{e}");
    assert!(e.contains("docker secret create BILLING_DSN -"), "{e}");
    let e = f.databases[2]
        .resolved(|_| None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("/run/secrets/audit"), "{e}");
}

#[test]
fn the_swarm_plan_is_one_replicated_job_of_a_task_per_database() {
    let f = shop();
    let files = plan(&f, Engine::Swarm, "drills/fleet.toml");
    assert_eq!(files.len(), 1);
    assert!(files[0].executable);
    let t = &files[0].text;
    for needle in [
        "--mode replicated-job --replicas 3 --max-concurrent 2",
        "--restart-condition none",
        "--no-resolve-image",
        "--secret BILLING_DSN",
        "--env 'PGDRILL_FLEET_SLOT={{.Task.Slot}}'",
        "--mount type=bind,src=/srv/pgdrill/reports,dst=/reports \\",
        "--mount type=bind,src=/srv/backups,dst=/backups,readonly",
        "'pgdrill/pgdrill:local' fleet run --fleet /etc/pgdrill/fleet.toml",
        "name = \"billing\"",
    ] {
        assert!(t.contains(needle), "{needle} not in\n{t}");
    }
    insta::assert_snapshot!("swarm", t);
}

#[test]
fn the_kubernetes_plan_is_an_indexed_job_and_a_cronjob_with_secrets_by_reference() {
    let f = shop();
    let t = &plan(&f, Engine::Kubernetes, "drills/fleet.toml")[0].text;
    let docs: Vec<serde_norway::Value> = serde_norway::Deserializer::from_str(t)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 3);
    let job = &docs[1]["spec"];
    assert_eq!(job["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(job["completions"].as_u64(), Some(3));
    assert_eq!(job["parallelism"].as_u64(), Some(2));
    assert_eq!(job["backoffLimitPerIndex"].as_u64(), Some(0));
    // Two waves of the 90-minute task deadline.
    assert_eq!(job["activeDeadlineSeconds"].as_u64(), Some(2 * 90 * 60));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["activeDeadlineSeconds"].as_u64(), Some(90 * 60));
    let env = &pod["containers"][0]["env"][0];
    assert_eq!(env["name"].as_str(), Some("BILLING_DSN"));
    assert_eq!(
        env["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("shop-pgdrill")
    );
    assert_eq!(docs[2]["spec"]["jobTemplate"]["spec"], *job);
    assert_eq!(docs[2]["spec"]["schedule"].as_str(), Some("0 3 * * 0"));
    assert_eq!(docs[0]["data"]["fleet.toml"].as_str(), Some(SHOP));
    insta::assert_snapshot!("kubernetes", t);
}

#[test]
fn the_github_plan_is_a_matrix_and_a_report_job() {
    let f = shop();
    let t = &plan(&f, Engine::Github, "drills/fleet.toml")[0].text;
    let body = t
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let w: serde_norway::Value = serde_norway::from_str(&body).unwrap();
    let drill = &w["jobs"]["drill"];
    assert_eq!(drill["strategy"]["max-parallel"].as_u64(), Some(2));
    assert_eq!(drill["strategy"]["fail-fast"].as_bool(), Some(false));
    assert_eq!(
        drill["strategy"]["matrix"]["include"][2]["database"].as_str(),
        Some("audit-log")
    );
    assert_eq!(
        drill["env"]["BILLING_DSN"].as_str(),
        Some("${{ secrets.BILLING_DSN }}")
    );
    assert!(drill["steps"][1]["run"]
        .as_str()
        .unwrap()
        .contains("pgdrill fleet run --fleet drills/fleet.toml --index ${{ matrix.index }}"));
    assert_eq!(w["jobs"]["report"]["needs"].as_str(), Some("drill"));
    insta::assert_snapshot!("github", t);
}

#[test]
fn the_fleet_report_of_a_directory_without_reports_says_what_it_expected() {
    let dir = tempfile::tempdir().unwrap();
    let e = report::gather(dir.path(), None, None, chrono::Utc::now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("<database>/<time>/report.json"), "{e}");
    // With the fleet file, every database is a row: missing, which is a failure.
    let r = report::gather(dir.path(), Some(&shop()), None, chrono::Utc::now()).unwrap();
    assert_eq!(r.rows.len(), 3);
    assert!(r
        .rows
        .iter()
        .all(|row| row.outcome == report::Outcome::Missing));
    assert_eq!((r.passed, r.failed), (0, 3));
    assert_eq!(r.verdict(), crate::report::Verdict::Fail);
    let md = report::render_markdown(&r);
    assert!(
        md.contains("0 of 3 databases passed; not passing: audit-log, billing, ledger"),
        "{md}"
    );
    // An unreadable report is a row of its own, never skipped.
    std::fs::create_dir_all(dir.path().join("ledger/20261207T000000Z-abc")).unwrap();
    std::fs::write(
        dir.path().join("ledger/20261207T000000Z-abc/report.json"),
        "{",
    )
    .unwrap();
    let r = report::gather(dir.path(), Some(&shop()), None, chrono::Utc::now()).unwrap();
    let ledger = r.rows.iter().find(|row| row.database == "ledger").unwrap();
    assert_eq!(ledger.outcome, report::Outcome::Unreadable);
    let junit = report::render_junit(&r);
    assert!(junit.contains("failures=\"3\""), "{junit}");
}
