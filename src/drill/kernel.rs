//! The step kernel: runs one phase timed, cancellable and recorded, and tells the reporters.
//! A module's error becomes a failure class in `classify`, not here.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::events::{Event, Reporter};
use super::scenario::PhaseId;
use crate::error::EnvError;
use crate::progress::Progress;
use crate::report::{FailedAt, Failure, FailureClass, Phase, Status};

/// Tells a running drill that it must stop, and why (the signal's name).
#[derive(Clone, Default, Debug)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<OnceLock<&'static str>>,
}

impl Cancel {
    /// A cancellation nobody has asked for yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the drill to stop because of `why` (e.g. `SIGINT`); the first reason wins.
    pub fn cancel(&self, why: &'static str) {
        let _ = self.reason.set(why);
        self.token.cancel();
    }

    /// The token, for child tokens of parts that stop with the drill.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether a stop was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    fn reason(&self) -> &'static str {
        self.reason.get().copied().unwrap_or("a signal")
    }
}

/// A step's failure: its class and a message for people. Made by the `From` impls and named
/// constructors in `classify`, the one place a class is chosen.
#[derive(Debug)]
pub struct StepFail {
    /// The kind of failure.
    pub class: FailureClass,
    /// What went wrong and, where possible, what to do.
    pub message: String,
}

impl StepFail {
    /// A failure of `class`.
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        StepFail {
            class,
            message: message.into(),
        }
    }
}

/// A phase's value and its detail line, or its failure.
pub type StepResult<T> = Result<(T, String), StepFail>;

/// Why a phase did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The plan has no application.
    NoApp,
    /// The application runs only against servers the drill owns.
    AppNotOnSource,
    /// No globals file beside the backup.
    NoGlobals,
    /// The application did not start after the restore.
    AppDidNotStart,
    /// An earlier phase failed.
    AfterFailure(FailedAt),
    /// The drill stopped before it.
    NotRun,
    /// A real restore replaced no database, so there is none to drop.
    NothingToDrop,
    /// A real restore's application has no `--app-health-url` to ask.
    NoHealthUrl,
    /// A physical restore (point-in-time recovery) has no pg_dump manifest, so no S0.
    NoManifest,
}

impl SkipReason {
    /// Whether the phase was meant to run but did not (its budget cannot be judged).
    pub fn not_run(&self) -> bool {
        matches!(
            self,
            SkipReason::AppDidNotStart | SkipReason::AfterFailure(_) | SkipReason::NotRun
        )
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NoApp => f.write_str("no application under drill"),
            SkipReason::AppNotOnSource => f.write_str("the application was not running before the restore (it runs only against servers the drill owns)"),
            SkipReason::NoGlobals => f.write_str("no globals file beside the backup: roles are not restored, objects owned by missing roles will fail the restore"),
            SkipReason::AppDidNotStart => f.write_str("not run: the application did not start"),
            SkipReason::AfterFailure(p) => write!(f, "not run: phase {p} failed"),
            SkipReason::NotRun => f.write_str("not run"),
            SkipReason::NoHealthUrl => {
                f.write_str("no --app-health-url: the application's health was not asked")
            }
            SkipReason::NoManifest => f.write_str("a physical backup (pgBackRest) has no pg_dump manifest, so there is no snapshot S0 to compare with: the exact comparison of rows and fingerprints does not apply; the snapshot of the restored database, amcheck and the recovery target check ran"),
            SkipReason::NothingToDrop => {
                f.write_str("there was no live database before the restore: nothing to drop")
            }
        }
    }
}

/// The reporters, shared with the progress handles long steps report to.
pub type Reporters = Arc<Mutex<Vec<Box<dyn Reporter>>>>;

/// Sends `e` to every reporter.
pub fn emit(reporters: &Reporters, e: Event) {
    let at = chrono::Utc::now();
    if let Ok(mut rs) = reporters.lock() {
        for r in rs.iter_mut() {
            r.event(at, &e);
        }
    }
}

/// A phase under way: what [`Recorder::end`] needs of its start.
struct Begun {
    id: PhaseId,
    started: Duration,
    marks: Vec<crate::env::LogMark>,
}

/// Records phases as they run.
pub struct Recorder {
    pub(super) t0: Instant,
    pub(super) phases: Vec<Phase>,
    pub(super) skipped: Vec<(PhaseId, SkipReason)>,
    pub(super) failure: Option<Failure>,
    pub(super) cancel: Cancel,
    pub(super) reporters: Reporters,
    /// The servers the drill owns during the current step, asked about when it fails.
    watched: Vec<crate::env::Watch>,
}

impl Recorder {
    /// A recorder starting its clock now.
    pub fn new(cancel: Cancel, reporters: Vec<Box<dyn Reporter>>) -> Self {
        Recorder {
            t0: Instant::now(),
            phases: Vec::new(),
            skipped: Vec::new(),
            failure: None,
            cancel,
            reporters: Arc::new(Mutex::new(reporters)),
            watched: Vec::new(),
        }
    }

    /// The servers the drill owns while the next steps run: when a step fails, a server of
    /// them that stopped or crashed is the failure, whatever the step said.
    pub fn watch(&mut self, servers: Vec<crate::env::Watch>) {
        self.watched = servers;
    }

    /// `f`, or the loss of a watched server when one stopped or crashed since `marks`.
    async fn blame_lost_server(
        &self,
        id: PhaseId,
        f: StepFail,
        marks: &[crate::env::LogMark],
    ) -> StepFail {
        for (w, mark) in self.watched.iter().zip(marks) {
            if let Some(e) = w.lost(id.name(), mark, &f.message).await {
                tracing::info!(phase = id.name(), server = %w.describe(), "a server the drill owns was lost");
                return e.into();
            }
        }
        f
    }

    /// Sends an event to the reporters.
    pub fn emit(&self, e: Event) {
        emit(&self.reporters, e);
    }

    /// Prints a line for a person on the console.
    pub fn println(&self, line: &str) {
        if let Ok(mut rs) = self.reporters.lock() {
            for r in rs.iter_mut() {
                r.println(line);
            }
        }
    }

    /// A progress handle whose reports become `Progress` events of phase `id`.
    pub fn progress(&self, id: PhaseId) -> Progress {
        let reporters = self.reporters.clone();
        Progress::new(move |update| emit(&reporters, Event::Progress { phase: id, update }))
    }

    /// Runs one phase: timed, cancellable, recorded. `None` when it failed.
    pub async fn step<T, F>(&mut self, id: PhaseId, fut: F) -> Option<T>
    where
        F: Future<Output = StepResult<T>>,
    {
        self.run_step(id, fut, false).await
    }

    /// Runs one phase that a signal must not cut in half (the swap of a real restore): it
    /// gets the drill's token and stops itself where the state it leaves is whole; what it
    /// did is recorded as it ended, and the next phase sees the signal.
    pub async fn step_shielded<T, F>(&mut self, id: PhaseId, fut: F) -> Option<T>
    where
        F: Future<Output = StepResult<T>>,
    {
        self.run_step(id, fut, true).await
    }

    /// Runs two phases at once, each timed, cancellable and recorded as [`Recorder::step`]
    /// does, `a` recorded first: for work that needs nothing of the other (the backup's
    /// precheck while a lost server is replaced). The budgets count the time they overlap once.
    pub async fn step_pair<A, B, FA, FB>(
        &mut self,
        (a, fa): (PhaseId, FA),
        (b, fb): (PhaseId, FB),
    ) -> (Option<A>, Option<B>)
    where
        FA: Future<Output = StepResult<A>>,
        FB: Future<Output = StepResult<B>>,
    {
        let begun_a = self.begin(a);
        let begun_b = self.begin(b);
        let (ra, rb) = {
            let this = &*self;
            tokio::join!(this.guard(a, fa, false), this.guard(b, fb, false))
        };
        let va = self.end(begun_a, ra).await;
        let vb = self.end(begun_b, rb).await;
        (va, vb)
    }

    async fn run_step<T, F>(&mut self, id: PhaseId, fut: F, shielded: bool) -> Option<T>
    where
        F: Future<Output = StepResult<T>>,
    {
        let begun = self.begin(id);
        let result = self.guard(id, fut, shielded).await;
        self.end(begun, result).await
    }

    /// A phase starts: told to the reporters, its start time and the servers' log marks kept.
    fn begin(&self, id: PhaseId) -> Begun {
        tracing::info!(phase = id.name(), "phase started");
        self.emit(Event::PhaseStarted { phase: id });
        Begun {
            id,
            started: self.t0.elapsed(),
            marks: self.watched.iter().map(|w| w.log_mark()).collect(),
        }
    }

    /// A phase's work, stopped by a signal unless `shielded`; its result and when it ended.
    async fn guard<T, F>(&self, id: PhaseId, fut: F, shielded: bool) -> (StepResult<T>, Duration)
    where
        F: Future<Output = StepResult<T>>,
    {
        let token = self.cancel.token().clone();
        let interrupted = || Err(EnvError::Interrupted(self.cancel.reason()).into());
        let fut =
            tracing::Instrument::instrument(fut, tracing::info_span!("phase", phase = id.name()));
        let result = if shielded {
            fut.await
        } else {
            let result = tokio::select! {
                biased;
                _ = token.cancelled() => interrupted(),
                r = fut => r,
            };
            // A phase that never awaits (the checklist) finishes before select! can see a
            // signal that arrived while it ran; the signal still stops the drill in that
            // phase, so a SIGTERM is never answered with a pass.
            match result {
                Ok(_) if token.is_cancelled() => interrupted(),
                r => r,
            }
        };
        (result, self.t0.elapsed())
    }

    /// A phase ends: a failure blamed on a lost server if one was, recorded, told.
    async fn end<T>(
        &mut self,
        begun: Begun,
        (result, ended): (StepResult<T>, Duration),
    ) -> Option<T> {
        let Begun { id, started, marks } = begun;
        let name = id.name();
        // A step's error is asked about only when no signal stopped the drill: a lost server
        // then speaks for it, in every phase alike.
        let result = match result {
            Err(f) if !self.cancel.is_cancelled() => {
                Err(self.blame_lost_server(id, f, &marks).await)
            }
            r => r,
        };
        let duration = ended.saturating_sub(started);
        let (status, detail, value) = match result {
            Ok((v, detail)) => (Status::Pass, detail, Some(v)),
            Err(f) => {
                let detail = f.message.clone();
                if self.failure.is_none() {
                    self.failure = Some(Failure {
                        phase: id.into(),
                        class: f.class,
                        message: f.message,
                    });
                }
                (Status::Fail, detail, None)
            }
        };
        let duration_ms = duration.as_millis() as u64;
        tracing::info!(phase = name, ?status, duration_ms, "phase finished");
        self.emit(Event::PhaseFinished {
            phase: id,
            status,
            duration_ms,
            detail: detail.clone(),
        });
        self.phases.push(Phase {
            name: id,
            budget: id.budget(),
            status,
            started_ms: started.as_millis() as u64,
            duration_ms,
            detail,
        });
        value
    }

    /// Records a phase that did not run, with the reason.
    pub fn skip(&mut self, id: PhaseId, why: SkipReason) {
        tracing::info!(phase = id.name(), reason = %why, "phase skipped");
        self.emit(Event::PhaseSkipped {
            phase: id,
            reason: why.to_string(),
        });
        self.phases.push(Phase {
            name: id,
            budget: id.budget(),
            status: Status::Skipped,
            started_ms: self.t0.elapsed().as_millis() as u64,
            duration_ms: 0,
            detail: why.to_string(),
        });
        self.skipped.push((id, why));
    }

    /// The drill's cancellation token, for parts that stop with it (a child token each).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.token().clone()
    }

    /// Whether a stop was asked for.
    pub fn interrupted(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether phase `p` was meant to run but did not.
    pub fn not_run(&self, p: &Phase) -> bool {
        self.skipped
            .iter()
            .any(|(id, why)| *id == p.name && why.not_run())
    }

    /// Tells the reporters the drill is over.
    pub fn finish(&self) {
        if let Ok(mut rs) = self.reporters.lock() {
            for r in rs.iter_mut() {
                r.finish();
            }
        }
    }
}
