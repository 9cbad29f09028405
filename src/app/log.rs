//! The application's log and what comes back from it: reading lines after an offset,
//! telling error lines, and redacting configuration values from text and JSON.

use secrecy::{ExposeSecret, SecretString};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::AppError;

/// sample-app keys whose values are not secret and stay readable in evidence.
const NON_SECRET_KEYS: [&str; 10] = [
    "LISTEN_ADDR",
    "RELEASE",
    "WORKER_INTERVAL_MS",
    "LOG_FORMAT",
    "SAMPLE_APP_FAULT",
    "RUST_LOG",
    "SAMPLE_APP_ENV_FILE",
    "SAMPLE_APP_RELEASE_DIR",
    "PGDRILL_CONFIG_DIR",
    "PGDRILL_DEPLOY_DIR",
];
/// Secret values shorter than this are not redacted: replacing "1" or "on" everywhere would
/// destroy the evidence and protect nothing.
const MIN_REDACTED_LEN: usize = 4;

pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Complete lines after `offset` and the offset just past the last one; a partial last line
/// is left for the next read.
pub(crate) fn read_lines(path: &Path, offset: u64) -> Result<(Vec<String>, u64), AppError> {
    let read_error = |source| AppError::LogRead {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    let start = if offset > len { 0 } else { offset };
    file.seek(SeekFrom::Start(start)).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_error)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let lines = bytes[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            String::from_utf8_lossy(l)
                .trim_end_matches('\r')
                .to_string()
        })
        .collect();
    Ok((lines, start + complete as u64))
}

/// Whether a log line reports an error: a JSON line whose level/severity is ERROR (or FATAL,
/// CRITICAL, PANIC), a text line with one of those words in capitals or `level=error`, or a
/// Rust panic message.
pub fn is_error_line(line: &str) -> bool {
    const WORDS: [&str; 4] = ["ERROR", "FATAL", "CRITICAL", "PANIC"];
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed) {
            return ["level", "severity", "lvl"].iter().any(|key| {
                map.get(*key)
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| WORDS.contains(&v.to_ascii_uppercase().as_str()))
            });
        }
    }
    let lower = trimmed.to_ascii_lowercase();
    trimmed
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| WORDS.contains(&word))
        || lower.contains("level=error")
        || lower.contains("panicked at")
}
/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
/// Replaces configuration values with `***` in text that came back from the app.
#[derive(Clone)]
pub(crate) struct Redactor {
    secrets: Vec<SecretString>,
}

/// Every value in a configuration file (`KEY=value` and `Key = value` lines, quotes
/// stripped): what a log line must never show.
fn file_values(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

impl Redactor {
    pub(crate) fn new(env: &[(String, String)], database_url: &str) -> Redactor {
        let mut secrets: Vec<String> = env
            .iter()
            .filter(|(key, _)| !NON_SECRET_KEYS.contains(&key.as_str()))
            .map(|(_, value)| value.clone())
            .collect();
        secrets.push(database_url.to_string());
        // A full drill's configuration comes as files: their values are secrets too.
        for (key, value) in env {
            match key.as_str() {
                "SAMPLE_APP_ENV_FILE" => secrets.extend(file_values(Path::new(value))),
                "PGDRILL_CONFIG_DIR" => {
                    if let Ok(entries) = std::fs::read_dir(value) {
                        for e in entries.flatten() {
                            secrets.extend(file_values(&e.path()));
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(password) = database_url
            .parse::<tokio_postgres::Config>()
            .ok()
            .and_then(|c| {
                c.get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
            })
        {
            secrets.push(password);
        }
        secrets.retain(|s| s.chars().count() >= MIN_REDACTED_LEN);
        // Longest first, so a value containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: secrets.into_iter().map(SecretString::from).collect(),
        }
    }

    pub(crate) fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if out.contains(secret) {
                out = out.replace(secret, "***");
            }
        }
        out
    }

    pub(crate) fn apply_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.apply(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.apply_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.apply_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_text_json_and_panics() {
        assert!(is_error_line(
            "2024-01-01T00:00:00Z ERROR sample_app::workers: worker tick failed"
        ));
        assert!(is_error_line(
            r#"{"level":"ERROR","fields":{"message":"x"}}"#
        ));
        assert!(is_error_line(r#"{"severity":"fatal"}"#));
        assert!(!is_error_line(
            r#"{"level":"INFO","fields":{"message":"recovered from ERROR"}}"#
        ));
        assert!(!is_error_line(
            "2024-01-01T00:00:00Z  INFO sample_app: listening addr=127.0.0.1:1"
        ));
        assert!(!is_error_line("errors_total is fine"));
        assert!(is_error_line("time=1 level=error msg=boom"));
        assert!(is_error_line("thread 'main' panicked at src/main.rs:1:1"));
    }

    #[test]
    fn redaction_hides_secret_values_and_dsn_password() {
        let env = vec![
            ("API_KEY".to_string(), "k-123456".to_string()),
            ("LOG_FORMAT".to_string(), "json".to_string()),
            ("SHORT".to_string(), "ab".to_string()),
        ];
        let r = Redactor::new(&env, "host=h user=u password=pw-secret dbname=d");
        assert_eq!(
            r.apply("key k-123456 pw pw-secret format json ab"),
            "key *** pw *** format json ab"
        );
        assert_eq!(
            r.apply("dsn host=h user=u password=pw-secret dbname=d"),
            "dsn ***"
        );
        let j = r.apply_json(serde_json::json!({"a": ["x k-123456"], "b": 1}));
        assert_eq!(j, serde_json::json!({"a": ["x ***"], "b": 1}));
    }

    #[test]
    fn lines_after_an_offset_leave_partial_lines_and_survive_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "one\ntwo\npart").unwrap();
        let (lines, next) = read_lines(&path, 0).unwrap();
        assert_eq!(
            (lines, next),
            (vec!["one".to_string(), "two".to_string()], 8)
        );
        std::fs::write(&path, "one\ntwo\npartial\n").unwrap();
        let (lines, next) = read_lines(&path, 8).unwrap();
        assert_eq!((lines, next), (vec!["partial".to_string()], 16));
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(read_lines(&path, 16).unwrap().0, vec!["new".to_string()]);
        assert!(read_lines(&dir.path().join("missing"), 0).is_err());
    }
}
