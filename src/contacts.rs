//! The strategy's emergency contacts: who to call when a restore fails (`--contact ROLE=REACH`,
//! `[contacts]` in a plan file). Every failure message of a drill ends with them, and a role
//! the strategy names that has no real contact is a warning in every report and the runbook:
//! at 3 a.m. a `[contact]` placeholder is nobody to call.

use serde::{Deserialize, Serialize};

/// The roles the strategy's "Emergency Contacts" section names, in its order.
pub const STRATEGY_ROLES: [&str; 3] = ["Database Admin", "DevOps Lead", "On-Call Engineer"];

/// What the strategy writes where a contact belongs until someone fills it in.
pub const PLACEHOLDER: &str = "[contact]";

/// One emergency contact: a role and how to reach whoever holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The role, e.g. `Database Admin`.
    pub role: String,
    /// Name and how to reach them, e.g. `Jane Doe <jane@example.com>, +1 555 0100`.
    pub reach: String,
}

impl Contact {
    /// Reads `ROLE=REACH` (`--contact`'s form); the role is what comes before the first `=`,
    /// so the reach may hold `=` itself.
    pub fn parse(s: &str) -> Result<Contact, String> {
        match s.split_once('=') {
            Some((role, reach)) if !role.trim().is_empty() && !reach.trim().is_empty() => {
                Ok(Contact {
                    role: role.trim().to_string(),
                    reach: reach.trim().to_string(),
                })
            }
            _ => Err(format!(
                "expected ROLE=NAME AND HOW TO REACH THEM, e.g. \"Database Admin=Jane Doe <jane@example.com>, +1 555 0100\"; got {s:?}"
            )),
        }
    }

    /// Whether it is still the strategy's placeholder (or says nothing), not someone to call.
    pub fn is_placeholder(&self) -> bool {
        let r = self.reach.trim();
        r.is_empty() || r.eq_ignore_ascii_case(PLACEHOLDER)
    }
}

/// `Database Admin: Jane Doe <jane@example.com>, +1 555 0100`.
impl std::fmt::Display for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.role, self.reach)
    }
}

/// What is wrong with the contacts a drill or the runbook was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactWarningKind {
    /// A contact is still the strategy's `[contact]` placeholder.
    ContactPlaceholder,
    /// A role the strategy names has no contact at all.
    ContactMissing,
}

/// A warning about the emergency contacts: it never fails a drill, and every report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactWarning {
    /// What is wrong.
    pub kind: ContactWarningKind,
    /// The role it is about.
    pub role: String,
    /// The warning in words, with the fix.
    pub message: String,
}

/// The flag that fixes a warning about `role`, for the messages.
fn fix(role: &str) -> String {
    format!(
        "give one with --contact \"{role}=NAME <EMAIL>, PHONE\" (or `\"{role}\" = \"…\"` under [contacts] in the plan file)"
    )
}

/// The warnings about `contacts`: each placeholder, then each strategy role without a
/// contact (roles compared without regard to case).
pub fn warnings(contacts: &[Contact]) -> Vec<ContactWarning> {
    let placeholders = contacts
        .iter()
        .filter(|c| c.is_placeholder())
        .map(|c| ContactWarning {
            kind: ContactWarningKind::ContactPlaceholder,
            role: c.role.clone(),
            message: format!(
                "emergency contact {} is still the strategy's placeholder {PLACEHOLDER}: nobody to call; {}",
                c.role,
                fix(&c.role)
            ),
        });
    let missing = STRATEGY_ROLES
        .iter()
        .filter(|role| !contacts.iter().any(|c| c.role.eq_ignore_ascii_case(role)))
        .map(|role| ContactWarning {
            kind: ContactWarningKind::ContactMissing,
            role: role.to_string(),
            message: format!(
                "no emergency contact for the strategy's role {role}; {}",
                fix(role)
            ),
        });
    placeholders.chain(missing).collect()
}

/// The line every failure message ends with: `Call: Database Admin: Jane Doe …; DevOps Lead: …`,
/// or what to give when there is nobody to call.
pub fn call_line(contacts: &[Contact]) -> String {
    let real: Vec<String> = contacts
        .iter()
        .filter(|c| !c.is_placeholder())
        .map(Contact::to_string)
        .collect();
    if real.is_empty() {
        format!(
            "Call: no emergency contact given (the strategy names {}); add them with --contact \"ROLE=NAME <EMAIL>, PHONE\" or [contacts] in the plan file",
            STRATEGY_ROLES.join(", ")
        )
    } else {
        format!("Call: {}", real.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Contact {
        Contact::parse(s).unwrap()
    }

    #[test]
    fn a_contact_reads_role_then_reach_and_the_reach_may_hold_equals() {
        let x = c("Database Admin = Jane Doe <jane@example.com>, +1 555 0100");
        assert_eq!(x.role, "Database Admin");
        assert_eq!(x.reach, "Jane Doe <jane@example.com>, +1 555 0100");
        assert_eq!(c("CTO=a=b").reach, "a=b");
        for bad in ["", "Database Admin", "=Jane", "DBA=  "] {
            assert!(Contact::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_and_missing_roles_are_warnings_and_the_call_line_names_the_real_ones() {
        let contacts = [
            c("database admin=Jane Doe <jane@example.com>"),
            c("DevOps Lead=[contact]"),
            c("CTO=Sam <sam@example.com>"),
        ];
        let w = warnings(&contacts);
        let kinds: Vec<_> = w.iter().map(|w| (w.kind, w.role.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (ContactWarningKind::ContactPlaceholder, "DevOps Lead"),
                (ContactWarningKind::ContactMissing, "On-Call Engineer"),
            ]
        );
        assert_eq!(
            call_line(&contacts),
            "Call: database admin: Jane Doe <jane@example.com>; CTO: Sam <sam@example.com>"
        );
        assert!(call_line(&[]).starts_with("Call: no emergency contact given"));
        assert_eq!(warnings(&[]).len(), 3);
    }
}
