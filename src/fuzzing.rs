//! The readers of outside input that are private to their modules, reachable for the fuzz
//! targets in `fuzz/` and the property tests in `tests/parsers.rs`. Not part of pgdrill's API:
//! each function only forwards to the reader a command uses.

use crate::app::{HealthFormat, HealthReport, VersionInfo};

/// `pg_restore --list` output read as the restore reads it: the TABLE DATA entries, and the
/// header's `Format:` and `dbname:` fields.
pub fn archive_list(list: &str) -> (u64, Option<String>, Option<String>) {
    (
        crate::restore::count_table_data(list),
        crate::restore::header_field(list, "Format:"),
        crate::restore::header_field(list, "dbname:"),
    )
}

/// One answer of the health endpoint, read as the probe reads it (format recognised), and
/// its one-line summary.
pub fn health(http_status: u16, body: &str, healthy_status: &str) -> (HealthReport, String) {
    health_as(&HealthFormat::Auto, http_status, body, healthy_status)
}

/// One answer of the health endpoint read in `format`, and its one-line summary.
pub fn health_as(
    format: &HealthFormat,
    http_status: u16,
    body: &str,
    healthy_status: &str,
) -> (HealthReport, String) {
    let report = HealthReport::read(
        "http://app/health".into(),
        http_status,
        body,
        format,
        healthy_status,
    );
    let summary = report.summary();
    (report, summary)
}

/// The version endpoint's answer, read as the probe reads it.
pub fn version(http_status: u16, body: &str) -> VersionInfo {
    VersionInfo::read(http_status, body)
}

/// An app URL (`health_url`, `metrics_url`, `version_url`), checked as the plan and the
/// probe check it; the error is the message a user sees.
pub fn http_url(url: &str) -> Result<(), String> {
    crate::app::url::HttpUrl::parse(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
