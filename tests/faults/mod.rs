//! The fault table of issue 19: each row a real fault injected into a real drill or backup,
//! and the verdict pgdrill must give (class, exit code, what is named, what is left behind).
//! The long rows run only with `PGDRILL_FAULTS=long` (the monthly workflow sets it).

mod disk_full;
mod hang;
mod lost_server;
mod repo;
mod signals;

/// Whether the long fault rows run (`PGDRILL_FAULTS=long`).
#[allow(dead_code)]
pub fn long() -> bool {
    std::env::var("PGDRILL_FAULTS").is_ok_and(|v| v == "long")
}
