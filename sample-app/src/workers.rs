//! Background workers: renewals (charge due subscriptions) and dunning (cancel long-unpaid
//! ones). Each has its own connection, commits its work and its heartbeat in one transaction,
//! and reconnects with backoff when the database goes away.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};
use tracing::{error, info, warn};

use crate::logging::chain;
use crate::metrics::METRICS;

/// A tick that takes longer than this is abandoned (its connection dropped, so it rolls back).
const TICK_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of the reconnect backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Renewals handled per tick.
const RENEWALS_PER_TICK: i64 = 50;
/// Cancellations per tick.
const DUNNING_PER_TICK: i64 = 20;

/// Renew due active subscriptions: one succeeded payment per period, then advance the period
/// by the plan's billing interval (one month unless the plan says otherwise). Free plans are
/// renewed without a payment, since payments.amount_cents must be positive.
const RENEWALS_SQL: &str = "
WITH due AS (
    SELECT s.id, s.current_period_end, p.price_cents, p.currency, p.billing_interval
    FROM subscriptions s
    JOIN plans p ON p.id = s.plan_id
    WHERE s.status = 'active' AND s.current_period_end < now()
    ORDER BY s.current_period_end
    LIMIT $1
    FOR UPDATE OF s SKIP LOCKED
), paid AS (
    INSERT INTO payments (subscription_id, amount_cents, currency, status, period_start,
                          paid_at, provider_ref, details)
    SELECT id, price_cents, currency, 'succeeded', current_period_end,
           greatest(now(), current_period_end), 'app-' || gen_random_uuid(),
           jsonb_build_object('source', 'sample-app', 'worker', 'renewals')
    FROM due
    WHERE price_cents > 0
    RETURNING 1
), renewed AS (
    UPDATE subscriptions s
    SET current_period_end = s.current_period_end + due.billing_interval
    FROM due
    WHERE s.id = due.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM renewed) AS renewed, (SELECT count(*) FROM paid) AS paid";

/// Cancel past_due subscriptions whose period ended more than 30 days ago.
const DUNNING_SQL: &str = "
WITH due AS (
    SELECT id FROM subscriptions
    WHERE status = 'past_due' AND current_period_end < now() - interval '30 days'
    ORDER BY current_period_end
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), cancelled AS (
    UPDATE subscriptions s
    SET status = 'cancelled', cancelled_at = now()
    FROM due
    WHERE s.id = due.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM cancelled) AS cancelled, 0::bigint AS paid";

const HEARTBEAT_SQL: &str = "
INSERT INTO worker_heartbeats (worker, beat_at, processed) VALUES ($1, now(), $2)
ON CONFLICT (worker) DO UPDATE
SET beat_at = excluded.beat_at, processed = worker_heartbeats.processed + excluded.processed";

/// Which job a worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Charge and renew due subscriptions.
    Renewals,
    /// Cancel subscriptions unpaid for more than 30 days.
    Dunning,
}

impl Kind {
    /// The worker's name in heartbeats, health and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Renewals => "renewals",
            Kind::Dunning => "dunning",
        }
    }
}

/// What /health and /metrics know about a worker.
pub struct WorkerStatus {
    /// The worker's name.
    pub name: &'static str,
    last_beat: Mutex<Option<Instant>>,
    processed: AtomicU64,
}

impl WorkerStatus {
    /// A worker that has not beaten yet.
    pub fn new(kind: Kind) -> Arc<WorkerStatus> {
        Arc::new(WorkerStatus {
            name: kind.name(),
            last_beat: Mutex::new(None),
            processed: AtomicU64::new(0),
        })
    }

    /// Time since the last committed tick; None before the first.
    pub fn heartbeat_age(&self) -> Option<Duration> {
        self.last_beat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|at| at.elapsed())
    }

    /// Rows handled since start.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    fn beat(&self, processed: u64) {
        *self.last_beat.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.processed.fetch_add(processed, Ordering::Relaxed);
    }
}

/// Everything a worker needs.
pub struct Worker {
    /// Its job.
    pub kind: Kind,
    /// Where the database is.
    pub database: tokio_postgres::Config,
    /// Pause between ticks.
    pub interval: Duration,
    /// Shared status.
    pub status: Arc<WorkerStatus>,
    /// Stop beating after this many ticks (fault injection), if set.
    pub stop_after_ticks: Option<u64>,
}

impl Worker {
    /// Ticks until shutdown is signalled; a tick in progress is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.kind.name();
        let mut client: Option<Client> = None;
        let mut failures: u32 = 0;
        let mut ticks: u64 = 0;
        info!(
            worker = name,
            interval_ms = self.interval.as_millis() as u64,
            "worker started"
        );
        loop {
            if *shutdown.borrow() {
                break;
            }
            if self.stop_after_ticks.is_some_and(|n| ticks >= n) {
                warn!(
                    worker = name,
                    ticks, "worker stops beating (SAMPLE_APP_FAULT=worker-stops)"
                );
                let _ = shutdown.wait_for(|stop| *stop).await;
                break;
            }
            let outcome = tokio::time::timeout(TICK_TIMEOUT, self.tick(&mut client)).await;
            let pause = match outcome {
                Ok(Ok((processed, paid))) => {
                    ticks += 1;
                    if failures > 0 {
                        info!(worker = name, "worker recovered");
                    }
                    failures = 0;
                    self.status.beat(processed);
                    METRICS.payments(paid);
                    if processed > 0 {
                        info!(worker = name, processed, payments = paid, "tick committed");
                    }
                    self.interval
                }
                Ok(Err(e)) => {
                    failures += 1;
                    client = None;
                    let pause = self.backoff(failures);
                    error!(
                        worker = name,
                        error = %chain(&e),
                        retry_in_ms = pause.as_millis() as u64,
                        "worker tick failed"
                    );
                    pause
                }
                Err(_) => {
                    failures += 1;
                    client = None;
                    let pause = self.backoff(failures);
                    error!(
                        worker = name,
                        timeout_ms = TICK_TIMEOUT.as_millis() as u64,
                        retry_in_ms = pause.as_millis() as u64,
                        "worker tick timed out"
                    );
                    pause
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        info!(worker = name, ticks, "worker stopped");
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.min(10);
        (self.interval * factor).min(MAX_BACKOFF.max(self.interval))
    }

    /// One unit of work and the heartbeat, committed together. Returns (rows handled, payments).
    async fn tick(&self, slot: &mut Option<Client>) -> Result<(u64, u64), tokio_postgres::Error> {
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(connect(&self.database).await?);
        }
        let client = slot.as_mut().expect("connected above");
        let tx = client.transaction().await?;
        let (sql, limit) = match self.kind {
            Kind::Renewals => (RENEWALS_SQL, RENEWALS_PER_TICK),
            Kind::Dunning => (DUNNING_SQL, DUNNING_PER_TICK),
        };
        let row = tx.query_one(sql, &[&limit]).await?;
        let processed: i64 = row.get(0);
        let paid: i64 = row.get(1);
        tx.execute(HEARTBEAT_SQL, &[&self.kind.name(), &processed])
            .await?;
        tx.commit().await?;
        Ok((processed as u64, paid as u64))
    }
}

/// Opens a connection whose driver task runs in the background; it ends when the server goes.
pub async fn connect(database: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let mut config = database.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(2));
    }
    if config.get_application_name().is_none() {
        config.application_name("sample-app");
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // The error resurfaces on the client's next call, which logs it with context.
        let _ = connection.await;
    });
    Ok(client)
}
