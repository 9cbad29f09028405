//! The strategy's 10-item verification checklist, each item decided from evidence gathered
//! by the drill (never assumed).

use crate::report::{ChecklistItem, Status};

/// The ten items, worded as in the strategy's "Verification Checklist".
pub const ITEMS: [&str; 10] = [
    "Database connection successful",
    "All critical tables have data",
    "User data integrity verified",
    "Subscription data integrity verified",
    "Payment data integrity verified",
    "Application health checks pass",
    "Background workers running",
    "No errors in logs",
    "System state is HEALTHY",
    "Monitoring shows normal metrics",
];

/// The tables behind the three data-integrity items.
pub const CRITICAL_TABLES: [(&str, &str); 3] = [
    ("User data integrity verified", "public.users"),
    ("Subscription data integrity verified", "public.subscriptions"),
    ("Payment data integrity verified", "public.payments"),
];

/// Builds a checklist item.
pub fn item(name: &str, status: Status, evidence: impl Into<String>) -> ChecklistItem {
    ChecklistItem {
        item: name.to_string(),
        status,
        evidence: evidence.into(),
    }
}

/// Whether the checklist as a whole passes: no item failed. Skipped items carry their reason.
pub fn passes(items: &[ChecklistItem]) -> bool {
    items.iter().all(|i| i.status != Status::Fail)
}
