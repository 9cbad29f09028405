//! The ledger writer: one connection, one small autocommit `INSERT` per tick, each
//! acknowledged commit recorded on this side with the moments it was sent and acknowledged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ledger_name, RpoError, LEDGER_SCHEMA, LEDGER_TABLE};
use crate::pg::{ident, Endpoint};

/// The writer's default rate: enough commits to resolve the data-loss window to 20 ms,
/// few enough to cost the source nothing.
pub const DEFAULT_RATE_PER_SEC: u32 = 50;

/// How long a commit already sent may still take to answer once the writer is told to stop,
/// so that its outcome is known; after that it is recorded as in flight.
const GRACE: Duration = Duration::from_secs(1);

/// One commit the writer saw acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// The ledger id (1, 2, 3, … with no gap).
    pub id: u64,
    /// Just before the `INSERT` was handed to the connection (this machine's clock, UTC).
    pub sent_at: DateTime<Utc>,
    /// Just after its acknowledgement arrived.
    pub acked_at: DateTime<Utc>,
}

/// A commit that was sent and never acknowledged: it failed, or it was still in flight when
/// the writer stopped. It may or may not have committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The ledger id.
    pub id: u64,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// The error, when it failed; `None` when it was abandoned in flight.
    pub error: Option<String>,
}

/// Why the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// [`Writer::stop`] was called.
    Requested,
    /// The drill's cancellation token fired (a signal).
    Cancelled,
    /// A commit failed (the server gone, the database dropped). The writer stops at the first
    /// failure: a later id committed after a failed one would leave a gap in the ledger, and
    /// the prefix property is what makes the assessment exact.
    CommitFailed,
}

/// Everything the writer recorded: the evidence [`super::assess`] holds the restore against.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledged {
    /// Commits per second asked for.
    pub rate_per_sec: u32,
    /// When the writer started (before the ledger was created).
    pub started_at: DateTime<Utc>,
    /// When it stopped.
    pub stopped_at: DateTime<Utc>,
    /// Every acknowledged commit, in id order: ids `1..=commits.len()`.
    pub commits: Vec<Commit>,
    /// The one commit sent after the last acknowledged one, if any: failed or in flight.
    pub unacknowledged: Option<InFlight>,
    /// Why it stopped.
    pub stop: StopCause,
}

impl Acknowledged {
    /// The highest id the writer ever sent (acknowledged or not).
    pub fn last_sent_id(&self) -> u64 {
        self.unacknowledged
            .as_ref()
            .map(|u| u.id)
            .unwrap_or(self.commits.len() as u64)
    }

    /// The acknowledged commit with this id.
    pub fn get(&self, id: u64) -> Option<&Commit> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        self.commits.get(i)
    }

    /// Commits that failed: never counted as acknowledged.
    pub fn failed_commits(&self) -> u64 {
        u64::from(
            self.unacknowledged
                .as_ref()
                .is_some_and(|u| u.error.is_some()),
        )
    }
}

/// What the task shares with [`Writer::stop`], so that a task that must be aborted still
/// leaves its record behind.
#[derive(Debug)]
struct State {
    commits: Vec<Commit>,
    /// Sent, answer not yet seen.
    in_flight: Option<(u64, DateTime<Utc>)>,
    unacknowledged: Option<InFlight>,
    stop: Option<StopCause>,
}

/// A running ledger writer. Dropping it stops the task too (without waiting).
#[derive(Debug)]
pub struct Writer {
    rate_per_sec: u32,
    started_at: DateTime<Utc>,
    state: Arc<Mutex<State>>,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Writer {
    /// Connects to `endpoint`, creates the ledger if needed (it must be empty), commits id 1
    /// right here, so that a session that cannot write fails now with
    /// [`RpoError::CannotWrite`], then commits the next ids at `rate_per_sec` in a task of its
    /// own until [`Writer::stop`] or `cancel` (the drill's token) ends it.
    pub async fn start(
        endpoint: &Endpoint,
        rate_per_sec: u32,
        cancel: &CancellationToken,
    ) -> Result<Writer, RpoError> {
        if rate_per_sec == 0 {
            return Err(RpoError::BadRate);
        }
        let started_at = Utc::now();
        let target = endpoint.display();
        let mut cfg = endpoint.config();
        // Its own name, so that pg_stat_activity tells it from the drill's other sessions.
        cfg.application_name("pgdrill rpo writer");
        let client = crate::pg::connect_config(&cfg, &target).await?;
        let cannot = |e: tokio_postgres::Error| RpoError::CannotWrite {
            target: target.clone(),
            reason: crate::pg::error_text(&e),
            ledger: ledger_name(),
        };
        let table = format!("{}.{}", ident(LEDGER_SCHEMA), ident(LEDGER_TABLE));
        // The session's own settings are kept: a read-only session must fail here, never be
        // switched to writing.
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {table} (
                     id bigint PRIMARY KEY,
                     written_at timestamptz NOT NULL DEFAULT clock_timestamp()
                 )",
                schema = ident(LEDGER_SCHEMA)
            ))
            .await
            .map_err(cannot)?;
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(cannot)?
            .get(0);
        if rows > 0 {
            return Err(RpoError::LedgerNotEmpty {
                target: target.clone(),
                ledger: ledger_name(),
                rows,
                schema: LEDGER_SCHEMA.into(),
            });
        }
        let insert = client
            .prepare(&format!("INSERT INTO {table} (id) VALUES ($1)"))
            .await
            .map_err(cannot)?;
        let sent_at = Utc::now();
        client.execute(&insert, &[&1i64]).await.map_err(cannot)?;
        let first = Commit {
            id: 1,
            sent_at,
            acked_at: Utc::now(),
        };
        let state = Arc::new(Mutex::new(State {
            commits: vec![first],
            in_flight: None,
            unacknowledged: None,
            stop: None,
        }));
        let token = cancel.child_token();
        let period = Duration::from_secs(1) / rate_per_sec;
        let task = tokio::spawn(run(
            client,
            insert,
            period,
            state.clone(),
            token.clone(),
            cancel.clone(),
        ));
        Ok(Writer {
            rate_per_sec,
            started_at,
            state,
            token,
            task: Some(task),
        })
    }

    /// Commits acknowledged so far.
    pub fn acknowledged_so_far(&self) -> u64 {
        lock(&self.state).commits.len() as u64
    }

    /// Whether the task still writes (false after a failed commit or a cancellation).
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops writing and returns what was acknowledged. A commit already sent gets a second
    /// to answer; this never waits longer than that (a hung server cannot hold the drill).
    pub async fn stop(mut self) -> Acknowledged {
        self.token.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(GRACE * 2, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        let mut st = lock(&self.state);
        if let Some((id, sent_at)) = st.in_flight.take() {
            st.unacknowledged = Some(InFlight {
                id,
                sent_at,
                error: None,
            });
        }
        Acknowledged {
            rate_per_sec: self.rate_per_sec,
            started_at: self.started_at,
            stopped_at: Utc::now(),
            commits: std::mem::take(&mut st.commits),
            unacknowledged: st.unacknowledged.take(),
            stop: st.stop.unwrap_or(StopCause::Requested),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // The task never panics while holding the lock; a poisoned one still holds good records.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writing loop: one id per tick, each only after the previous one was acknowledged, so
/// commits happen in id order and every snapshot sees a prefix of the ids.
async fn run(
    client: tokio_postgres::Client,
    insert: tokio_postgres::Statement,
    period: Duration,
    state: Arc<Mutex<State>>,
    token: CancellationToken,
    drill: CancellationToken,
) {
    let mut tick = tokio::time::interval(period);
    // A slow commit delays the next ones instead of bunching them up afterwards.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate, and id 1 was just written
    let cause = |drill: &CancellationToken| {
        if drill.is_cancelled() {
            StopCause::Cancelled
        } else {
            StopCause::Requested
        }
    };
    let mut id: u64 = 2;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                lock(&state).stop = Some(cause(&drill));
                return;
            }
            _ = tick.tick() => {}
        }
        let sent_at = Utc::now();
        lock(&state).in_flight = Some((id, sent_at));
        let value = id as i64;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&value];
        let commit = client.execute(&insert, &params);
        tokio::pin!(commit);
        let outcome = tokio::select! {
            r = &mut commit => Some(r),
            _ = token.cancelled() => tokio::time::timeout(GRACE, &mut commit).await.ok(),
        };
        let acked_at = Utc::now();
        let mut st = lock(&state);
        st.in_flight = None;
        match outcome {
            Some(Ok(_)) => st.commits.push(Commit {
                id,
                sent_at,
                acked_at,
            }),
            Some(Err(e)) => {
                st.unacknowledged = Some(InFlight {
                    id,
                    sent_at,
                    error: Some(crate::pg::error_text(&e)),
                });
                st.stop = Some(StopCause::CommitFailed);
                return;
            }
            None => {
                st.unacknowledged = Some(InFlight {
                    id,
                    sent_at,
                    error: None,
                });
                st.stop = Some(cause(&drill));
                return;
            }
        }
        drop(st);
        if token.is_cancelled() {
            lock(&state).stop = Some(cause(&drill));
            return;
        }
        id += 1;
    }
}
