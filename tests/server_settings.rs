//! The restore target's settings: `--server-setting` and `--server-settings-from` start the
//! server the backup is restored into with them, the report reads back what it really ran
//! with, and every way of getting one wrong is told before (exit 2) or when (exit 3) the
//! server starts.

use serde_json::Value;

use crate::support::{runtime, Pgdrill, TestServer};

/// The report's entry for setting `name`.
fn setting<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["server_settings"]["settings"]
        .as_array()
        .expect("report.json lists the restore target's settings")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {}", report["server_settings"]))
}

/// Server loss: the replacement server, provisioned inside the RTO clock, runs with the
/// setting, and the report shows it as the target's effective value beside the defaults.
#[test]
fn a_server_setting_is_the_restore_target_s_effective_value() {
    let run = Pgdrill::native(["--server-setting", "maintenance_work_mem=200MB"]).run();
    let r = run.assert_pass();
    let m = setting(r, "maintenance_work_mem");
    assert_eq!(m["value"], "200MB");
    assert_eq!(m["origin"], "server_setting");
    assert_eq!(m["requested"], "200MB");
    assert_eq!(m["source"], "command line");
    let shared = setting(r, "shared_buffers");
    assert_eq!(shared["origin"], "default");
    assert!(shared.get("requested").is_none());
    let names: Vec<&str> = r["server_settings"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, pgdrill::pg::settings::RESTORE_RELEVANT);
    assert!(r["server_settings"].get("warnings").is_none());
    assert!(run.phase("replace_server")["detail"]
        .as_str()
        .unwrap()
        .contains("started with maintenance_work_mem=200MB"));
    // The source, lost in the disaster, was not the restore target: PostgreSQL's defaults.
    assert!(!run.phase("provision")["detail"]
        .as_str()
        .unwrap()
        .contains("started with"));
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    assert!(md.contains("## Restore target's settings"), "{md}");
    assert!(
        md.contains("| `maintenance_work_mem` | 200MB | --server-setting | command line |"),
        "{md}"
    );
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    assert!(html.contains("id=\"server-settings\""));
    assert!(
        run.text().contains("restore target: fsync on"),
        "{}",
        run.text()
    );
}

/// fsync=off makes the restore faster than a durable server's: a warning in report.json,
/// report.md and the console, never a failure.
#[test]
fn fsync_off_is_a_warning_in_every_report() {
    let run = Pgdrill::native(["--disaster", "drop-db", "--server-setting", "fsync=off"]).run();
    let r = run.assert_pass();
    assert_eq!(setting(r, "fsync")["value"], "off");
    let warnings = r["server_settings"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("the measured restore is faster than a durable server's"),
        "{w}"
    );
    // drop-db: the one server is the source and the restore target, so it starts with it.
    assert!(run.phase("provision")["detail"]
        .as_str()
        .unwrap()
        .contains("started with fsync=off"));
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    let warnings_at = md.find("## Warnings").expect("report.md has warnings");
    assert!(
        md[warnings_at..].contains("fsync off on the restore target"),
        "{md}"
    );
    let out = run.text();
    assert!(
        out.contains("warning: fsync off on the restore target: the measured restore is faster than a durable server's"),
        "{out}"
    );
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    assert!(
        html.contains("faster than a durable server&#x27;s")
            || html.contains("faster than a durable server's")
    );
}

/// Exit 2 before anything starts: no `=`, a name PostgreSQL does not know, a parameter
/// pgdrill decides itself, and the settings with a server the team names.
#[test]
fn a_bad_server_setting_is_a_usage_error_naming_the_fix() {
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--server-setting", "shared_buffers"],
            &["--server-setting shared_buffers", "expected KEY=VALUE"],
        ),
        (
            &["--server-setting", "shared_bufers=1GB"],
            &[
                "`shared_bufers` is not a PostgreSQL parameter",
                "did you mean shared_buffers?",
            ],
        ),
        (
            &["--server-setting", "port=5433"],
            &["port cannot be set on the restore target", "drop it"],
        ),
        (
            &["--server-setting", "data_directory=/srv/pg"],
            &["data_directory cannot be set"],
        ),
        (
            &[
                "--target-dsn",
                "postgresql://app@127.0.0.1:1/shop",
                "--confirm",
                "shop",
                "--backup-file",
                "/nonexistent.dump",
                "--server-setting",
                "work_mem=64MB",
            ],
            &["never reconfigures a server you name with --target-dsn"],
        ),
    ];
    for (args, needles) in cases {
        let run = Pgdrill::native(args.iter().copied()).run();
        assert_eq!(run.code(), 2, "{args:?}: {}", run.text());
        for n in needles {
            assert!(
                run.text().contains(n),
                "{args:?}: no {n:?} in {}",
                run.text()
            );
        }
        assert!(run.report.is_none(), "{args:?}: nothing ran, so no report");
    }
    // The plan file's [server] table is checked the same way.
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, "[server]\nsettings = { shared_bufers = \"1GB\" }\n").unwrap();
    let run = Pgdrill::native(["--plan", plan.to_str().unwrap()]).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(
        run.text().contains("did you mean shared_buffers?"),
        "{}",
        run.text()
    );
}

/// A value PostgreSQL refuses stops the server's start: exit 3, PostgreSQL's own words,
/// naming the setting.
#[test]
fn a_value_the_server_rejects_is_an_environment_error_naming_the_setting() {
    let run = Pgdrill::native([
        "--disaster",
        "drop-db",
        "--server-setting",
        "shared_buffers=banana",
    ])
    .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let r = run.report();
    assert_eq!(r["verdict"], "error");
    assert_eq!(r["failure"]["phase"], "provision");
    assert_eq!(r["failure"]["class"], "environment");
    let message = r["failure"]["message"].as_str().unwrap();
    assert!(
        message
            .contains("would not start with the setting shared_buffers=banana (--server-setting)"),
        "{message}"
    );
    assert!(
        message.contains("invalid value for parameter \"shared_buffers\": \"banana\""),
        "{message}"
    );
    assert!(
        run.text().contains("shared_buffers=banana"),
        "{}",
        run.text()
    );
    let drill_id = r["drill_id"].as_str().unwrap();
    assert!(crate::support::leftovers(drill_id).is_empty());
}

/// `--server-settings-from`: the live server's restore-relevant settings (changed with
/// `-c` and with ALTER SYSTEM) become the target's, except fsync and full_page_writes;
/// an explicit `--server-setting` wins; the password is never shown.
#[test]
fn settings_are_copied_from_a_live_server_and_an_explicit_one_wins() {
    let rt = runtime();
    let server = rt.block_on(async {
        // TestServer turns fsync, full_page_writes and synchronous_commit off: a copy must
        // leave fsync and full_page_writes out.
        let server = TestServer::start("settings-from").await;
        let admin = server.endpoint.connect().await.unwrap();
        // One statement each: ALTER SYSTEM cannot run in the implicit transaction of a batch.
        for sql in [
            "ALTER SYSTEM SET maintenance_work_mem = '96MB'",
            "ALTER SYSTEM SET checkpoint_timeout = '7min'",
            "ALTER SYSTEM SET work_mem = '12MB'",
            "SELECT pg_reload_conf()",
        ] {
            admin.batch_execute(sql).await.unwrap();
        }
        server
    });
    // The reload reaches new sessions once the postmaster has read the file.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let dsn = format!("{} dbname=postgres", server.dsn());
    let run = Pgdrill::native([
        "--disaster",
        "drop-db",
        "--server-settings-from",
        &dsn,
        "--server-setting",
        "work_mem=20MB",
    ])
    .run();
    let r = run.assert_pass();
    let copied = |name: &str, value: &str| {
        let s = setting(r, name);
        assert_eq!(s["value"], value, "{name}: {s}");
        assert_eq!(s["origin"], "copied", "{name}: {s}");
    };
    copied("maintenance_work_mem", "96MB");
    copied("checkpoint_timeout", "7min");
    copied("synchronous_commit", "off");
    copied("shared_buffers", "128MB");
    assert_eq!(setting(r, "work_mem")["value"], "20MB");
    assert_eq!(setting(r, "work_mem")["origin"], "server_setting");
    for durable in ["fsync", "full_page_writes"] {
        assert_eq!(setting(r, durable)["value"], "on", "{durable}");
        assert_eq!(setting(r, durable)["origin"], "default", "{durable}");
    }
    let from = r["server_settings"]["copied_from"].as_str().unwrap();
    assert!(from.contains("***"), "{from}");
    let password = server.endpoint.password().unwrap();
    let json = std::fs::read_to_string(run.out.path().join("report.json")).unwrap();
    assert!(
        !json.contains(password),
        "the password leaked into report.json"
    );
    assert!(
        !run.text().contains(password),
        "the password leaked into the output"
    );
    drop(server);

    // A server that cannot be reached is exit 2, before anything starts.
    let run = Pgdrill::native([
        "--server-settings-from",
        "postgresql://nobody@127.0.0.1:1/postgres",
    ])
    .run();
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(
        run.text().contains("--server-settings-from postgresql://nobody@127.0.0.1:1/postgres: cannot read its settings"),
        "{}",
        run.text()
    );
}

/// The docker backend starts its container with the settings too (`postgres -c …`); run
/// only where the PostgreSQL image is already here (or required, in CI).
#[test]
fn docker_server_settings_apply_in_the_container() {
    if !crate::docker::postgres_image_or_skip("docker_server_settings_apply_in_the_container") {
        return;
    }
    let run = Pgdrill::drill([
        "--backend",
        "docker",
        "--app",
        "none",
        "--disaster",
        "drop-db",
        "--server-setting",
        "maintenance_work_mem=200MB",
    ])
    .run();
    let r = run.assert_pass();
    assert_eq!(setting(r, "maintenance_work_mem")["value"], "200MB");
    assert_eq!(
        setting(r, "maintenance_work_mem")["origin"],
        "server_setting"
    );
}
