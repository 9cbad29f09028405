//! The binary COPY encoding of one row of each table, from the generated values.

use super::copy::{self, Field};
use super::history::{
    per_mille, weighted, Payment, PaymentMethod, Subscription, UserCore, CHANNELS,
};
use super::vocab::{self, HandPicked, PersonName, CURRENCY, PLANS};
use bytes::{BufMut, BytesMut};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

const SIGNUP_SOURCES: [(&str, u32); 4] = [
    ("organic", 450),
    ("ads", 250),
    ("referral", 200),
    ("partner", 100),
];
const THEMES: [(&str, u32); 3] = [("light", 500), ("dark", 350), ("system", 150)];

pub(super) fn encode_plan(buf: &mut BytesMut, plan: &vocab::Plan) {
    copy::put_tuple(buf, 7);
    copy::put_i16(buf, plan.id);
    copy::put_text(buf, plan.code);
    copy::put_text(buf, plan.name);
    copy::put_i32(buf, plan.price_cents);
    copy::put_text(buf, CURRENCY);
    copy::put_numeric_scale4(buf, plan.vat_rate_units);
    copy::put_interval(buf, 0, 0, 1);
}

/// Who a user is: a generated person from a country, or a hand-picked name.
enum Identity {
    Generated(&'static vocab::Country, PersonName),
    HandPicked(&'static HandPicked),
}

pub(super) fn encode_user_row(
    buf: &mut BytesMut,
    core: &UserCore,
    rng: &mut ChaCha8Rng,
    scratch: &mut Vec<u8>,
) {
    let identity = if per_mille(rng, 15) {
        Identity::HandPicked(&vocab::HAND_PICKED[rng.random_range(0..vocab::HAND_PICKED.len())])
    } else {
        let draw = rng.random_range(0..1000u32);
        let country = &vocab::COUNTRIES
            [vocab::pick_weighted(vocab::COUNTRIES.iter().map(|c| c.weight), draw)];
        Identity::Generated(country, vocab::fake_person(country.names, rng))
    };
    let (country, locale, timezone) = match &identity {
        Identity::Generated(c, _) => (c.code, c.locale, c.timezone),
        Identity::HandPicked(h) => (h.country, h.locale, h.timezone),
    };

    copy::put_tuple(buf, 7);
    copy::put_i64(buf, core.id as i64);

    // E-mail: a letters-only slug, then the user id. The slug never ends in a digit, so the
    // trailing digits are exactly the id and addresses are unique even case-insensitively.
    scratch.clear();
    let (first_len, last_len) = match &identity {
        Identity::Generated(_, p) => (
            vocab::push_slug(scratch, p.first),
            vocab::push_slug(scratch, p.last),
        ),
        Identity::HandPicked(h) => {
            let mut words = h.full_name.split_whitespace();
            let first = words.next().unwrap_or("");
            let last = words.next_back().unwrap_or("");
            (
                vocab::push_slug(scratch, first),
                vocab::push_slug(scratch, last),
            )
        }
    };
    let (first, last) = scratch.split_at(first_len);
    debug_assert_eq!(last.len(), last_len);
    let pattern = rng.random_range(0..100u32);
    let capitalized = per_mille(rng, 50);
    let domain = weighted(rng, &vocab::EMAIL_DOMAINS);
    let email = Field::begin(buf);
    let part = |buf: &mut BytesMut, s: &[u8]| {
        if let Some((head, tail)) = s.split_first() {
            buf.put_u8(if capitalized {
                head.to_ascii_uppercase()
            } else {
                *head
            });
            buf.put_slice(tail);
        }
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => buf.put_slice(b"user"),
        (false, true) => part(buf, first),
        (true, false) => part(buf, last),
        (false, false) => match pattern {
            0..35 => {
                part(buf, first);
                buf.put_u8(b'.');
                part(buf, last);
            }
            35..55 => part(buf, first),
            55..70 => {
                part(buf, first);
                buf.put_u8(b'_');
                part(buf, last);
            }
            70..85 => {
                part(buf, &first[..1]);
                part(buf, last);
            }
            _ => {
                part(buf, last);
                buf.put_u8(b'.');
                part(buf, first);
            }
        },
    }
    copy::put_decimal(buf, core.id);
    buf.put_u8(b'@');
    buf.put_slice(domain.as_bytes());
    email.end(buf);

    let name = Field::begin(buf);
    match &identity {
        Identity::Generated(_, p) => {
            let (a, b) = if p.family_first {
                (p.last, p.first)
            } else {
                (p.first, p.last)
            };
            buf.put_slice(a.as_bytes());
            if p.spaced {
                buf.put_u8(b' ');
            }
            buf.put_slice(b.as_bytes());
        }
        Identity::HandPicked(h) => buf.put_slice(h.full_name.as_bytes()),
    }
    name.end(buf);

    copy::put_text(buf, country);
    copy::put_timestamptz(buf, core.created_at);
    copy::put_opt_timestamptz(buf, core.deleted_at);

    let newsletter = per_mille(rng, 350);
    let source = weighted(rng, &SIGNUP_SOURCES);
    let theme = weighted(rng, &THEMES);
    let profile = Field::begin_jsonb(buf);
    buf.put_slice(b"{\"locale\":\"");
    buf.put_slice(locale.as_bytes());
    buf.put_slice(b"\",\"timezone\":\"");
    buf.put_slice(timezone.as_bytes());
    buf.put_slice(if newsletter {
        b"\",\"newsletter\":true"
    } else {
        b"\",\"newsletter\":false"
    });
    buf.put_slice(b",\"signup_source\":\"");
    buf.put_slice(source.as_bytes());
    buf.put_slice(b"\",\"theme\":\"");
    buf.put_slice(theme.as_bytes());
    if source == "referral" {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        buf.put_slice(b"\",\"referral_code\":\"");
        for _ in 0..8 {
            buf.put_u8(ALPHABET[rng.random_range(0..ALPHABET.len())]);
        }
    }
    buf.put_slice(b"\"}");
    profile.end(buf);
}

pub(super) fn encode_subscription(buf: &mut BytesMut, id: i64, user_id: u64, sub: &Subscription) {
    copy::put_tuple(buf, 9);
    copy::put_i64(buf, id);
    copy::put_i64(buf, user_id as i64);
    copy::put_i16(buf, PLANS[sub.plan].id);
    copy::put_text(buf, sub.status.label());
    copy::put_timestamptz(buf, sub.started_at);
    copy::put_timestamptz(buf, sub.current_period_end);
    copy::put_opt_timestamptz(buf, sub.cancelled_at);
    match sub.channel {
        None => copy::put_null(buf),
        Some(channel) => {
            let meta = Field::begin_jsonb(buf);
            buf.put_slice(b"{\"channel\":\"");
            buf.put_slice(CHANNELS[channel].0.as_bytes());
            buf.put_u8(b'"');
            if let Some(coupon) = sub.coupon {
                buf.put_slice(b",\"coupon\":\"");
                buf.put_slice(coupon.as_bytes());
                buf.put_u8(b'"');
            }
            if let Some(seats) = sub.seats {
                buf.put_slice(b",\"seats\":");
                copy::put_decimal(buf, seats as u64);
            }
            buf.put_u8(b'}');
            meta.end(buf);
        }
    }
    copy::put_timestamptz(buf, sub.updated_at);
}

pub(super) fn encode_payment(
    buf: &mut BytesMut,
    provider_ref_key: u64,
    id: i64,
    sub_id: i64,
    sub: &Subscription,
    p: &Payment,
) {
    copy::put_tuple(buf, 10);
    copy::put_i64(buf, id);
    copy::put_i64(buf, sub_id);
    copy::put_i32(buf, PLANS[sub.plan].price_cents);
    copy::put_text(buf, CURRENCY);
    copy::put_text(buf, p.status.label());
    copy::put_timestamptz(buf, p.period_start);
    copy::put_timestamptz(buf, p.paid_at);
    copy::put_opt_timestamptz(buf, p.refunded_at);

    // A bijection of the id, written in fixed-width base 62: unique without bookkeeping.
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut v = mix64(id as u64 ^ provider_ref_key);
    let mut digits = [0u8; 11];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    buf.put_i32(3 + 11);
    buf.put_slice(b"pi_");
    buf.put_slice(&digits);

    // Kept to the keys that carry information: jsonb input parsing costs the server per key,
    // and payments are most of the rows.
    let details = match sub.method {
        PaymentMethod::Unrecorded => {
            copy::put_null(buf);
            return;
        }
        PaymentMethod::Card { brand, last4 } => {
            let f = Field::begin_jsonb(buf);
            buf.put_slice(b"{\"card_brand\":\"");
            buf.put_slice(brand.as_bytes());
            buf.put_slice(b"\",\"card_last4\":\"");
            let l = last4 as usize;
            buf.put_slice(&[
                b'0' + (l / 1000) as u8,
                b'0' + (l / 100 % 10) as u8,
                b'0' + (l / 10 % 10) as u8,
                b'0' + (l % 10) as u8,
            ]);
            buf.put_u8(b'"');
            f
        }
        PaymentMethod::SepaDebit { mandate } => {
            let f = Field::begin_jsonb(buf);
            buf.put_slice(b"{\"sepa_mandate\":\"MD");
            let mut m = [b'0'; 8];
            let mut v = mandate;
            for d in m.iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
            buf.put_slice(&m);
            buf.put_u8(b'"');
            f
        }
    };
    if p.attempt > 1 {
        buf.put_slice(b",\"attempt\":");
        copy::put_decimal(buf, p.attempt as u64);
    }
    if let Some(code) = p.failure_code {
        buf.put_slice(b",\"failure_code\":\"");
        buf.put_slice(code.as_bytes());
        buf.put_u8(b'"');
    }
    if let Some(reason) = p.refund_reason {
        buf.put_slice(b",\"refund_reason\":\"");
        buf.put_slice(reason.as_bytes());
        buf.put_u8(b'"');
    }
    buf.put_u8(b'}');
    details.end(buf);
}

/// SplitMix64's finaliser: a bijection on u64 that scatters consecutive inputs.
pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
