//! Order-independent content fingerprint of a `COPY … TO STDOUT` text stream.
//!
//! In COPY's text format a literal newline byte only ever ends a row (embedded newlines are
//! written as `\n`), so splitting on b'\n' is exact. The protocol does not promise one row per
//! CopyData message, so rows may arrive split across chunks; the tail is carried over.

use xxhash_rust::xxh3::xxh3_128;

/// Accumulates rows of one table: count and the wrapping sum (mod 2^128) of their xxh3-128.
///
/// A sum rather than xor, because xor cancels a duplicated row; a sum does not depend on the
/// order rows arrive in, so a restore that lays rows out differently still matches.
#[derive(Debug, Default)]
pub(crate) struct RowHasher {
    pending: Vec<u8>,
    rows: u64,
    sum: u128,
}

/// What a finished stream ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowDigest {
    pub rows: u64,
    pub sum: u128,
}

/// The stream ended in the middle of a row: the data is incomplete, never fingerprint it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TruncatedRow {
    pub rows: u64,
    pub trailing_bytes: usize,
}

impl RowHasher {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream; rows may start or end anywhere in it.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) {
        if !self.pending.is_empty() {
            match find_newline(chunk) {
                None => {
                    self.pending.extend_from_slice(chunk);
                    return;
                }
                Some(end) => {
                    self.pending.extend_from_slice(&chunk[..end]);
                    add_row(&mut self.rows, &mut self.sum, &self.pending);
                    // clear() keeps the capacity: no allocation per split row.
                    self.pending.clear();
                    chunk = &chunk[end + 1..];
                }
            }
        }
        while let Some(end) = find_newline(chunk) {
            add_row(&mut self.rows, &mut self.sum, &chunk[..end]);
            chunk = &chunk[end + 1..];
        }
        self.pending.extend_from_slice(chunk);
    }

    /// Ends the stream; bytes after the last newline mean the stream was cut.
    pub(crate) fn finish(self) -> Result<RowDigest, TruncatedRow> {
        if self.pending.is_empty() {
            Ok(RowDigest {
                rows: self.rows,
                sum: self.sum,
            })
        } else {
            Err(TruncatedRow {
                rows: self.rows,
                trailing_bytes: self.pending.len(),
            })
        }
    }
}

impl RowDigest {
    /// The table's fingerprint: the row sum and the row count mixed into 128 bits, as hex.
    pub(crate) fn fingerprint(&self) -> String {
        let mut buf = [0u8; 40];
        buf[..8].copy_from_slice(b"pgdrill1");
        buf[8..16].copy_from_slice(&self.rows.to_le_bytes());
        buf[16..32].copy_from_slice(&self.sum.to_le_bytes());
        format!("{:032x}", xxh3_128(&buf[..32]))
    }
}

fn add_row(rows: &mut u64, sum: &mut u128, row: &[u8]) {
    *rows += 1;
    *sum = sum.wrapping_add(xxh3_128(row));
}

/// Position of the first b'\n': memchr's vectorised search (AVX2 where the CPU has it), since
/// a byte-by-byte search would cost as much as the hashing.
fn find_newline(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of_chunks(chunks: &[&[u8]]) -> Result<RowDigest, TruncatedRow> {
        let mut hasher = RowHasher::new();
        for chunk in chunks {
            hasher.feed(chunk);
        }
        hasher.finish()
    }

    fn digest_whole(data: &[u8]) -> RowDigest {
        digest_of_chunks(&[data]).expect("whole stream ends with a newline")
    }

    const STREAM: &[u8] = b"1\talice@example.com\t2024-01-01 00:00:00+00\n\
2\tbob\\nwith escaped newline\t\\N\n\
3\tcarol\t{\"a\": 1}\n\
\n\
4\ta much longer row that spans more than one sixteen byte block of the scanner\n";

    #[test]
    fn every_split_point_gives_the_same_digest() {
        let whole = digest_whole(STREAM);
        assert_eq!(whole.rows, 5);
        for cut in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(cut);
            assert_eq!(digest_of_chunks(&[a, b]), Ok(whole), "cut at {cut}");
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_the_same_digest() {
        let whole = digest_whole(STREAM);
        for i in 0..=STREAM.len() {
            for j in i..=STREAM.len() {
                let chunks = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
                assert_eq!(digest_of_chunks(&chunks), Ok(whole), "cuts at {i},{j}");
            }
        }
    }

    #[test]
    fn one_byte_chunks_give_the_same_digest() {
        let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(digest_of_chunks(&chunks), Ok(digest_whole(STREAM)));
    }

    #[test]
    fn row_order_does_not_matter() {
        let a = digest_whole(b"1\tx\n2\ty\n3\tz\n");
        let b = digest_whole(b"3\tz\n1\tx\n2\ty\n");
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn a_duplicated_row_changes_the_fingerprint() {
        let once = digest_whole(b"1\tx\n2\ty\n");
        let twice = digest_whole(b"1\tx\n2\ty\n2\ty\n");
        assert_ne!(once.fingerprint(), twice.fingerprint());
        // xor would cancel a row present twice and leave the sum of nothing.
        assert_ne!(digest_whole(b"a\na\n").sum, 0);
    }

    #[test]
    fn one_changed_byte_changes_the_fingerprint() {
        let a = digest_whole(b"1\tx\n2\ty\n");
        let b = digest_whole(b"1\tx\n2\tz\n");
        assert_eq!(a.rows, b.rows);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn row_count_is_part_of_the_fingerprint() {
        let empty = digest_whole(b"");
        assert_eq!(empty.rows, 0);
        let zero_column_rows = digest_whole(b"\n\n");
        assert_eq!(zero_column_rows.rows, 2);
        assert_ne!(empty.fingerprint(), zero_column_rows.fingerprint());
        assert_ne!(
            digest_whole(b"\n").fingerprint(),
            zero_column_rows.fingerprint()
        );
    }

    #[test]
    fn a_stream_cut_mid_row_is_an_error() {
        assert_eq!(
            digest_of_chunks(&[b"1\tx\n2\t", b"y"]),
            Err(TruncatedRow {
                rows: 1,
                trailing_bytes: 3
            })
        );
    }

    #[test]
    fn find_newline_agrees_with_a_plain_search() {
        let mut data = vec![b'a'; 70];
        for pos in 0..data.len() {
            data[pos] = b'\n';
            for start in 0..=pos {
                assert_eq!(find_newline(&data[start..]), Some(pos - start));
            }
            data[pos] = b'a';
        }
        assert_eq!(find_newline(&data), None);
        assert_eq!(find_newline(b""), None);
    }
}
