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
    read_file(archive).map(|(_, entries)| entries)
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
    .map(|(_, entries)| entries)
}

/// What an archive's header says that reading its data blocks needs.
#[derive(Debug, Clone, Copy)]
struct Header {
    int_size: usize,
    compressed: bool,
}

/// The header and table of contents of the archive at `archive`.
fn read_file(archive: &Path) -> Option<(Header, Vec<Entry>)> {
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

fn read(r: &mut Toc<impl Read>) -> std::io::Result<Option<(Header, Vec<Entry>)>> {
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
    // The zlib level (-1 its default); 0 is none. Archive 1.15 (pg_dump 16) names an
    // algorithm here instead, and is not read.
    let compressed = r.int()? != 0;
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
    Ok(Some((
        Header {
            int_size,
            compressed,
        },
        found,
    )))
}

/// Where an archive's data blocks are, from its table of contents: what the precheck splits
/// between its readers, pgdrill's own ([`read_blocks`]) or one `pg_restore -L` each.
#[derive(Debug, Clone)]
pub struct DataBlocks {
    int_size: usize,
    /// Whether pg_dump compressed the data (zlib; `-Z 0` writes it as it is).
    pub compressed: bool,
    /// The blocks, in the order they are in the file.
    pub blocks: Vec<DataBlock>,
    /// The dump ids of the entries that have no data block.
    pub no_data: Vec<i64>,
}

/// One entry's data block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataBlock {
    /// The entry's dump id, which the block's header repeats.
    pub dump_id: i64,
    /// The byte the block starts at.
    pub at: u64,
    /// Bytes to the next block's start (or the end of the file): its share of the reading.
    pub span: u64,
    /// Whether it holds a table's rows (TABLE DATA); large objects' blocks have another shape.
    pub table_data: bool,
}

impl DataBlocks {
    /// Whether every block holds a table's rows: the blocks [`read_blocks`] reads.
    pub fn rows_only(&self) -> bool {
        self.blocks.iter().all(|b| b.table_data)
    }
}

/// The data blocks of `archive`, or `None` where nobody can seek to them: not a custom archive
/// of a layout this reader knows, or a block whose start pg_dump could not record (it wrote
/// into a pipe, and a reader of one block would scan past the others).
pub fn data_blocks(archive: &Path) -> Option<DataBlocks> {
    let (header, entries) = read_file(archive)?;
    let len = std::fs::metadata(archive).ok()?.len();
    let mut starts = Vec::new();
    let mut no_data = Vec::new();
    for e in &entries {
        match e.offset {
            Offset::NoData => no_data.push(e.dump_id),
            Offset::At(at) => starts.push((at, e.dump_id, e.table_data)),
            Offset::NotSet => return None,
        }
    }
    starts.sort_unstable();
    let blocks = starts
        .iter()
        .enumerate()
        .map(|(i, &(at, dump_id, table_data))| DataBlock {
            dump_id,
            at,
            // A start past the end (a cut file) spans nothing; reading it finds the cut.
            span: starts.get(i + 1).map_or(len, |n| n.0).saturating_sub(at),
            table_data,
        })
        .collect();
    Some(DataBlocks {
        int_size: header.int_size,
        compressed: header.compressed,
        blocks,
        no_data,
    })
}

/// A data block that does not read through: pg_restore would stop at it too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the data block of entry {dump_id} at byte {at}: {what}")]
pub struct BlockError {
    /// The entry whose block it is.
    pub dump_id: i64,
    /// Where the block starts.
    pub at: u64,
    /// What is wrong with it.
    pub what: String,
}

/// pg_dump's `BLK_DATA`: a block of one table's rows.
const BLK_DATA: u8 = 1;

/// Reads `block` of the archive open as `file` through, as pg_restore's `_PrintTocData` does:
/// its header is a data block's naming its entry, every chunk is there in full, and
/// compressed data decompresses to the end of its zlib stream (its Adler-32 checked), with
/// nothing after it. Returns the bytes of row data the block holds.
pub fn read_block(
    file: &std::fs::File,
    blocks: &DataBlocks,
    block: &DataBlock,
) -> Result<u64, BlockError> {
    use std::io::{Seek, SeekFrom};
    let fail = |what: String| BlockError {
        dump_id: block.dump_id,
        at: block.at,
        what,
    };
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => fail("the file ends inside it".into()),
        _ => fail(format!("cannot be read: {e}")),
    };
    let mut f = file;
    let len = f.metadata().map_err(io)?.len();
    f.seek(SeekFrom::Start(block.at)).map_err(io)?;
    let mut r = Toc {
        inner: std::io::BufReader::with_capacity(1 << 18, f),
        int_size: blocks.int_size,
        left: len.saturating_sub(block.at),
    };
    let kind = r.take(1).map_err(io)?[0];
    if kind != BLK_DATA {
        return Err(fail(format!(
            "its header says block type {kind}, not table data"
        )));
    }
    let id = r.int().map_err(io)?;
    if id != block.dump_id {
        return Err(fail(format!("its header names entry {id}")));
    }
    let mut inflate = blocks.compressed.then(|| flate2::Decompress::new(true));
    let mut ended = false;
    let mut out = vec![0u8; 1 << 17];
    let mut chunk = Vec::new();
    let mut data = 0u64;
    loop {
        let n = r.int().map_err(io)?;
        if n == 0 {
            break;
        }
        if n < 0 {
            return Err(fail(format!("a chunk length of {n}")));
        }
        r.take_into(&mut chunk, n as usize).map_err(io)?;
        let Some(z) = inflate.as_mut() else {
            data += n as u64;
            continue;
        };
        let mut input = chunk.as_slice();
        while !input.is_empty() {
            if ended {
                return Err(fail("bytes after the end of its compressed stream".into()));
            }
            let (read, wrote, status) =
                inflate_some(z, input, &mut out, flate2::FlushDecompress::None)
                    .map_err(|e| fail(format!("could not uncompress data: {e}")))?;
            input = &input[read..];
            data += wrote;
            ended = status == flate2::Status::StreamEnd;
            if read == 0 && wrote == 0 && !ended {
                return Err(fail("its compressed stream does not advance".into()));
            }
        }
    }
    if let Some(z) = inflate.as_mut() {
        while !ended {
            let (_, wrote, status) =
                inflate_some(z, &[], &mut out, flate2::FlushDecompress::Finish)
                    .map_err(|e| fail(format!("could not uncompress data: {e}")))?;
            data += wrote;
            ended = status == flate2::Status::StreamEnd;
            if wrote == 0 && !ended {
                return Err(fail("it ends before its compressed stream does".into()));
            }
        }
    }
    Ok(data)
}

/// One call of zlib's inflate: the input bytes it took, the output bytes it gave, its status.
fn inflate_some(
    z: &mut flate2::Decompress,
    input: &[u8],
    out: &mut [u8],
    flush: flate2::FlushDecompress,
) -> Result<(usize, u64, flate2::Status), flate2::DecompressError> {
    let (i, o) = (z.total_in(), z.total_out());
    let status = z.decompress(input, out, flush)?;
    Ok(((z.total_in() - i) as usize, z.total_out() - o, status))
}

/// What [`read_blocks`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadThrough {
    /// Data blocks read.
    pub blocks: usize,
    /// Bytes of row data they hold (decompressed).
    pub data_bytes: u64,
    /// The caller stopped the reading before every block was read.
    pub stopped: bool,
}

/// Reads every block of `blocks` through ([`read_block`]) on `readers` threads at once, the
/// largest first, each taking the next block when it is done; the first damaged block found
/// stops them all and is the error. Setting `stop` (the caller gave up) ends the reading
/// after the blocks being read, with [`ReadThrough::stopped`] set.
pub fn read_blocks(
    archive: &Path,
    blocks: &DataBlocks,
    readers: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<ReadThrough, BlockError> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let mut order: Vec<&DataBlock> = blocks.blocks.iter().collect();
    order.sort_by_key(|b| std::cmp::Reverse(b.span));
    let next = AtomicUsize::new(0);
    let data = AtomicU64::new(0);
    let first_error = std::sync::Mutex::new(None);
    let open_error = |e: std::io::Error| BlockError {
        dump_id: 0,
        at: 0,
        what: format!("the archive cannot be opened: {e}"),
    };
    std::thread::scope(|s| {
        for _ in 0..readers.clamp(1, order.len().max(1)) {
            s.spawn(|| {
                let file = match std::fs::File::open(archive) {
                    Ok(f) => f,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert(open_error(e));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let Some(block) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    match read_block(&file, blocks, block) {
                        Ok(n) => {
                            data.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(ReadThrough {
            blocks: order.len(),
            data_bytes: data.into_inner(),
            stopped: stop.load(Ordering::Relaxed),
        }),
    }
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

    /// [`Toc::take`] into `buf`, reused from one chunk to the next.
    fn take_into(&mut self, buf: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
        if n as u64 > self.left {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        buf.resize(n, 0);
        self.inner.read_exact(buf)
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

    /// A custom archive (1.14, 4-byte integers, 8-byte offsets) of one TABLE DATA entry whose
    /// block holds `rows`, zlib-compressed or not, in chunks of at most 100 bytes as pg_dump
    /// writes them (4096 there).
    fn synthetic(rows: &[u8], compressed: bool) -> (Vec<u8>, usize) {
        archive(rows, compressed, 0)
    }

    /// [`synthetic`], compressed, with the zlib stream's last `cut` bytes left out.
    fn synthetic_cut(rows: &[u8], cut: usize) -> (Vec<u8>, usize) {
        archive(rows, true, cut)
    }

    fn archive(rows: &[u8], compressed: bool, cut: usize) -> (Vec<u8>, usize) {
        fn int(b: &mut Vec<u8>, v: i64) {
            b.push(u8::from(v < 0));
            b.extend(&(v.unsigned_abs() as u32).to_le_bytes());
        }
        fn string(b: &mut Vec<u8>, v: Option<&str>) {
            match v {
                Some(v) => {
                    int(b, v.len() as i64);
                    b.extend(v.as_bytes());
                }
                None => int(b, -1),
            }
        }
        let mut b = b"PGDMP".to_vec();
        b.extend([1, 14, 0, 4, 8, 1]);
        int(&mut b, if compressed { -1 } else { 0 });
        for _ in 0..7 {
            int(&mut b, 0);
        }
        for v in ["db", "15.0", "15.0"] {
            string(&mut b, Some(v));
        }
        int(&mut b, 1); // one entry
        int(&mut b, 7); // its dump id
        int(&mut b, 1);
        for v in ["0", "16384", "t", "TABLE DATA"] {
            string(&mut b, Some(v));
        }
        int(&mut b, 3);
        for _ in 0..8 {
            string(&mut b, Some(""));
        }
        string(&mut b, None); // no dependencies
        b.push(OFFSET_SET);
        let offset_at = b.len();
        b.extend([0; 8]);
        let at = b.len() as u64;
        b[offset_at..offset_at + 8].copy_from_slice(&at.to_le_bytes());
        b.push(BLK_DATA);
        int(&mut b, 7);
        let data = if compressed {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut z, rows).unwrap();
            let mut z = z.finish().unwrap();
            z.truncate(z.len() - cut);
            z
        } else {
            rows.to_vec()
        };
        for chunk in data.chunks(100) {
            int(&mut b, chunk.len() as i64);
            b.extend(chunk);
        }
        int(&mut b, 0);
        (b, at as usize)
    }

    fn read_all(bytes: &[u8]) -> Option<Result<ReadThrough, BlockError>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.dump");
        std::fs::write(&p, bytes).unwrap();
        let blocks = data_blocks(&p)?;
        Some(read_blocks(
            &p,
            &blocks,
            2,
            &std::sync::atomic::AtomicBool::new(false),
        ))
    }

    fn rows() -> Vec<u8> {
        (0..2000)
            .map(|i| format!("{i}\tuser {i}\t{{\"k\": {}}}\n", i * 7919 % 1000))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn every_block_reads_through_to_the_bytes_of_its_rows() {
        for compressed in [true, false] {
            let (bytes, _) = synthetic(&rows(), compressed);
            let read = read_all(&bytes).unwrap().unwrap();
            assert_eq!(
                (read.blocks, read.data_bytes, read.stopped),
                (1, rows().len() as u64, false),
                "compressed: {compressed}"
            );
        }
    }

    #[test]
    fn a_cut_or_damaged_block_does_not_read_through() {
        let (bytes, at) = synthetic(&rows(), true);
        // Cut anywhere inside the block (its start is in the table of contents).
        for end in [at + 1, at + 3, at + 40, bytes.len() - 60, bytes.len() - 1] {
            let r = read_all(&bytes[..end]);
            assert!(matches!(r, Some(Err(_))), "cut at {end}: {r:?}");
        }
        // Damage in the compressed stream: zlib or its Adler-32 refuses it.
        let mut damaged = bytes.clone();
        let mid = at + (bytes.len() - at) / 2;
        damaged[mid..mid + 4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let e = read_all(&damaged).unwrap().unwrap_err();
        assert_eq!(e.dump_id, 7);
        // A header naming another entry, or a block of another type.
        let mut other = bytes.clone();
        other[at + 2] = 8;
        let e = read_all(&other).unwrap().unwrap_err();
        assert!(e.what.contains("names entry 8"), "{e}");
        let mut other = bytes.clone();
        other[at] = 3;
        let e = read_all(&other).unwrap().unwrap_err();
        assert!(e.what.contains("block type 3"), "{e}");
        // A zlib stream cut short but framed whole: the chunks end before the stream does.
        let (short, _) = synthetic_cut(&rows(), 30);
        let e = read_all(&short).unwrap().unwrap_err();
        assert!(e.what.contains("ends before its compressed stream"), "{e}");
    }

    #[test]
    fn blocks_of_any_damage_are_read_or_refused_never_a_panic() {
        let (bytes, at) = synthetic(&rows(), true);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut copy = bytes.clone();
            let i = at + (seed as usize % (bytes.len() - at));
            copy[i] ^= (seed >> 32) as u8 | 1;
            let _ = read_all(&copy);
        }
    }

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
