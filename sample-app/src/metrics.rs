//! Process-wide counters and the Prometheus text exposition, written by hand.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::workers::WorkerStatus;

/// Counters shared by the HTTP layer, the workers and the log layer.
pub struct Metrics {
    http_requests: AtomicU64,
    errors: AtomicU64,
    payments: AtomicU64,
}

/// The one set of counters of this process.
pub static METRICS: Metrics = Metrics {
    http_requests: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    payments: AtomicU64::new(0),
};

impl Metrics {
    /// One HTTP request served.
    pub fn request(&self) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// One ERROR log line written.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Payments committed by the renewals worker.
    pub fn payments(&self, n: u64) {
        self.payments.fetch_add(n, Ordering::Relaxed);
    }

    /// The exposition text for `GET /metrics`.
    pub fn render(&self, workers: &[std::sync::Arc<WorkerStatus>]) -> String {
        let mut out = String::new();
        let counters = [
            (
                "sample_app_http_requests_total",
                "HTTP requests served.",
                &self.http_requests,
            ),
            (
                "sample_app_errors_total",
                "ERROR log lines written.",
                &self.errors,
            ),
            (
                "sample_app_payments_processed_total",
                "Payments recorded by the renewals worker.",
                &self.payments,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let name = "sample_app_worker_heartbeat_age_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Seconds since the worker's last committed tick (+Inf before the first)."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for w in workers {
            let age = match w.heartbeat_age() {
                Some(age) => format!("{:.3}", age.as_secs_f64()),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}{{worker=\"{}\"}} {age}", w.name);
        }
        let name = "sample_app_worker_processed_total";
        let _ = writeln!(out, "# HELP {name} Rows handled by the worker.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for w in workers {
            let _ = writeln!(out, "{name}{{worker=\"{}\"}} {}", w.name, w.processed());
        }
        let _ = writeln!(out, "# HELP sample_app_up 1 while the process serves.");
        let _ = writeln!(out, "# TYPE sample_app_up gauge");
        let _ = writeln!(out, "sample_app_up 1");
        out
    }
}
