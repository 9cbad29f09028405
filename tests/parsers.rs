//! Property tests over every reader of outside input: no panic, no hang, an error naming the field.
//!
//! Each reader gets arbitrary input (bounded, so no case can hang) and near-valid input (a
//! valid document with one field, line or character changed), so the cases reach past the
//! first byte. Case counts are set per test to keep the whole module within seconds; the
//! cargo-fuzz targets in `fuzz/` drive the same readers for longer (scripts/fuzz.sh).

use std::path::Path;
use std::time::Duration;

use pgdrill::duration::{parse_duration, parse_time};
use pgdrill::env::Endpoint;
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{Pgdrill, TestServer};

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        max_shrink_iters: 512,
        ..ProptestConfig::default()
    }
}

/// Text to throw at a reader: mostly printable, sometimes any char, bounded.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap(),
        proptest::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect()),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// `s` with the char at `at` (modulo its length) replaced by `by`, or `by` appended.
fn mutate_char(s: &str, at: usize, by: char) -> String {
    let n = s.chars().count();
    if n == 0 {
        return by.to_string();
    }
    let at = at % n;
    s.chars()
        .enumerate()
        .map(|(i, c)| if i == at { by } else { c })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Durations and times (`--rpo`, `--budget-*`, `--since`, `--window`, `--at`).

proptest! {
    #![proptest_config(cases(400))]

    #[test]
    fn durations_and_times_parse_or_name_the_input_and_the_form(
        s in prop_oneof![text(40), "[0-9]{0,6}[hmsdwy ]{0,3}[0-9]{0,4}[a-z]{0,3}"]
    ) {
        match parse_duration(&s) {
            Ok(d) => prop_assert!(!d.is_zero()),
            Err(e) => {
                prop_assert!(e.contains(&format!("`{s}`")), "{}", e);
                prop_assert!(e.contains("15m") || e.contains("greater than zero"), "{}", e);
            }
        }
        if let Err(e) = parse_time(&s) {
            prop_assert!(e.contains(&format!("`{s}`")) && e.contains("RFC 3339"), "{}", e);
        }
    }

    #[test]
    fn sizes_parse_or_name_the_input_and_the_forms(
        s in prop_oneof![text(40), "[0-9]{0,6}[.]?[0-9]{0,3} ?[kKmMgGtT]?[iI]?[bB]?[a-z]{0,2}"]
    ) {
        match pgdrill::report::forecast::parse_size(&s) {
            Ok(b) => prop_assert!(b >= 1),
            Err(e) => {
                prop_assert!(e.contains(&format!("`{s}`")), "{}", e);
                prop_assert!(e.contains("50GB") && e.contains("50GiB"), "{}", e);
            }
        }
    }

    #[test]
    fn sizes_read_back_in_both_unit_systems(n in 1u64..1_000_000, unit in 0usize..8) {
        let (name, factor) = [
            ("B", 1u64), ("kB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
            ("KiB", 1024), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ][unit];
        prop_assert_eq!(
            pgdrill::report::forecast::parse_size(&format!("{n}{name}")).unwrap(),
            n * factor
        );
    }

    #[test]
    fn durations_add_up(h in 0u64..100_000, m in 0u64..60, sec in 0u64..60) {
        prop_assume!(h + m + sec > 0);
        prop_assert_eq!(
            parse_duration(&format!("{h}h{m}m{sec}s")).unwrap(),
            Duration::from_secs(h * 3600 + m * 60 + sec)
        );
    }

    #[test]
    fn times_read_back_in_utc(secs in -62_135_596_800i64..253_402_300_799, offset_min in -1439i32..=1439) {
        let at = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let offset = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
        let written = at.with_timezone(&offset).to_rfc3339();
        prop_assert_eq!(parse_time(&written).unwrap(), at, "{}", written);
    }
}

proptest! {
    #![proptest_config(cases(400))]

    /// `--server-setting KEY=VALUE` (and a plan's `[server]` table): a known parameter and
    /// its value, or an error that quotes the input and starts with the flag.
    #[test]
    fn server_settings_parse_or_name_the_flag_and_the_input(
        s in prop_oneof![
            text(40),
            "[A-Za-z_.]{0,24}=?[0-9a-zA-Z]{0,6}",
            "(shared_buffers|work_mem|port|fsync|max_wal_size)[ =]{0,2}[0-9a-z]{0,5}",
        ]
    ) {
        match pgdrill::pg::settings::parse_pair(&s) {
            Ok((name, _)) => {
                prop_assert!(!name.is_empty() && !name.contains('='));
                prop_assert_eq!(name.clone(), name.to_ascii_lowercase());
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.starts_with(&format!("--server-setting {s}:")), "{}", e);
            }
        }
    }
}

/// The largest durations and day counts the flags accept must not crash the command that
/// subtracts them from now: each is a usage error or an answer, never a panic (exit 101).
#[test]
fn huge_durations_and_day_counts_are_answered_not_a_crash() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().display().to_string();
    for args in [
        vec!["history", "--since", "1000000y"],
        vec!["history", "--max-age", "1000000y"],
        vec!["audit", "show", "--repo", &r, "--since", "1000000y"],
        vec!["verify", "--repo", &r, "--window", "1000000y"],
        vec!["prune", "--repo", &r, "--keep-days", "4294967295"],
    ] {
        let run = Pgdrill::new(args.iter().copied()).run();
        let text = run.text();
        assert!(
            !text.contains("panicked") && run.code() != 101,
            "pgdrill {} crashed (exit {}):\n{text}",
            args.join(" "),
            run.code()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// DSNs (`--source-dsn`).

fn conninfo_text() -> impl Strategy<Value = String> {
    // Any text but NUL, which no C string (libpq's) can hold.
    text(24).prop_map(|s| s.replace('\0', ""))
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn dsns_parse_or_say_the_forms(s in prop_oneof![
        text(80),
        "(postgres(ql)?://)?[a-z:@/?=&%. ]{0,40}",
        "(host|port|user|dbname|password|options)=[a-z0-9' \\\\]{0,12}( (host|port|user|dbname)=[a-z0-9']{0,8}){0,3}",
    ]) {
        match Endpoint::from_dsn(&s) {
            Ok(ep) => {
                let shown = ep.display();
                if let Some(p) = ep.password().filter(|p| p.len() >= 6) {
                    prop_assert!(!shown.contains(p), "password shown: {}", shown);
                }
            }
            Err(e) => prop_assert!(e.contains("postgresql://user@host:port/db"), "{}", e),
        }
    }

    /// What pgdrill hands an application (`Endpoint::url`, a conninfo string) reads back as
    /// the same server, role, database and password, whatever characters they hold.
    #[test]
    fn an_endpoints_conninfo_reads_back_the_same(
        host in "[a-z][a-z0-9.-]{0,20}",
        port in 1u16..,
        user in conninfo_text(),
        dbname in conninfo_text(),
        password in proptest::option::of(conninfo_text()),
    ) {
        let ep = Endpoint {
            host: host.clone(),
            port,
            user: user.clone(),
            password: password.clone().map(Into::into),
            dbname: dbname.clone(),
            options: None,
        };
        let back = Endpoint::from_dsn(&ep.url()).unwrap();
        prop_assert_eq!(&back.host, &host);
        prop_assert_eq!(back.port, port);
        prop_assert_eq!(&back.user, &user);
        prop_assert_eq!(&back.dbname, &dbname);
        if password.is_some() {
            prop_assert_eq!(back.password(), password.as_deref());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The app's answers: /metrics (Prometheus), /health, /version, its URLs and log lines.

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn prometheus_text_never_panics(s in prop_oneof![
        text(300),
        "([a-z_]{1,8}(\\{[a-z]{1,4}=\"[^\"\\n]{0,6}\"\\})? [-+0-9.eInfNa]{0,8}( [0-9]{0,4})?\\n?){0,6}",
    ]) {
        let _ = pgdrill::app::parse_prometheus(&s);
    }

    /// Every sample written is read back under its name and labels, whatever else is around it.
    #[test]
    fn prometheus_samples_read_back(
        samples in proptest::collection::btree_map(
            "[a-z_][a-z0-9_]{0,10}",
            (proptest::option::of("[a-z]{1,5}"), "[^\"\\\\\\n]{0,8}", -1e12f64..1e12),
            1..8,
        ),
        noise in proptest::collection::vec("# [^\\n]{0,20}", 0..4),
    ) {
        let mut body = noise.join("\n");
        body.push('\n');
        let mut expected = Vec::new();
        for (name, (label, value_text, v)) in &samples {
            let key = match label {
                Some(l) => format!("{name}{{{l}=\"{value_text}\"}}"),
                None => name.clone(),
            };
            body.push_str(&format!("{key} {v} 1700000000000\n"));
            expected.push((key, *v));
        }
        let read = pgdrill::app::parse_prometheus(&body);
        for (key, v) in expected {
            prop_assert_eq!(read.get(&key).copied(), Some(v), "{} in {:?}", key, read);
        }
    }

    #[test]
    fn health_and_version_bodies_are_read_without_panic(
        status in any::<u16>(),
        body in prop_oneof![
            text(200),
            "\\{\"status\": ?(\"[A-Z]{0,8}\"|[0-9]|null|\\[\\]),? ?(\"checks\": ?\\[(\\{\"name\": ?\"[a-z]{0,4}\", ?\"status\": ?\"(fail|ok)\"(, ?\"detail\": ?(\"[^\"]{0,10}\"|1))?\\},?){0,3}\\])?\\}",
        ],
        healthy in "[A-Z]{0,8}",
    ) {
        let (report, summary) = pgdrill::fuzzing::health(status, &body, &healthy);
        prop_assert!(summary.starts_with(&format!("HTTP {status}, ")), "{}", summary);
        // Outside 2xx nothing the body says makes it healthy.
        if !(200..300).contains(&status) {
            prop_assert!(!report.healthy, "{}", summary);
        }
        let version = pgdrill::fuzzing::version(status, &body);
        prop_assert!(version.body_excerpt.chars().count() <= 501);
        let _ = pgdrill::app::is_error_line(&body);
    }

    /// Every format, forced or recognised, reads any text without panic; a health format
    /// that does not parse says what was given.
    #[test]
    fn health_formats_read_any_body(
        format in prop_oneof![
            Just("auto".to_string()),
            Just("ietf".to_string()),
            Just("spring".to_string()),
            Just("aspnet".to_string()),
            Just("plain".to_string()),
            "json-path=\\$([.][a-z.]{0,6}|\\[[0-9'\"a-z]{0,4}\\]?){0,4}",
            text(30),
        ],
        status in any::<u16>(),
        body in prop_oneof![
            text(300),
            "\\{\"(status|checks|components|entries|details|ok|healthy)\": ?(\"[A-Za-z_]{0,8}\"|true|false|1|null|\\[\\]|\\{\\}|\\{\"[a-z]{1,3}\": ?(\\[\\{\"status\": ?\"[a-z]{0,4}\"\\}\\]|\\{\"status\": ?\"[A-Z]{0,4}\"\\}|true))\\}",
            "(\\[[+-]\\][a-z/]{0,8}( (ok|failed: [a-z ]{0,10}))?\\n){0,4}([a-z]{0,7} check (passed|failed))?",
        ],
    ) {
        match format.parse::<pgdrill::app::HealthFormat>() {
            Ok(f) => {
                let (report, summary) = pgdrill::fuzzing::health_as(&f, status, &body, "HEALTHY");
                prop_assert!(summary.starts_with(&format!("HTTP {status}, ")), "{}", summary);
                if !(200..300).contains(&status) {
                    prop_assert!(!report.healthy);
                }
                // Each check is listed once in the evidence, under its status.
                prop_assert!(report.health.checks.len() <= body.len());
            }
            Err(e) => {
                let given = format.strip_prefix("json-path=").unwrap_or(&format);
                let e = e.to_string();
                prop_assert!(e.contains(given) || e.contains(&format!("{given:?}")), "{}", e);
            }
        }
    }

    /// Checks written in each format are read back under their names with their statuses,
    /// and the format is recognised.
    #[test]
    fn health_checks_read_back_in_every_format(
        // `x…`: never one of the ad-hoc body's own status keys (status, ok, healthy …).
        checks in proptest::collection::btree_map("x[a-z0-9_]{0,6}", 0..3u8, 1..6),
        which in 0..5u8,
    ) {
        use pgdrill::app::{BodyFormat, CheckStatus, Health, HealthFormat};
        let words = |l: u8, w: [&str; 3]| w[l as usize].to_string();
        let worst = checks.values().copied().max().unwrap_or(0);
        let (body, format, vocab): (String, BodyFormat, [&str; 3]) = match which {
            0 => {
                let c: serde_json::Map<String, Value> = checks.iter().map(|(n, l)| {
                    (n.clone(), serde_json::json!([{"status": words(*l, ["pass", "warn", "fail"]), "output": "why"}]))
                }).collect();
                (serde_json::json!({"status": words(worst, ["pass", "warn", "fail"]), "checks": c}).to_string(), BodyFormat::Ietf, ["pass", "warn", "fail"])
            }
            1 => {
                let c: serde_json::Map<String, Value> = checks.iter().map(|(n, l)| {
                    (n.clone(), serde_json::json!({"status": words(*l, ["UP", "UNKNOWN", "DOWN"]), "details": {"error": "why"}}))
                }).collect();
                (serde_json::json!({"status": "UP", "components": {"group": {"status": "UP", "components": c}}}).to_string(), BodyFormat::Spring, ["UP", "UNKNOWN", "DOWN"])
            }
            2 => {
                let c: serde_json::Map<String, Value> = checks.iter().map(|(n, l)| {
                    (n.clone(), serde_json::json!({"status": words(*l, ["Healthy", "Degraded", "Unhealthy"]), "description": "why", "duration": "00:00:00.0010000"}))
                }).collect();
                (serde_json::json!({"status": words(worst, ["Healthy", "Degraded", "Unhealthy"]), "totalDuration": "00:00:00.0020000", "entries": c}).to_string(), BodyFormat::AspNet, ["Healthy", "Degraded", "Unhealthy"])
            }
            3 => {
                let c: serde_json::Map<String, Value> = checks.iter().map(|(n, l)| {
                    (n.clone(), serde_json::json!({"ok": words(*l, ["ok", "degraded", "error"]), "message": "why"}))
                }).collect();
                let mut o = serde_json::json!({"healthy": worst < 2});
                o.as_object_mut().unwrap().extend(c);
                (o.to_string(), BodyFormat::AdHoc, ["ok", "degraded", "error"])
            }
            _ => {
                let mut text: String = checks.iter().map(|(n, l)| match l {
                    0 => format!("[+]{n} ok\n"),
                    1 => format!("[+]{n} degraded\n"),
                    _ => format!("[-]{n} failed: why\n"),
                }).collect();
                text.push_str(if worst < 2 { "healthz check passed\n" } else { "healthz check failed\n" });
                (text, BodyFormat::Plain, ["ok", "degraded", "failed"])
            }
        };
        let h = Health::read(&HealthFormat::Auto, &body, "HEALTHY");
        prop_assert_eq!(&h.format, &format, "{}", body);
        prop_assert_eq!(h.checks.len(), checks.len(), "{}", body);
        for (name, level) in &checks {
            let shown = if format == BodyFormat::Spring { format!("group/{name}") } else { name.clone() };
            let c = h.check(&shown);
            prop_assert!(c.is_some(), "{} missing from {:?}", shown, h);
            let expected = match (level, &format) {
                (0, _) => CheckStatus::Pass,
                (1, BodyFormat::Spring) => CheckStatus::Unknown("UNKNOWN".into()),
                (1, BodyFormat::Plain) => CheckStatus::Unknown("degraded".into()),
                (1, _) => CheckStatus::Warn,
                _ => CheckStatus::Fail,
            };
            prop_assert_eq!(&c.unwrap().status, &expected, "{} in {}", vocab[*level as usize], body);
        }
        // A failed check is never healthy when the body has no overall verdict of its own, and
        // every failed check is named in the evidence.
        let described = h.describe();
        for (name, _) in checks.iter().filter(|(_, l)| **l == 2) {
            prop_assert!(described.contains(name.as_str()), "{}", described);
        }
        prop_assert_eq!(h.healthy(200), worst < 2 || format == BodyFormat::Spring, "{}", described);
        prop_assert!(!h.healthy(503));
    }

    #[test]
    fn app_urls_parse_or_say_why(url in prop_oneof![
        text(60),
        "(http|https)://(\\[[0-9a-f:]{0,8}\\]|[a-z0-9.@]{0,10})(:[0-9a-z]{0,6})?(/[a-z/]{0,10})?",
    ]) {
        if let Err(e) = pgdrill::fuzzing::http_url(&url) {
            prop_assert!(e.contains(&url) || e.contains(&format!("{url:?}")), "the error names the URL: {}", e);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What pg_restore says about an archive: `--list` (header and contents), `--schema-only`.

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn archive_lists_and_scripts_never_panic(s in prop_oneof![
        text(400),
        "(;( {0,5}(Format|dbname|TOC Entries): ?[A-Za-z0-9]{0,8})?\\n|[0-9]{1,5}; [0-9]{1,4} [0-9]{1,5} (TABLE DATA|TABLE|SEQUENCE SET) [a-z\" ]{0,16}\\n){0,8}",
        "((ALTER [A-Z]{1,6} [a-z.]{1,8} OWNER TO |GRANT [A-Z]{1,6} ON [a-z]{1,5} TO |REVOKE ALL ON [a-z]{1,4} FROM |SET default_tablespace = |CREATE EXTENSION IF NOT EXISTS )(\"[^\"]{0,6}\"?|[a-z_]{0,6})(, ?[a-z\"]{0,5}){0,2};?\\n){0,6}",
    ]) {
        let (tables, format, _dbname) = pgdrill::fuzzing::archive_list(&s);
        prop_assert!(tables as usize <= s.lines().count());
        prop_assert!(format.is_none_or(|f| !f.contains('\n')));
        let _ = pgdrill::preflight::parse_script(&s);
        let (kept, _) = pgdrill::restore::without_tablespaces(&s);
        prop_assert!(kept.len() <= s.len());
    }

    #[test]
    fn table_data_entries_are_counted(
        entries in proptest::collection::vec((1u32..99_999, "(TABLE DATA|TABLE|INDEX|SEQUENCE SET)", "[a-z]{1,8}"), 0..20),
    ) {
        let mut list = String::from(";\n; Archive created at 2026-12-01 03:00:00 UTC\n;     dbname: shop\n;     Format: CUSTOM\n;\n");
        for (id, kind, name) in &entries {
            list.push_str(&format!("{id}; 0 {id} {kind} public {name} postgres\n"));
        }
        let (tables, format, dbname) = pgdrill::fuzzing::archive_list(&list);
        prop_assert_eq!(tables as usize, entries.iter().filter(|e| e.1 == "TABLE DATA").count());
        prop_assert_eq!(format.as_deref(), Some("CUSTOM"));
        prop_assert_eq!(dbname.as_deref(), Some("shop"));
    }
}

proptest! {
    #![proptest_config(cases(300))]

    /// A custom archive's binary table of contents, of any bytes after a known header (and
    /// lengths that claim more than there is): read or refused, never a panic or a huge
    /// allocation.
    #[test]
    fn archive_tables_of_contents_of_any_bytes_are_read_or_refused(
        version in 12u8..=14,
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = b"PGDMP".to_vec();
        bytes.extend([1, version, 0, 4, 8, 1]);
        bytes.extend(&body);
        if let Some(entries) = pgdrill::pg::archive::entries_in(&bytes) {
            prop_assert!(entries.len() <= bytes.len());
        }
        let _ = pgdrill::pg::archive::entries_in(&body);
    }
}

// ---------------------------------------------------------------------------------------------
// The plan file (`drill --plan FILE`).

fn plan_argv(plan: &Path) -> Vec<std::ffi::OsString> {
    ["pgdrill", "drill", "--plan"]
        .map(Into::into)
        .into_iter()
        .chain([plan.as_os_str().to_owned()])
        .collect()
}

fn parse_plan_bytes(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, bytes).unwrap();
    match pgdrill::cmd::parse(plan_argv(&plan)) {
        Ok(_) => Ok(()),
        Err(pgdrill::cmd::ParseFailure::Plan(e)) => {
            let text = e.to_string();
            assert!(
                text.contains(&plan.display().to_string()),
                "a plan error names the file: {text}"
            );
            Err(text)
        }
        Err(pgdrill::cmd::ParseFailure::Clap(e)) => Err(e.to_string()),
    }
}

const MONTHLY: &str = include_str!("../drills/monthly.toml");

proptest! {
    #![proptest_config(cases(150))]

    #[test]
    fn plan_files_of_any_bytes_are_read_or_refused_naming_the_file(b in prop_oneof![
        bytes(300),
        text(300).prop_map(String::into_bytes),
    ]) {
        let _ = parse_plan_bytes(&b);
    }

    /// The shipped monthly plan with one line replaced: the error names the key or the line.
    #[test]
    fn a_plan_with_one_line_changed_names_it(
        line in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            Just("rows = \"many\"".to_string()),
            Just("rows = 1.5".to_string()),
            Just("keep = \"yes\"".to_string()),
            Just("budget_total = [1, {a = 1}]".to_string()),
            Just("no_such_key = 1".to_string()),
            Just("budget_restore = \"soon\"".to_string()),
            "[a-z_]{1,12} = (\"[^\"\\n]{0,8}\"|[0-9]{1,4}|true|false|\\[\\])",
            text(20),
        ],
    ) {
        let lines: Vec<&str> = MONTHLY.lines().collect();
        let at = line.index(lines.len());
        let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        changed[at] = replacement.clone();
        let text = changed.join("\n");
        if let Err(e) = parse_plan_bytes(text.as_bytes()) {
            let key = replacement.split(['=', ' ']).next().unwrap_or("").trim().to_string();
            let flag = key.replace('_', "-");
            // A TOML error names its line (a duplicate key may be found on the other line,
            // an unclosed string further down); any other error names the key or its flag.
            let names_a_line = e.contains("not valid TOML") && e.contains(": line ");
            prop_assert!(
                names_a_line || (!key.is_empty() && (e.contains(&key) || e.contains(&flag))),
                "the error names the key `{}` or a line: {}", key, e
            );
        }
    }
}

/// A TOML syntax error names the line, so a user can find it in a long plan.
#[test]
fn a_plan_with_a_syntax_error_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("weekly.toml");
    std::fs::write(
        &plan,
        "backend = \"native\"\nrows = 300\nbudget_total = \"30m\n",
    )
    .unwrap();
    let run = Pgdrill::new(["drill", "--plan", plan.to_str().unwrap()]).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    crate::support::assert_mentions(&run.text(), &["weekly.toml", "line 3", "not valid TOML"]);
}

// ---------------------------------------------------------------------------------------------
// The backup repository's files: manifests, the audit log, the drill history.

/// Each top-level field of `valid` in turn removed, or given a value of the wrong kind,
/// written to `path` and read with `read`: the error must name the file and the field.
fn every_field_broken(valid: &Value, path: &Path, read: impl Fn(&Path) -> Result<(), String>) {
    let obj = valid.as_object().expect("a JSON object");
    let mut unnamed = Vec::new();
    for key in obj.keys() {
        for wrong in [
            Value::Null,
            Value::from("x"),
            Value::from(-1),
            serde_json::json!([{}]),
        ] {
            let mut m = valid.clone();
            if m[key] == wrong || (wrong.is_null() && obj[key].is_null()) {
                continue;
            }
            m[key] = wrong.clone();
            std::fs::write(path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
            if let Err(e) = read(path) {
                if !(e.contains(key.as_str()) && e.contains(&path.display().to_string())) {
                    unnamed.push(format!("{key} = {wrong}: {e}"));
                }
            }
        }
        let mut m = valid.clone();
        m.as_object_mut().unwrap().remove(key);
        std::fs::write(path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        if let Err(e) = read(path) {
            if !e.contains(key.as_str()) {
                unnamed.push(format!("{key} removed: {e}"));
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "errors that do not name the field and the file:\n{}",
        unnamed.join("\n")
    );
}

/// A real backup's manifest, cut or with one character changed anywhere, reads or fails with
/// an error naming the file and, for a wrong field, the field; never a panic.
#[test]
fn backup_manifests_name_the_file_and_the_field() {
    let rt = crate::support::runtime();
    let (server, db) = rt.block_on(TestServer::with_db(
        "parsers",
        "manifest",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50) g;",
    ));
    let repo = tempfile::tempdir().unwrap();
    let run = Pgdrill::new([
        "backup",
        "--source-dsn",
        &format!("{} dbname={db}", server.dsn()),
        "--repo",
        repo.path().to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code(), 0, "{}", run.text());
    drop(server);
    let manifest = std::fs::read_dir(repo.path().join("database"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .expect("a manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let valid: Value = serde_json::from_str(&text).unwrap();
    pgdrill::backup::read_manifest(&manifest).expect("the real manifest reads");

    let scratch = repo.path().join("scratch.manifest.json");
    let read = |p: &Path| {
        pgdrill::backup::read_manifest(p)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    every_field_broken(&valid, &scratch, read);

    let config = cases(200);
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let len = text.len();
    runner
        .run(&(0..len, any::<char>(), any::<bool>()), |(at, by, cut)| {
            let broken = if cut {
                text.as_bytes()[..at].to_vec()
            } else {
                mutate_char(&text, at, by).into_bytes()
            };
            std::fs::write(&scratch, &broken).unwrap();
            if let Err(e) = pgdrill::backup::read_manifest(&scratch).map_err(|e| e.to_string()) {
                prop_assert!(e.contains(&scratch.display().to_string()), "{}", e);
                prop_assert!(e.contains("line ") || e.contains('`'), "{}", e);
            }
            Ok(())
        })
        .unwrap();
}

/// A config backup's manifest, with a field broken: `Repo::list` says which file and field.
#[test]
fn config_manifests_name_the_file_and_the_field() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let valid = serde_json::json!({
        "manifest_version": 1,
        "file": "config_20261201_030000.tar.age",
        "size_bytes": 10,
        "sha256": "00",
        "created_at": "2026-12-01T03:00:00Z",
        "kind": "scheduled",
        "reason": null,
        "encrypted": true,
        "recipients": ["age1xyz"],
        "files": [{"path": "/etc/app/.env", "name": ".env", "size_bytes": 3, "mode": "0600",
                   "sha256": "00", "format": "dotenv", "keys": ["A"]}],
    });
    std::fs::write(dir.join("config_20261201_030000.tar.age"), b"0123456789").unwrap();
    let manifest = dir.join("config_20261201_030000.manifest.json");
    let list = pgdrill::repo::Repo::new(repo.path());
    let read = |_: &Path| -> Result<(), String> {
        let listing = list.list().map_err(|e| e.to_string())?;
        listing.config[0]
            .manifest
            .as_ref()
            .map(|_| ())
            .map_err(Clone::clone)
    };
    std::fs::write(&manifest, valid.to_string()).unwrap();
    read(&manifest).expect("the valid config manifest reads");
    every_field_broken(&valid, &manifest, read);
}

fn audit_lines(n: usize) -> (tempfile::TempDir, String) {
    use pgdrill::repo::audit::{append, Action, Object, Outcome};
    let repo = tempfile::tempdir().unwrap();
    for i in 0..n {
        append(
            repo.path(),
            Action::Backup,
            Object::file(format!("backup_{i}.dump"), "00"),
            Outcome::Ok,
            Some(format!("event {i}")),
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(repo.path().join("audit.ndjson")).unwrap();
    (repo, text)
}

proptest! {
    #![proptest_config(cases(150))]

    /// An audit log with one line damaged (any bytes, a character changed, cut): `verify_chain`
    /// answers with the line, and `audit::events` names the line; neither fails the whole file.
    #[test]
    fn an_audit_log_with_one_damaged_line_names_it(
        at in any::<prop::sample::Index>(),
        how in 0u8..3,
        junk in bytes(60),
        pos in any::<usize>(),
        by in any::<char>(),
    ) {
        let (repo, text) = audit_lines(3);
        let lines: Vec<&str> = text.lines().collect();
        let at = at.index(lines.len());
        let mut out: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
        out[at] = match how {
            0 => junk.into_iter().filter(|c| *c != b'\n').collect(),
            1 => mutate_char(lines[at], pos, by).replace('\n', " ").into_bytes(),
            _ => lines[at].as_bytes()[..pos % lines[at].len()].to_vec(),
        };
        let path = repo.path().join("audit.ndjson");
        std::fs::write(&path, out.join(&b'\n')).unwrap();
        let chain = pgdrill::repo::audit::verify_chain(&path);
        prop_assert!(chain.is_ok(), "the file reads: {:?}", chain.err().map(|e| e.to_string()));
        if let Err(e) = pgdrill::repo::audit::events(repo.path()) {
            let e = e.to_string();
            prop_assert!(e.contains(&format!("line {}", at + 1)), "{}", e);
        }
    }
}

fn history_entry(i: u64) -> pgdrill::report::history::Entry {
    serde_json::from_value(serde_json::json!({
        "drill_id": format!("drill-{i}"),
        "time": "2026-12-01T03:00:00Z",
        "scope": "database",
        "backup_file": "backup_20261201_020000.dump",
        "backup_size_bytes": 1000,
        "backup_age_ms": 3_600_000,
        "verdict": "pass",
        "failed": null,
        "budgets": [{"name": "total", "used_ms": 1000, "limit_ms": 1_800_000}],
        "integrity": {"tables": 4, "tables_mismatched": 0, "checks": 5, "checks_failed": 0},
        "report": "reports/x/report.json",
        "report_sha256": "00",
    }))
    .expect("a history entry of today's shape")
}

proptest! {
    #![proptest_config(cases(150))]

    /// A history file with one damaged line: the error names the file and the line.
    #[test]
    fn a_history_with_one_damaged_line_names_it(
        at in 0usize..3,
        damage in prop_oneof![bytes(60), text(60).prop_map(String::into_bytes)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.ndjson");
        for i in 0..3 {
            pgdrill::report::history::append(&path, &history_entry(i)).unwrap();
        }
        let text = std::fs::read(&path).unwrap();
        let mut lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        lines[at] = damage.into_iter().filter(|b| *b != b'\n' && *b != b'\r').collect();
        std::fs::write(&path, lines.join(&b'\n')).unwrap();
        if let Err(e) = pgdrill::report::history::read(&path) {
            let e = e.to_string();
            prop_assert!(e.contains(&format!("line {}", at + 1)) && e.contains("history.ndjson"), "{}", e);
        }
    }
}

/// Each field of a history line broken in turn: the error names the line and the field.
#[test]
fn history_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.ndjson");
    let valid = serde_json::to_value(history_entry(1)).unwrap();
    every_field_broken(&valid, &path, |p| {
        let line = std::fs::read_to_string(p).unwrap().replace('\n', "");
        std::fs::write(p, line + "\n").unwrap();
        pgdrill::report::history::read(p)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

// ---------------------------------------------------------------------------------------------
// `evidence verify --allowed-signers FILE` (OpenSSH's allowed signers format) and the bundle's
// SHA256SUMS.sig (an SSHSIG armored signature).

use pgdrill::report::evidence::allowed_signers::{AllowedSigners, ParseError};
use pgdrill::report::evidence::signature::{self, SignatureCheck};

/// Two ssh-keygen Ed25519 public keys (no private half is needed to read a file).
const SIGNER_KEYS: [&str; 2] = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIArHTf/0WZG+CyoVFEqHOvtQ8MpxMpTQwkza+534Ibys",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICvyf6f8VOJuWwoM0cHK8njBe+LLdlJ2zm9gtjR339PI",
];

/// A valid allowed signers file using every form: comments, quotes, each option, a comment.
fn valid_signers() -> String {
    format!(
        "# drill signers\n\
         drills@example.com,ops@example.com {0} runner\n\
         \"audit team\" namespaces=\"pgdrill-evidence,!git\",valid-after=\"20260101Z\",valid-before=\"203001011200\" {1}\n\
         \n\
         ca@example.com cert-authority {0}\n",
        SIGNER_KEYS[0], SIGNER_KEYS[1]
    )
}

fn check_signers_result(
    text: &str,
    r: &Result<AllowedSigners, ParseError>,
) -> Result<(), TestCaseError> {
    match r {
        Ok(a) => {
            prop_assert!(!a.signers.is_empty());
            for s in &a.signers {
                prop_assert!(s.line >= 1 && s.line <= text.lines().count(), "{}", s.line);
                prop_assert!(!s.principals.is_empty());
            }
        }
        Err(ParseError::Line { line, reason }) => {
            prop_assert!(
                *line >= 1 && *line <= text.lines().count(),
                "line {} of {:?}",
                line,
                text
            );
            prop_assert!(!reason.is_empty());
        }
        Err(ParseError::Empty) => {
            prop_assert!(text.lines().all(|l| l.trim_matches([' ', '\t']).is_empty()
                || l.trim_start_matches([' ', '\t']).starts_with('#')))
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn allowed_signers_files_read_or_name_the_line(s in prop_oneof![
        text(300),
        "(#[^\\n]{0,10}\\n|[a-z@.,*\"]{0,12}( (cert-authority|namespaces=\"[a-z*,!-]{0,12}\"|valid-(after|before)=\"[0-9]{6,14}Z?\"|[a-z=\"]{0,8})(,(cert-authority|namespaces=\"[a-z]{0,4}\"))?)? (ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|x) [A-Za-z0-9+/=]{0,80}( [a-z ]{0,8})?\\n){0,4}",
    ]) {
        let r = AllowedSigners::parse(&s);
        check_signers_result(&s, &r)?;
    }

    /// A valid file with one character changed reads, or names the line it broke.
    #[test]
    fn an_allowed_signers_file_with_one_char_changed_names_its_line(at in 0usize..400, by in any::<char>()) {
        let text = mutate_char(&valid_signers(), at, by);
        let r = AllowedSigners::parse(&text);
        check_signers_result(&text, &r)?;
    }

    /// Any bytes as SHA256SUMS.sig, and a real signature with one byte changed: judged without
    /// a panic, and a refusal names the file.
    #[test]
    fn signatures_of_any_bytes_are_judged(
        junk in bytes(700),
        at in 0usize..2000,
        by in any::<u8>(),
        pick in 0u8..2,
    ) {
        let signers = AllowedSigners::parse(&format!("a {}\n", SIGNER_KEYS[0])).unwrap();
        let pem = if pick == 0 { junk } else {
            let mut p = SIGNED_SUMS.as_bytes().to_vec();
            let i = at % p.len();
            p[i] = by;
            p
        };
        match signature::judge(&pem, b"0000  report.json\n", &signers, chrono::Utc::now()) {
            Ok(SignatureCheck::Good { fingerprint, .. }) => prop_assert!(fingerprint.starts_with("SHA256:")),
            Ok(other) => prop_assert!(false, "judge gives Good or a rejection, not {:?}", other),
            Err(why) => prop_assert!(why.to_string().contains("SHA256SUMS.sig"), "{}", why),
        }
    }
}

/// `ssh-keygen -Y sign -n pgdrill-evidence` of the text `0000  report.json\n` by
/// [`SIGNER_KEYS`]`[0]`'s private half (made once; kept so the test needs no key).
const SIGNED_SUMS: &str = "-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgCsdN//RZkb4LKhUUSoc6+1Dwyn
EylNDCTNr7nfghvKwAAAAQcGdkcmlsbC1ldmlkZW5jZQAAAAAAAAAGc2hhNTEyAAAAUwAA
AAtzc2gtZWQyNTUxOQAAAEDtrXvGlqCxBzzRXXqwWF7tK+I85reeuikc8f2eX7/h/chjLB
hmvGohtMxtM2uRzKAI42Wivsu9UVp1HhyShPAL
-----END SSH SIGNATURE-----
";

/// The unchanged signature is good: the mutation test above starts from a signature that reads.
#[test]
fn the_kept_openssh_signature_is_good() {
    let signers = AllowedSigners::parse(&format!("a {}\n", SIGNER_KEYS[0])).unwrap();
    let r = signature::judge(
        SIGNED_SUMS.as_bytes(),
        b"0000  report.json\n",
        &signers,
        chrono::Utc::now(),
    );
    assert!(
        matches!(r, Ok(SignatureCheck::Good { line: 1, .. })),
        "{r:?}"
    );
    let r = signature::judge(
        SIGNED_SUMS.as_bytes(),
        b"0001  report.json\n",
        &signers,
        chrono::Utc::now(),
    );
    assert!(r.is_err(), "{r:?}");
}

const FLEET: &str = include_str!("../drills/fleet.toml");

proptest! {
    #![proptest_config(cases(150))]

    /// A fleet file of any text is read or refused naming the file; one that reads plans on
    /// every engine.
    #[test]
    fn fleet_files_of_any_text_are_read_or_refused_naming_the_file(t in text(300)) {
        check_fleet(&t)?;
    }

    /// The shipped fleet file with one line replaced: read, or refused naming the file.
    #[test]
    fn a_fleet_file_with_one_line_changed_is_read_or_refused(
        line in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            Just("concurrency = 0".to_string()),
            Just("source_dsn = \"postgresql://u:pw@h/db\"".to_string()),
            Just("name = \"Bad Name\"".to_string()),
            Just("[[database]]".to_string()),
            "[a-z_]{1,12} = (\"[^\"\\n]{0,8}\"|[0-9]{1,4}|true|false|\\[\\])",
            text(20),
        ],
    ) {
        let mut lines: Vec<String> = FLEET.lines().map(String::from).collect();
        let at = line.index(lines.len());
        lines[at] = replacement;
        check_fleet(&lines.join("\n"))?;
    }
}

fn check_fleet(text: &str) -> Result<(), TestCaseError> {
    use pgdrill::fleet::{plan, Fleet};
    match Fleet::parse(Path::new("fleet.toml"), text.to_string()) {
        Ok(f) => {
            for e in [
                plan::Engine::Swarm,
                plan::Engine::Kubernetes,
                plan::Engine::Github,
            ] {
                prop_assert!(!plan::plan(&f, e, "fleet.toml")[0].text.is_empty());
            }
            // A credential is never inline in what reads.
            prop_assert!(f
                .databases
                .iter()
                .all(|d| !d.drill.contains_key("source_dsn")));
        }
        Err(e) => {
            let e = e.to_string();
            prop_assert!(e.starts_with("fleet file fleet.toml: "), "{}", e);
            prop_assert!(!e.contains("u:pw@"), "{}", e);
        }
    }
    Ok(())
}
