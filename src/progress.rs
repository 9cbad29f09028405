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

#[cfg(test)]
mod tests {
    use super::*;
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
