//! After the restore: the restored ledger held against what the writer saw acknowledged and
//! the moment the backup's snapshot was taken.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    ledger_name, time_text, Acknowledged, IdRange, RpoError, RpoReport, RpoVerdict, LEDGER_SCHEMA,
    LEDGER_TABLE,
};
use crate::backup::SnapshotWindow;
use crate::pg::ident;

/// The schedule's worst case: a disaster just before a backup finishes loses everything since
/// the previous backup's snapshot, one interval plus that backup's own duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCase {
    /// The interval between backups (`--backup-every`).
    pub interval: Duration,
    /// The longest backup measured in the drill.
    pub backup_duration: Duration,
    /// How many backups the drill took.
    pub backups_taken: u32,
}

impl WorstCase {
    /// Interval plus backup duration.
    pub fn total(&self) -> Duration {
        self.interval + self.backup_duration
    }

    /// One line on this worst case against `objective`, with the interval that would meet it.
    pub fn note(&self, objective: Duration) -> String {
        worst_case_note(self, objective)
    }
}

/// What the assessment needs besides the restored ledger and the writer's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// When the restored backup's snapshot was taken (its manifest's `snapshot_taken`).
    pub snapshot: SnapshotWindow,
    /// The moment of the disaster.
    pub disaster_at: DateTime<Utc>,
    /// The recovery point objective (`--rpo`).
    pub objective: Duration,
    /// The schedule's worst case.
    pub worst_case: WorstCase,
}

/// Ledger ids, sorted; shown as ranges (`3, 7-9`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdList(pub Vec<u64>);

impl IdList {
    /// The ids.
    pub fn ids(&self) -> &[u64] {
        &self.0
    }
}

impl fmt::Display for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ten ranges say enough; the count says the rest.
        const SHOWN: usize = 10;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &id in &self.0 {
            match ranges.last_mut() {
                Some((_, last)) if id == *last + 1 => *last = id,
                _ => ranges.push((id, id)),
            }
        }
        let parts: Vec<String> = ranges
            .iter()
            .take(SHOWN)
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        write!(f, "{}", parts.join(", "))?;
        if ranges.len() > SHOWN {
            write!(f, ", … ({} ids in all)", self.0.len())?;
        }
        Ok(())
    }
}

/// One way the restored ledger contradicts the writer's record and the exported snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The ledger table is not in the restored database at all.
    LedgerMissing,
    /// Ids missing below the newest restored one: the ledger was committed as a prefix, so the
    /// restore lost rows.
    Gap {
        /// The missing ids.
        missing: IdList,
    },
    /// Restored ids the writer never sent.
    NeverSent {
        /// The ids.
        ids: IdList,
    },
    /// Commits acknowledged before the snapshot was taken, missing from the restore.
    AcknowledgedBeforeSnapshotMissing {
        /// The ids.
        ids: IdList,
    },
    /// Commits sent after the snapshot was taken, present in the restore.
    SentAfterSnapshotPresent {
        /// The ids.
        ids: IdList,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::LedgerMissing => write!(
                f,
                "{} is not in the restored database, although the writer committed into it before the backup",
                ledger_name()
            ),
            Finding::Gap { missing } => write!(
                f,
                "ids missing below the newest restored one (the ledger is committed in id order, so any snapshot holds 1..k with no gap): {missing}"
            ),
            Finding::NeverSent { ids } => {
                write!(f, "restored ids the writer never sent: {ids}")
            }
            Finding::AcknowledgedBeforeSnapshotMissing { ids } => write!(
                f,
                "commits acknowledged before the backup's snapshot was taken are missing from the restore: {ids}"
            ),
            Finding::SentAfterSnapshotPresent { ids } => write!(
                f,
                "commits sent after the backup's snapshot was taken are in the restore: {ids}"
            ),
        }
    }
}

/// Reads the restored ledger through `restored` (a session on the restored database) and
/// holds it against `acks` and the snapshot's window: the ids must be exactly `1..k`; every
/// commit acknowledged before the window must be there and none sent after it. Violations are
/// [`RpoError::Integrity`], naming the ids. Otherwise the lost commits (acknowledged, not
/// restored: exactly those acknowledged after the snapshot) and the data-loss window, from
/// the newest restored commit's acknowledgement to the disaster, against the objective.
pub async fn assess(
    restored: &tokio_postgres::Client,
    acks: &Acknowledged,
    inputs: &Inputs,
) -> Result<RpoReport, RpoError> {
    let q = |e: tokio_postgres::Error| RpoError::Query(crate::pg::error_text(&e));
    let table = format!("{}.{}", ident(LEDGER_SCHEMA), ident(LEDGER_TABLE));
    let exists: bool = restored
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(q)?
        .get(0);
    if !exists {
        return Err(RpoError::Integrity {
            findings: vec![Finding::LedgerMissing],
        });
    }
    let ids: Vec<i64> = restored
        .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    judge(&ids, acks, inputs)
}

/// The assessment proper, on the restored ids (ascending).
fn judge(ids: &[i64], acks: &Acknowledged, inputs: &Inputs) -> Result<RpoReport, RpoError> {
    let w = &inputs.snapshot;
    let last_sent = acks.last_sent_id();
    let mut present = vec![false; usize::try_from(last_sent).unwrap_or(0) + 1];
    let mut never_sent = Vec::new();
    for &id in ids {
        match u64::try_from(id) {
            Ok(i) if (1..=last_sent).contains(&i) => present[i as usize] = true,
            _ => never_sent.push(id.max(0) as u64),
        }
    }
    let newest = (1..=last_sent).rev().find(|&i| present[i as usize]);
    let k = newest.unwrap_or(0);
    let mut findings = Vec::new();
    let gap: Vec<u64> = (1..=k).filter(|&i| !present[i as usize]).collect();
    if !gap.is_empty() {
        findings.push(Finding::Gap {
            missing: IdList(gap),
        });
    }
    if !never_sent.is_empty() {
        findings.push(Finding::NeverSent {
            ids: IdList(never_sent),
        });
    }
    let before_missing: Vec<u64> = acks
        .commits
        .iter()
        .filter(|c| c.id > k && c.acked_at < w.sent_at)
        .map(|c| c.id)
        .collect();
    if !before_missing.is_empty() {
        findings.push(Finding::AcknowledgedBeforeSnapshotMissing {
            ids: IdList(before_missing),
        });
    }
    // Every id sent, acknowledged or not, with when it was sent and (if known) acknowledged.
    let sent = acks
        .commits
        .iter()
        .map(|c| (c.id, c.sent_at, Some(c.acked_at)))
        .chain(acks.unacknowledged.iter().map(|u| (u.id, u.sent_at, None)));
    let mut after_present = Vec::new();
    let mut in_flight = 0u64;
    for (id, sent_at, acked_at) in sent {
        if sent_at > w.returned_at {
            if present[id as usize] {
                after_present.push(id);
            }
        } else if acked_at.is_none_or(|a| a >= w.sent_at) {
            in_flight += 1;
        }
    }
    if !after_present.is_empty() {
        findings.push(Finding::SentAfterSnapshotPresent {
            ids: IdList(after_present),
        });
    }
    if !findings.is_empty() {
        return Err(RpoError::Integrity { findings });
    }

    let lost: Vec<u64> = acks
        .commits
        .iter()
        .filter(|c| !present[c.id as usize])
        .map(|c| c.id)
        .collect();
    // The newest restored commit's acknowledgement; one restored but never acknowledged (in
    // flight when the writer stopped) counts from when it was sent, which can only lengthen
    // the window; with nothing restored, the window starts at the snapshot.
    let newest_at = newest.map(|id| match acks.get(id) {
        Some(c) => c.acked_at,
        None => acks
            .unacknowledged
            .as_ref()
            .map(|u| u.sent_at)
            .unwrap_or(w.sent_at),
    });
    let achieved_ms = ms_between(newest_at.unwrap_or(w.sent_at), inputs.disaster_at);
    let objective_ms = millis(inputs.objective);
    let worst_case_ms = millis(inputs.worst_case.total());
    Ok(RpoReport {
        objective_ms,
        achieved_ms,
        lost_commits: lost.len() as u64,
        lost_ids: match (lost.first(), lost.last()) {
            (Some(&first), Some(&last)) => Some(IdRange { first, last }),
            _ => None,
        },
        worst_case_ms,
        worst_case_fits: worst_case_ms <= objective_ms,
        verdict: if achieved_ms <= objective_ms {
            RpoVerdict::Pass
        } else {
            RpoVerdict::Fail
        },
        acknowledged_commits: acks.commits.len() as u64,
        restored_commits: k,
        in_flight_at_snapshot: in_flight,
        failed_commits: acks.failed_commits(),
        newest_restored_at: newest_at.map(time_text),
        disaster_at: time_text(inputs.disaster_at),
        snapshot_taken: [time_text(w.sent_at), time_text(w.returned_at)],
        backup_interval_ms: millis(inputs.worst_case.interval),
        backup_duration_ms: millis(inputs.worst_case.backup_duration),
        backups_taken: inputs.worst_case.backups_taken,
        rate_per_sec: acks.rate_per_sec,
        ledger: ledger_name(),
        note: inputs.worst_case.note(inputs.objective),
        archive_timeout_ms: None,
    })
}

/// One line on the schedule's worst case against the objective, with the interval that would
/// meet it.
fn worst_case_note(wc: &WorstCase, objective: Duration) -> String {
    let total = wc.total();
    let head = format!(
        "worst case on this schedule: {} interval + {} backup = {}",
        human(wc.interval),
        human(wc.backup_duration),
        human(total)
    );
    if total <= objective {
        format!("{head}, within the {} objective", human(objective))
    } else if wc.backup_duration < objective {
        format!(
            "{head}, longer than the {} objective: even with every backup succeeding the schedule cannot guarantee it; back up at least every {} (or state an RPO of {})",
            human(objective),
            human(objective - wc.backup_duration),
            human(total)
        )
    } else {
        format!(
            "{head}, longer than the {} objective: a backup alone takes longer than the objective, so no pg_dump schedule can meet it (WAL archiving can)",
            human(objective)
        )
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

/// A duration as people say it (`15m 1s`), the one style of every rendering.
fn human(d: Duration) -> String {
    crate::duration::human(Duration::from_millis(millis(d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpo::{Commit, InFlight, StopCause};

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    /// `n` commits, id i sent at 20·i ms and acknowledged 5 ms later.
    fn acks(n: u64, unacked: Option<InFlight>) -> Acknowledged {
        Acknowledged {
            rate_per_sec: 50,
            started_at: t(0),
            stopped_at: t(20 * n as i64 + 100),
            commits: (1..=n)
                .map(|id| Commit {
                    id,
                    sent_at: t(20 * id as i64),
                    acked_at: t(20 * id as i64 + 5),
                })
                .collect(),
            unacknowledged: unacked,
            stop: StopCause::Requested,
        }
    }

    fn inputs(snap_ms: i64, disaster_ms: i64) -> Inputs {
        Inputs {
            snapshot: SnapshotWindow {
                sent_at: t(snap_ms),
                returned_at: t(snap_ms + 2),
            },
            disaster_at: t(disaster_ms),
            objective: Duration::from_secs(900),
            worst_case: WorstCase {
                interval: Duration::from_secs(900),
                backup_duration: Duration::from_millis(1200),
                backups_taken: 1,
            },
        }
    }

    fn findings(r: Result<RpoReport, RpoError>) -> Vec<Finding> {
        match r {
            Err(RpoError::Integrity { findings }) => findings,
            other => panic!("expected findings, got {other:?}"),
        }
    }

    #[test]
    fn a_prefix_restore_gives_the_lost_commits_and_the_window() {
        // Snapshot at 1003 ms: id 50 (sent 1000, acked 1005) was in flight.
        let a = acks(100, None);
        let restored: Vec<i64> = (1..=50).collect();
        let r = judge(&restored, &a, &inputs(1003, 2500)).unwrap();
        assert_eq!(r.lost_commits, 50);
        assert_eq!(
            r.lost_ids,
            Some(IdRange {
                first: 51,
                last: 100
            })
        );
        assert_eq!(r.restored_commits, 50);
        assert_eq!(r.achieved_ms, 2500 - 1005);
        assert_eq!(r.in_flight_at_snapshot, 1);
        assert_eq!(r.verdict, RpoVerdict::Pass);
        assert_eq!((r.worst_case_ms, r.worst_case_fits), (901_200, false));
        assert!(
            r.note.contains("back up at least every 14m 58s"),
            "{}",
            r.note
        );
        // The one in flight may also have missed the snapshot.
        let r = judge(&restored[..49], &a, &inputs(1003, 2500)).unwrap();
        assert_eq!(
            r.lost_ids,
            Some(IdRange {
                first: 50,
                last: 100
            })
        );
    }

    #[test]
    fn a_window_longer_than_the_objective_fails() {
        let mut i = inputs(1003, 2500);
        i.objective = Duration::from_secs(1);
        let r = judge(&(1..=50).collect::<Vec<_>>(), &acks(100, None), &i).unwrap();
        assert_eq!(r.verdict, RpoVerdict::Fail);
        assert!(r.note.contains("a backup alone takes longer"), "{}", r.note);
    }

    #[test]
    fn gaps_strangers_and_the_wrong_side_of_the_snapshot_are_findings() {
        let a = acks(100, None);
        let mut gap: Vec<i64> = (1..=50).collect();
        gap.retain(|&i| i != 7 && i != 8 && i != 20);
        assert_eq!(
            findings(judge(&gap, &a, &inputs(1003, 2500))),
            vec![Finding::Gap {
                missing: IdList(vec![7, 8, 20])
            }]
        );
        let f = findings(judge(
            &(1..=40).collect::<Vec<_>>(),
            &a,
            &inputs(1003, 2500),
        ));
        assert_eq!(
            f,
            vec![Finding::AcknowledgedBeforeSnapshotMissing {
                ids: IdList((41..=49).collect())
            }]
        );
        assert_eq!(f[0].to_string().rsplit(": ").next(), Some("41-49"));
        let f = findings(judge(
            &(1..=60).collect::<Vec<_>>(),
            &a,
            &inputs(1003, 2500),
        ));
        assert_eq!(
            f,
            vec![Finding::SentAfterSnapshotPresent {
                ids: IdList((51..=60).collect())
            }]
        );
        let f = findings(judge(&[1, 2, 500], &acks(2, None), &inputs(1003, 2500)));
        assert_eq!(
            f,
            vec![Finding::NeverSent {
                ids: IdList(vec![500])
            }]
        );
    }

    #[test]
    fn a_restored_commit_never_acknowledged_counts_from_when_it_was_sent() {
        let a = acks(
            10,
            Some(InFlight {
                id: 11,
                sent_at: t(220),
                error: None,
            }),
        );
        let r = judge(&(1..=11).collect::<Vec<_>>(), &a, &inputs(230, 1000)).unwrap();
        assert_eq!((r.lost_commits, r.achieved_ms), (0, 1000 - 220));
        assert_eq!(r.in_flight_at_snapshot, 1);
    }

    #[test]
    fn id_lists_show_ranges() {
        assert_eq!(IdList(vec![1, 2, 3, 5, 9, 10]).to_string(), "1-3, 5, 9-10");
        let many = IdList((0..30).map(|i| i * 2).collect());
        assert!(many.to_string().ends_with(", … (30 ids in all)"), "{many}");
    }
}
