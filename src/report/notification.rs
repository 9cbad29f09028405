//! The report's record of a `--notify` webhook (sent by the `notify` module, which depends on
//! this module, never the other way).

use serde::{Deserialize, Serialize};

/// The body's shape, by receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// pgdrill's own: `{event, verdict, drill_id, summary, failure, rto, rpo, report_path,
    /// contacts}`.
    Json,
    /// A Slack incoming webhook: `{"text": …}`.
    Slack,
    /// Alertmanager's v2 API (`POST /api/v2/alerts`): a list of one alert.
    Alertmanager,
}

/// What happened to one notification, as the report keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The URL, redacted.
    pub url: String,
    /// The body's shape.
    pub format: NotifyFormat,
    /// Whether the receiver answered 2xx.
    pub delivered: bool,
    /// Why it was not sent: the `--notify-on` rule that held it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Each attempt: its answer or error, and how long it took.
    pub attempts: Vec<Attempt>,
}

/// One POST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The error, when there was none (connection refused, timeout).
    pub error: Option<String>,
    /// How long it took.
    pub ms: u64,
}
