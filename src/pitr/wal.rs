//! The WAL archive of a stanza or a Barman server as a list of segments: segment names and
//! numbers, the segment size (inferred from a backup), the repository's listing (`pgbackrest
//! repo-ls --output=json --recurse`, or the files of Barman's `wals` directory) read into
//! [`WalArchive`], and the gaps in it. Pure: nothing here
//! runs a program or reads a file.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalArchive {
    /// The archive's id (`15-1`: PostgreSQL's major version and the database's number).
    pub archive_id: String,
    /// The WAL segment size in bytes.
    pub segment_size: u64,
    /// Its segments, ordered by timeline and number; `.partial`, `.backup` and `.history`
    /// files are not segments of a continuous range and are left out.
    pub segments: Vec<ArchivedSegment>,
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
        for (path, size_bytes, archived_at) in files {
            let base = path.rsplit('/').next().unwrap_or(&path);
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
