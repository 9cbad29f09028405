//! The recovery point measured on real servers: the ledger writer commits into a source while
//! the drill's own `backup::take` dumps it in an exported snapshot; the source is lost; the dump
//! is restored into a second server with the drill's restore steps; `rpo::assess` must find
//! exactly the commits acknowledged after the snapshot lost, and must fail a ledger with a gap
//! or with a commit on the wrong side of the snapshot. A writer that cannot write fails at once.

use std::time::{Duration, Instant};

use chrono::Utc;
use pgdrill::pg::tools::CLIENT_PROGRAMS;
use pgdrill::pg::PgTools;
use pgdrill::progress::Progress;
use pgdrill::restore::{self, DatabaseSpec};
use pgdrill::rpo::{self, Finding, Inputs, RpoError, RpoVerdict, StopCause, WorstCase, Writer};
use tokio_util::sync::CancellationToken;

use crate::support::{assert_mentions, TestServer};

/// Waits for `cond`, polling; panics naming `what` after a minute (a hung writer, not a
/// slow one: the assertions never depend on how fast it goes).
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_commits_are_exactly_those_acknowledged_after_the_snapshot() {
    let source = TestServer::start("rpo-source").await;
    let db = source.create_db("ledger").await;
    let ep = source.endpoint.with_db(&db);
    let tools = PgTools::discover(CLIENT_PROGRAMS).expect("PostgreSQL client programs");
    let writer = Writer::start(&ep, rpo::DEFAULT_RATE_PER_SEC, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("the writer starts: {e}"));
    wait_for("25 commits before the backup", || {
        writer.acknowledged_so_far() >= 25
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let set = pgdrill::backup::take(
        &ep,
        &tools,
        dir.path(),
        Utc::now(),
        pgdrill::backup::DEFAULT_STALL_TIMEOUT,
        &Progress::none(),
    )
    .await
    .unwrap_or_else(|e| panic!("backup: {e}"));
    let backup_took = t0.elapsed();
    let after_backup = writer.acknowledged_so_far();
    wait_for("25 commits after the backup", || {
        writer.acknowledged_so_far() >= after_backup + 25
    })
    .await;

    // The disaster: the source server is lost while the writer is still writing.
    let disaster_at = Utc::now();
    drop(source);
    wait_for("the writer to see the server gone", || !writer.is_running()).await;
    let acks = writer.stop().await;
    assert_eq!(
        acks.stop,
        StopCause::CommitFailed,
        "{:?}",
        acks.unacknowledged
    );
    assert_eq!(acks.failed_commits(), 1);
    let ids: Vec<u64> = acks.commits.iter().map(|c| c.id).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());

    // The witness: S0 in the manifest counted the ledger inside the dump's own snapshot.
    let window = set
        .manifest
        .snapshot_taken
        .expect("the manifest records when the snapshot was taken");
    let in_s0 = set
        .manifest
        .snapshot
        .tables
        .iter()
        .find(|t| t.name == rpo::ledger_name())
        .expect("the ledger is in S0")
        .rows;
    let expected_lost: Vec<u64> = ids.iter().copied().filter(|&id| id > in_s0).collect();
    assert!(!expected_lost.is_empty(), "commits followed the snapshot");
    for c in &acks.commits {
        if c.id > in_s0 {
            assert!(
                c.acked_at >= window.sent_at,
                "{c:?} acked before {window:?}"
            );
        } else {
            assert!(
                c.sent_at <= window.returned_at,
                "{c:?} sent after {window:?}"
            );
        }
    }

    let target = TestServer::start("rpo-restore").await;
    let spec = DatabaseSpec {
        name: db.clone(),
        ..DatabaseSpec::default()
    };
    restore::create_database(&target.endpoint, &spec)
        .await
        .unwrap();
    restore::pg_restore(
        &target.endpoint.with_db(&db),
        &tools,
        &set.dump,
        2,
        false,
        &Progress::none(),
    )
    .await
    .unwrap_or_else(|e| panic!("pg_restore: {e}"));
    let client = target.connect(&db).await;
    let inputs = Inputs {
        snapshot: window,
        disaster_at,
        objective: Duration::from_secs(15 * 60),
        worst_case: WorstCase {
            interval: Duration::from_secs(15 * 60),
            backup_duration: backup_took,
            backups_taken: 1,
        },
    };
    let r = rpo::assess(&client, &acks, &inputs)
        .await
        .unwrap_or_else(|e| panic!("assess: {e}"));
    assert_eq!(r.restored_commits, in_s0);
    assert_eq!(r.lost_commits, expected_lost.len() as u64);
    let lost = r.lost_ids.expect("lost ids");
    assert_eq!(
        (lost.first, lost.last),
        (expected_lost[0], *expected_lost.last().unwrap())
    );
    assert_eq!(r.acknowledged_commits, ids.len() as u64);
    assert_eq!(r.failed_commits, 1);
    let newest = acks
        .get(in_s0)
        .expect("the newest restored commit was acknowledged");
    assert_eq!(
        r.achieved_ms,
        (disaster_at - newest.acked_at).num_milliseconds() as u64
    );
    assert_eq!(r.verdict, RpoVerdict::Pass);
    // 15 minutes plus the backup's own time never fits a 15-minute objective.
    assert!(!r.worst_case_fits);
    assert_eq!(
        r.worst_case_ms,
        15 * 60 * 1000 + backup_took.as_millis() as u64
    );
    assert!(r.note.contains("back up at least every"), "{}", r.note);

    // A report with this section renders it everywhere (and the objective can fail it).
    let mut tight = inputs;
    tight.objective = Duration::from_millis(r.achieved_ms.saturating_sub(1).max(1));
    let failing = rpo::assess(&client, &acks, &tight).await.unwrap();
    assert_eq!(failing.verdict, RpoVerdict::Fail);
    let f = pgdrill::report::rpo_failure(&failing).expect("a failing window fails the drill");
    assert_eq!(
        (f.phase.as_str(), f.class),
        ("rpo", pgdrill::report::FailureClass::RpoExceeded)
    );

    // Negative cases, each in a transaction rolled back afterwards.
    let ledger = rpo::ledger_name();
    let (c, a, i) = (&client, &acks, &inputs);
    let judge = move |sql: String| async move {
        c.batch_execute(&format!("BEGIN; {sql}")).await.unwrap();
        let out = rpo::assess(c, a, i).await;
        c.batch_execute("ROLLBACK").await.unwrap();
        match out {
            Err(RpoError::Integrity { findings }) => findings,
            other => panic!("{sql}: expected findings, got {other:?}"),
        }
    };
    // A gap: one row of the prefix lost.
    let f = judge(format!("DELETE FROM {ledger} WHERE id = 5")).await;
    assert_eq!(
        f,
        vec![Finding::Gap {
            missing: rpo::IdList(vec![5])
        }]
    );
    // A commit acknowledged before the snapshot lost from the tail.
    let j = acks
        .commits
        .iter()
        .filter(|c| c.acked_at < window.sent_at)
        .map(|c| c.id)
        .max()
        .unwrap();
    let f = judge(format!("DELETE FROM {ledger} WHERE id >= {j}")).await;
    assert_eq!(
        f,
        vec![Finding::AcknowledgedBeforeSnapshotMissing {
            ids: rpo::IdList(vec![j])
        }]
    );
    // The newest acknowledged commit, sent long after the snapshot, found in the restore.
    let last = acks.commits.last().unwrap();
    assert!(last.sent_at > window.returned_at);
    let f = judge(format!(
        "INSERT INTO {ledger} (id) SELECT generate_series({}, {})",
        in_s0 + 1,
        last.id
    ))
    .await;
    assert_eq!(
        f,
        vec![Finding::SentAfterSnapshotPresent {
            ids: rpo::IdList(
                acks.commits
                    .iter()
                    .filter(|c| c.id > in_s0 && c.sent_at > window.returned_at)
                    .map(|c| c.id)
                    .collect()
            )
        }]
    );
    // No ledger at all.
    client
        .batch_execute("BEGIN; DROP SCHEMA pgdrill CASCADE")
        .await
        .unwrap();
    let out = rpo::assess(&client, &acks, &inputs).await;
    client.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        matches!(&out, Err(RpoError::Integrity { findings }) if findings == &[Finding::LedgerMissing]),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_cannot_write_fails_at_start_and_cancellation_stops_it() {
    let server = TestServer::start("rpo-readonly").await;
    let db = server.create_db("ro").await;
    let mut read_only = server.endpoint.with_db(&db);
    read_only.options = Some("-c default_transaction_read_only=on".into());
    let err = Writer::start(&read_only, 50, &CancellationToken::new())
        .await
        .expect_err("a read-only session cannot host the ledger");
    assert!(matches!(err, RpoError::CannotWrite { .. }), "{err:?}");
    assert!(err.is_environment());
    let text = err.to_string();
    assert_mentions(
        &text,
        &[
            "read-only transaction",
            "25006",
            "pgdrill.rpo_ledger",
            "--source-dsn",
        ],
    );
    let password = server.endpoint.password().unwrap();
    assert!(!text.contains(password), "{text}");
    let client = server.connect(&db).await;
    let created: bool = client
        .query_one("SELECT to_regclass('pgdrill.rpo_ledger') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!created, "nothing was written through a read-only session");
    let zero = Writer::start(&server.endpoint.with_db(&db), 0, &CancellationToken::new()).await;
    assert!(matches!(zero, Err(RpoError::BadRate)), "{zero:?}");

    // The drill's cancellation stops a writer too.
    let drill = CancellationToken::new();
    let writer = Writer::start(&server.endpoint.with_db(&db), 50, &drill)
        .await
        .unwrap();
    wait_for("a few commits", || writer.acknowledged_so_far() >= 3).await;
    drill.cancel();
    wait_for("the writer to stop on cancellation", || {
        !writer.is_running()
    })
    .await;
    let acks = writer.stop().await;
    assert_eq!(acks.stop, StopCause::Cancelled);
    assert_eq!(acks.failed_commits(), 0);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM pgdrill.rpo_ledger", &[])
        .await
        .unwrap()
        .get(0);
    let in_flight_committed = u64::from(acks.unacknowledged.is_some());
    assert!(
        (acks.commits.len() as u64..=acks.commits.len() as u64 + in_flight_committed)
            .contains(&(rows as u64)),
        "{rows} rows, {} acknowledged",
        acks.commits.len()
    );

    // A ledger left from an earlier run is refused: its ids could not start at 1.
    let again = Writer::start(&server.endpoint.with_db(&db), 50, &CancellationToken::new()).await;
    assert!(
        matches!(again, Err(RpoError::LedgerNotEmpty { .. })),
        "{again:?}"
    );
}
