//! sample-app: the application under drill. A small subscription service with /health,
//! /version, /metrics and two background workers (renewals, dunning) writing to the
//! generated schema (fixtures/schema.sql).
//!
//! Configuration: environment variables, else an optional `.env` file (SAMPLE_APP_ENV_FILE,
//! else ./.env). Required: DATABASE_URL, API_KEY, VPN_PEER. Optional: LISTEN_ADDR
//! (127.0.0.1:0), RELEASE, WORKER_INTERVAL_MS (500), LOG_FORMAT (text|json),
//! SAMPLE_APP_FAULT (worker-stops|error-log|degraded|exit|never-healthy),
//! SAMPLE_APP_HEALTH_FORMAT (own|ietf|spring|aspnet|plain|adhoc: the body /health answers in),
//! SAMPLE_APP_RELEASE_DIR (the deploy directory: its deployment.json gives the release tag,
//! commit and deploy time reported by /version; its release.env's keys apply like environment
//! variables, below the process environment and above the .env file).
//!
//! Exit codes: 0 after SIGTERM/SIGINT, 1 on a runtime failure (or the `exit` fault),
//! 2 on a configuration error. The first stdout line is `listening on ADDR`.

mod config;
mod http;
mod logging;
mod metrics;
mod release;
mod workers;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info};

use config::{Config, Fault, LogFormat, RawConfig};
use workers::{Kind, Worker, WorkerStatus};

/// Exit code for configuration errors.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let raw = RawConfig::load();
    let format = raw
        .as_ref()
        .ok()
        .and_then(|r| r.log_format().ok())
        .unwrap_or(LogFormat::Text);
    logging::init(format);
    let config = raw
        .and_then(|r| {
            r.log_format()?;
            Config::from_raw(&r)
        })
        .map_err(|e| {
            error!(error = %e, "configuration error, refusing to start");
            ExitCode::from(EXIT_CONFIG)
        });
    let config = match config {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(addr = %config.listen, error = %e, "cannot bind LISTEN_ADDR; choose a free address or port 0");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            error!(error = %e, "cannot read the bound address");
            return ExitCode::FAILURE;
        }
    };
    // A supervisor reads this exact line to learn the port when LISTEN_ADDR asked for port 0.
    println!("listening on {addr}");
    info!(
        addr = %addr,
        release = %config.release,
        commit = config.commit.as_deref().unwrap_or("unknown"),
        version = env!("CARGO_PKG_VERSION"),
        db_host = %hosts(&config.database),
        db_port = %config.database.get_ports().first().copied().unwrap_or(5432),
        db_name = config.database.get_dbname().unwrap_or(""),
        db_user = config.database.get_user().unwrap_or(""),
        worker_interval_ms = config.worker_interval.as_millis() as u64,
        fault = config.fault.map(Fault::as_str).unwrap_or("none"),
        "listening"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(wait_for_signal(stop_tx));
    if let Some(fault) = config.fault {
        tokio::spawn(inject(fault));
    }

    let mut statuses = Vec::new();
    let mut handles = Vec::new();
    for kind in [Kind::Renewals, Kind::Dunning] {
        let status = WorkerStatus::new(kind);
        statuses.push(status.clone());
        let worker = Worker {
            kind,
            database: config.database.clone(),
            interval: config.worker_interval,
            status,
            stop_after_ticks: (kind == Kind::Renewals && config.fault == Some(Fault::WorkerStops))
                .then_some(2),
        };
        handles.push(tokio::spawn(worker.run(stop_rx.clone())));
    }

    let state = Arc::new(http::AppState {
        release: config.release.clone(),
        commit: config.commit.clone(),
        deployed_at: config.deployed_at.clone(),
        metrics: metrics::METRICS.registry(statuses.clone()),
        workers: statuses,
        stale_after: config.worker_interval * 3,
        required_sources: config.required_sources.clone(),
        fault: config.fault,
        health_format: config.health_format,
        db: http::ApiDb::new(config.database.clone()),
    });
    let mut server_stop = stop_rx.clone();
    let served = axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        })
        .await;
    let mut code = ExitCode::SUCCESS;
    if let Err(e) = served {
        error!(error = %e, "HTTP server failed");
        code = ExitCode::FAILURE;
    }
    for handle in handles {
        if let Err(e) = handle.await {
            error!(error = %e, "worker task panicked");
            code = ExitCode::FAILURE;
        }
    }
    info!("stopped");
    code
}

/// The database hosts, for the startup line (never the password).
fn hosts(database: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = database
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if hosts.is_empty() {
        "(default)".to_string()
    } else {
        hosts.join(",")
    }
}

/// Turns SIGTERM or SIGINT into the shutdown signal.
async fn wait_for_signal(stop: watch::Sender<bool>) {
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            error!("cannot install SIGTERM/SIGINT handlers; stop the app with SIGKILL");
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(
        signal = name,
        "shutting down after the current worker ticks"
    );
    let _ = stop.send(true);
}

/// The time-based faults; the others act where they apply.
async fn inject(fault: Fault) {
    match fault {
        Fault::ErrorLog => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            error!(
                fault = fault.as_str(),
                "injected error (SAMPLE_APP_FAULT=error-log)"
            );
        }
        Fault::Exit => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            error!(
                fault = fault.as_str(),
                "exiting with code 1 (SAMPLE_APP_FAULT=exit)"
            );
            std::process::exit(1);
        }
        Fault::WorkerStops | Fault::Degraded | Fault::NeverHealthy => {}
    }
}
