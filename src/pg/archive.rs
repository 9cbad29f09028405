//! The table of contents of a custom-format archive (`pg_dump -Fc`), read as far as whether
//! it records where each table's data starts. pg_dump records it only when it can seek back
//! in its output: an archive written into a pipe (`pg_dump -Fc > file`, or through ssh) has
//! none, and `pg_restore -j` then reads past every table before the one it restores, which
//! the RTO pays for in a real outage.
//!
//! The layout is pg_backup_archiver.c's (ReadHead, ReadToc) and pg_backup_custom.c's
//! (ReadExtraToc) for archive versions 1.12 to 1.14, written by pg_dump 11 to 15; other
//! versions are not guessed at.

use std::io::Read;
use std::path::Path;

/// How many of an archive's TABLE DATA entries record where their data starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataOffsets {
    /// TABLE DATA entries.
    pub tables: usize,
    /// Of them, those whose offset pg_dump could not record (it wrote into a pipe).
    pub unset: usize,
}

/// The data offsets of `archive`, or `None` when it cannot be read, is not a custom-format
/// archive of a layout this reader knows, or ends inside its table of contents.
pub fn data_offsets(archive: &Path) -> Option<DataOffsets> {
    let entries = entries(archive)?;
    let tables: Vec<_> = entries.iter().filter(|e| e.table_data).collect();
    Some(DataOffsets {
        tables: tables.len(),
        unset: tables.iter().filter(|e| e.offset == Offset::NotSet).count(),
    })
}

/// One entry of an archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its dump id: what a `pg_restore -L` list names it by.
    pub dump_id: i64,
    /// Whether it is a TABLE DATA entry.
    pub table_data: bool,
    /// Where its data block is.
    pub offset: Offset,
}

/// Where an entry's data block is, as the table of contents records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// It has data, written where pg_dump could not record (into a pipe).
    NotSet,
    /// Its data starts at this byte of the archive.
    At(u64),
    /// It has no data block.
    NoData,
}

/// `K_OFFSET_POS_NOT_SET` and `K_OFFSET_POS_SET`; `K_OFFSET_NO_DATA` is the third.
const OFFSET_NOT_SET: u8 = 1;
const OFFSET_SET: u8 = 2;

/// Every entry of `archive`'s table of contents, in its order; `None` as for [`data_offsets`].
pub fn entries(archive: &Path) -> Option<Vec<Entry>> {
    let f = std::fs::File::open(archive).ok()?;
    let left = f.metadata().ok()?.len();
    read(&mut Toc {
        inner: std::io::BufReader::new(f),
        int_size: 0,
        left,
    })
    .ok()
    .flatten()
}

/// [`entries`] of an archive's first bytes (the table of contents is at its start).
pub fn entries_in(bytes: &[u8]) -> Option<Vec<Entry>> {
    read(&mut Toc {
        inner: bytes,
        int_size: 0,
        left: bytes.len() as u64,
    })
    .ok()
    .flatten()
}

fn read(r: &mut Toc<impl Read>) -> std::io::Result<Option<Vec<Entry>>> {
    if r.take(5)? != b"PGDMP" {
        return Ok(None);
    }
    let version = r.take(3)?;
    let (int_size, off_size, format) = {
        let s = r.take(3)?;
        (s[0] as usize, s[1] as usize, s[2])
    };
    // The custom format is 1; 1.12–1.14 share one layout of the fields read here.
    if version[0] != 1
        || !(12..=14).contains(&version[1])
        || format != 1
        || int_size > 8
        || off_size > 8
    {
        return Ok(None);
    }
    r.int_size = int_size;
    r.int()?; // compression
    for _ in 0..7 {
        r.int()?; // the creation time
    }
    for _ in 0..3 {
        r.string()?; // database, server and pg_dump versions
    }
    let mut found = Vec::new();
    for _ in 0..r.int()? {
        let dump_id = r.int()?;
        r.int()?; // had dumper
        r.string()?; // table oid
        r.string()?; // oid
        r.string()?; // tag
        let desc = r.string()?;
        r.int()?; // section
        for _ in 0..8 {
            r.string()?; // definition, drop, copy, namespace, tablespace, table AM, owner, with oids
        }
        while r.string()?.is_some() {} // dependencies
        let flag = r.take(1)?[0];
        // pg_dump's WriteOffset: the offset's bytes, least significant first.
        let at = r
            .take(off_size)?
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        found.push(Entry {
            dump_id,
            table_data: desc.as_deref() == Some(b"TABLE DATA".as_slice()),
            offset: match flag {
                OFFSET_NOT_SET => Offset::NotSet,
                OFFSET_SET => Offset::At(at),
                _ => Offset::NoData,
            },
        });
    }
    Ok(Some(found))
}

/// pg_dump's integers (a sign byte, then little-endian bytes) and strings (a length, -1 for
/// NULL, then the bytes).
struct Toc<R> {
    inner: R,
    int_size: usize,
    /// Bytes not yet read: a length beyond them is damage, found before allocating it.
    left: u64,
}

impl<R: Read> Toc<R> {
    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        if n as u64 > self.left {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn int(&mut self) -> std::io::Result<i64> {
        let negative = self.take(1)?[0] != 0;
        let n = self.int_size;
        let v = self
            .take(n)?
            .iter()
            .rev()
            .fold(0i64, |acc, b| (acc << 8) | i64::from(*b));
        Ok(if negative { -v } else { v })
    }

    fn string(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let len = self.int()?;
        Ok(if len < 0 {
            None
        } else {
            Some(self.take(len as usize)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_known_custom_archive_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        for bytes in [
            b"".as_slice(),
            b"-- plain SQL\n",
            b"PGDMP\x01\x10\x00\x04\x08\x01", // archive 1.16: not guessed at
            b"PGDMP\x01\x0e\x00\x04\x08\x01\x00", // 1.14, cut short
        ] {
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(data_offsets(&p), None, "{bytes:?}");
        }
        assert_eq!(data_offsets(&dir.path().join("missing")), None);
    }
}
