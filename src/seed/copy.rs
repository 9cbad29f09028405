//! Hand-written encoder for PostgreSQL's binary COPY format.
//!
//! The server does no text parsing for binary COPY, which is most of what makes it faster than
//! CSV; writing the bytes by hand (instead of through `BinaryCopyInWriter` and `ToSql`) saves a
//! boxed future and a type check per field. Layout reference: the "Binary Format" section of
//! the COPY page in the PostgreSQL manual. All integers are big-endian, as `BufMut::put_*` writes.

use bytes::{BufMut, BytesMut};

/// Signature, flags (no OIDs) and an empty header extension: 11 + 4 + 4 bytes.
pub const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The file trailer: a 16-bit field count of -1.
pub const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Microseconds in one day, the unit PostgreSQL uses for timestamps and intervals.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days from 1970-01-01 (Unix epoch) to 2000-01-01 (PostgreSQL's timestamp epoch).
const UNIX_TO_PG_EPOCH_DAYS: i64 = 10_957;

/// Writes the file header.
pub fn put_header(buf: &mut BytesMut) {
    buf.put_slice(HEADER);
}

/// Writes the file trailer.
pub fn put_trailer(buf: &mut BytesMut) {
    buf.put_slice(&TRAILER);
}

/// Starts a tuple of `fields` columns.
#[inline]
pub fn put_tuple(buf: &mut BytesMut, fields: i16) {
    buf.put_i16(fields);
}

/// Writes SQL NULL.
#[inline]
pub fn put_null(buf: &mut BytesMut) {
    buf.put_i32(-1);
}

/// Writes a `smallint`.
#[inline]
pub fn put_i16(buf: &mut BytesMut, v: i16) {
    buf.put_i32(2);
    buf.put_i16(v);
}

/// Writes an `integer`.
#[inline]
pub fn put_i32(buf: &mut BytesMut, v: i32) {
    buf.put_i32(4);
    buf.put_i32(v);
}

/// Writes a `bigint`.
#[inline]
pub fn put_i64(buf: &mut BytesMut, v: i64) {
    buf.put_i32(8);
    buf.put_i64(v);
}

/// Writes a `timestamptz` given in microseconds since 2000-01-01 00:00:00 UTC.
#[inline]
pub fn put_timestamptz(buf: &mut BytesMut, micros: i64) {
    put_i64(buf, micros);
}

/// Writes an optional `timestamptz`, NULL for `None`.
#[inline]
pub fn put_opt_timestamptz(buf: &mut BytesMut, micros: Option<i64>) {
    match micros {
        Some(v) => put_timestamptz(buf, v),
        None => put_null(buf),
    }
}

/// Writes `text`, `citext`, `char(n)` or an enum label: all travel as their UTF-8 bytes.
#[inline]
pub fn put_text(buf: &mut BytesMut, s: &str) {
    buf.put_i32(s.len() as i32);
    buf.put_slice(s.as_bytes());
}

/// Writes an `interval` of whole months, days and microseconds.
pub fn put_interval(buf: &mut BytesMut, micros: i64, days: i32, months: i32) {
    buf.put_i32(16);
    buf.put_i64(micros);
    buf.put_i32(days);
    buf.put_i32(months);
}

/// Writes a `numeric` holding `units / 10^4`, with display scale 4 (fits `numeric(5,4)`).
///
/// Numeric's binary form is base-10000 digits; a value below 10000 units is one fractional
/// digit group, which is all a rate between 0 and 1 needs.
pub fn put_numeric_scale4(buf: &mut BytesMut, units: u32) {
    let whole = units / 10_000;
    let frac = units % 10_000;
    let mut digits: [i16; 2] = [0; 2];
    let (ndigits, weight) = match (whole, frac) {
        (0, 0) => (0, 0),
        (0, f) => {
            digits[0] = f as i16;
            (1, -1)
        }
        (w, 0) => {
            digits[0] = w as i16;
            (1, 0)
        }
        (w, f) => {
            digits = [w as i16, f as i16];
            (2, 0)
        }
    };
    buf.put_i32(8 + 2 * ndigits);
    buf.put_i16(ndigits as i16);
    buf.put_i16(weight);
    buf.put_u16(0); // sign: positive
    buf.put_u16(4); // display scale
    for d in &digits[..ndigits as usize] {
        buf.put_i16(*d);
    }
}

/// A field whose length is known only after it is written (jsonb, composed text).
///
/// `begin` reserves the 4-byte length word; `end` patches it, so the value is written once,
/// straight into the output buffer.
pub struct Field {
    len_at: usize,
}

impl Field {
    /// Reserves the length word of a field of arbitrary type.
    #[inline]
    pub fn begin(buf: &mut BytesMut) -> Field {
        let len_at = buf.len();
        buf.put_i32(0);
        Field { len_at }
    }

    /// Reserves the length word of a `jsonb` field and writes its format version byte (1):
    /// the rest is the JSON text.
    #[inline]
    pub fn begin_jsonb(buf: &mut BytesMut) -> Field {
        let f = Field::begin(buf);
        buf.put_u8(1);
        f
    }

    /// Patches the length word with the bytes written since `begin`.
    #[inline]
    pub fn end(self, buf: &mut BytesMut) {
        let len = (buf.len() - self.len_at - 4) as i32;
        buf[self.len_at..self.len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Appends the decimal digits of `v` (no allocation, unlike `format!`).
#[inline]
pub fn put_decimal(buf: &mut BytesMut, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
}

/// Civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`: exact for the proleptic Gregorian calendar, no tables.
fn civil_from_unix_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (inverse of `civil_from_unix_days`).
const fn unix_days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// PostgreSQL microseconds of a UTC civil date and time.
pub const fn pg_micros(y: i64, m: u32, d: u32, hour: u32, min: u32, sec: u32) -> i64 {
    let days = unix_days_from_civil(y, m, d) - UNIX_TO_PG_EPOCH_DAYS;
    days * MICROS_PER_DAY + (((hour * 60 + min) * 60 + sec) as i64) * 1_000_000
}

/// `ts + months` in UTC, clamping the day to the month's end like PostgreSQL's
/// `timestamptz + interval 'n months'` does (Jan 31 + 1 month = Feb 28 or 29).
pub fn add_months(ts: i64, months: u32) -> i64 {
    let days = ts.div_euclid(MICROS_PER_DAY);
    let time_of_day = ts.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_unix_days(days + UNIX_TO_PG_EPOCH_DAYS);
    let total = y * 12 + (m as i64 - 1) + months as i64;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    (unix_days_from_civil(ny, nm, nd) - UNIX_TO_PG_EPOCH_DAYS) * MICROS_PER_DAY + time_of_day
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Months, NaiveDate, TimeZone, Utc};

    fn chrono_micros(dt: chrono::DateTime<Utc>) -> i64 {
        let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        (dt - epoch).num_microseconds().unwrap()
    }

    #[test]
    fn add_months_agrees_with_chrono_including_month_end_clamping() {
        let starts = [
            (2023, 1, 31),
            (2023, 3, 31),
            (2024, 1, 29),
            (2024, 2, 29),
            (2025, 12, 15),
            (1999, 11, 30),
        ];
        for (y, m, d) in starts {
            let base = NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_micro_opt(13, 14, 15, 123_456)
                .unwrap()
                .and_utc();
            for k in 0..40u32 {
                let expected = chrono_micros(base.checked_add_months(Months::new(k)).unwrap());
                assert_eq!(
                    add_months(chrono_micros(base), k),
                    expected,
                    "{base} + {k} months"
                );
            }
        }
    }

    #[test]
    fn pg_micros_matches_the_postgres_epoch() {
        assert_eq!(pg_micros(2000, 1, 1, 0, 0, 0), 0);
        let ts = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(pg_micros(2026, 1, 1, 0, 0, 0), chrono_micros(ts));
        assert_eq!(pg_micros(1999, 12, 31, 23, 59, 59), -1_000_000);
    }

    #[test]
    fn numeric_scale4_encodes_base_10000_groups() {
        let enc = |units| {
            let mut b = BytesMut::new();
            put_numeric_scale4(&mut b, units);
            b.to_vec()
        };
        // 0.2000: one digit group 2000 at weight -1, dscale 4.
        assert_eq!(
            enc(2000),
            [0, 0, 0, 10, 0, 1, 0xff, 0xff, 0, 0, 0, 4, 0x07, 0xd0]
        );
        assert_eq!(enc(0), [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 4]);
        assert_eq!(enc(10_000), [0, 0, 0, 10, 0, 1, 0, 0, 0, 0, 0, 4, 0, 1]);
    }

    #[test]
    fn deferred_length_field_patches_its_length() {
        let mut b = BytesMut::new();
        let f = Field::begin_jsonb(&mut b);
        b.put_slice(b"{}");
        f.end(&mut b);
        assert_eq!(&b[..], [0, 0, 0, 3, 1, b'{', b'}']);
    }
}
