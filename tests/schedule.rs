//! The shipped schedule: systemd units pass `systemd-analyze verify`, the crontab lines have
//! five time fields, the Kubernetes CronJob parses, every pgdrill command line in them
//! parses with `pgdrill::cmd::parse`, the pgBackRest backups the PITR drill relies on are
//! full on Sundays and incremental on the other days, and Barman's are weekly with its
//! `cron` every minute.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// A command line as the shell or systemd would split it, `${VAR}`/`$(VAR)`/`"$VAR"` kept as
/// a placeholder value.
fn words(line: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .map(|w| {
            if w.starts_with('$') {
                "age1placeholder".to_string()
            } else {
                w
            }
        })
        .collect()
}

/// Parses a pgdrill command line (from `pgdrill` on) when this build knows its subcommand;
/// returns the subcommand's name and whether it was parsed.
fn parse(args: &[String]) -> String {
    let at = args
        .iter()
        .position(|a| a.ends_with("/pgdrill"))
        .expect("a pgdrill command");
    let args = &args[at..];
    let mut argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    argv[0] = "pgdrill".into();
    if let Err(e) = pgdrill::cmd::parse(argv) {
        panic!("{args:?} does not parse: {e:?}");
    }
    args[1].clone()
}

fn units() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(deploy().join("systemd"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("service" | "timer")
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn schedule_systemd_units_verify_and_their_commands_parse() {
    let units = units();
    assert_eq!(units.len(), 22, "{units:?}");
    let mut calendars = Vec::new();
    let mut parsed = Vec::new();
    let mut backups = Vec::new();
    let mut barman = Vec::new();
    for u in &units {
        let text = std::fs::read_to_string(u).unwrap();
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("OnCalendar=") {
                calendars.push(c.to_string());
            }
            if let Some(cmd) = line.strip_prefix("ExecStart=/usr/bin/pgbackrest ") {
                // pgBackRest's own backup, as the server's user, of the stanza the PITR drill
                // drills.
                assert!(
                    cmd.contains("--stanza=${PGBACKREST_STANZA}") && cmd.ends_with(" backup"),
                    "{}: {cmd}",
                    u.display()
                );
                assert!(text.contains("User=postgres"), "{}", u.display());
                backups.push(cmd.to_string());
                continue;
            }
            if let Some(cmd) = line.strip_prefix("ExecStart=/usr/bin/barman ") {
                // Barman's own jobs, as its user, who owns the catalogue.
                assert!(text.contains("User=barman"), "{}", u.display());
                if cmd.contains(" cron") {
                    // receive-wal, started by cron, must outlive the oneshot run.
                    assert!(text.contains("KillMode=process"), "{}", u.display());
                } else {
                    assert!(cmd.ends_with(" ${BARMAN_SERVER}"), "{}: {cmd}", u.display());
                }
                barman.push(cmd.to_string());
                continue;
            }
            if let Some(cmd) = line.strip_prefix("ExecStart=") {
                parsed.push(parse(&words(cmd)));
                if cmd.contains("--barman-server") {
                    // As root, so that Barman drops to its own user and the restored server
                    // runs as postgres; Barman's lock files and log are its only writes.
                    for want in [
                        "StateDirectory=pgdrill",
                        "WorkingDirectory=/var/lib/pgdrill",
                        "ProtectSystem=strict",
                        "ReadWritePaths=/var/lib/barman /var/log/barman",
                        "EnvironmentFile=/etc/pgdrill/pgdrill.env",
                    ] {
                        assert!(text.contains(want), "{}: no {want}", u.display());
                    }
                    assert!(!text.contains("User="), "{}", u.display());
                    assert!(cmd.contains("${BARMAN_SERVER}"), "{cmd}");
                    continue;
                }
                if cmd.contains("--pgbackrest-stanza") {
                    // The PITR drill reads the repository as its owner and keeps its reports
                    // in its own state directory.
                    for want in [
                        "User=postgres",
                        "StateDirectory=pgdrill",
                        "WorkingDirectory=/var/lib/pgdrill",
                        "ProtectSystem=strict",
                        "EnvironmentFile=/etc/pgdrill/pgdrill.env",
                    ] {
                        assert!(text.contains(want), "{}: no {want}", u.display());
                    }
                    assert!(cmd.contains("${PGBACKREST_STANZA}"), "{cmd}");
                    continue;
                }
                // systemd does not expand variables in ReadWritePaths=: the repo a command
                // writes must be spelled out there (and be the working directory, if set).
                let argv = words(cmd);
                let repo = argv
                    .iter()
                    .position(|w| w == "--repo")
                    .map(|i| argv[i + 1].clone())
                    .unwrap_or_else(|| panic!("{}: no --repo in {cmd}", u.display()));
                assert_eq!(repo, "/backups", "{}: {cmd}", u.display());
                let writable: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("ReadWritePaths="))
                    .flat_map(str::split_whitespace)
                    .collect();
                assert!(
                    writable.contains(&repo.as_str()),
                    "{}: --repo {repo} but ReadWritePaths={writable:?}",
                    u.display()
                );
                if let Some(wd) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("WorkingDirectory="))
                {
                    assert_eq!(wd, repo, "{}", u.display());
                }
                assert!(text.contains("ProtectSystem=strict"));
                assert!(
                    text.contains("EnvironmentFile=/etc/pgdrill/pgdrill.env")
                        && text.contains("User=pgdrill")
                );
            }
        }
    }
    assert!(calendars.contains(&"*:0/15".to_string()), "{calendars:?}");
    assert!(calendars.contains(&"hourly".to_string()), "{calendars:?}");
    for weekly in [
        "Sun *-*-* 01:00:00",
        "Mon..Sat *-*-* 01:00:00",
        "Sun *-*-* 05:00:00",
    ] {
        assert!(calendars.contains(&weekly.to_string()), "{calendars:?}");
    }
    backups.sort();
    assert_eq!(
        backups,
        [
            "--stanza=${PGBACKREST_STANZA} --type=full backup",
            "--stanza=${PGBACKREST_STANZA} --type=incr backup"
        ]
    );
    barman.sort();
    assert_eq!(
        barman,
        [
            "-q cron",
            "backup --wait --wait-timeout 3600 ${BARMAN_SERVER}"
        ]
    );
    assert!(calendars.contains(&"minutely".to_string()), "{calendars:?}");
    let env = std::fs::read_to_string(deploy().join("systemd/pgdrill.env.example")).unwrap();
    assert!(env.contains("\nPGBACKREST_STANZA="), "{env}");
    assert!(env.contains("\nBARMAN_SERVER="), "{env}");
    parsed.sort();
    parsed.dedup();
    assert_eq!(
        parsed,
        ["backup", "config", "drill", "prune", "verify"],
        "every scheduled job is a pgdrill command line that parses"
    );

    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped systemd-analyze verify: systemd-analyze is not installed (scripts/setup.sh installs the systemd package)");
        return;
    };
    assert!(probe.status.success());
    // verify wants ExecStart's binary to exist: point the units at the pgdrill under test.
    let dir = tempfile::Builder::new()
        .prefix("pgdrill-test-units-")
        .tempdir()
        .unwrap();
    let mut copies = Vec::new();
    // …and pgbackrest's at the one installed (scripts/setup.sh installs it), else at a
    // program that exists, so that the rest of the unit is still verified.
    let pgbackrest = ["/usr/bin/pgbackrest", "/usr/local/bin/pgbackrest"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("/bin/true");
    let barman = ["/usr/bin/barman", "/usr/local/bin/barman"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("/bin/true");
    for u in &units {
        let text = std::fs::read_to_string(u)
            .unwrap()
            .replace("/usr/local/bin/pgdrill", env!("CARGO_BIN_EXE_pgdrill"))
            .replace("/usr/bin/pgbackrest", pgbackrest)
            .replace("/usr/bin/barman", barman);
        let to = dir.path().join(u.file_name().unwrap());
        std::fs::write(&to, text).unwrap();
        copies.push(to);
    }
    // The documented way to keep the repo elsewhere: one drop-in for every pgdrill-*.service.
    let dropins = dir.path().join("pgdrill-.service.d");
    std::fs::create_dir(&dropins).unwrap();
    let dropin =
        std::fs::read_to_string(deploy().join("systemd/pgdrill-.service.d/repo.conf.example"))
            .unwrap();
    assert!(
        dropin.contains("BindPaths=/srv/pg-backups:/backups"),
        "{dropin}"
    );
    std::fs::write(dropins.join("repo.conf"), &dropin).unwrap();
    let verify = |units: &[PathBuf]| {
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(units)
            .output()
            .unwrap()
    };
    let out = verify(&copies);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    // …and every service really reads that drop-in: a bad key in it is reported for each.
    std::fs::write(dropins.join("repo.conf"), dropin + "NoSuchSetting=1\n").unwrap();
    let out = verify(&copies);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // pgBackRest's and Barman's own services are not pgdrill-*: the drop-in is not theirs.
    let services = copies
        .iter()
        .filter(|c| c.extension().is_some_and(|e| e == "service"))
        .filter(|c| {
            c.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pgdrill-"))
        })
        .count();
    assert_eq!(
        stderr.matches("repo.conf").count(),
        services,
        "the drop-in is read by every service: {stderr}"
    );
    std::fs::remove_dir_all(&dropins).unwrap();

    // The check can fail: a broken calendar is refused.
    let bad = dir.path().join("pgdrill-bad.timer");
    std::fs::write(
        &bad,
        "[Timer]\nOnCalendar=every now and then\n[Install]\nWantedBy=timers.target\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken timer verified");
}

#[test]
fn schedule_crontab_and_cronjob_parse() {
    let cron = std::fs::read_to_string(deploy().join("crontab.example")).unwrap();
    let mut subs = Vec::new();
    for line in cron.lines() {
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("SHELL=") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        for (i, f) in fields[..5].iter().enumerate() {
            let ok = f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c));
            assert!(
                ok,
                "crontab field {} of `{line}` is not a cron time field: {f}",
                i + 1
            );
        }
        let cmd = line.split("&& ").last().expect("`. envfile && pgdrill …`");
        subs.push(parse(&words(cmd)));
    }
    assert_eq!(subs, ["backup", "config", "verify", "prune", "drill"]);
    assert!(cron.contains("*/15 * * * *"));

    let yaml: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(deploy().join("kubernetes/cronjob-backup.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(yaml["kind"], "CronJob");
    assert_eq!(yaml["spec"]["schedule"], "*/15 * * * *");
    let c = &yaml["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<String> = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(&command[..2], ["/usr/local/bin/pgdrill", "backup"]);
    parse(&words(&command.join(" ")));
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["key"],
        "source-dsn"
    );
}
