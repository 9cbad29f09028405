//! The HTTP surface: /health, /version, /metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio_postgres::Client;

use crate::config::Fault;
use crate::logging::chain;
use crate::metrics::{self, METRICS};
use crate::workers::{connect, WorkerStatus};

/// The database check gives up after this long, so /health always answers quickly.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared by all handlers.
pub struct AppState {
    /// Release marker.
    pub release: String,
    /// The deployed commit, when a deployment marker gave one.
    pub commit: Option<String>,
    /// When the release was deployed (RFC 3339), when a deployment marker gave it.
    pub deployed_at: Option<String>,
    /// What `GET /metrics` shows.
    pub metrics: prometheus_client::registry::Registry,
    /// Worker statuses, in display order.
    pub workers: Vec<Arc<WorkerStatus>>,
    /// A worker is stale when its heartbeat is older than this.
    pub stale_after: Duration,
    /// `KEY (source)` of each required key.
    pub required_sources: Vec<String>,
    /// Fault switched on, if any.
    pub fault: Option<Fault>,
    /// The health check's own connection.
    pub db: ApiDb,
}

/// The connection used by /health, reopened lazily after a failure.
pub struct ApiDb {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl ApiDb {
    /// Not connected until the first check.
    pub fn new(config: tokio_postgres::Config) -> ApiDb {
        ApiDb {
            config,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs `SELECT 1`; Ok(elapsed) or a message saying what failed.
    async fn ping(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let mut slot = self.client.lock().await;
        let attempt = tokio::time::timeout(DB_CHECK_TIMEOUT, async {
            if slot.as_ref().is_none_or(|c| c.is_closed()) {
                *slot = Some(connect(&self.config).await?);
            }
            let client = slot.as_ref().expect("connected above");
            client.simple_query("SELECT 1").await.map(|_| ())
        })
        .await;
        match attempt {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => {
                *slot = None;
                Err(chain(&e))
            }
            Err(_) => {
                *slot = None;
                Err(format!(
                    "SELECT 1 did not answer within {} ms",
                    DB_CHECK_TIMEOUT.as_millis()
                ))
            }
        }
    }
}

/// The routes, with every request counted.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(count_request))
        .with_state(state)
}

async fn count_request(request: Request, next: Next) -> Response {
    METRICS.request();
    next.run(request).await
}

/// The /health body; a struct so that `status` comes first in the JSON.
#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    release: String,
    checks: Vec<Check>,
}

/// One entry of `checks`.
#[derive(Serialize)]
struct Check {
    name: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_age_ms: Option<u64>,
    detail: String,
}

impl Check {
    fn new(name: impl Into<String>, pass: bool, detail: String) -> Check {
        Check {
            name: name.into(),
            status: if pass { "pass" } else { "fail" },
            heartbeat_age_ms: None,
            detail,
        }
    }
}

async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<HealthBody>) {
    let mut checks = Vec::new();
    let mut unhealthy = false;
    let mut degraded = false;

    match state.db.ping().await {
        Ok(took) => checks.push(Check::new(
            "database",
            true,
            format!("SELECT 1 answered in {} ms", took.as_millis()),
        )),
        Err(why) => {
            unhealthy = true;
            checks.push(Check::new("database", false, why));
        }
    }

    for worker in &state.workers {
        let age = worker.heartbeat_age();
        let fresh = age.is_some_and(|a| a < state.stale_after);
        degraded |= !fresh;
        let detail = match age {
            None => "no heartbeat yet".to_string(),
            Some(_) if fresh => format!("processed {} since start", worker.processed()),
            Some(a) => format!(
                "heartbeat is {} ms old, stale after {} ms",
                a.as_millis(),
                state.stale_after.as_millis()
            ),
        };
        let mut check = Check::new(format!("worker:{}", worker.name), fresh, detail);
        check.heartbeat_age_ms = age.map(|a| a.as_millis() as u64);
        checks.push(check);
    }

    checks.push(Check::new(
        "config",
        true,
        format!(
            "required keys present: {}",
            state.required_sources.join(", ")
        ),
    ));

    match state.fault {
        Some(fault @ Fault::Degraded) => {
            degraded = true;
            checks.push(fault_check(fault));
        }
        Some(fault @ Fault::NeverHealthy) => {
            unhealthy = true;
            checks.push(fault_check(fault));
        }
        _ => {}
    }

    let status = if unhealthy {
        "UNHEALTHY"
    } else if degraded {
        "DEGRADED"
    } else {
        "HEALTHY"
    };
    let code = if status == "HEALTHY" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthBody {
        status,
        release: state.release.clone(),
        checks,
    };
    (code, Json(body))
}

fn fault_check(fault: Fault) -> Check {
    Check::new(
        "fault",
        false,
        format!("SAMPLE_APP_FAULT={} is switched on", fault.as_str()),
    )
}

/// The /version body; `commit` and `deployed_at` are null without a deployment marker.
#[derive(Serialize)]
struct VersionBody {
    version: &'static str,
    release: String,
    build: String,
    commit: Option<String>,
    deployed_at: Option<String>,
}

async fn version(State(state): State<Arc<AppState>>) -> Json<VersionBody> {
    let version = env!("CARGO_PKG_VERSION");
    // No git at build time: the build marker is the crate version plus the release marker.
    let build = option_env!("SAMPLE_APP_BUILD")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{version}+{}", state.release));
    Json(VersionBody {
        version,
        release: state.release.clone(),
        build,
        commit: state.commit.clone(),
        deployed_at: state.deployed_at.clone(),
    })
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state.metrics),
    )
}
