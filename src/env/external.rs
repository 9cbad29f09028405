//! The external target: a server the user names (`pgdrill restore --target-dsn`). pgdrill
//! did not create it and never destroys it; the restore's phases work on it as on a
//! disposable target, into a database of their own until the swap.

use crate::pg::{Endpoint, PgTools};

/// A server the user named, reached with this machine's client programs.
pub struct ExternalTarget {
    /// Its maintenance database (`postgres`), as the named role.
    pub endpoint: Endpoint,
    /// This machine's PostgreSQL client programs.
    pub tools: PgTools,
}

impl ExternalTarget {
    /// How the report names it (the password as `***`).
    pub fn describe(&self) -> String {
        format!(
            "the server named by --target-dsn, {}:{} as {} (external: never provisioned nor destroyed by pgdrill)",
            self.endpoint.host, self.endpoint.port, self.endpoint.user
        )
    }
}
