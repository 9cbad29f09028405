//! pgdrill turns a PostgreSQL team's backup and restore strategy into disaster-recovery
//! drills that run end to end, are timed against the recovery objectives, and leave
//! evidence an auditor can file.
//!
//! The binary is thin: [`cmd::main`] parses the command line, runs a [`drill`], writes the
//! [`report`], and maps the outcome to the stable exit codes of [`error::Exit`].
//!
//! # A drill in your own `cargo test`
//!
//! [`Drill::builder`] takes the flags of `pgdrill drill` as methods (they fill the same
//! [`DrillOptions`] as the command line), validates them as the command line does, runs the
//! drill against disposable servers, and writes report.json, report.md, junit.xml and
//! events.ndjson into `out` (the PostgreSQL 15 programs must be installed, as for the
//! `pgdrill` binary):
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), pgdrill::Error> {
//! let out = tempfile::tempdir().unwrap();
//! let report = pgdrill::Drill::builder()
//!     .backend(pgdrill::BackendKind::Native)
//!     .rows(300)
//!     .seed(7)
//!     .app(pgdrill::AppChoice::None)
//!     .out(out.path())
//!     .run()
//!     .await?;
//! assert!(report.passed(), "{}", report.summary());
//! assert!(out.path().join("report.json").is_file());
//! # Ok(())
//! # }
//! ```

pub mod app;
pub mod backup;
pub mod checklist;
pub mod cmd;
pub mod code;
pub mod config;
pub mod contacts;
pub mod digest;
pub mod drill;
pub mod duration;
pub mod engine;
pub mod env;
pub mod env_error;
pub mod error;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod live;
pub mod notify;
pub mod options;
pub mod pg;
pub mod pitr;
pub mod plan;
pub mod preflight;
pub mod program;
pub mod progress;
pub mod regime;
pub mod repo;
pub mod report;
pub mod restore;
pub mod rpo;
pub mod runbook;
pub mod scope;
pub mod seed;
pub mod snapshot;

pub use drill::builder::{Drill, DrillBuilder};
pub use env::BackendKind;
pub use error::Error;
pub use options::{AppChoice, DrillOptions};
pub use plan::Disaster;
pub use report::Report;
pub use scope::Scope;
