//! What a drill tells the world as it runs, and the reporters that listen: the console and
//! `events.ndjson` in `--out`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::EnvError;
use crate::progress::Update;
use crate::report::{FailureClass, Status, Verdict};

/// One thing that happened in a drill.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The drill began.
    DrillStarted {
        /// Its id.
        drill_id: String,
    },
    /// A phase began.
    PhaseStarted {
        /// Its name.
        phase: &'static str,
    },
    /// A long phase reported how far it is.
    Progress {
        /// The phase reporting.
        phase: &'static str,
        /// How far.
        #[serde(flatten)]
        update: Update,
    },
    /// A phase ended.
    PhaseFinished {
        /// Its name.
        phase: &'static str,
        /// Pass or fail.
        status: Status,
        /// How long it took.
        duration_ms: u64,
        /// What it did or why it failed.
        detail: String,
    },
    /// A phase did not run.
    PhaseSkipped {
        /// Its name.
        phase: &'static str,
        /// Why.
        reason: String,
    },
    /// Something a person should know that is not a phase.
    Note {
        /// The note.
        text: String,
    },
    /// The drill's outcome.
    Verdict {
        /// Pass, fail or error.
        verdict: Verdict,
        /// The failure's class, when it did not pass.
        class: Option<FailureClass>,
    },
}

/// Receives a drill's events as they happen.
pub trait Reporter: Send {
    /// Handles one event.
    fn event(&mut self, at: chrono::DateTime<chrono::Utc>, e: &Event);
    /// Prints a line for a person without breaking a progress display.
    fn println(&mut self, _line: &str) {}
    /// The drill is over.
    fn finish(&mut self) {}
}

/// The console: a spinner with progress on a terminal, plain lines on stderr otherwise.
pub struct Console {
    bar: Option<ProgressBar>,
}

impl Console {
    /// A console reporter for this process's stdout.
    pub fn new() -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let p = ProgressBar::new_spinner();
            p.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("template"),
            );
            p.enable_steady_tick(Duration::from_millis(120));
            p
        });
        Console { bar }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Console {
    fn event(&mut self, _at: chrono::DateTime<chrono::Utc>, e: &Event) {
        match e {
            Event::PhaseStarted { phase } => {
                if let Some(p) = &self.bar {
                    p.set_message(format!("{phase}…"));
                }
            }
            Event::Progress { phase, update } => {
                if let Some(p) = &self.bar {
                    let total = update.total.map(|t| format!(" of {t}")).unwrap_or_default();
                    p.set_message(format!("{phase}… {}{total} {:?}", update.done, update.unit));
                }
            }
            Event::PhaseFinished {
                phase,
                status,
                duration_ms,
                ..
            } => {
                let line = format!(
                    "  {:<14} {:>9}  {}",
                    phase,
                    crate::report::markdown::secs(*duration_ms),
                    match status {
                        Status::Pass => "ok",
                        _ => "FAILED",
                    }
                );
                self.println(&line);
            }
            _ => {}
        }
    }

    fn println(&mut self, line: &str) {
        match &self.bar {
            Some(p) => p.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(p) = self.bar.take() {
            p.finish_and_clear();
        }
    }
}

/// `events.ndjson`: one JSON object per line with its timestamp, flushed as it happens so a
/// killed drill still leaves its trail.
pub struct NdjsonFile {
    file: std::fs::File,
}

/// The events file's name in `--out`.
pub const EVENTS_FILE: &str = "events.ndjson";

impl NdjsonFile {
    /// Creates `dir` and `dir/events.ndjson`: this is also the check that `--out` is writable,
    /// made before anything starts.
    pub fn create(dir: &Path) -> Result<Self, EnvError> {
        let hint = |e: std::io::Error| {
            EnvError::io(
                format!(
                    "--out {} cannot be written (choose a directory you can write to)",
                    dir.display()
                ),
                e,
            )
        };
        std::fs::create_dir_all(dir).map_err(hint)?;
        let file = std::fs::File::create(dir.join(EVENTS_FILE)).map_err(hint)?;
        Ok(NdjsonFile { file })
    }
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    #[serde(flatten)]
    event: &'a Event,
}

impl Reporter for NdjsonFile {
    fn event(&mut self, at: chrono::DateTime<chrono::Utc>, e: &Event) {
        let line = Line {
            ts: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event: e,
        };
        if let Ok(mut s) = serde_json::to_string(&line) {
            s.push('\n');
            // One write per line, no buffer: what is written survives a kill -9.
            if let Err(err) = self.file.write_all(s.as_bytes()) {
                tracing::warn!(error = %err, "cannot write events.ndjson");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_timestamped_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = NdjsonFile::create(dir.path()).unwrap();
        let at = chrono::Utc::now();
        f.event(at, &Event::PhaseStarted { phase: "seed" });
        f.event(
            at,
            &Event::Progress {
                phase: "seed",
                update: Update {
                    done: 3,
                    total: Some(10),
                    unit: crate::progress::Unit::Users,
                },
            },
        );
        let text = std::fs::read_to_string(dir.path().join(EVENTS_FILE)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "phase_started");
        assert_eq!(lines[0]["phase"], "seed");
        assert!(lines[0]["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["event"], "progress");
        assert_eq!(lines[1]["done"], 3);
        assert_eq!(lines[1]["total"], 10);
        assert_eq!(lines[1]["unit"], "users");
    }

    #[test]
    fn an_unwritable_out_is_an_environment_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let e = NdjsonFile::create(&file.join("out"))
            .err()
            .expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("a-file/out") && msg.contains("cannot be written"),
            "{msg}"
        );
    }
}
