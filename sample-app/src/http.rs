//! The HTTP surface: /health (in the app's own format, or the one SAMPLE_APP_HEALTH_FORMAT
//! names, always from the same real checks), /version, /metrics.

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

use crate::config::{Fault, HealthFormat};
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
    /// The format /health answers in (SAMPLE_APP_HEALTH_FORMAT).
    pub health_format: HealthFormat,
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

/// How bad one check (or the whole app) is; each body format has its own words for these.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// Working.
    Pass,
    /// Working with a concern: a stale worker, the `degraded` fault (overall DEGRADED).
    Warn,
    /// Not working: no database, the `never-healthy` fault (overall UNHEALTHY).
    Fail,
}

/// One check as the app found it, before it is written in a body format.
struct Probe {
    name: String,
    level: Level,
    heartbeat_age_ms: Option<u64>,
    detail: String,
    /// How long the check took (the database's round trip).
    took: Option<Duration>,
}

impl Probe {
    fn new(name: impl Into<String>, level: Level, detail: String) -> Probe {
        Probe {
            name: name.into(),
            level,
            heartbeat_age_ms: None,
            detail,
            took: None,
        }
    }
}

/// The /health body in the app's own format; a struct so that `status` comes first.
#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    release: String,
    checks: Vec<Check>,
}

/// One entry of `checks` in the app's own format.
#[derive(Serialize)]
struct Check {
    name: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_age_ms: Option<u64>,
    detail: String,
}

/// Runs the checks: the database, each worker's heartbeat, the configuration, a fault.
async fn probes(state: &AppState) -> Vec<Probe> {
    let mut probes = Vec::new();
    match state.db.ping().await {
        Ok(took) => {
            let mut p = Probe::new(
                "database",
                Level::Pass,
                format!("SELECT 1 answered in {} ms", took.as_millis()),
            );
            p.took = Some(took);
            probes.push(p);
        }
        Err(why) => probes.push(Probe::new("database", Level::Fail, why)),
    }

    for worker in &state.workers {
        let age = worker.heartbeat_age();
        let fresh = age.is_some_and(|a| a < state.stale_after);
        let detail = match age {
            None => "no heartbeat yet".to_string(),
            Some(_) if fresh => format!("processed {} since start", worker.processed()),
            Some(a) => format!(
                "heartbeat is {} ms old, stale after {} ms",
                a.as_millis(),
                state.stale_after.as_millis()
            ),
        };
        let level = if fresh { Level::Pass } else { Level::Warn };
        let mut probe = Probe::new(format!("worker:{}", worker.name), level, detail);
        probe.heartbeat_age_ms = age.map(|a| a.as_millis() as u64);
        probes.push(probe);
    }

    probes.push(Probe::new(
        "config",
        Level::Pass,
        format!(
            "required keys present: {}",
            state.required_sources.join(", ")
        ),
    ));

    match state.fault {
        Some(fault @ Fault::Degraded) => probes.push(fault_probe(fault, Level::Warn)),
        Some(fault @ Fault::NeverHealthy) => probes.push(fault_probe(fault, Level::Fail)),
        _ => {}
    }
    probes
}

fn fault_probe(fault: Fault, level: Level) -> Probe {
    Probe::new(
        "fault",
        level,
        format!("SAMPLE_APP_FAULT={} is switched on", fault.as_str()),
    )
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let probes = probes(&state).await;
    let overall = probes.iter().map(|p| p.level).max().unwrap_or(Level::Pass);
    let took = started.elapsed();
    match state.health_format {
        HealthFormat::Own => own(&state, overall, probes),
        HealthFormat::Ietf => ietf(&state, overall, probes),
        HealthFormat::Spring => spring(overall, probes),
        HealthFormat::AspNet => aspnet(overall, probes, took),
        HealthFormat::Plain => plain(overall, probes),
        HealthFormat::AdHoc => adhoc(&state, overall, probes),
    }
}

/// 200 only when every check passes: what the app's own format and the binary formats
/// (plain, ad-hoc) answer.
fn ok_only_when_healthy(overall: Level) -> StatusCode {
    if overall == Level::Pass {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The app's own body: HEALTHY, DEGRADED or UNHEALTHY, a concern being a failed check.
fn own(state: &AppState, overall: Level, probes: Vec<Probe>) -> Response {
    let status = match overall {
        Level::Pass => "HEALTHY",
        Level::Warn => "DEGRADED",
        Level::Fail => "UNHEALTHY",
    };
    let checks = probes
        .into_iter()
        .map(|p| Check {
            name: p.name,
            status: if p.level == Level::Pass {
                "pass"
            } else {
                "fail"
            },
            heartbeat_age_ms: p.heartbeat_age_ms,
            detail: p.detail,
        })
        .collect();
    let body = HealthBody {
        status,
        release: state.release.clone(),
        checks,
    };
    (ok_only_when_healthy(overall), Json(body)).into_response()
}

/// IETF health+json (draft-inadarei-api-health-check): warn is still 200, as the draft says.
fn ietf(state: &AppState, overall: Level, probes: Vec<Probe>) -> Response {
    let word = |l: Level| match l {
        Level::Pass => "pass",
        Level::Warn => "warn",
        Level::Fail => "fail",
    };
    let mut checks = serde_json::Map::new();
    for p in probes {
        let mut entry = serde_json::json!({
            "componentId": p.name,
            "componentType": if p.name == "database" { "datastore" } else { "component" },
            "status": word(p.level),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        if let Some(took) = p.took {
            entry["observedValue"] = (took.as_millis() as u64).into();
            entry["observedUnit"] = "ms".into();
        }
        // The draft: output is for warn and fail only.
        if p.level != Level::Pass {
            entry["output"] = p.detail.into();
        }
        checks.insert(p.name, serde_json::Value::Array(vec![entry]));
    }
    let body = serde_json::json!({
        "status": word(overall),
        "version": env!("CARGO_PKG_VERSION"),
        "releaseId": state.release,
        "serviceId": "sample-app",
        "checks": checks,
    });
    let code = if overall == Level::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(code, "application/health+json", &body)
}

/// Spring Boot actuator: the workers nested under one composite, as Spring groups them.
fn spring(overall: Level, probes: Vec<Probe>) -> Response {
    let word = |l: Level| match l {
        Level::Pass => "UP",
        Level::Warn => "OUT_OF_SERVICE",
        Level::Fail => "DOWN",
    };
    let component = |p: &Probe| {
        let details = if p.level == Level::Pass {
            serde_json::json!({"detail": p.detail})
        } else {
            serde_json::json!({"error": p.detail})
        };
        serde_json::json!({"status": word(p.level), "details": details})
    };
    let mut components = serde_json::Map::new();
    let mut workers = serde_json::Map::new();
    let mut workers_level = Level::Pass;
    for p in &probes {
        match p.name.strip_prefix("worker:") {
            Some(name) => {
                workers_level = workers_level.max(p.level);
                workers.insert(name.to_string(), component(p));
            }
            None => {
                let name = if p.name == "database" {
                    "db"
                } else {
                    p.name.as_str()
                };
                components.insert(name.to_string(), component(p));
            }
        }
    }
    components.insert(
        "workers".into(),
        serde_json::json!({"status": word(workers_level), "components": workers}),
    );
    let body = serde_json::json!({"status": word(overall), "components": components});
    // Spring's defaults: DOWN and OUT_OF_SERVICE are 503.
    json_response(
        ok_only_when_healthy(overall),
        "application/vnd.spring-boot.actuator.v3+json",
        &body,
    )
}

/// ASP.NET Core's health checks UI response writer: Degraded is still 200, as ASP.NET maps it.
fn aspnet(overall: Level, probes: Vec<Probe>, took: Duration) -> Response {
    let word = |l: Level| match l {
        Level::Pass => "Healthy",
        Level::Warn => "Degraded",
        Level::Fail => "Unhealthy",
    };
    let mut entries = serde_json::Map::new();
    for p in probes {
        entries.insert(
            p.name.clone(),
            serde_json::json!({
                "data": {},
                "description": p.detail,
                "duration": timespan(p.took.unwrap_or_default()),
                "status": word(p.level),
                "tags": [],
            }),
        );
    }
    let body = serde_json::json!({
        "status": word(overall),
        "totalDuration": timespan(took),
        "entries": entries,
    });
    let code = if overall == Level::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(code, "application/json", &body)
}

/// A .NET TimeSpan as ASP.NET writes it: `hh:mm:ss.fffffff`.
fn timespan(d: Duration) -> String {
    let secs = d.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:07}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_nanos() / 100
    )
}

/// Kubernetes style: `ok` when healthy, else its `?verbose` lines, one per check.
fn plain(overall: Level, probes: Vec<Probe>) -> Response {
    let text = if overall == Level::Pass {
        "ok".to_string()
    } else {
        let mut lines: Vec<String> = probes
            .iter()
            .map(|p| match p.level {
                Level::Pass => format!("[+]{} ok", p.name),
                _ => format!("[-]{} failed: {}", p.name, p.detail),
            })
            .collect();
        lines.push("healthz check failed".into());
        lines.join("\n") + "\n"
    };
    (
        ok_only_when_healthy(overall),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Ad-hoc JSON as many services write it: `healthy`, then one object per check with `ok`.
fn adhoc(state: &AppState, overall: Level, probes: Vec<Probe>) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("healthy".into(), (overall == Level::Pass).into());
    body.insert("release".into(), state.release.clone().into());
    for p in probes {
        body.insert(
            p.name,
            serde_json::json!({"ok": p.level == Level::Pass, "message": p.detail}),
        );
    }
    json_response(
        ok_only_when_healthy(overall),
        "application/json",
        &serde_json::Value::Object(body),
    )
}

fn json_response(
    code: StatusCode,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response()
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
