//! Notifications: after a drill, a restore or a verify, one HTTP POST to a webhook in the
//! receiver's format ([`NotifyFormat`]), when [`NotifyOn`] says so. A notification never
//! changes a verdict or an exit code: what happened to it ([`Delivery`]) goes into the
//! report and the caller's log. The URL's path and query (where webhook tokens live) never
//! leave this module unredacted ([`redact_url`]).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::report::notification::{Attempt, Delivery, NotifyFormat};
use crate::report::Verdict;

/// When to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// Only when the verdict is not a pass.
    Failure,
    /// After every run.
    Always,
    /// When the verdict differs from the previous run's in the history (or there is none).
    Change,
}

/// Where and how to notify (`--notify URL [--notify-format] [--notify-on]`).
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The webhook, secrets and all: only [`redact_url`] of it is ever shown.
    pub url: String,
    /// The body's shape.
    pub format: NotifyFormat,
    /// When to send.
    pub on: NotifyOn,
    /// How long one attempt may take.
    pub timeout: Duration,
}

/// What a run tells its receiver, whatever the format.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `drill`, `restore` or `verify`.
    pub event: String,
    /// The outcome.
    pub verdict: Verdict,
    /// The run's id (a drill's, a restore's; the repository or stanza for verify).
    pub drill_id: String,
    /// One line for people.
    pub summary: String,
    /// What failed, for people: `phase: message`.
    pub failure: Option<String>,
    /// The RTO used and its budget, e.g. `4.8 s of 30m`.
    pub rto: Option<String>,
    /// The RPO achieved, e.g. `73 ms (objective 15m)`.
    pub rpo: Option<String>,
    /// Where the full report is.
    pub report_path: Option<String>,
    /// Who to call, `ROLE: REACH`.
    pub contacts: Vec<String>,
    /// The database (or repository) the run was about, for alert labels.
    pub database: String,
}

impl Event {
    /// The event of a drill's or a restore's `report`, whose full text is at `report_path`.
    pub fn of_report(
        event: &str,
        report: &crate::report::Report,
        report_path: &std::path::Path,
    ) -> Event {
        use crate::duration::human_ms;
        let rto = report
            .budgets
            .iter()
            .find(|b| b.name == crate::plan::BudgetName::Total)
            .map(|b| format!("{} of {}", human_ms(b.used_ms), human_ms(b.limit_ms)));
        let rpo = report.rpo.as_ref().map(|r| {
            format!(
                "{} (objective {}), {} commit(s) lost",
                human_ms(r.achieved_ms),
                human_ms(r.objective_ms),
                r.lost_commits
            )
        });
        let failure = report
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.phase, f.message));
        let summary = match (&report.failure, &rto) {
            (None, Some(rto)) => format!("{:?}, recovery took {rto}", report.verdict),
            (None, None) => format!("{:?}", report.verdict),
            (Some(f), _) => format!("{:?} at {} ({})", report.verdict, f.phase, f.class),
        };
        Event {
            event: event.to_string(),
            verdict: report.verdict,
            drill_id: report.drill_id.clone(),
            summary,
            failure,
            rto,
            rpo,
            report_path: Some(report_path.display().to_string()),
            contacts: report
                .contacts
                .iter()
                .map(|c| format!("{}: {}", c.role, c.reach))
                .collect(),
            database: report.source.database.clone(),
        }
    }
}

/// At most this many retries after the first attempt, on 5xx and connection errors only.
pub const RETRIES: usize = 3;
/// The pause before the first retry; each next one doubles it.
const BACKOFF: Duration = Duration::from_millis(500);
/// How much of an answer is read (an error page is not kept).
const MAX_ANSWER: usize = 64 * 1024;

/// `scheme://host[:port]/***`: the path and query (a Slack webhook's token, an API key) and
/// any user info are replaced, so the URL can be logged and written into reports.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if end < rest.len() && rest[end..] != *"/" {
        format!("{scheme}://{host}/***")
    } else {
        format!("{scheme}://{host}/")
    }
}

/// Checks `--notify`'s URL before anything runs: an `http` or `https` URL with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let uri: hyper::Uri = url.parse().map_err(|_| {
        format!("--notify {shown}: not a URL; give the webhook as http(s)://HOST/PATH")
    })?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(()),
        _ => Err(format!(
            "--notify {shown}: only http:// and https:// webhooks with a host are supported"
        )),
    }
}

/// Whether `on` sends for `verdict`, `previous` being the last verdict in the history.
pub fn wanted(on: NotifyOn, verdict: Verdict, previous: Option<Verdict>) -> Result<(), String> {
    match on {
        NotifyOn::Always => Ok(()),
        NotifyOn::Failure if verdict != Verdict::Pass => Ok(()),
        NotifyOn::Failure => Err("--notify-on failure: the run passed".into()),
        NotifyOn::Change if previous != Some(verdict) => Ok(()),
        NotifyOn::Change => Err(format!(
            "--notify-on change: the verdict is {verdict:?} as in the previous run"
        )),
    }
}

/// The request body for `format`.
pub fn body(format: NotifyFormat, e: &Event) -> serde_json::Value {
    match format {
        NotifyFormat::Json => serde_json::json!({
            "event": e.event,
            "verdict": e.verdict,
            "drill_id": e.drill_id,
            "summary": e.summary,
            "failure": e.failure,
            "rto": e.rto,
            "rpo": e.rpo,
            "report_path": e.report_path,
            "contacts": e.contacts,
        }),
        NotifyFormat::Slack => {
            let mut text = format!("pgdrill {} {}: {}", e.event, e.drill_id, e.summary);
            if let Some(f) = &e.failure {
                text.push_str(&format!("\nfailed at {f}"));
            }
            if let Some(p) = &e.report_path {
                text.push_str(&format!("\nreport: {p}"));
            }
            serde_json::json!({ "text": text })
        }
        NotifyFormat::Alertmanager => {
            let firing = e.verdict != Verdict::Pass;
            let mut alert = serde_json::json!({
                "labels": {
                    "alertname": format!("PgdrillDrill{}", if firing { "Failed" } else { "Passed" }),
                    "severity": if firing { "critical" } else { "info" },
                    "database": e.database,
                    "event": e.event,
                },
                "annotations": {
                    "summary": e.summary,
                    "description": e.failure.clone().unwrap_or_default(),
                    "runbook": "docs/src/restore.md: the restore runbook (pgdrill runbook prints it)",
                    "report": e.report_path.clone().unwrap_or_default(),
                },
            });
            if !firing {
                // A pass resolves an earlier failure's alert at once.
                alert["endsAt"] = serde_json::json!(
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            serde_json::json!([alert])
        }
    }
}

/// Sends `event` when `n.on` wants it: one POST, retried with backoff on 5xx answers and
/// connection errors (at most [`RETRIES`] times), never on 4xx. Never fails: what happened
/// is the [`Delivery`].
pub async fn send(n: &Notifier, event: &Event, previous: Option<Verdict>) -> Delivery {
    let mut d = Delivery {
        url: redact_url(&n.url),
        format: n.format,
        delivered: false,
        skipped: None,
        attempts: Vec::new(),
    };
    if let Err(why) = wanted(n.on, event.verdict, previous) {
        d.skipped = Some(why);
        return d;
    }
    let payload = body(n.format, event).to_string();
    let mut pause = BACKOFF;
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        let started = Instant::now();
        let answer = post(&n.url, &payload, n.timeout).await;
        let ms = started.elapsed().as_millis() as u64;
        let retry = match answer {
            Ok(status) => {
                d.attempts.push(Attempt {
                    status: Some(status),
                    error: None,
                    ms,
                });
                if (200..300).contains(&status) {
                    d.delivered = true;
                    false
                } else {
                    status >= 500
                }
            }
            Err(error) => {
                d.attempts.push(Attempt {
                    status: None,
                    error: Some(error),
                    ms,
                });
                true
            }
        };
        if !retry {
            break;
        }
    }
    d
}

/// One POST of `payload` as JSON; the status, or why there was none. The URL never appears
/// in the error.
async fn post(url: &str, payload: &str, timeout: Duration) -> Result<u16, String> {
    use http_body_util::{BodyExt, Full, Limited};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let uri: hyper::Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS root certificates on this machine: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(https);
    let request = hyper::Request::post(uri)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "pgdrill")
        .body(Full::new(bytes::Bytes::from(payload.to_string())))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            // hyper's chain can quote the URI; the redacted form replaces it.
            crate::engine::error_chain(&e).replace(url, &redact_url(url))
        })?;
        let status = response.status().as_u16();
        // Read (and drop) the answer so the connection ends cleanly.
        let _ = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await;
        Ok::<_, String>(status)
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        format!(
            "no answer within {}",
            crate::duration::human_ms(timeout.as_millis() as u64)
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_the_path_query_and_user_info_never_show() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T00/B00/XXXXSECRET"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:9093/api/v2/alerts?token=abc"),
            "http://127.0.0.1:9093/***"
        );
        assert_eq!(redact_url("http://am:9093"), "http://am:9093/");
        assert_eq!(redact_url("http://am:9093/"), "http://am:9093/");
        assert_eq!(redact_url("no scheme/secret"), "***");
    }

    #[test]
    fn urls_are_checked_without_showing_them() {
        assert!(check_url("https://hooks.example/x/y").is_ok());
        let e = check_url("ftp://host/secret-token").unwrap_err();
        assert!(
            e.contains("only http") && !e.contains("secret-token"),
            "{e}"
        );
        let e = check_url("not a url secret-token").unwrap_err();
        assert!(!e.contains("secret-token"), "{e}");
    }

    #[test]
    fn failure_change_and_always() {
        use Verdict::{Fail, Pass};
        assert!(wanted(NotifyOn::Failure, Fail, None).is_ok());
        assert!(wanted(NotifyOn::Failure, Pass, None).is_err());
        assert!(wanted(NotifyOn::Always, Pass, Some(Pass)).is_ok());
        assert!(wanted(NotifyOn::Change, Pass, None).is_ok());
        assert!(wanted(NotifyOn::Change, Pass, Some(Fail)).is_ok());
        assert!(wanted(NotifyOn::Change, Fail, Some(Fail)).is_err());
    }
}
