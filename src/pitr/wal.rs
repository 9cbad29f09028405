//! The WAL archive of a stanza or a Barman server as a list of segments: segment names and
//! numbers, the segment size (inferred from a backup), the repository's listing (`pgbackrest
//! repo-ls --output=json --recurse`, or the files of Barman's `wals` directory) read into
//! [`WalArchive`], its timelines' history files ([`Timelines`]), the WAL a recovery from a
//! backup replays across them ([`WalPath`], as PostgreSQL's `recovery_target_timeline =
//! 'latest'` follows it) and the gaps on it. Pure: nothing here runs a program or reads a
//! file.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Lsn;

/// PostgreSQL's default WAL segment size (`--wal-segsize` of initdb), 16 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// One WAL segment: its timeline and its number (the LSN of its start divided by the
/// segment size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment {
    /// The timeline.
    pub timeline: u32,
    /// The segment number on that timeline's WAL.
    pub number: u64,
}

/// Segments per 4 GiB of WAL ("log id" in the file name) for a segment size.
fn per_log_id(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size.max(1)
}

impl Segment {
    /// Reads a segment's 24-hex-digit name (`000000010000000000000003`); `None` for anything
    /// else, or a segment part beyond what `segment_size` allows.
    pub fn parse(name: &str, segment_size: u64) -> Option<Segment> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let timeline = u32::from_str_radix(&name[0..8], 16).ok()?;
        let log = u64::from_str_radix(&name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
        let per = per_log_id(segment_size);
        (seg < per).then(|| Segment {
            timeline,
            number: log * per + seg,
        })
    }

    /// The segment holding `lsn` on `timeline`.
    pub fn of_lsn(lsn: Lsn, timeline: u32, segment_size: u64) -> Segment {
        Segment {
            timeline,
            number: lsn.0 / segment_size.max(1),
        }
    }

    /// Its file name, as PostgreSQL and the archive write it.
    pub fn name(&self, segment_size: u64) -> String {
        let per = per_log_id(segment_size);
        format!(
            "{:08X}{:08X}{:08X}",
            self.timeline,
            self.number / per,
            self.number % per
        )
    }
}

/// The segment size that makes `wal_start` the segment holding `lsn_start` (a backup's
/// start, from `pgbackrest info`), among PostgreSQL's allowed sizes (1 MiB to 1 GiB);
/// `None` when none or more than one does (a backup at the very start of the WAL).
pub fn infer_segment_size(lsn_start: Lsn, wal_start: &str) -> Option<u64> {
    let fits: Vec<u64> = (20..=30)
        .map(|shift| 1u64 << shift)
        .filter(|&size| {
            Segment::parse(wal_start, size)
                .is_some_and(|s| s.number == Segment::of_lsn(lsn_start, s.timeline, size).number)
        })
        .collect();
    match fits.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// One segment file in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedSegment {
    /// The segment's name (`000000010000000000000003`).
    pub name: String,
    /// Its file, relative to the archive's directory in the repository
    /// (`0000000100000000/000000010000000000000003-<sha1>.gz`).
    pub file: String,
    /// Its size in the repository (compressed), in bytes.
    pub size_bytes: u64,
    /// When the repository received it (the file's time): when it was archived.
    pub archived_at: DateTime<Utc>,
}

/// The WAL of one archive (`archive/<stanza>/<archive id>/` in the repository).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalArchive {
    /// The archive's id (`15-1`: PostgreSQL's major version and the database's number).
    pub archive_id: String,
    /// The WAL segment size in bytes.
    pub segment_size: u64,
    /// Its segments, ordered by timeline and number; `.partial`, `.backup` and `.history`
    /// files are not segments of a continuous range and are left out.
    pub segments: Vec<ArchivedSegment>,
    /// Its timelines' history files: listed with the segments, read by the tool.
    pub history: Timelines,
}

/// A range of missing segments between two archived ones on one timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalGap {
    /// The timeline.
    pub timeline: u32,
    /// The first missing segment: the one recovery stops at.
    pub first_missing: String,
    /// The last missing segment.
    pub last_missing: String,
    /// How many segments are missing.
    pub missing: u64,
    /// The archived segment before the gap.
    pub after: String,
    /// The archived segment after it.
    pub before: String,
}

/// One timeline's archived segments, first to last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRange {
    /// The timeline.
    pub timeline: u32,
    /// Its first archived segment.
    pub first: String,
    /// Its last archived segment.
    pub last: String,
    /// Segments archived on it.
    pub segments: usize,
}

/// `pgbackrest repo-ls --output=json`'s entries.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    time: i64,
}

impl WalArchive {
    /// Reads `pgbackrest repo-ls --output=json --recurse archive/<stanza>/<archive id>` (paths
    /// relative to the archive's directory): every file named `<segment>-<sha1>[.<compression>]`.
    pub fn from_listing(
        archive_id: &str,
        segment_size: u64,
        json: &str,
    ) -> Result<WalArchive, String> {
        let entries: BTreeMap<String, Entry> = serde_json::from_str(json)
            .map_err(|e| format!("cannot read `pgbackrest repo-ls --output=json`: {e}"))?;
        let mut files = Vec::new();
        for (path, e) in entries {
            if e.kind != "file" {
                continue;
            }
            let archived_at = DateTime::from_timestamp(e.time, 0)
                .ok_or_else(|| format!("{path}: file time {} is out of range", e.time))?;
            files.push((path, e.size, archived_at));
        }
        Ok(WalArchive::from_files(archive_id, segment_size, files))
    }

    /// The archive of `files` (each its path relative to the archive's directory, its size and
    /// when it was archived): the files whose name is a segment's, alone (Barman's
    /// `<timeline+log>/<segment>`) or followed by `-` (pgBackRest's `<segment>-<sha1>.gz`).
    /// `.partial`, `.backup` and `.history` files, and anything else, are left out.
    pub fn from_files(
        archive_id: &str,
        segment_size: u64,
        files: impl IntoIterator<Item = (String, u64, DateTime<Utc>)>,
    ) -> WalArchive {
        let mut segments = Vec::new();
        let mut history = Timelines::default();
        for (path, size_bytes, archived_at) in files {
            let base = path.rsplit('/').next().unwrap_or(&path);
            if let Some(timeline) = history_timeline(base) {
                history.files.insert(timeline, path.clone());
                continue;
            }
            let Some((name, rest)) = base.split_at_checked(24) else {
                continue;
            };
            if !(rest.is_empty() || rest.starts_with('-'))
                || Segment::parse(name, segment_size).is_none()
            {
                continue;
            }
            segments.push(ArchivedSegment {
                name: name.to_string(),
                file: path.clone(),
                size_bytes,
                archived_at,
            });
        }
        segments.sort_by(|a, b| a.name.cmp(&b.name));
        // Two files of one segment (pushed twice with different contents) count once.
        segments.dedup_by(|a, b| a.name == b.name);
        WalArchive {
            archive_id: archive_id.to_string(),
            segment_size,
            segments,
            history,
        }
    }

    fn segment(&self, s: &ArchivedSegment) -> Segment {
        // Every name in `segments` parsed when it was read.
        Segment::parse(&s.name, self.segment_size).unwrap_or(Segment {
            timeline: 0,
            number: 0,
        })
    }

    /// The most recently archived segment.
    pub fn newest(&self) -> Option<&ArchivedSegment> {
        self.segments
            .iter()
            .max_by(|a, b| (a.archived_at, &a.name).cmp(&(b.archived_at, &b.name)))
    }

    /// The last segment of `timeline`.
    pub fn last_on(&self, timeline: u32) -> Option<&ArchivedSegment> {
        self.segments
            .iter()
            .rev()
            .find(|s| self.segment(s).timeline == timeline)
    }

    /// Each timeline's archived range.
    pub fn timelines(&self) -> Vec<TimelineRange> {
        let mut out: Vec<TimelineRange> = Vec::new();
        for s in &self.segments {
            let tl = self.segment(s).timeline;
            match out.last_mut() {
                Some(r) if r.timeline == tl => {
                    r.last = s.name.clone();
                    r.segments += 1;
                }
                _ => out.push(TimelineRange {
                    timeline: tl,
                    first: s.name.clone(),
                    last: s.name.clone(),
                    segments: 1,
                }),
            }
        }
        out
    }

    /// The gaps on `from`'s timeline between `from` and `to` (inclusive; `None`: the
    /// timeline's last archived segment). A segment before the first archived one at or
    /// after `from` is missing too: a backup whose first segment is gone cannot be restored.
    pub fn gaps(&self, from: &str, to: Option<&str>) -> Vec<WalGap> {
        let size = self.segment_size;
        let Some(start) = Segment::parse(from, size) else {
            return Vec::new();
        };
        let end = match to {
            Some(t) => Segment::parse(t, size),
            None => self
                .last_on(start.timeline)
                .map(|s| self.segment(s))
                .filter(|s| s.number >= start.number),
        };
        let Some(end) = end else {
            // Nothing archived at or after `from` on its timeline: `from` itself is missing.
            return vec![WalGap {
                timeline: start.timeline,
                first_missing: from.to_string(),
                last_missing: from.to_string(),
                missing: 1,
                after: String::new(),
                before: String::new(),
            }];
        };
        let present: Vec<u64> = self
            .segments
            .iter()
            .map(|s| self.segment(s))
            .filter(|s| {
                s.timeline == start.timeline && (start.number..=end.number).contains(&s.number)
            })
            .map(|s| s.number)
            .collect();
        let name = |n: u64| {
            Segment {
                timeline: start.timeline,
                number: n,
            }
            .name(size)
        };
        let mut gaps = Vec::new();
        // The expected next segment, and the last one seen before it.
        let mut next = start.number;
        let mut prev: Option<u64> = None;
        for n in present.into_iter().chain(std::iter::once(end.number + 1)) {
            if n > next {
                let last = n.min(end.number + 1) - 1;
                gaps.push(WalGap {
                    timeline: start.timeline,
                    first_missing: name(next),
                    last_missing: name(last),
                    missing: last - next + 1,
                    after: prev.map(name).unwrap_or_default(),
                    before: if n <= end.number {
                        name(n)
                    } else {
                        String::new()
                    },
                });
            }
            prev = Some(n);
            next = n + 1;
        }
        gaps
    }
}

/// The timeline of a history file's name (`00000002.history`), if it is one.
pub fn history_timeline(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".history")?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The history file's name of `timeline`, as PostgreSQL writes it.
pub fn history_name(timeline: u32) -> String {
    format!("{timeline:08X}.history")
}

/// One line of a timeline history file: timeline `parent` ended at `switch`, where the next
/// timeline of the file began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineSwitch {
    /// The timeline that ended.
    pub parent: u32,
    /// Where it ended: the first WAL location of the next timeline.
    pub switch: Lsn,
    /// PostgreSQL's words on why (`no recovery target specified`, `before 2026-… `).
    pub reason: String,
}

/// A timeline's history file (`0000000N.history`), as PostgreSQL writes it when a promotion
/// begins timeline N: every ancestor of N, oldest first, each with where it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineHistory {
    /// The timeline whose history it is.
    pub timeline: u32,
    /// Its ancestors, oldest first; the last one is its parent.
    pub ancestors: Vec<TimelineSwitch>,
}

/// Why a history file cannot be read as PostgreSQL reads it (`readTimeLineHistory`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line that is not `<parent timeline> <switch LSN> [reason]`.
    #[error("line {line} ({text:?}) is not `<parent timeline><TAB><switch LSN X/Y><TAB><reason>`")]
    Syntax {
        /// The line's number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
    /// A timeline not above the one on the line before.
    #[error("line {line}: timeline {timeline} does not follow timeline {previous} (timeline ids must increase)")]
    NotIncreasing {
        /// The line's number, from 1.
        line: usize,
        /// Its timeline.
        timeline: u32,
        /// The line before's.
        previous: u32,
    },
    /// An ancestor not below the file's own timeline.
    #[error("line {line}: timeline {parent} is not below the file's own timeline {timeline}")]
    NotBelow {
        /// The line's number, from 1.
        line: usize,
        /// The ancestor it names.
        parent: u32,
        /// The file's timeline.
        timeline: u32,
    },
}

impl TimelineHistory {
    /// Reads the history file of `timeline`: one switch a line (`1<TAB>0/6000000<TAB>no recovery
    /// target specified`), blank lines and `#` comments skipped, as PostgreSQL reads it (the
    /// reason may be absent; the timelines must increase and stay below `timeline`).
    pub fn parse(timeline: u32, text: &str) -> Result<TimelineHistory, HistoryError> {
        let mut ancestors: Vec<TimelineSwitch> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = || HistoryError::Syntax {
                line: i + 1,
                text: raw.to_string(),
            };
            let (tli, rest) = line.split_once(char::is_whitespace).ok_or_else(syntax)?;
            let rest = rest.trim_start();
            let (lsn, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let parent: u32 = tli.parse().map_err(|_| syntax())?;
            let switch: Lsn = lsn.parse().map_err(|_| syntax())?;
            if let Some(prev) = ancestors.last() {
                if parent <= prev.parent {
                    return Err(HistoryError::NotIncreasing {
                        line: i + 1,
                        timeline: parent,
                        previous: prev.parent,
                    });
                }
            }
            if parent >= timeline {
                return Err(HistoryError::NotBelow {
                    line: i + 1,
                    parent,
                    timeline,
                });
            }
            ancestors.push(TimelineSwitch {
                parent,
                switch,
                reason: reason.trim().to_string(),
            });
        }
        Ok(TimelineHistory {
            timeline,
            ancestors,
        })
    }
}

/// An archive's timelines as its history files tell them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timelines {
    /// The history files the archive lists, by timeline (each relative to the archive's
    /// directory).
    pub files: BTreeMap<u32, String>,
    /// Those read and parsed.
    pub histories: BTreeMap<u32, TimelineHistory>,
    /// Those that could not be fetched or parsed, with why.
    pub unreadable: BTreeMap<u32, String>,
}

impl Timelines {
    /// Takes `text`, the content of `timeline`'s history file.
    pub fn read(&mut self, timeline: u32, text: &str) {
        match TimelineHistory::parse(timeline, text) {
            Ok(h) => {
                self.histories.insert(timeline, h);
            }
            Err(e) => {
                self.unreadable.insert(timeline, e.to_string());
            }
        }
    }

    /// The timeline `recovery_target_timeline = 'latest'` recovers to from `start`: PostgreSQL
    /// probes the archive for the history files of `start + 1`, `start + 2` … and takes the
    /// last one found (`findNewestTimeLine`), whatever it descends from.
    pub fn newest_from(&self, start: u32) -> u32 {
        let mut t = start;
        while t < u32::MAX && self.files.contains_key(&(t + 1)) {
            t += 1;
        }
        t
    }

    /// Each timeline's parent and where it began, from its own history file.
    pub fn switches(&self) -> Vec<(u32, &TimelineSwitch)> {
        self.histories
            .iter()
            .filter_map(|(t, h)| Some((*t, h.ancestors.last()?)))
            .collect()
    }
}

/// A stretch of one timeline's segments on a recovery's way: numbers `from` to `to`,
/// inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Leg {
    /// The timeline its segments are read from.
    pub timeline: u32,
    /// The first segment's number.
    pub from: u64,
    /// The last segment's number.
    pub to: u64,
}

/// The WAL a recovery from one backup replays to the end of the archive, as PostgreSQL
/// follows timelines with `recovery_target_timeline = 'latest'` (its default since version
/// 12; pgBackRest and Barman leave it so): the backup's timeline up to the segment before the
/// one holding the switch to the next timeline, then that timeline from the switch's segment
/// (PostgreSQL reads a segment from the newest timeline that began at or before it: the new
/// timeline's first segment holds a copy of the parent's WAL up to the switch, and the
/// parent's own copy of it is archived only as `.partial`), and so on to the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalPath {
    /// Its stretches in replay order; every segment number is in one of them only.
    pub legs: Vec<Leg>,
    /// The timeline recovery ends on (its promotion begins the next one).
    pub timeline: u32,
    /// Why a recovery from the backup cannot follow the archive's timelines as they are.
    pub problem: Option<TimelineProblem>,
}

/// What in the archive's timelines stops a recovery from a backup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineProblem {
    /// A timeline the archive knows of has no history file: PostgreSQL's probe stops before it.
    #[error("the history file {file} of timeline {timeline} is not in the archive, although {evidence}: PostgreSQL finds a newer timeline only by its history file, so a recovery to latest ends on timeline {ends_on} and loses the WAL after it")]
    MissingHistory {
        /// The timeline without its history file.
        timeline: u32,
        /// Its history file's name.
        file: String,
        /// What shows the timeline exists.
        evidence: String,
        /// Where a recovery to latest ends instead.
        ends_on: u32,
    },
    /// The history file of the timeline recovery follows cannot be read.
    #[error("the history file {file} of timeline {timeline}, the newest, cannot be read as PostgreSQL reads it ({why}): a recovery from the backup fails at its start")]
    UnreadableHistory {
        /// The newest timeline.
        timeline: u32,
        /// Its history file's name.
        file: String,
        /// Why.
        why: String,
    },
    /// The newest timeline does not descend from the backup's.
    #[error("timeline {newest}, the newest (the one recovery follows), does not descend from the backup's timeline {timeline}: its history file {file} names {ancestors}. A recovery from the backup fails at its start (`requested timeline {newest} is not a child of this server's history`)")]
    NotAncestor {
        /// The newest timeline.
        newest: u32,
        /// The backup's timeline.
        timeline: u32,
        /// The newest timeline's history file.
        file: String,
        /// The ancestors it names.
        ancestors: String,
    },
    /// The newest timeline forked off the backup's timeline before the backup ended.
    #[error("timeline {child} forked off the backup's timeline {timeline} at {switch} (history file {file} of timeline {newest}, the newest), before the backup ended at {backup_end}: a recovery from the backup fails at its start, since the timeline it follows does not contain the backup")]
    ForkedBefore {
        /// The timeline that forked.
        child: u32,
        /// The backup's timeline.
        timeline: u32,
        /// Where it forked.
        switch: Lsn,
        /// Where the backup ended.
        backup_end: Lsn,
        /// The newest timeline, which recovery follows.
        newest: u32,
        /// Its history file.
        file: String,
    },
}

impl TimelineProblem {
    /// True when recovery from the backup fails at its start whatever its target (every
    /// target follows `latest` by default); false when only `latest` loses WAL.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, TimelineProblem::MissingHistory { .. })
    }

    /// The history file it is about (`00000002.history`).
    pub fn file(&self) -> &str {
        match self {
            TimelineProblem::MissingHistory { file, .. }
            | TimelineProblem::UnreadableHistory { file, .. }
            | TimelineProblem::NotAncestor { file, .. }
            | TimelineProblem::ForkedBefore { file, .. } => file,
        }
    }
}

impl WalPath {
    /// The path cut after segment number `number` (extended to it when the path ends
    /// before): what a recovery that stops in that segment replays.
    pub fn through(&self, number: u64) -> WalPath {
        let mut legs: Vec<Leg> = self
            .legs
            .iter()
            .filter(|l| l.from <= number)
            .copied()
            .collect();
        let is_last = legs.len() == self.legs.len();
        if let Some(l) = legs.last_mut() {
            l.to = if is_last { number } else { l.to.min(number) };
        }
        WalPath {
            legs,
            timeline: self.timeline,
            problem: self.problem.clone(),
        }
    }

    /// The timeline segment number `number` is read from on this path (the last leg's
    /// beyond it).
    pub fn timeline_of(&self, number: u64) -> u32 {
        self.legs
            .iter()
            .find(|l| number <= l.to)
            .or(self.legs.last())
            .map_or(self.timeline, |l| l.timeline)
    }

    /// The timelines it reads, in order.
    pub fn timelines(&self) -> Vec<u32> {
        let mut t: Vec<u32> = self.legs.iter().map(|l| l.timeline).collect();
        t.dedup();
        t
    }
}

impl WalArchive {
    /// The WAL a recovery from the backup whose first segment is `start` replays to the end
    /// of the archive ([`WalPath`]); `end` is where the backup ended (a timeline that forked
    /// off before it cannot be followed), `through` its last segment, covered even when the
    /// archive ends before it. `None` when `start` is no segment name.
    pub fn path(&self, start: &str, end: Option<Lsn>, through: Option<&str>) -> Option<WalPath> {
        let size = self.segment_size;
        let first = Segment::parse(start, size)?;
        let t = first.timeline;
        let newest = self.history.newest_from(t);
        let file = history_name(newest);
        let mut legs = Vec::new();
        let mut from = first.number;
        let mut tl = t;
        let mut problem = None;
        if newest != t {
            match self.history.histories.get(&newest) {
                None => {
                    problem = Some(TimelineProblem::UnreadableHistory {
                        timeline: newest,
                        file,
                        why: self
                            .history
                            .unreadable
                            .get(&newest)
                            .cloned()
                            .unwrap_or_else(|| "it was not read".into()),
                    })
                }
                Some(h) => match h.ancestors.iter().position(|a| a.parent == t) {
                    None => {
                        problem = Some(TimelineProblem::NotAncestor {
                            newest,
                            timeline: t,
                            file,
                            ancestors: if h.ancestors.is_empty() {
                                "no ancestor".into()
                            } else {
                                format!(
                                    "timeline(s) {}",
                                    h.ancestors
                                        .iter()
                                        .map(|a| a.parent.to_string())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            },
                        })
                    }
                    Some(i) => {
                        let next = |j: usize| h.ancestors.get(j + 1).map_or(newest, |a| a.parent);
                        let own = &h.ancestors[i];
                        match end.filter(|e| own.switch < *e) {
                            Some(backup_end) => {
                                problem = Some(TimelineProblem::ForkedBefore {
                                    child: next(i),
                                    timeline: t,
                                    switch: own.switch,
                                    backup_end,
                                    newest,
                                    file,
                                })
                            }
                            None => {
                                for (j, a) in h.ancestors.iter().enumerate().skip(i) {
                                    // The segment holding the switch is the next timeline's.
                                    let until = a.switch.0 / size.max(1);
                                    if until > from {
                                        legs.push(Leg {
                                            timeline: tl,
                                            from,
                                            to: until - 1,
                                        });
                                        from = until;
                                    }
                                    tl = next(j);
                                }
                            }
                        }
                    }
                },
            }
        }
        let number = |s: &ArchivedSegment| self.segment(s).number;
        let last = self.last_on(tl).map(number).filter(|n| *n >= from);
        let stop = through
            .and_then(|s| Segment::parse(s, size))
            .map(|s| s.number)
            .filter(|n| *n >= from);
        match last.max(stop) {
            Some(to) => legs.push(Leg {
                timeline: tl,
                from,
                to,
            }),
            // The backup's own first segment is missing: a gap, not the archive's end.
            None if legs.is_empty() => legs.push(Leg {
                timeline: tl,
                from,
                to: from,
            }),
            // Nothing archived on the newest timeline yet: the archive ends before it.
            None => {}
        }
        if problem.is_none() {
            problem = self.unreached(tl);
        }
        Some(WalPath {
            legs,
            timeline: tl,
            problem,
        })
    }

    /// A timeline after `ends_on` the archive knows of (by its segments or a history file),
    /// which PostgreSQL's probe for `ends_on + 1`'s history file never reaches.
    fn unreached(&self, ends_on: u32) -> Option<TimelineProblem> {
        let missing = ends_on.checked_add(1)?;
        let evidence = if let Some(s) = self
            .segments
            .iter()
            .find(|s| self.segment(s).timeline > ends_on)
        {
            format!(
                "timeline {} has archived WAL ({} …)",
                self.segment(s).timeline,
                s.name
            )
        } else if let Some((t, f)) = self.history.files.range(missing..).next() {
            format!("timeline {t}'s history file {f} is there")
        } else {
            return None;
        };
        Some(TimelineProblem::MissingHistory {
            timeline: missing,
            file: history_name(missing),
            evidence,
            ends_on,
        })
    }

    /// The archived segments on `leg`, in order.
    fn on_leg(&self, leg: Leg) -> impl DoubleEndedIterator<Item = &ArchivedSegment> {
        self.segments.iter().filter(move |s| {
            let g = self.segment(s);
            g.timeline == leg.timeline && (leg.from..=leg.to).contains(&g.number)
        })
    }

    /// The last archived segment on `path`: where a recovery along it ends when nothing is
    /// missing, the newest WAL it replays.
    pub fn path_newest(&self, path: &WalPath) -> Option<&ArchivedSegment> {
        path.legs
            .iter()
            .rev()
            .find_map(|l| self.on_leg(*l).next_back())
    }

    /// The gaps on `path`, in replay order. A hole across a timeline switch is one gap, and
    /// the segments around a gap may be on the timelines before and after it.
    pub fn path_gaps(&self, path: &WalPath) -> Vec<WalGap> {
        let size = self.segment_size;
        let mut out: Vec<WalGap> = Vec::new();
        let mut last_present: Option<String> = None;
        for leg in &path.legs {
            let name = |n: u64| {
                Segment {
                    timeline: leg.timeline,
                    number: n,
                }
                .name(size)
            };
            // A gap that ran to the previous leg's end lies before this leg's first segment.
            let starts_present = self
                .on_leg(*leg)
                .next()
                .is_some_and(|s| s.name == name(leg.from));
            if starts_present {
                if let Some(prev) = out.last_mut().filter(|g| g.before.is_empty()) {
                    prev.before = name(leg.from);
                }
            }
            for mut g in self.gaps(&name(leg.from), Some(&name(leg.to))) {
                if g.after.is_empty() {
                    g.after = last_present.clone().unwrap_or_default();
                }
                match out.last_mut() {
                    // The previous leg ended missing and this one starts so: one hole.
                    Some(prev) if prev.before.is_empty() && g.first_missing == name(leg.from) => {
                        prev.last_missing = g.last_missing;
                        prev.missing += g.missing;
                        prev.before = g.before;
                    }
                    _ => out.push(g),
                }
            }
            if let Some(s) = self.on_leg(*leg).next_back() {
                last_present = Some(s.name.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB16: u64 = DEFAULT_SEGMENT_SIZE;

    fn listing(names: &[&str]) -> String {
        let mut m = serde_json::Map::new();
        m.insert(".".into(), serde_json::json!({"type": "path"}));
        for (i, n) in names.iter().enumerate() {
            m.insert(
                format!("{}/{n}", &n[..16]),
                serde_json::json!({"type": "file", "size": 100, "time": 1_796_610_253 + i as i64}),
            );
        }
        serde_json::Value::Object(m).to_string()
    }

    #[test]
    fn segment_names_read_and_print_as_postgres_writes_them() {
        let s = Segment::parse("0000000100000001000000FF", MIB16).unwrap();
        assert_eq!((s.timeline, s.number), (1, 0x1FF));
        assert_eq!(
            Segment {
                timeline: 1,
                number: 0x200
            }
            .name(MIB16),
            "000000010000000200000000"
        );
        assert_eq!(Segment::parse("000000010000000000000100", MIB16), None);
        assert_eq!(Segment::parse("00000001000000000000000", MIB16), None);
        assert_eq!(
            Segment::of_lsn("0/3020D28".parse().unwrap(), 1, MIB16).name(MIB16),
            "000000010000000000000003"
        );
        // 64 MiB segments: 64 per log id.
        assert_eq!(
            Segment::of_lsn("1/4000000".parse().unwrap(), 2, 64 << 20).name(64 << 20),
            "000000020000000100000001"
        );
    }

    #[test]
    fn the_segment_size_is_the_one_that_puts_a_backup_s_start_in_its_first_segment() {
        assert_eq!(
            infer_segment_size("0/2000028".parse().unwrap(), "000000010000000000000002"),
            Some(MIB16)
        );
        assert_eq!(
            infer_segment_size("0/8000028".parse().unwrap(), "000000010000000000000002"),
            Some(64 << 20)
        );
        assert_eq!(
            infer_segment_size("0/28".parse().unwrap(), "000000010000000000000000"),
            None
        );
    }

    #[test]
    fn a_gap_is_named_by_its_first_missing_segment_and_the_ones_around_it() {
        let json = listing(&[
            "000000010000000000000001-600a1bbd3a4c353372d86a90db06a33da8e204a1.gz",
            "000000010000000000000002-6bacf2fe5e9d575ce2aa0a0ded660c6c56e619ba.gz",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000003-4af1d2075b23074349f5484c3cb4eb45712b2277.gz",
            "000000010000000000000006-1cdce788689a70a60108440584941cb70ad621e2.gz",
            "000000010000000000000007-0aff43259eb81fc2c4f73aed112d09bec775f573.gz",
            "000000020000000000000007-0aff43259eb81fc2c4f73aed112d09bec775f573.gz",
        ]);
        let a = WalArchive::from_listing("15-1", MIB16, &json).unwrap();
        assert_eq!(a.segments.len(), 6);
        assert_eq!(
            a.segments[0].file,
            "0000000100000000/000000010000000000000001-600a1bbd3a4c353372d86a90db06a33da8e204a1.gz"
        );
        assert_eq!(a.newest().unwrap().name, "000000020000000000000007");
        let gaps = a.gaps("000000010000000000000002", None);
        assert_eq!(
            gaps,
            vec![WalGap {
                timeline: 1,
                first_missing: "000000010000000000000004".into(),
                last_missing: "000000010000000000000005".into(),
                missing: 2,
                after: "000000010000000000000003".into(),
                before: "000000010000000000000006".into(),
            }]
        );
        assert!(a
            .gaps("000000010000000000000002", Some("000000010000000000000003"))
            .is_empty());
        // Up to a segment beyond the archive: the missing tail is a gap too.
        let tail = a.gaps("000000010000000000000006", Some("000000010000000000000009"));
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].first_missing, "000000010000000000000008");
        assert_eq!(tail[0].before, "");
        // A backup whose first segment is gone.
        let head = a.gaps("000000010000000000000000", None);
        assert_eq!(head[0].first_missing, "000000010000000000000000");
        assert_eq!(head[0].after, "");
        assert_eq!(
            a.timelines()
                .iter()
                .map(|t| (t.timeline, t.segments))
                .collect::<Vec<_>>(),
            vec![(1, 5), (2, 1)]
        );
    }

    #[test]
    fn barman_s_files_are_segments_by_their_bare_names() {
        let t = DateTime::from_timestamp(1_796_610_253, 0).unwrap();
        let files = [
            "0000000100000000/000000010000000000000003",
            "0000000100000000/000000010000000000000003.00000028.backup",
            "0000000100000000/000000010000000000000004.partial",
            "0000000100000000/000000010000000000000005",
            "0000000100000000/00000001000000000000000",
            "00000002.history",
        ]
        .map(|f| (f.to_string(), 16u64, t));
        let a = WalArchive::from_files("", MIB16, files);
        assert_eq!(
            a.segments
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["000000010000000000000003", "000000010000000000000005"]
        );
        assert_eq!(
            a.segments[1].file,
            "0000000100000000/000000010000000000000005"
        );
        assert_eq!(
            a.history.files.get(&2).map(String::as_str),
            Some("00000002.history")
        );
    }

    /// An archive of `segments` (timeline, number) and the history files `histories`
    /// (timeline, content), as a tool's listing and reading leave it.
    fn timelined(segments: &[(u32, u64)], histories: &[(u32, &str)]) -> WalArchive {
        let t = DateTime::from_timestamp(1_796_610_253, 0).unwrap();
        let mut files: Vec<(String, u64, DateTime<Utc>)> = segments
            .iter()
            .enumerate()
            .map(|(i, (tl, n))| {
                let name = Segment {
                    timeline: *tl,
                    number: *n,
                }
                .name(MIB16);
                (
                    format!("{}/{name}-x.gz", &name[..16]),
                    1,
                    t + chrono::Duration::seconds(i as i64),
                )
            })
            .collect();
        files.extend(histories.iter().map(|(tl, _)| (history_name(*tl), 1, t)));
        let mut a = WalArchive::from_files("15-1", MIB16, files);
        for (tl, text) in histories {
            a.history.read(*tl, text);
        }
        a
    }

    const TL2_AT_6: &str = "1\t0/6000000\tno recovery target specified\n";

    fn seg(tl: u32, n: u64) -> String {
        Segment {
            timeline: tl,
            number: n,
        }
        .name(MIB16)
    }

    #[test]
    fn history_files_read_as_postgres_reads_them() {
        let h = TimelineHistory::parse(
            3,
            "# a comment\n\n1\t0/6000000\tno recovery target specified\n2\t0/9A000028\tbefore 2026-12-07 10:00:00+00\n",
        )
        .unwrap();
        assert_eq!(h.ancestors.len(), 2);
        assert_eq!(h.ancestors[1].parent, 2);
        assert_eq!(h.ancestors[1].switch, Lsn(0x9A00_0028));
        assert_eq!(h.ancestors[1].reason, "before 2026-12-07 10:00:00+00");
        // The reason is optional, as for PostgreSQL.
        assert_eq!(
            TimelineHistory::parse(2, "1\t0/6000000").unwrap().ancestors[0].reason,
            ""
        );
        assert!(matches!(
            TimelineHistory::parse(2, "one\t0/6000000\tx"),
            Err(HistoryError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            TimelineHistory::parse(2, "1\tnowhere"),
            Err(HistoryError::Syntax { .. })
        ));
        assert!(matches!(
            TimelineHistory::parse(4, "2\t0/6000000\tx\n1\t0/7000000\tx"),
            Err(HistoryError::NotIncreasing { line: 2, .. })
        ));
        assert!(matches!(
            TimelineHistory::parse(2, "2\t0/6000000\tx"),
            Err(HistoryError::NotBelow { .. })
        ));
        assert_eq!(history_timeline("0000000A.history"), Some(10));
        assert_eq!(history_timeline("0000000A.partial"), None);
        assert_eq!(history_name(10), "0000000A.history");
    }

    #[test]
    fn a_backup_s_wal_follows_the_history_file_onto_the_newest_timeline() {
        let a = timelined(
            &[(1, 2), (1, 3), (1, 4), (1, 5), (2, 6), (2, 7), (2, 8)],
            &[(2, TL2_AT_6)],
        );
        let p = a
            .path(&seg(1, 2), Some(Lsn(0x200_0100)), Some(&seg(1, 2)))
            .unwrap();
        assert_eq!(
            p.legs,
            [
                Leg {
                    timeline: 1,
                    from: 2,
                    to: 5
                },
                Leg {
                    timeline: 2,
                    from: 6,
                    to: 8
                }
            ]
        );
        assert_eq!((p.timeline, p.problem.as_ref()), (2, None));
        assert_eq!(p.timelines(), [1, 2]);
        assert!(a.path_gaps(&p).is_empty());
        assert_eq!(a.path_newest(&p).unwrap().name, seg(2, 8));
        // An LSN target before the switch replays timeline 1 only.
        assert_eq!(
            p.through(4).legs,
            [Leg {
                timeline: 1,
                from: 2,
                to: 4
            }]
        );
        assert_eq!(p.timeline_of(4), 1);
        assert_eq!(p.timeline_of(7), 2);

        // A switch in the middle of a segment: that segment is the child's (the parent's copy
        // is archived as .partial only).
        let a = timelined(
            &[(1, 2), (1, 3), (1, 4), (2, 5), (2, 6)],
            &[(2, "1\t0/5800000\tno recovery target specified\n")],
        );
        let p = a.path(&seg(1, 2), None, None).unwrap();
        assert_eq!(
            p.legs[0],
            Leg {
                timeline: 1,
                from: 2,
                to: 4
            }
        );
        assert_eq!(
            p.legs[1],
            Leg {
                timeline: 2,
                from: 5,
                to: 6
            }
        );
        assert!(a.path_gaps(&p).is_empty());

        // Freshly promoted, nothing archived on timeline 2 yet: the archive ends on timeline 1.
        let a = timelined(&[(1, 2), (1, 3)], &[(2, "1\t0/4000000\tx\n")]);
        let p = a.path(&seg(1, 2), None, None).unwrap();
        assert_eq!((p.timeline, p.legs.len()), (2, 1));
        assert!(a.path_gaps(&p).is_empty());

        // Two branches off timeline 1: latest follows the highest, 3, and skips 2.
        let a = timelined(
            &[
                (1, 2),
                (1, 3),
                (1, 4),
                (1, 5),
                (1, 6),
                (2, 6),
                (3, 7),
                (3, 8),
            ],
            &[(2, TL2_AT_6), (3, "1\t0/7000000\tx\n")],
        );
        let p = a.path(&seg(1, 2), None, None).unwrap();
        assert_eq!(p.timelines(), [1, 3]);
        assert_eq!(p.legs[0].to, 6);
        assert!(a.path_gaps(&p).is_empty());
        // A backup on timeline 2: timeline 3 is not its child.
        let p = a.path(&seg(2, 6), None, None).unwrap();
        assert!(
            matches!(
                p.problem,
                Some(TimelineProblem::NotAncestor {
                    newest: 3,
                    timeline: 2,
                    ..
                })
            ),
            "{p:?}"
        );
        assert!(p.problem.unwrap().is_fatal());
    }

    #[test]
    fn a_gap_on_the_path_is_named_across_the_switch() {
        let history = [(2, TL2_AT_6)];
        let gap = |segments: &[(u32, u64)]| {
            let a = timelined(segments, &history);
            let p = a.path(&seg(1, 2), None, None).unwrap();
            a.path_gaps(&p)
        };
        // The middle of timeline 2.
        let g = gap(&[(1, 2), (1, 3), (1, 4), (1, 5), (2, 6), (2, 8)]);
        assert_eq!(g.len(), 1);
        assert_eq!(
            (
                g[0].first_missing.as_str(),
                g[0].after.as_str(),
                g[0].before.as_str()
            ),
            (seg(2, 7).as_str(), seg(2, 6).as_str(), seg(2, 8).as_str())
        );
        // The child's first segment: between the parent's last and the child's next.
        let g = gap(&[(1, 2), (1, 3), (1, 4), (1, 5), (2, 7), (2, 8)]);
        assert_eq!(
            (
                g[0].first_missing.as_str(),
                g[0].after.as_str(),
                g[0].before.as_str(),
                g[0].timeline
            ),
            (
                seg(2, 6).as_str(),
                seg(1, 5).as_str(),
                seg(2, 7).as_str(),
                2
            )
        );
        // The parent's last: before the child's first.
        let g = gap(&[(1, 2), (1, 3), (1, 4), (2, 6), (2, 7)]);
        assert_eq!(
            (
                g[0].first_missing.as_str(),
                g[0].after.as_str(),
                g[0].before.as_str()
            ),
            (seg(1, 5).as_str(), seg(1, 4).as_str(), seg(2, 6).as_str())
        );
        // Both sides of the switch: one hole of two segments.
        let g = gap(&[(1, 2), (1, 3), (1, 4), (2, 7)]);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(
            (
                g[0].first_missing.as_str(),
                g[0].last_missing.as_str(),
                g[0].missing
            ),
            (seg(1, 5).as_str(), seg(2, 6).as_str(), 2)
        );
        assert_eq!(
            (g[0].after.as_str(), g[0].before.as_str()),
            (seg(1, 4).as_str(), seg(2, 7).as_str())
        );
    }

    #[test]
    fn a_missing_or_unreadable_history_file_or_an_early_fork_is_a_problem_not_a_panic() {
        // 00000002.history gone: PostgreSQL stays on timeline 1, and so does the path.
        let a = timelined(&[(1, 2), (1, 3), (2, 4), (2, 5)], &[]);
        let p = a.path(&seg(1, 2), None, None).unwrap();
        assert_eq!((p.timeline, p.legs.len()), (1, 1));
        let problem = p.problem.clone().unwrap();
        assert!(!problem.is_fatal());
        assert_eq!(problem.file(), "00000002.history");
        assert!(problem.to_string().contains(&seg(2, 4)), "{problem}");
        assert_eq!(a.path_newest(&p).unwrap().name, seg(1, 3));

        // A history naming a parent whose own history file is missing: the probe stops at 1.
        let a = timelined(
            &[(1, 2), (3, 4)],
            &[(3, "1\t0/3000000\tx\n2\t0/4000000\tx\n")],
        );
        let p = a.path(&seg(1, 2), None, None).unwrap();
        assert!(
            matches!(
                p.problem,
                Some(TimelineProblem::MissingHistory { timeline: 2, .. })
            ),
            "{p:?}"
        );

        // Unreadable.
        let a = timelined(&[(1, 2), (2, 3)], &[(2, "garbage")]);
        let p = a.path(&seg(1, 2), None, None).unwrap();
        let problem = p.problem.unwrap();
        assert!(problem.is_fatal());
        assert!(problem.to_string().contains("garbage"), "{problem}");

        // Timeline 2 forked off before the backup ended: not a descendant.
        let a = timelined(&[(1, 6), (1, 7), (2, 6)], &[(2, TL2_AT_6)]);
        let p = a.path(&seg(1, 7), Some(Lsn(0x700_0100)), None).unwrap();
        assert!(
            matches!(
                p.problem,
                Some(TimelineProblem::ForkedBefore {
                    child: 2,
                    timeline: 1,
                    ..
                })
            ),
            "{p:?}"
        );
        assert_eq!(
            p.legs,
            [Leg {
                timeline: 1,
                from: 7,
                to: 7
            }]
        );
        assert!(a.path("nonsense", None, None).is_none());
    }

    #[test]
    fn a_listing_that_is_not_repo_ls_json_is_an_error() {
        assert!(WalArchive::from_listing("15-1", MIB16, "[]").is_err());
        assert!(WalArchive::from_listing("15-1", MIB16, "{}")
            .unwrap()
            .segments
            .is_empty());
    }
}
