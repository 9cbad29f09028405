//! Process-wide counters and the metrics registry, exposed in the OpenMetrics text format by
//! `prometheus-client`. The workers' heartbeat ages and counts are read when scraped.

use std::fmt;
use std::sync::{Arc, LazyLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::workers::WorkerStatus;

/// The prefix of every metric name.
const PREFIX: &str = "sample_app";

/// Content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counters shared by the HTTP layer, the workers and the log layer.
pub struct Metrics {
    http_requests: Counter,
    errors: Counter,
    payments: Counter,
}

/// The one set of counters of this process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    http_requests: Counter::default(),
    errors: Counter::default(),
    payments: Counter::default(),
});

impl Metrics {
    /// One HTTP request served.
    pub fn request(&self) {
        self.http_requests.inc();
    }

    /// One ERROR log line written.
    pub fn error(&self) {
        self.errors.inc();
    }

    /// Payments committed by the renewals worker.
    pub fn payments(&self, n: u64) {
        self.payments.inc_by(n);
    }

    /// The registry `GET /metrics` encodes: these counters, the workers and `up`.
    pub fn registry(&self, workers: Vec<Arc<WorkerStatus>>) -> Registry {
        let mut r = Registry::with_prefix(PREFIX);
        // The registry adds the full stop to each help text, and `_total` to counters.
        r.register(
            "http_requests",
            "HTTP requests served",
            self.http_requests.clone(),
        );
        r.register("errors", "ERROR log lines written", self.errors.clone());
        r.register(
            "payments_processed",
            "Payments recorded by the renewals worker",
            self.payments.clone(),
        );
        r.register_collector(Box::new(Workers(workers)));
        let up: Gauge = Gauge::default();
        up.set(1);
        r.register("up", "1 while the process serves", up);
        r
    }
}

/// The exposition text of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// The workers' heartbeat ages and processed rows, read at each scrape.
struct Workers(Vec<Arc<WorkerStatus>>);

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|w| w.name))
            .finish()
    }
}

impl Collector for Workers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut ages = encoder.encode_descriptor(
            "worker_heartbeat_age_seconds",
            "Seconds since the worker's last committed tick (+Inf before the first).",
            None,
            MetricType::Gauge,
        )?;
        for w in &self.0 {
            let age = w
                .heartbeat_age()
                .map_or(f64::INFINITY, |a| a.as_millis() as f64 / 1000.0);
            ConstGauge::new(age).encode(ages.encode_family(&[("worker", w.name)])?)?;
        }
        let mut processed = encoder.encode_descriptor(
            "worker_processed",
            "Rows handled by the worker.",
            None,
            MetricType::Counter,
        )?;
        for w in &self.0 {
            ConstCounter::new(w.processed())
                .encode(processed.encode_family(&[("worker", w.name)])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::Kind;

    #[test]
    fn the_exposition_keeps_the_names_the_checklist_reads() {
        let m = Metrics {
            http_requests: Counter::default(),
            errors: Counter::default(),
            payments: Counter::default(),
        };
        m.error();
        m.payments(3);
        let text = render(&m.registry(vec![WorkerStatus::new(Kind::Renewals)]));
        for line in [
            "# TYPE sample_app_errors counter",
            "sample_app_errors_total 1",
            "sample_app_payments_processed_total 3",
            "sample_app_http_requests_total 0",
            "sample_app_worker_heartbeat_age_seconds{worker=\"renewals\"} inf",
            "sample_app_worker_processed_total{worker=\"renewals\"} 0",
            "sample_app_up 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert_eq!(
            "inf".parse::<f64>().ok(),
            Some(f64::INFINITY),
            "a reader parses the age before the first beat"
        );
    }
}
