//! What a drill tells the world as it runs, and the reporters that listen: the console and
//! `events.ndjson` in `--out`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{HumanBytes, HumanCount, HumanDuration, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::EnvError;
use crate::progress::{Unit, Update};
use crate::report::{FailureClass, PhaseId, Status, Verdict};

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
        phase: PhaseId,
    },
    /// A long phase reported how far it is.
    Progress {
        /// The phase reporting.
        phase: PhaseId,
        /// How far.
        #[serde(flatten)]
        update: Update,
    },
    /// A phase ended.
    PhaseFinished {
        /// Its name.
        phase: PhaseId,
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
        phase: PhaseId,
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

/// The console: a spinner with the running phase's progress on a terminal; plain lines on
/// stderr otherwise, a progress line at most every [`PLAIN_EVERY`] per phase.
pub struct Console {
    bar: Option<ProgressBar>,
    plain: Box<dyn Write + Send>,
    meters: Option<Meters>,
}

/// How often a plain (not a terminal) console prints a running phase's progress.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

type At = chrono::DateTime<chrono::Utc>;

/// The running phase's progress: the latest update of each unit, with a rate and an ETA
/// measured from the start of its run: the phase's start, or the moment a unit's count went
/// back (the next of several scheduled backups), so the waits between runs never lower it.
struct Meters {
    phase: PhaseId,
    started: At,
    last_line: At,
    updates: Vec<(Update, At)>,
}

impl Meters {
    fn new(phase: PhaseId, at: At) -> Self {
        Meters {
            phase,
            started: at,
            last_line: at,
            updates: Vec::new(),
        }
    }

    fn update(&mut self, u: Update, at: At) {
        let started = self.started;
        match self.updates.iter_mut().find(|(o, _)| o.unit == u.unit) {
            // The count went back: a new run (the next scheduled backup) starts now.
            Some((o, since)) if u.done < o.done => {
                *o = u;
                *since = at;
            }
            Some((o, _)) => *o = u,
            None => self.updates.push((u, started)),
        }
    }

    /// `users 1,200/2,000 60% · 400/s · eta 2s, rows 5,010 · 1,670/s` at `at`.
    fn render(&self, at: At) -> String {
        self.updates
            .iter()
            .map(|(u, since)| render_update(u, (at - *since).num_milliseconds() as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn render_update(u: &Update, secs: f64) -> String {
    let amount = |n: u64| match u.unit {
        Unit::Bytes => HumanBytes(n).to_string(),
        _ => HumanCount(n).to_string(),
    };
    let unit = match u.unit {
        Unit::Bytes => "",
        Unit::Users => " users",
        Unit::Rows => " rows",
        Unit::Tables => " tables",
    };
    let mut s = match u.total {
        Some(t) if t > 0 => format!(
            "{}/{}{unit} {}%",
            amount(u.done),
            amount(t),
            u.done.min(t) * 100 / t
        ),
        Some(t) => format!("{}/{}{unit}", amount(u.done), amount(t)),
        None => format!("{}{unit}", amount(u.done)),
    };
    // A rate needs some time behind it; before that it would be noise.
    if secs >= 1.0 && u.done > 0 {
        let rate = u.done as f64 / secs;
        s.push_str(&format!(" · {}/s", amount(rate as u64)));
        if let Some(t) = u.total.filter(|t| *t > u.done) {
            let eta = Duration::from_secs_f64((t - u.done) as f64 / rate);
            s.push_str(&format!(" · eta {}", HumanDuration(eta)));
        }
    }
    s
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
        Console {
            bar,
            plain: Box::new(std::io::stderr()),
            meters: None,
        }
    }

    /// A console that writes plain lines to `out` (what a non-terminal gets).
    pub fn plain(out: Box<dyn Write + Send>) -> Self {
        Console {
            bar: None,
            plain: out,
            meters: None,
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Console {
    fn event(&mut self, at: At, e: &Event) {
        match e {
            Event::PhaseStarted { phase } => {
                self.meters = Some(Meters::new(*phase, at));
                if let Some(p) = &self.bar {
                    p.set_message(format!("{phase}…"));
                }
            }
            Event::Progress { phase, update } => {
                let m = match &mut self.meters {
                    Some(m) if m.phase == *phase => m,
                    other => other.insert(Meters::new(*phase, at)),
                };
                m.update(*update, at);
                let line = format!("{phase}… {}", m.render(at));
                if let Some(p) = &self.bar {
                    p.set_message(line);
                } else if at - m.last_line
                    >= chrono::Duration::from_std(PLAIN_EVERY).expect("small")
                {
                    m.last_line = at;
                    self.println(&format!("  {line}"));
                }
            }
            Event::PhaseFinished {
                phase,
                status,
                duration_ms,
                ..
            } => {
                self.meters = None;
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
            None => {
                let _ = writeln!(self.plain, "{line}");
            }
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
        f.event(
            at,
            &Event::PhaseStarted {
                phase: PhaseId::Seed,
            },
        );
        f.event(
            at,
            &Event::Progress {
                phase: PhaseId::Seed,
                update: update(3, Some(10), crate::progress::Unit::Users),
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

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn update(done: u64, total: Option<u64>, unit: Unit) -> Update {
        Update { done, total, unit }
    }

    fn progress(done: u64, total: Option<u64>, unit: Unit) -> Event {
        Event::Progress {
            phase: PhaseId::PgRestore,
            update: update(done, total, unit),
        }
    }

    #[test]
    fn progress_shows_done_of_total_a_rate_and_an_eta() {
        let t0 = chrono::Utc::now();
        let s = |ms| t0 + chrono::Duration::milliseconds(ms);
        let mut m = Meters::new(PhaseId::Seed, t0);
        m.update(update(500, Some(2000), Unit::Users), s(500));
        assert_eq!(
            m.render(s(500)),
            "500/2,000 users 25%",
            "no rate before a second"
        );
        assert_eq!(
            m.render(s(2000)),
            "500/2,000 users 25% · 250/s · eta 6 seconds"
        );
        m.update(update(4000, None, Unit::Rows), s(2000));
        assert_eq!(
            m.render(s(2000)),
            "500/2,000 users 25% · 250/s · eta 6 seconds, 4,000 rows · 2,000/s"
        );
        let mut b = Meters::new(PhaseId::Precheck, t0);
        b.update(update(64 << 20, Some(256 << 20), Unit::Bytes), s(4000));
        assert_eq!(
            b.render(s(4000)),
            "64.00 MiB/256.00 MiB 25% · 16.00 MiB/s · eta 12 seconds"
        );
        // Done: no ETA any more.
        b.update(update(256 << 20, Some(256 << 20), Unit::Bytes), s(8000));
        assert_eq!(
            b.render(s(8000)),
            "256.00 MiB/256.00 MiB 100% · 32.00 MiB/s"
        );
    }

    #[test]
    fn the_rate_of_a_scheduled_backup_leaves_out_the_wait_before_it() {
        let t0 = chrono::Utc::now();
        let s = |ms| t0 + chrono::Duration::milliseconds(ms);
        let mut m = Meters::new(PhaseId::Backup, t0);
        m.update(update(8 << 20, None, Unit::Bytes), s(1000));
        assert_eq!(m.render(s(1000)), "8.00 MiB · 8.00 MiB/s");
        // The next backup starts after a 60 s wait: its count starts again from 0.
        m.update(update(0, None, Unit::Bytes), s(61_000));
        m.update(update(16 << 20, None, Unit::Bytes), s(63_000));
        assert_eq!(
            m.render(s(63_000)),
            "16.00 MiB · 8.00 MiB/s",
            "measured from the second backup's start, not the phase's"
        );
    }

    #[test]
    fn a_plain_console_prints_progress_at_most_every_few_seconds() {
        let out = Shared::default();
        let mut c = Console::plain(Box::new(out.clone()));
        let t0 = chrono::Utc::now();
        let s = |secs| t0 + chrono::Duration::seconds(secs);
        c.event(
            t0,
            &Event::PhaseStarted {
                phase: PhaseId::PgRestore,
            },
        );
        for i in 1..=12 {
            c.event(s(i), &progress(i as u64, Some(12), Unit::Tables));
        }
        c.event(
            s(12),
            &Event::PhaseFinished {
                phase: PhaseId::PgRestore,
                status: Status::Pass,
                duration_ms: 12_000,
                detail: String::new(),
            },
        );
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "  pg_restore… 5/12 tables 41% · 1/s · eta 7 seconds",
                "  pg_restore… 10/12 tables 83% · 1/s · eta 2 seconds",
                "  pg_restore          12 s  ok",
            ],
            "{text}"
        );
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
