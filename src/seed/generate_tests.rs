//! Tests of the generator that read back the COPY bytes it produced, so they check exactly
//! what the server would receive.

use super::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Splits a binary COPY stream into tuples of raw field values (None = NULL), checking the
/// framing: header, field counts, lengths, trailer, nothing after it.
fn decode(stream: &[u8], fields: usize) -> Vec<Vec<Option<&[u8]>>> {
    assert_eq!(&stream[..19], copy::HEADER, "header");
    let mut at = 19;
    let take = |n: usize, at: &mut usize| {
        let s = &stream[*at..*at + n];
        *at += n;
        s
    };
    let mut tuples = Vec::new();
    loop {
        let count = i16::from_be_bytes(take(2, &mut at).try_into().unwrap());
        if count == -1 {
            break;
        }
        assert_eq!(
            count as usize,
            fields,
            "field count of tuple {}",
            tuples.len()
        );
        let mut tuple = Vec::with_capacity(fields);
        for _ in 0..fields {
            let len = i32::from_be_bytes(take(4, &mut at).try_into().unwrap());
            tuple.push(if len < 0 {
                None
            } else {
                Some(take(len as usize, &mut at))
            });
        }
        tuples.push(tuple);
    }
    assert_eq!(at, stream.len(), "bytes after the trailer");
    tuples
}

fn int(v: Option<&[u8]>) -> i64 {
    let v = v.expect("non-null integer");
    match v.len() {
        2 => i16::from_be_bytes(v.try_into().unwrap()) as i64,
        4 => i32::from_be_bytes(v.try_into().unwrap()) as i64,
        8 => i64::from_be_bytes(v.try_into().unwrap()),
        n => panic!("integer of {n} bytes"),
    }
}

fn opt_int(v: Option<&[u8]>) -> Option<i64> {
    v.map(|_| int(v))
}

fn text(v: Option<&[u8]>) -> &str {
    std::str::from_utf8(v.expect("non-null text")).expect("valid UTF-8")
}

fn json(v: Option<&[u8]>) -> Option<serde_json::Value> {
    v.map(|b| {
        assert_eq!(b[0], 1, "jsonb version byte");
        serde_json::from_slice(&b[1..]).expect("valid JSON")
    })
}

fn sha256(t: &EncodedTables) -> String {
    let mut h = Sha256::new();
    for table in Table::LOAD_ORDER {
        h.update(t.table(table));
    }
    hex::encode(h.finalize())
}

#[derive(Debug)]
struct User {
    email: String,
    country: String,
    created_at: i64,
    deleted_at: Option<i64>,
}

#[derive(Debug)]
struct Sub {
    user_id: i64,
    plan_id: i64,
    status: String,
    started_at: i64,
    current_period_end: i64,
    cancelled_at: Option<i64>,
    updated_at: i64,
}

#[derive(Debug)]
struct Pay {
    id: i64,
    subscription_id: i64,
    amount_cents: i64,
    status: String,
    period_start: i64,
    paid_at: i64,
    refunded_at: Option<i64>,
    provider_ref: String,
    details: Option<serde_json::Value>,
}

struct Decoded {
    plans: BTreeMap<i64, i64>,
    users: BTreeMap<i64, User>,
    subs: BTreeMap<i64, Sub>,
    pays: Vec<Pay>,
}

fn decoded(spec: &SeedSpec) -> (EncodedTables, Decoded) {
    let t = encode_all(spec);
    let plans = decode(&t.plans, 7)
        .into_iter()
        .map(|r| (int(r[0]), int(r[3])))
        .collect();
    let mut users = BTreeMap::new();
    for r in decode(&t.users, 7) {
        let profile = json(r[6]).expect("profile is NOT NULL");
        assert!(profile.get("locale").is_some() && profile.get("timezone").is_some());
        let user = User {
            email: text(r[1]).to_string(),
            country: text(r[3]).to_string(),
            created_at: int(r[4]),
            deleted_at: opt_int(r[5]),
        };
        assert!(!text(r[2]).is_empty(), "full_name");
        assert!(users.insert(int(r[0]), user).is_none(), "duplicate user id");
    }
    let mut subs = BTreeMap::new();
    for r in decode(&t.subscriptions, 9) {
        json(r[7]);
        let sub = Sub {
            user_id: int(r[1]),
            plan_id: int(r[2]),
            status: text(r[3]).to_string(),
            started_at: int(r[4]),
            current_period_end: int(r[5]),
            cancelled_at: opt_int(r[6]),
            updated_at: int(r[8]),
        };
        assert!(
            subs.insert(int(r[0]), sub).is_none(),
            "duplicate subscription id"
        );
    }
    let pays = decode(&t.payments, 10)
        .into_iter()
        .map(|r| {
            assert_eq!(text(r[3]), "EUR");
            Pay {
                id: int(r[0]),
                subscription_id: int(r[1]),
                amount_cents: int(r[2]),
                status: text(r[4]).to_string(),
                period_start: int(r[5]),
                paid_at: int(r[6]),
                refunded_at: opt_int(r[7]),
                provider_ref: text(r[8]).to_string(),
                details: json(r[9]),
            }
        })
        .collect();
    (
        t,
        Decoded {
            plans,
            users,
            subs,
            pays,
        },
    )
}

#[test]
fn same_spec_gives_identical_bytes() {
    let spec = SeedSpec {
        rows: 2000,
        seed: 42,
    };
    assert_eq!(sha256(&encode_all(&spec)), sha256(&encode_all(&spec)));
}

#[test]
fn another_seed_or_size_gives_other_bytes() {
    let a = sha256(&encode_all(&SeedSpec {
        rows: 2000,
        seed: 42,
    }));
    assert_ne!(
        a,
        sha256(&encode_all(&SeedSpec {
            rows: 2000,
            seed: 43
        }))
    );
    assert_ne!(
        a,
        sha256(&encode_all(&SeedSpec {
            rows: 2001,
            seed: 42
        }))
    );
}

/// Pins the bytes of one spec across builds: a dependency update (rand, rand_chacha, fake)
/// or a generator change that alters the data fails here. If the change is intended, update
/// the constant and the expected snapshots under fixtures/.
#[test]
fn known_spec_keeps_its_known_bytes() {
    let t = encode_all(&SeedSpec {
        rows: 500,
        seed: 42,
    });
    assert_eq!(
        sha256(&t),
        "1396ca369cc78a96b6caac39acfaaba2c216c423f3a1a85acf14fd7aa13a1725"
    );
}

#[test]
fn chunking_does_not_change_the_stream() {
    let spec = SeedSpec { rows: 700, seed: 7 };
    let whole = encode_all(&spec);
    for table in Table::LOAD_ORDER {
        let mut chunks = TableChunks::new(&spec, table, 4096);
        let mut joined = Vec::new();
        let mut count = 0;
        for chunk in chunks.by_ref() {
            joined.extend_from_slice(&chunk);
            count += 1;
        }
        assert_eq!(joined, whole.table(table).as_ref(), "{table:?}");
        if table != Table::Plans {
            assert!(
                count > 2,
                "{table:?} should span several 4 KiB chunks, got {count}"
            );
        }
    }
}

#[test]
fn stats_count_the_encoded_rows() {
    let (t, d) = decoded(&SeedSpec { rows: 300, seed: 1 });
    assert_eq!(t.stats.plans, d.plans.len() as u64);
    assert_eq!(t.stats.users, 300);
    assert_eq!(t.stats.users, d.users.len() as u64);
    assert_eq!(t.stats.subscriptions, d.subs.len() as u64);
    assert_eq!(t.stats.payments, d.pays.len() as u64);
    let total: usize = Table::LOAD_ORDER.iter().map(|&x| t.table(x).len()).sum();
    assert_eq!(t.stats.bytes_sent, total as u64);
}

#[test]
fn zero_users_gives_empty_but_valid_streams() {
    let t = encode_all(&SeedSpec { rows: 0, seed: 1 });
    assert_eq!(decode(&t.plans, 7).len(), 4);
    assert!(decode(&t.users, 7).is_empty());
    assert!(decode(&t.subscriptions, 9).is_empty());
    assert!(decode(&t.payments, 10).is_empty());
}

/// Every constraint of fixtures/schema.sql, and the business rules the schema cannot state.
#[test]
fn generated_rows_respect_the_schema_and_business_rules() {
    let (_, d) = decoded(&SeedSpec {
        rows: 2000,
        seed: 42,
    });

    // Ids are dense 1..=n, as identity/serial columns would have assigned them.
    assert!(d.users.keys().copied().eq(1..=2000));
    assert!(d.subs.keys().copied().eq(1..=d.subs.len() as i64));
    assert!(d.pays.iter().map(|p| p.id).eq(1..=d.pays.len() as i64));

    let mut emails = BTreeSet::new();
    for (id, u) in &d.users {
        assert!(
            emails.insert(u.email.to_lowercase()),
            "email {} not unique (citext)",
            u.email
        );
        assert!(
            u.email.contains(&format!("{id}@")),
            "email {} carries the id",
            u.email
        );
        assert_eq!(u.country.len(), 2, "country {}", u.country);
        assert!(
            u.created_at >= REFERENCE_INSTANT - HISTORY_SPAN && u.created_at < REFERENCE_INSTANT
        );
        if let Some(del) = u.deleted_at {
            assert!(del >= u.created_at && del <= REFERENCE_INSTANT);
        }
    }
    // Signup order follows id order.
    let created: Vec<i64> = d.users.values().map(|u| u.created_at).collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]));

    let mut live_per_user: BTreeMap<i64, u32> = BTreeMap::new();
    let mut last_end_per_user: BTreeMap<i64, i64> = BTreeMap::new();
    for (id, s) in &d.subs {
        let user = d
            .users
            .get(&s.user_id)
            .unwrap_or_else(|| panic!("subscription {id}: no user"));
        assert!(d.plans.contains_key(&s.plan_id));
        assert!(
            s.started_at >= user.created_at,
            "subscription {id} before signup"
        );
        assert!(
            s.current_period_end > s.started_at,
            "subscription {id} period"
        );
        assert_eq!(
            s.status == "cancelled",
            s.cancelled_at.is_some(),
            "subscription {id}"
        );
        assert!(s.updated_at >= s.started_at && s.updated_at <= REFERENCE_INSTANT);
        if let Some(c) = s.cancelled_at {
            assert!(c >= s.started_at && c <= user.deleted_at.unwrap_or(REFERENCE_INSTANT));
        } else {
            *live_per_user.entry(s.user_id).or_default() += 1;
            assert!(
                user.deleted_at.is_none(),
                "deleted user {} has a live subscription",
                s.user_id
            );
        }
        // A user's subscriptions do not overlap: each starts after the previous one ended.
        if let Some(prev_end) = last_end_per_user.get(&s.user_id) {
            assert!(
                s.started_at > *prev_end,
                "subscription {id} overlaps the previous one"
            );
        }
        if let Some(c) = s.cancelled_at {
            last_end_per_user.insert(s.user_id, c);
        }
        assert!(["trialing", "active", "past_due", "cancelled"].contains(&s.status.as_str()));
    }
    assert!(
        live_per_user.values().all(|&n| n <= 1),
        "at most one live subscription per user"
    );

    let mut refs = BTreeSet::new();
    let mut last_payment: BTreeMap<i64, &Pay> = BTreeMap::new();
    for p in &d.pays {
        let s = d
            .subs
            .get(&p.subscription_id)
            .unwrap_or_else(|| panic!("payment {}: no subscription", p.id));
        assert!(
            p.period_start >= s.started_at,
            "payment {} before its subscription started",
            p.id
        );
        assert!(
            p.paid_at >= p.period_start,
            "payment {} paid before its period",
            p.id
        );
        assert!(p.paid_at <= REFERENCE_INSTANT);
        assert!(
            p.period_start < s.current_period_end,
            "payment {} after the current period",
            p.id
        );
        if let Some(c) = s.cancelled_at {
            assert!(
                p.period_start <= c,
                "payment {} for a period after cancellation",
                p.id
            );
        }
        assert_ne!(
            s.status, "trialing",
            "trialing subscriptions have no payments yet"
        );
        assert_eq!(
            p.amount_cents, d.plans[&s.plan_id],
            "amount is the plan price"
        );
        assert!(p.amount_cents > 0);
        assert_eq!(
            p.status == "refunded",
            p.refunded_at.is_some(),
            "payment {}",
            p.id
        );
        if let Some(r) = p.refunded_at {
            assert!(r >= p.paid_at && r <= REFERENCE_INSTANT);
        }
        assert!(
            refs.insert(p.provider_ref.clone()),
            "provider_ref {} not unique",
            p.provider_ref
        );
        assert!(p.provider_ref.starts_with("pi_") && p.provider_ref.len() == 14);
        if let Some(details) = &p.details {
            assert_eq!(
                details.get("failure_code").is_some(),
                p.status == "failed",
                "payment {}",
                p.id
            );
        }
        let entry = last_payment.entry(p.subscription_id).or_insert(p);
        if (p.paid_at, p.id) > (entry.paid_at, entry.id) {
            *entry = p;
        }
    }
    for (id, s) in &d.subs {
        match s.status.as_str() {
            "past_due" => assert_eq!(
                last_payment[id].status, "failed",
                "past_due {id} last payment"
            ),
            "active" => assert_ne!(
                last_payment[id].status, "failed",
                "active {id} last payment"
            ),
            "trialing" => assert!(!last_payment.contains_key(id)),
            _ => {}
        }
    }
}

/// The shares fixtures/README.md promises, within sampling tolerance.
#[test]
fn distributions_match_the_documented_shares() {
    let n = 20_000;
    let (t, d) = decoded(&SeedSpec {
        rows: n,
        seed: 4242,
    });
    let share = |count: usize, of: usize| count as f64 / of as f64;
    let failures = std::cell::RefCell::new(Vec::<String>::new());
    let within = |name: &str, value: f64, lo: f64, hi: f64| {
        eprintln!("{name}: {value:.4}");
        if !(value >= lo && value <= hi) {
            failures
                .borrow_mut()
                .push(format!("{name} = {value:.4}, expected {lo}..{hi}"));
        }
    };

    let deleted = d.users.values().filter(|u| u.deleted_at.is_some()).count();
    let age_days = |q: usize| {
        let mut ages: Vec<i64> = d
            .users
            .values()
            .map(|u| REFERENCE_INSTANT - u.created_at)
            .collect();
        ages.sort_unstable();
        ages[ages.len() * q / 100] as f64 / copy::MICROS_PER_DAY as f64
    };
    eprintln!(
        "signup age days p25 {:.0} p50 {:.0} p75 {:.0}",
        age_days(25),
        age_days(50),
        age_days(75)
    );
    within("deleted users", share(deleted, n as usize), 0.015, 0.025);

    let subscribers: BTreeSet<i64> = d.subs.values().map(|s| s.user_id).collect();
    within(
        "users with a subscription",
        share(subscribers.len(), n as usize),
        0.76,
        0.84,
    );

    let last_status: BTreeMap<i64, &str> = d
        .subs
        .values()
        .map(|s| (s.user_id, s.status.as_str()))
        .collect();
    let final_share = |st: &str| {
        share(
            last_status.values().filter(|&&v| v == st).count(),
            last_status.len(),
        )
    };
    within("final active", final_share("active"), 0.68, 0.76);
    within("final trialing", final_share("trialing"), 0.025, 0.055);
    within("final past_due", final_share("past_due"), 0.025, 0.055);
    within("final cancelled", final_share("cancelled"), 0.17, 0.24);
    let mut subs_per_user: BTreeMap<i64, usize> = BTreeMap::new();
    for s in d.subs.values() {
        *subs_per_user.entry(s.user_id).or_default() += 1;
    }
    let returning = subs_per_user.values().filter(|&&k| k > 1).count();
    within(
        "subscribers with an earlier cancelled subscription",
        share(returning, subscribers.len()),
        0.12,
        0.19,
    );

    let pays = d.pays.len();
    within("payments per user", share(pays, n as usize), 5.5, 7.5);
    let status_share = |st: &str| share(d.pays.iter().filter(|p| p.status == st).count(), pays);
    within("failed payments", status_share("failed"), 0.025, 0.045);
    within("refunded payments", status_share("refunded"), 0.007, 0.013);
    within("pending payments", status_share("pending"), 0.0005, 0.01);

    assert!(
        d.users.values().all(|u| u.email.is_ascii()),
        "e-mail addresses are ASCII"
    );
    let mixed_case = d
        .users
        .values()
        .filter(|u| u.email != u.email.to_lowercase())
        .count();
    within(
        "mixed-case e-mails",
        share(mixed_case, n as usize),
        0.03,
        0.07,
    );
    let countries: BTreeSet<&str> = d.users.values().map(|u| u.country.as_str()).collect();
    assert!(countries.len() >= 25, "{} countries", countries.len());
    let non_ascii_names = decode(&t.users, 7)
        .iter()
        .filter(|r| !text(r[2]).is_ascii())
        .count();
    within(
        "non-ASCII full names",
        share(non_ascii_names, n as usize),
        0.25,
        0.70,
    );
    assert!(failures.borrow().is_empty(), "{:#?}", failures.borrow());
}
