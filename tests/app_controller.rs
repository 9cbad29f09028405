//! The real sample-app, driven through `AppProcess`, against a real PostgreSQL built from
//! fixtures/roles.sql + fixtures/schema.sql. Tests that need the database get their own
//! disposable server.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;
use pgdrill::app::{is_error_line, AppError, AppProcess, AppSpec, CustomApp};
use tokio_postgres::Client;

use crate::support::TestServer;

const API_KEY: &str = "test-api-key-4f9c2a71";
const VPN_PEER: &str = "vpn-peer-7d1e0b55.internal:51820";
/// pgdrill_app's password (the test server asks for one): it must not show anywhere.
const DB_PASSWORD: &str = "db-password-93be4410";
/// Ticks every 200 ms, so a worker is stale after 600 ms.
const INTERVAL_MS: &str = "200";

/// Plans (one free), ten users; subscriptions: 1–5 active and due (5 on the free plan),
/// 6–7 past_due for 40 days, 8 active and not due.
const SEED: &str = "
INSERT INTO plans (id, code, name, price_cents) VALUES
    (1, 'basic', 'Basic', 900), (2, 'pro', 'Pro', 2900), (3, 'free', 'Free', 0);
INSERT INTO users (email, full_name, country, created_at)
    SELECT 'u' || i || '@example.com', 'User ' || i, 'FR', now() - interval '1 year'
    FROM generate_series(1, 10) i;
INSERT INTO subscriptions (user_id, plan_id, status, started_at, current_period_end, updated_at)
    SELECT i, CASE WHEN i = 5 THEN 3 ELSE 1 + i % 2 END, 'active',
           now() - interval '3 months', now() - interval '2 days', now()
    FROM generate_series(1, 5) i;
INSERT INTO subscriptions (user_id, plan_id, status, started_at, current_period_end, updated_at)
    SELECT i, 1, 'past_due', now() - interval '1 year', now() - interval '40 days', now()
    FROM generate_series(6, 7) i;
INSERT INTO subscriptions (user_id, plan_id, status, started_at, current_period_end, updated_at)
    VALUES (8, 2, 'active', now() - interval '10 days', now() + interval '20 days', now());
";

/// A fresh seeded database; the app connects as pgdrill_app, like the real service.
struct TestDb {
    /// host and port of the server, for the app's own DSN.
    server: String,
    name: String,
    client: Client,
}

impl TestDb {
    async fn create(server: &TestServer) -> TestDb {
        let (name, client) = server.sample_app_db("app", DB_PASSWORD).await;
        client.batch_execute(SEED).await.unwrap();
        TestDb {
            server: format!(
                "host={} port={}",
                server.endpoint.host, server.endpoint.port
            ),
            name,
            client,
        }
    }

    fn app_dsn(&self) -> String {
        format!(
            "{} dbname={} user=pgdrill_app password={DB_PASSWORD}",
            self.server, self.name
        )
    }

    async fn beat_at(&self, worker: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.client
            .query_opt(
                "SELECT beat_at FROM worker_heartbeats WHERE worker = $1",
                &[&worker],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    }

    async fn count(&self, sql: &str) -> i64 {
        self.client.query_one(sql, &[]).await.unwrap().get(0)
    }
}

fn sample(extra: &[(&str, &str)], without: &[&str]) -> AppSpec {
    let mut env: Vec<(String, String)> = [
        ("API_KEY", API_KEY),
        ("VPN_PEER", VPN_PEER),
        ("WORKER_INTERVAL_MS", INTERVAL_MS),
        ("RELEASE", "drill-test-1"),
    ]
    .iter()
    .filter(|(k, _)| !without.contains(k))
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    AppSpec::Sample {
        binary: crate::support::sample_app().to_path_buf(),
        env,
        health_format: Default::default(),
    }
}

/// The sample app started with `SAMPLE_APP_FAULT=fault` against a seeded database on a
/// disposable server of its own, logging to app.log in a temporary directory that already
/// holds `earlier_log`, if any. The server, the database and the directory come back with the
/// app, to be kept while it runs.
async fn start_with_fault(
    fault: &str,
    earlier_log: Option<&str>,
) -> (TestServer, TestDb, tempfile::TempDir, AppProcess) {
    let server = TestServer::start("app").await;
    let db = TestDb::create(&server).await;
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("app.log");
    if let Some(text) = earlier_log {
        std::fs::write(&log, text).unwrap();
    }
    let app = AppProcess::start(
        &sample(&[("SAMPLE_APP_FAULT", fault)], &[]),
        &db.app_dsn(),
        &log,
    )
    .await
    .unwrap();
    (server, db, log_dir, app)
}

fn assert_no_secrets(text: &str) {
    for secret in [API_KEY, VPN_PEER, DB_PASSWORD] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

/// Polls `probe` every 100 ms until it returns Some, failing after `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn process_gone(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_err()
}

/// Gone, or a zombie waiting for tokio's background reaper: either way not running.
fn process_not_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_app_renews_beats_reconnects_and_stops_cleanly() {
    let server = TestServer::start("app").await;
    let db = TestDb::create(&server).await;
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("app.log");
    let mut app = AppProcess::start(&sample(&[("LOG_FORMAT", "json")], &[]), &db.app_dsn(), &log)
        .await
        .unwrap();
    assert!(app.base_url().unwrap().starts_with("http://127.0.0.1:"));
    let since = app.start_log_offset();

    let health = app.wait_healthy(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        (health.http_status, health.status.as_deref()),
        (200, Some("HEALTHY"))
    );
    for check in ["database", "worker:renewals", "worker:dunning", "config"] {
        assert_eq!(health.check(check).unwrap()["status"], "pass", "{check}");
    }
    assert_eq!(health.json.as_ref().unwrap()["release"], "drill-test-1");

    let version = app.version().await.unwrap();
    assert_eq!(version.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(version.release.as_deref(), Some("drill-test-1"));
    assert!(version.build.unwrap().contains("drill-test-1"));

    // Heartbeats advance, not just exist.
    let first = eventually(Duration::from_secs(3), "a renewals heartbeat", || {
        db.beat_at("renewals")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = db.beat_at("renewals").await.unwrap();
    assert!(
        second > first,
        "heartbeat did not advance: {first} then {second}"
    );

    // Renewals: one payment per paying due subscription (the free one renews without).
    eventually(
        Duration::from_secs(3),
        "4 payments and 2 cancellations",
        || async {
            let paid = db
                .count("SELECT count(*) FROM payments WHERE provider_ref LIKE 'app-%'")
                .await;
            let cancelled = db
                .count("SELECT count(*) FROM subscriptions WHERE status = 'cancelled'")
                .await;
            (paid == 4 && cancelled == 2).then_some(())
        },
    )
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM subscriptions WHERE status = 'active' AND current_period_end < now()").await,
        0
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM payments p \
             JOIN subscriptions s ON s.id = p.subscription_id JOIN plans pl ON pl.id = s.plan_id \
             WHERE p.status = 'succeeded' AND p.amount_cents = pl.price_cents \
               AND p.paid_at >= p.period_start AND s.current_period_end > now()"
        )
        .await,
        4
    );

    let metrics = app.metrics().await.unwrap();
    assert_eq!(metrics["sample_app_up"], 1.0);
    assert_eq!(metrics["sample_app_payments_processed_total"], 4.0);
    assert_eq!(metrics["sample_app_errors_total"], 0.0);
    assert!(metrics["sample_app_http_requests_total"] >= 3.0);
    assert!(metrics["sample_app_worker_heartbeat_age_seconds{worker=\"renewals\"}"] < 1.0);
    assert!(metrics.contains_key("sample_app_worker_heartbeat_age_seconds{worker=\"dunning\"}"));

    let (lines, _) = app.log_lines_since(since).unwrap();
    assert!(
        lines[0].starts_with("listening on 127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert!(lines
        .iter()
        .any(|l| l.contains(r#""level":"INFO""#) && l.contains("listening")));
    let errors: Vec<_> = lines.iter().filter(|l| is_error_line(l)).collect();
    assert!(errors.is_empty(), "{errors:?}");

    // The database drops every connection: workers reconnect and beat again.
    let killed = db
        .count(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{}' AND application_name = 'sample-app'",
            db.name
        ))
        .await;
    assert!(
        killed >= 2,
        "expected the workers' connections, found {killed}"
    );
    let cut = db.beat_at("renewals").await.unwrap();
    eventually(
        Duration::from_secs(5),
        "a heartbeat after reconnecting",
        || async { (db.beat_at("renewals").await.unwrap() > cut).then_some(()) },
    )
    .await;
    app.wait_healthy(Duration::from_secs(5)).await.unwrap();

    let pid = app.pid().unwrap();
    let report = app.stop(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (report.exit_code, report.killed),
        (Some(0), false),
        "{report:?}"
    );
    assert!(process_gone(pid), "pid {pid} still exists after stop");
    assert!(
        killpg(Pid::from_raw(pid as i32), None).is_err(),
        "process group left behind"
    );
    assert!(
        app.stop(Duration::from_secs(1))
            .await
            .unwrap()
            .already_stopped
    );

    let whole_log = std::fs::read_to_string(&log).unwrap();
    assert!(whole_log.contains("SIGTERM"), "{whole_log}");
    assert_no_secrets(&whole_log);
}

#[tokio::test]
async fn missing_api_key_refuses_to_start_and_names_the_key() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("app.log");
    let dsn = format!("host=127.0.0.1 port=1 user=pgdrill_app password={DB_PASSWORD}");
    let err = AppProcess::start(&sample(&[], &["API_KEY"]), &dsn, &log)
        .await
        .err()
        .expect("start must fail without API_KEY");
    let msg = err.to_string();
    assert!(matches!(err, AppError::Exited { .. }), "{msg}");
    assert!(
        msg.contains("exit code 2") && msg.contains("API_KEY"),
        "{msg}"
    );
    let whole_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        whole_log.contains("ERROR") && whole_log.contains("API_KEY"),
        "{whole_log}"
    );
    assert_no_secrets(&msg);
    assert_no_secrets(&whole_log);
}

#[tokio::test]
async fn unknown_fault_is_a_startup_error_listing_the_allowed_values() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("app.log");
    let err = AppProcess::start(
        &sample(&[("SAMPLE_APP_FAULT", "explode")], &[]),
        "host=127.0.0.1 port=1",
        &log,
    )
    .await
    .err()
    .expect("an unknown fault must stop the start");
    let msg = err.to_string();
    assert!(msg.contains("exit code 2"), "{msg}");
    assert!(
        msg.contains("SAMPLE_APP_FAULT") && msg.contains("never-healthy"),
        "{msg}"
    );
}

#[tokio::test]
async fn env_file_supplies_keys_and_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("app.env");
    std::fs::write(
        &env_file,
        format!(
            "# restored config\nAPI_KEY=\"{API_KEY}\"\nVPN_PEER='{VPN_PEER}'\nRELEASE=from-file\n"
        ),
    )
    .unwrap();
    let spec = AppSpec::Sample {
        binary: crate::support::sample_app().to_path_buf(),
        env: vec![
            ("SAMPLE_APP_ENV_FILE".into(), env_file.display().to_string()),
            ("RELEASE".into(), "from-env".into()),
        ],
        health_format: Default::default(),
    };
    let mut app = AppProcess::start(&spec, "host=127.0.0.1 port=1", &dir.path().join("app.log"))
        .await
        .unwrap();
    // No database: running but UNHEALTHY, and the checks say why.
    let health = app.health().await.unwrap();
    assert_eq!(
        (health.http_status, health.status.as_deref()),
        (503, Some("UNHEALTHY"))
    );
    assert_eq!(health.check("database").unwrap()["status"], "fail");
    let config = health.check("config").unwrap();
    assert_eq!(config["status"], "pass");
    let detail = config["detail"].as_str().unwrap();
    assert!(detail.contains("API_KEY (.env)"), "{detail}");
    assert!(detail.contains("DATABASE_URL (env)"), "{detail}");
    assert_eq!(health.json.as_ref().unwrap()["release"], "from-env");
    app.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_stops_fault_turns_health_degraded() {
    let (_server, _db, _log_dir, app) = start_with_fault("worker-stops", None).await;
    // Right after start every worker lacks a heartbeat; wait for renewals to go stale.
    let degraded = eventually(
        Duration::from_secs(5),
        "a stale renewals heartbeat",
        || async {
            app.health().await.ok().filter(|h| {
                let renewals = h.check("worker:renewals").unwrap();
                renewals["status"] == "fail" && renewals["heartbeat_age_ms"].is_u64()
            })
        },
    )
    .await;
    assert_eq!(degraded.http_status, 503);
    assert_eq!(degraded.status.as_deref(), Some("DEGRADED"));
    assert_eq!(degraded.check("worker:renewals").unwrap()["status"], "fail");
    assert_eq!(degraded.check("worker:dunning").unwrap()["status"], "pass");
    assert_eq!(degraded.check("database").unwrap()["status"], "pass");
    assert!(
        degraded.summary().contains("worker:renewals"),
        "{}",
        degraded.summary()
    );
    let metrics = app.metrics().await.unwrap();
    assert!(metrics["sample_app_worker_heartbeat_age_seconds{worker=\"renewals\"}"] > 0.6);
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_log_fault_shows_in_the_log_since_the_start() {
    // An earlier run's ERROR in the same log must not count: only lines since this start do.
    let (_server, _db, _log_dir, app) =
        start_with_fault("error-log", Some("2020-01-01T00:00:00Z ERROR old run\n")).await;
    app.wait_healthy(Duration::from_secs(10)).await.unwrap();
    let since = app.start_log_offset();
    assert!(since > 0);
    let error = eventually(Duration::from_secs(4), "an ERROR line", || async {
        let (lines, _) = app.log_lines_since(since).unwrap();
        lines.into_iter().find(|l| is_error_line(l))
    })
    .await;
    assert!(error.contains("injected"), "{error}");
    assert!(!error.contains("old run"));
    assert!(app.metrics().await.unwrap()["sample_app_errors_total"] >= 1.0);
    // The offset lets a later check see only what came after.
    let (_, end) = app.log_lines_since(since).unwrap();
    assert_eq!(end, app.log_offset());
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_fault_fails_wait_healthy_with_the_status_named() {
    let (_server, _db, _log_dir, app) = start_with_fault("degraded", None).await;
    let err = app
        .wait_healthy(Duration::from_millis(1500))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AppError::NotHealthy { .. }), "{msg}");
    assert!(
        msg.contains("status DEGRADED") && msg.contains("SAMPLE_APP_FAULT=degraded"),
        "{msg}"
    );
    let health = app.health().await.unwrap();
    assert_eq!((health.http_status, health.healthy), (503, false));
    assert_eq!(health.check("database").unwrap()["status"], "pass");
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_fault_is_reported_as_exited_not_as_a_timeout() {
    let (_server, _db, _log_dir, app) = start_with_fault("exit", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Exited, not NotHealthy: the controller noticed the exit instead of waiting out 10 s.
    let err = app.wait_healthy(Duration::from_secs(10)).await.unwrap_err();
    assert!(
        matches!(err, AppError::Exited { .. }),
        "did not fail early: {err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("exited (exit code 1)"), "{msg}");
    assert!(
        msg.contains("SAMPLE_APP_FAULT=exit"),
        "the log tail should show why: {msg}"
    );
    assert!(!app.is_running());
    assert_no_secrets(&msg);
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_healthy_fault_times_out_naming_the_last_status() {
    let (_server, _db, _log_dir, mut app) = start_with_fault("never-healthy", None).await;
    let started = Instant::now();
    let err = app
        .wait_healthy(Duration::from_millis(1500))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("within 1.5 s") && msg.contains("status UNHEALTHY"),
        "{msg}"
    );
    let report = app.stop(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_app_behind_a_shell_is_probed_by_url_and_stopped_as_a_group() {
    let server = TestServer::start("app").await;
    let db = TestDb::create(&server).await;
    let log_dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `; true` keeps sh alive as the parent, so only a group signal reaches the app.
    let spec = AppSpec::Custom(CustomApp {
        start: format!("'{}'; true", crate::support::sample_app().display()),
        stop: None,
        health_url: format!("http://127.0.0.1:{port}/health"),
        healthy_status: "HEALTHY".into(),
        health_format: Default::default(),
        log_file: None,
        metrics_url: Some(format!("http://localhost:{port}/metrics")),
        version_url: None,
        image: None,
        env: [
            ("API_KEY", API_KEY),
            ("VPN_PEER", VPN_PEER),
            ("WORKER_INTERVAL_MS", INTERVAL_MS),
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    });
    let mut app = AppProcess::start(&spec, &db.app_dsn(), &log_dir.path().join("app.log"))
        .await
        .unwrap();
    assert_eq!(app.base_url(), None);
    let health = app.wait_healthy(Duration::from_secs(10)).await.unwrap();
    assert_eq!(health.status.as_deref(), Some("HEALTHY"));
    assert_eq!(app.metrics().await.unwrap()["sample_app_up"], 1.0);
    let err = app.version().await.unwrap_err().to_string();
    assert!(err.contains("version_url"), "{err}");

    let pgid = app.pid().unwrap();
    let report = app.stop(Duration::from_secs(5)).await.unwrap();
    assert!(!report.killed, "{report:?}");
    assert!(
        killpg(Pid::from_raw(pgid as i32), None).is_err(),
        "group left behind"
    );
    let log = std::fs::read_to_string(log_dir.path().join("app.log")).unwrap();
    assert!(log.contains("stopped"), "the app itself got SIGTERM: {log}");
}

#[tokio::test]
async fn dropping_the_handle_kills_the_app() {
    let log_dir = tempfile::tempdir().unwrap();
    let app = AppProcess::start(
        &sample(&[], &[]),
        "host=127.0.0.1 port=1",
        &log_dir.path().join("app.log"),
    )
    .await
    .unwrap();
    let pid = app.pid().unwrap();
    assert!(app.is_running());
    drop(app);
    eventually(Duration::from_secs(3), "the dropped app to die", || async {
        process_not_running(pid).then_some(())
    })
    .await;
}

/// The sample app's /health in every format it serves, read back by the probe: with no
/// database each says so in its own words, and the reader finds the format and the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_health_format_is_read_from_the_real_server() {
    use pgdrill::app::{BodyFormat, CheckStatus, HealthFormat};
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("own", BodyFormat::Sample, "database", "UNHEALTHY"),
        ("ietf", BodyFormat::Ietf, "database", "fail"),
        ("spring", BodyFormat::Spring, "db", "DOWN"),
        ("aspnet", BodyFormat::AspNet, "database", "Unhealthy"),
        (
            "plain",
            BodyFormat::Plain,
            "database",
            "healthz check failed",
        ),
        ("adhoc", BodyFormat::AdHoc, "database", "false"),
    ];
    for (served, format, db_check, status) in cases {
        let mut spec = sample(&[("SAMPLE_APP_HEALTH_FORMAT", served)], &[]);
        let log = dir.path().join(format!("{served}.log"));
        let mut app = AppProcess::start(&spec, "host=127.0.0.1 port=1", &log)
            .await
            .unwrap();
        let h = app.health().await.unwrap();
        assert_eq!(h.http_status, 503, "{served}: {}", h.summary());
        assert!(!h.healthy, "{served}: {}", h.summary());
        assert_eq!(h.health.format, format, "{served}");
        assert_eq!(h.status.as_deref(), Some(status), "{served}");
        let check = h
            .health
            .check(db_check)
            .unwrap_or_else(|| panic!("{served}: {h:?}"));
        assert_eq!(check.status, CheckStatus::Fail, "{served}");
        assert!(check.detail.is_some(), "{served}: {check:?}");
        let summary = h.summary();
        assert!(
            summary.contains(&format!("failed: {db_check} (")),
            "{summary}"
        );
        // Secrets in the environment never reach the evidence.
        assert!(!format!("{h:?}").contains(API_KEY), "{served}");
        app.stop(Duration::from_secs(5)).await.unwrap();

        // Forcing the format the app serves reads the same; forcing another says why not.
        if let AppSpec::Sample { health_format, .. } = &mut spec {
            *health_format = HealthFormat::Ietf;
        }
        let mut app = AppProcess::start(&spec, "host=127.0.0.1 port=1", &log)
            .await
            .unwrap();
        let forced = app.health().await.unwrap();
        assert_eq!(forced.health.format, BodyFormat::Ietf);
        assert!(!forced.healthy, "{served}: {}", forced.summary());
        if served == "plain" {
            assert_eq!(forced.health.note.as_deref(), Some("the body is not JSON"));
        }
        app.stop(Duration::from_secs(5)).await.unwrap();
    }
}
