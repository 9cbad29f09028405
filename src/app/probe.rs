//! Probes of the running application: health, version and Prometheus metrics over HTTP.

// hyper's own message is only `client error (Connect)`: the causes say what happened.
use crate::engine::error_chain;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::health::{Health, HealthFormat};
use super::log::excerpt;
use super::process::{AppProcess, Flavour};
use super::url::HttpUrl;
use super::AppError;

/// Pause between health probes in `wait_healthy`.
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// One health probe gives up after this long.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// /metrics and /version give up after this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP response read.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// Characters of an HTTP body kept as evidence.
const BODY_EXCERPT: usize = 500;

/// One answer of the health endpoint, as evidence.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The URL probed.
    pub url: String,
    /// HTTP status code.
    pub http_status: u16,
    /// The body's overall status as written (`HEALTHY`, `UP`, `pass`, `ok` …), when it has one.
    pub status: Option<String>,
    /// Whether this answer means healthy ([`Health::healthy`]).
    pub healthy: bool,
    /// The body read in its format: overall status and checks.
    pub health: Health,
    /// The parsed body (redacted), when it is JSON.
    pub json: Option<serde_json::Value>,
    /// The first 500 characters of the body (redacted).
    pub body_excerpt: String,
    /// Round-trip time.
    pub elapsed_ms: u64,
}

impl HealthReport {
    /// Reads one answer of the health endpoint in `format` ([`Health::read`]); healthy as
    /// [`Health::healthy`] says. Unredacted: the caller redacts.
    pub(crate) fn read(
        url: String,
        http_status: u16,
        body: &str,
        format: &HealthFormat,
        healthy_status: &str,
    ) -> Self {
        let json = serde_json::from_str::<serde_json::Value>(body).ok();
        let health = Health::read(format, body, healthy_status);
        HealthReport {
            url,
            http_status,
            status: health.overall_raw.clone(),
            healthy: health.healthy(http_status),
            health,
            json,
            body_excerpt: excerpt(body, BODY_EXCERPT),
            elapsed_ms: 0,
        }
    }

    /// The raw entry of a `checks` list with this `name` (the sample app's body), if any;
    /// [`Health::check`] reads every format.
    pub fn check(&self, name: &str) -> Option<&serde_json::Value> {
        self.json
            .as_ref()?
            .get("checks")?
            .as_array()?
            .iter()
            .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name))
    }

    /// One line: HTTP status, then the format recognised, the overall status and the checks
    /// passed, warned, failed and unknown ([`Health::describe`]).
    pub fn summary(&self) -> String {
        format!("HTTP {}, {}", self.http_status, self.health.describe())
    }
}

/// The version endpoint's answer.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// HTTP status code.
    pub http_status: u16,
    /// The `version` field.
    pub version: Option<String>,
    /// The `release` field.
    pub release: Option<String>,
    /// The `build` field.
    pub build: Option<String>,
    /// The `commit` field (the sample app's, from its deployment marker).
    pub commit: Option<String>,
    /// The `deployed_at` field (RFC 3339).
    pub deployed_at: Option<String>,
    /// The first 500 characters of the body (redacted).
    pub body_excerpt: String,
}

impl VersionInfo {
    /// Reads the version endpoint's answer: the string fields of a JSON body, none of any
    /// other body. Unredacted: the caller redacts.
    pub(crate) fn read(http_status: u16, body: &str) -> Self {
        let json = serde_json::from_str::<serde_json::Value>(body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        VersionInfo {
            http_status,
            version: field("version"),
            release: field("release"),
            build: field("build"),
            commit: field("commit"),
            deployed_at: field("deployed_at"),
            body_excerpt: excerpt(body, BODY_EXCERPT),
        }
    }
}

impl AppProcess {
    /// One health probe.
    pub async fn health(&self) -> Result<HealthReport, AppError> {
        self.health_within(HEALTH_TIMEOUT).await
    }

    async fn health_within(&self, timeout: Duration) -> Result<HealthReport, AppError> {
        let (url, healthy_status) = match &self.flavour {
            Flavour::Sample => (self.sample_url("/health"), "HEALTHY"),
            Flavour::Custom(c) => (self.custom_url(&c.health_url), c.healthy_status.as_str()),
        };
        let started = Instant::now();
        let response = http_get(&url, timeout).await?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let mut report = HealthReport::read(
            url,
            response.status,
            &response.body,
            &self.health_format,
            healthy_status,
        );
        report.json = report.json.map(|j| self.redactor.apply_json(j));
        report.status = report.status.map(|s| self.redactor.apply(&s));
        report.health = report.health.map_text(|s| self.redactor.apply(s));
        report.body_excerpt = excerpt(&self.redactor.apply(&response.body), BODY_EXCERPT);
        report.elapsed_ms = elapsed_ms;
        Ok(report)
    }

    /// Polls health every 100 ms until healthy. Fails at once when the process exits, and
    /// after `timeout` with the last answer seen.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<HealthReport, AppError> {
        let deadline = Instant::now() + timeout;
        let mut last_seen;
        loop {
            if let Some(status) = self.exit_status().await? {
                if !self.detached(status) {
                    return Err(self.exited(status, "before it became healthy").await);
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe_timeout = remaining.clamp(Duration::from_millis(50), HEALTH_TIMEOUT);
            match self.health_within(probe_timeout).await {
                Ok(report) if report.healthy => return Ok(report),
                Ok(report) => last_seen = report.summary(),
                Err(e) => last_seen = e.to_string(),
            }
            if Instant::now() >= deadline {
                if let Some(status) = self.exit_status().await? {
                    if !self.detached(status) {
                        return Err(self.exited(status, "before it became healthy").await);
                    }
                }
                return Err(AppError::NotHealthy {
                    waited: timeout,
                    last_seen,
                    log: self.app_log.clone(),
                });
            }
            tokio::time::sleep(HEALTH_POLL.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }

    /// The Prometheus metrics: `name{labels}` as exposed → value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>, AppError> {
        let url = match &self.flavour {
            Flavour::Sample => self.sample_url("/metrics"),
            Flavour::Custom(c) => c.metrics_url.as_deref().map(|u| self.custom_url(u)).ok_or(
                AppError::NotConfigured {
                    what: "metrics URL",
                    fix: "metrics_url",
                },
            )?,
        };
        let response = http_get(&url, FETCH_TIMEOUT).await?;
        if response.status != 200 {
            return Err(AppError::Http {
                url,
                reason: format!(
                    "HTTP {}: {}",
                    response.status,
                    excerpt(&self.redactor.apply(&response.body), 200)
                ),
            });
        }
        Ok(parse_prometheus(&response.body))
    }

    /// The version endpoint's answer.
    pub async fn version(&self) -> Result<VersionInfo, AppError> {
        let url = match &self.flavour {
            Flavour::Sample => self.sample_url("/version"),
            Flavour::Custom(c) => c.version_url.as_deref().map(|u| self.custom_url(u)).ok_or(
                AppError::NotConfigured {
                    what: "version URL",
                    fix: "version_url",
                },
            )?,
        };
        let response = http_get(&url, FETCH_TIMEOUT).await?;
        let redact = |v: Option<String>| v.map(|v| self.redactor.apply(&v));
        let read = VersionInfo::read(response.status, &response.body);
        Ok(VersionInfo {
            version: redact(read.version),
            release: redact(read.release),
            build: redact(read.build),
            commit: redact(read.commit),
            deployed_at: redact(read.deployed_at),
            body_excerpt: excerpt(&self.redactor.apply(&response.body), BODY_EXCERPT),
            ..read
        })
    }

    /// A custom app's URL as given, or, for an app image, its path on the port Docker
    /// published for the current run (it changes with every start).
    fn custom_url(&self, url: &str) -> String {
        match (url.starts_with('/'), &self.base_url) {
            (true, Some(base)) => format!("{base}{url}"),
            _ => url.to_string(),
        }
    }

    fn sample_url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.base_url.as_deref().unwrap_or("http://127.0.0.1:0")
        )
    }
}

/// Parses the Prometheus text format into `name{labels}` → value. Comments, blank lines and
/// lines that do not parse are skipped; timestamps are ignored.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = match line.find('{') {
            Some(open) if line[..open].find(char::is_whitespace).is_none() => {
                match closing_brace(line, open) {
                    Some(close) => (&line[..=close], &line[close + 1..]),
                    None => continue,
                }
            }
            _ => match line.split_once(char::is_whitespace) {
                Some((name, rest)) => (name, rest),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        if let Some(value) = parse_sample_value(value) {
            out.insert(key.to_string(), value);
        }
    }
    out
}

/// Index of the `}` closing the label set opened at `open`, honouring quoted values.
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(open + i),
            _ => {}
        }
    }
    None
}

fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}
/// Status and body of an HTTP response.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// One GET through hyper's HTTP/1.1 client: no pooled connection outlives the call, the body
/// is read up to [`MAX_RESPONSE`], and the whole exchange is bounded by `timeout`.
pub(crate) async fn http_get(url: &str, timeout: Duration) -> Result<HttpResponse, AppError> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    HttpUrl::parse(url)?;
    let fail = |reason: String| AppError::Http {
        url: url.to_string(),
        reason,
    };
    let uri: hyper::Uri = url.parse().map_err(|_| AppError::Url {
        url: url.to_string(),
        reason: "not a valid URI",
    })?;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let request = hyper::Request::get(uri)
        .header(hyper::header::USER_AGENT, "pgdrill")
        .header(hyper::header::ACCEPT, "*/*")
        .body(Empty::new())
        .map_err(|e| fail(e.to_string()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| fail(format!("reading the body: {}", error_chain(&*e))))?
            .to_bytes();
        Ok::<_, AppError>(HttpResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        fail(format!(
            "no complete answer within {}",
            crate::duration::human_ms(timeout.as_millis() as u64)
        ))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_with_labels_comments_and_specials() {
        let text = "# HELP x help\n# TYPE x counter\nx 3\ny{a=\"1\",b=\"has } and \\\" inside\"} 2.5 1700000000\n\nz{w=\"r\"} +Inf\nbad line here\nnan NaN\n";
        let m = parse_prometheus(text);
        assert_eq!(m["x"], 3.0);
        assert_eq!(m["y{a=\"1\",b=\"has } and \\\" inside\"}"], 2.5);
        assert!(m["z{w=\"r\"}"].is_infinite());
        assert!(m["nan"].is_nan());
        assert!(!m.contains_key("bad"));
        assert_eq!(m.len(), 4);
    }

    /// A real HTTP server on loopback that answers each connection with the next of
    /// `answers`, raw, then closes it; `None` keeps the connection open and silent.
    async fn serve(answers: Vec<Option<&'static [u8]>>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in answers {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                assert!(head.starts_with(b"GET /probe HTTP/1.1\r\n"));
                match answer {
                    Some(bytes) => {
                        conn.write_all(bytes).await.unwrap();
                        let _ = conn.shutdown().await;
                    }
                    None => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            }
        });
        format!("http://{addr}/probe")
    }

    #[tokio::test]
    async fn http_responses_plain_and_chunked() {
        let url = serve(vec![
            Some(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nokEXTRA"),
            Some(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            Some(b"garbage"),
            Some(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ])
        .await;
        let plain = http_get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (503, "ok"));
        let chunked = http_get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(chunked.body, "Wikipedia");
        assert!(http_get(&url, Duration::from_secs(5)).await.is_err());
        let err = http_get(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.to_string().contains(&url), "{err}");
    }

    #[tokio::test]
    async fn http_gives_up_after_its_timeout_and_names_a_refused_connection() {
        let url = serve(vec![None]).await;
        let err = http_get(&url, Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no complete answer within 200 ms"), "{err}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}/probe", listener.local_addr().unwrap());
        drop(listener);
        let err = http_get(&closed, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused"), "{err}");
    }
}
