//! How far a long step has come, reported by the domain modules (seed, backup, restore,
//! snapshot) without knowing who listens. The drill turns these into events; a library user
//! may pass [`Progress::none`]. A leaf module: it depends on nothing else in pgdrill.

use std::sync::Arc;

/// What a count is counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Generated users.
    Users,
    /// Table rows.
    Rows,
    /// Bytes written or read.
    Bytes,
    /// Tables (restored, fingerprinted).
    Tables,
}

/// One report of progress: `done` of `total` (when known) `unit`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Update {
    /// Units done so far.
    pub done: u64,
    /// Units in all, when known in advance.
    pub total: Option<u64>,
    /// What is counted.
    pub unit: Unit,
}

type Sink = Arc<dyn Fn(Update) + Send + Sync>;

/// A cheap, clonable handle a long step reports its progress to.
#[derive(Clone, Default)]
pub struct Progress(Option<Sink>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(sink)"
        } else {
            "Progress(none)"
        })
    }
}

impl Progress {
    /// A handle that discards every report.
    pub fn none() -> Progress {
        Progress(None)
    }

    /// A handle that passes every report to `f` (called on the reporting task: keep it cheap).
    pub fn new(f: impl Fn(Update) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    /// Reports `done` of `total` `unit`s.
    pub fn report(&self, done: u64, total: Option<u64>, unit: Unit) {
        if let Some(f) = &self.0 {
            f(Update { done, total, unit });
        }
    }
}

/// Bytes between two reports of a streamed file: enough for a rate and an ETA, few enough
/// for events.ndjson.
pub const BYTES_EVERY: u64 = 8 << 20;

/// Counts a step's units and reports them every `every` units and once at the end, so that
/// a fast loop does not flood the reporters.
pub struct Meter<'a> {
    progress: &'a Progress,
    unit: Unit,
    total: Option<u64>,
    every: u64,
    done: u64,
    next: u64,
}

impl<'a> Meter<'a> {
    /// A meter of `unit`s, `total` of them when known, reporting every `every` units.
    pub fn new(progress: &'a Progress, unit: Unit, total: Option<u64>, every: u64) -> Self {
        let every = every.max(1);
        Meter {
            progress,
            unit,
            total,
            every,
            done: 0,
            next: every,
        }
    }

    /// Counts `n` more units, reporting when a multiple of `every` was passed.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        if self.done >= self.next {
            self.progress.report(self.done, self.total, self.unit);
            self.next = self.done + self.every;
        }
    }

    /// Units counted so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Reports the final count as the total (the step is complete: whatever was counted is
    /// all there is).
    pub fn finish(&self) {
        self.progress.report(self.done, Some(self.done), self.unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_reports_every_step_and_the_total_at_the_end() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let p = Progress::new(move |u| s.lock().unwrap().push((u.done, u.total)));
        let mut m = Meter::new(&p, Unit::Bytes, Some(25), 10);
        for _ in 0..5 {
            m.add(5);
        }
        m.finish();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(10, Some(25)), (20, Some(25)), (25, Some(25))]
        );
    }
    use std::sync::Mutex;

    #[test]
    fn reports_reach_the_sink_and_none_discards() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let p = Progress::new(move |u| s.lock().unwrap().push(u));
        p.clone().report(3, Some(10), Unit::Tables);
        Progress::none().report(1, None, Unit::Bytes);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Update {
                done: 3,
                total: Some(10),
                unit: Unit::Tables
            }]
        );
    }
}
