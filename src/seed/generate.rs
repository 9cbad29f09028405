//! Deterministic data generation, straight into binary COPY bytes.
//!
//! Every user owns two ChaCha8 streams keyed by the spec's seed: stream `2·id` for the user
//! row (name, e-mail, country, profile) and stream `2·id + 1` for signup time, deletion and
//! the whole subscription and payment history. A user's data is therefore a pure function of
//! (seed, rows, id): the subscriptions and payments passes replay the history stream without
//! keeping anything from the users pass in memory, and no output depends on thread timing,
//! hash order or the wall clock (all times are relative to [`REFERENCE_INSTANT`]).
//!
//! The distributions are documented, with their percentages, in fixtures/README.md.

use super::copy::{self, Field, MICROS_PER_DAY};
use super::vocab::{self, HandPicked, PersonName, CURRENCY, PLANS};
use super::{SeedSpec, SeedStats};
use bytes::{BufMut, Bytes, BytesMut};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The instant the generated business "now" is: 2026-01-01T00:00:00Z, in PostgreSQL
/// microseconds since 2000-01-01. Fixed so the data never depends on when it is generated.
pub const REFERENCE_INSTANT: i64 = copy::pg_micros(2026, 1, 1, 0, 0, 0);

/// Users signed up during the three years (3 × 365 days) before [`REFERENCE_INSTANT`].
pub const HISTORY_SPAN: i64 = 3 * 365 * DAY;

/// Size of the COPY chunks handed to the connection.
pub const CHUNK_BYTES: usize = 1 << 20;

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = MICROS_PER_DAY;
const NOW: i64 = REFERENCE_INSTANT;

/// A table the seed loads, in foreign-key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `plans`: four fixed rows.
    Plans,
    /// `users`: `spec.rows` rows.
    Users,
    /// `subscriptions`: the users' subscription histories.
    Subscriptions,
    /// `payments`: one row per billing attempt.
    Payments,
}

impl Table {
    /// Tables in the order foreign keys require them to be loaded.
    pub const LOAD_ORDER: [Table; 4] = [
        Table::Plans,
        Table::Users,
        Table::Subscriptions,
        Table::Payments,
    ];

    /// The table's name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            Table::Plans => "plans",
            Table::Users => "users",
            Table::Subscriptions => "subscriptions",
            Table::Payments => "payments",
        }
    }

    /// The `COPY … FROM STDIN (FORMAT binary)` statement whose column order the encoder writes.
    pub fn copy_statement(self) -> &'static str {
        match self {
            Table::Plans => {
                "COPY plans (id, code, name, price_cents, currency, vat_rate, billing_interval) \
                 FROM STDIN (FORMAT binary)"
            }
            Table::Users => {
                "COPY users (id, email, full_name, country, created_at, deleted_at, profile) \
                 FROM STDIN (FORMAT binary)"
            }
            Table::Subscriptions => {
                "COPY subscriptions (id, user_id, plan_id, status, started_at, current_period_end, \
                 cancelled_at, metadata, updated_at) FROM STDIN (FORMAT binary)"
            }
            Table::Payments => {
                "COPY payments (id, subscription_id, amount_cents, currency, status, period_start, \
                 paid_at, refunded_at, provider_ref, details) FROM STDIN (FORMAT binary)"
            }
        }
    }
}

/// The complete binary COPY streams of one spec, for benchmarks and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedTables {
    /// COPY stream of `plans`.
    pub plans: Bytes,
    /// COPY stream of `users`.
    pub users: Bytes,
    /// COPY stream of `subscriptions`.
    pub subscriptions: Bytes,
    /// COPY stream of `payments`.
    pub payments: Bytes,
    /// Row counts, and in `bytes_sent` the total size of the four streams.
    pub stats: SeedStats,
}

impl EncodedTables {
    /// The stream of `table`.
    pub fn table(&self, table: Table) -> &Bytes {
        match table {
            Table::Plans => &self.plans,
            Table::Users => &self.users,
            Table::Subscriptions => &self.subscriptions,
            Table::Payments => &self.payments,
        }
    }
}

/// Generates and encodes all four tables of `spec` in memory.
pub fn encode_all(spec: &SeedSpec) -> EncodedTables {
    let mut streams = Table::LOAD_ORDER.map(|table| {
        let mut chunks = TableChunks::new(spec, table, usize::MAX);
        let bytes = chunks
            .next()
            .expect("a table stream has at least its header");
        debug_assert!(chunks.next().is_none());
        (bytes, chunks.rows())
    });
    let bytes_sent = streams.iter().map(|(b, _)| b.len() as u64).sum();
    let stats = SeedStats {
        plans: streams[0].1,
        users: streams[1].1,
        subscriptions: streams[2].1,
        payments: streams[3].1,
        bytes_sent,
    };
    let take = |i: usize, s: &mut [(Bytes, u64); 4]| std::mem::take(&mut s[i].0);
    EncodedTables {
        plans: take(0, &mut streams),
        users: take(1, &mut streams),
        subscriptions: take(2, &mut streams),
        payments: take(3, &mut streams),
        stats,
    }
}

/// The binary COPY stream of one table, cut into chunks of about `chunk_bytes`.
///
/// The first chunk starts with the COPY header and the last one ends with the trailer, so the
/// chunks concatenated are the same bytes whatever the chunk size.
pub struct TableChunks {
    gen: Generator,
    table: Table,
    chunk_bytes: usize,
    next_user: u64,
    next_subscription_id: i64,
    next_payment_id: i64,
    rows: u64,
    history: History,
    scratch: Vec<u8>,
    started: bool,
    finished: bool,
}

impl TableChunks {
    /// Chunks of `table` for `spec`.
    pub fn new(spec: &SeedSpec, table: Table, chunk_bytes: usize) -> TableChunks {
        TableChunks {
            gen: Generator::new(spec),
            table,
            chunk_bytes: chunk_bytes.max(1),
            next_user: 1,
            next_subscription_id: 1,
            next_payment_id: 1,
            rows: 0,
            history: History::default(),
            scratch: Vec::with_capacity(64),
            started: false,
            finished: false,
        }
    }

    /// The table being encoded.
    pub fn table(&self) -> Table {
        self.table
    }

    /// Rows encoded so far (all of them once the iterator is exhausted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn encode_user(&mut self, id: u64, buf: &mut BytesMut) {
        let (core, mut history_rng) = self.gen.user_core(id);
        match self.table {
            Table::Plans => {}
            Table::Users => {
                let mut rng = self.gen.stream(id, 0);
                encode_user_row(buf, &core, &mut rng, &mut self.scratch);
                self.rows += 1;
            }
            Table::Subscriptions => {
                simulate_history(&core, &mut history_rng, &mut self.history);
                for sub in &self.history.subscriptions {
                    encode_subscription(buf, self.next_subscription_id, id, sub);
                    self.next_subscription_id += 1;
                    self.rows += 1;
                }
            }
            Table::Payments => {
                simulate_history(&core, &mut history_rng, &mut self.history);
                let first_sub_id = self.next_subscription_id;
                for p in &self.history.payments {
                    let sub = &self.history.subscriptions[p.subscription as usize];
                    let sub_id = first_sub_id + p.subscription as i64;
                    encode_payment(buf, &self.gen, self.next_payment_id, sub_id, sub, p);
                    self.next_payment_id += 1;
                    self.rows += 1;
                }
                self.next_subscription_id += self.history.subscriptions.len() as i64;
            }
        }
    }
}

impl Iterator for TableChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let capacity = self
            .chunk_bytes
            .saturating_add(64 * 1024)
            .min(self.gen.estimate(self.table));
        let mut buf = BytesMut::with_capacity(capacity);
        if !self.started {
            self.started = true;
            copy::put_header(&mut buf);
            if self.table == Table::Plans {
                for plan in &PLANS {
                    encode_plan(&mut buf, plan);
                    self.rows += 1;
                }
            }
        }
        if self.table != Table::Plans {
            while buf.len() < self.chunk_bytes && self.next_user <= self.gen.rows {
                let id = self.next_user;
                self.encode_user(id, &mut buf);
                self.next_user += 1;
            }
        }
        if self.table == Table::Plans || self.next_user > self.gen.rows {
            copy::put_trailer(&mut buf);
            self.finished = true;
        }
        Some(buf.freeze())
    }
}

/// Key material shared by all per-user streams of one spec.
#[derive(Clone)]
struct Generator {
    rows: u64,
    key: ChaCha8Rng,
    provider_ref_key: u64,
}

impl Generator {
    fn new(spec: &SeedSpec) -> Generator {
        Generator {
            rows: spec.rows,
            key: ChaCha8Rng::seed_from_u64(spec.seed),
            provider_ref_key: mix64(spec.seed ^ 0x7061_796d_656e_7473),
        }
    }

    /// A fresh stream for one user: lane 0 = user row, lane 1 = history.
    fn stream(&self, id: u64, lane: u64) -> ChaCha8Rng {
        let mut rng = self.key.clone();
        rng.set_stream(id.wrapping_mul(2).wrapping_add(lane));
        rng
    }

    /// Rough size of a whole table stream, to avoid growing a huge buffer by doubling.
    fn estimate(&self, table: Table) -> usize {
        let per_user = match table {
            Table::Plans => return 512,
            Table::Users => 215,
            Table::Subscriptions => 110,
            Table::Payments => 1000,
        };
        (self.rows as usize)
            .saturating_mul(per_user)
            .saturating_add(4096)
    }

    /// Signup and deletion time of a user, and the stream positioned for its history.
    fn user_core(&self, id: u64) -> (UserCore, ChaCha8Rng) {
        let mut rng = self.stream(id, 1);
        // Ids follow signup order, and signups accelerate (a growing business): the user with
        // cumulative share s signed up at span * (sqrt(s) + s^(1/4)) / 2. Only sqrt is used
        // because IEEE 754 rounds it exactly on every platform (powf and cbrt are not).
        let jitter: f64 = rng.random();
        let share = ((id - 1) as f64 + jitter) / self.rows as f64;
        let root = share.sqrt();
        let offset = ((root + root.sqrt()) * 0.5 * HISTORY_SPAN as f64) as i64;
        let created_at = (NOW - HISTORY_SPAN + offset).min(NOW - HOUR);
        let deleted_at = if per_mille(&mut rng, 20) {
            Some(created_at + rng.random_range(HOUR..=NOW - created_at))
        } else {
            None
        };
        let core = UserCore {
            id,
            created_at,
            deleted_at,
        };
        (core, rng)
    }
}

/// The part of a user the history depends on.
#[derive(Debug, Clone, Copy)]
struct UserCore {
    id: u64,
    created_at: i64,
    deleted_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubscriptionStatus {
    Trialing,
    Active,
    PastDue,
    Cancelled,
}

impl SubscriptionStatus {
    fn label(self) -> &'static str {
        match self {
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaymentStatus {
    Succeeded,
    Failed,
    Refunded,
    Pending,
}

impl PaymentStatus {
    fn label(self) -> &'static str {
        match self {
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Pending => "pending",
        }
    }
}

/// How a subscription pays; payments copy it into their `details`.
#[derive(Debug, Clone, Copy)]
enum PaymentMethod {
    Card {
        brand: &'static str,
        last4: u16,
    },
    SepaDebit {
        mandate: u32,
    },
    /// Legacy rows: payments carry no details (NULL).
    Unrecorded,
}

#[derive(Debug, Clone, Copy)]
struct Subscription {
    plan: usize,
    status: SubscriptionStatus,
    started_at: i64,
    current_period_end: i64,
    cancelled_at: Option<i64>,
    updated_at: i64,
    /// Index into `CHANNELS`; `None` means `metadata` is NULL.
    channel: Option<usize>,
    coupon: Option<&'static str>,
    seats: Option<u16>,
    method: PaymentMethod,
}

#[derive(Debug, Clone, Copy)]
struct Payment {
    /// Index into the user's subscriptions.
    subscription: u32,
    status: PaymentStatus,
    period_start: i64,
    paid_at: i64,
    refunded_at: Option<i64>,
    attempt: u8,
    failure_code: Option<&'static str>,
    refund_reason: Option<&'static str>,
}

/// One user's subscriptions (in start order) and payments (in subscription, period order).
#[derive(Debug, Default)]
struct History {
    subscriptions: Vec<Subscription>,
    payments: Vec<Payment>,
}

/// `true` with probability `n`/1000.
#[inline]
fn per_mille(rng: &mut ChaCha8Rng, n: u32) -> bool {
    rng.random_range(0..1000u32) < n
}

#[inline]
fn weighted<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let draw = rng.random_range(0..1000u32);
    table[vocab::pick_weighted(table.iter().map(|e| e.1), draw)].0
}

const FINAL_STATUS: [(SubscriptionStatus, u32); 4] = [
    (SubscriptionStatus::Active, 740),
    (SubscriptionStatus::Trialing, 40),
    (SubscriptionStatus::PastDue, 40),
    (SubscriptionStatus::Cancelled, 180),
];
const CHANNELS: [(&str, u32); 4] = [("web", 570), ("ios", 170), ("android", 145), ("sales", 115)];
const COUPONS: [(&str, u32); 4] = [
    ("WELCOME10", 400),
    ("SPRING25", 250),
    ("BLACKFRIDAY", 250),
    ("PARTNER15", 100),
];
const CARD_BRANDS: [(&str, u32); 3] = [("visa", 550), ("mastercard", 350), ("amex", 100)];
const CARD_FAILURES: [(&str, u32); 3] = [
    ("card_declined", 500),
    ("insufficient_funds", 300),
    ("expired_card", 200),
];
const SEPA_FAILURES: [(&str, u32); 2] = [("insufficient_funds", 700), ("mandate_revoked", 300)];
const REFUND_REASONS: [(&str, u32); 3] = [
    ("requested_by_customer", 750),
    ("duplicate", 150),
    ("fraudulent", 100),
];
const SIGNUP_SOURCES: [(&str, u32); 4] = [
    ("organic", 450),
    ("ads", 250),
    ("referral", 200),
    ("partner", 100),
];
const THEMES: [(&str, u32); 3] = [("light", 500), ("dark", 350), ("system", 150)];

/// Replays a user's subscription and payment history from its history stream.
///
/// The rules (documented in fixtures/README.md) keep every schema constraint true by
/// construction: subscriptions of a user follow each other in time and only the last one can
/// be live; payments start at the subscription's start and never after the user's deletion or
/// the reference instant.
fn simulate_history(core: &UserCore, rng: &mut ChaCha8Rng, h: &mut History) {
    h.subscriptions.clear();
    h.payments.clear();
    if !per_mille(rng, 800) {
        return;
    }
    let horizon = core.deleted_at.unwrap_or(NOW);
    let created = core.created_at;
    let delay = match rng.random_range(0..1000u32) {
        0..550 => rng.random_range(MINUTE..2 * HOUR),
        550..850 => rng.random_range(DAY..30 * DAY),
        _ => rng.random_range(30 * DAY..180 * DAY),
    };
    let mut t = created + delay;
    if t >= horizon {
        t = created + rng.random_range(0..horizon - created);
    }
    let earlier = match rng.random_range(0..1000u32) {
        0..830 => 0,
        830..970 => 1,
        _ => 2,
    };
    for _ in 0..earlier {
        // A churn-and-return story needs time: the earlier subscription ends within the first
        // 3/5 of the time left, and the gap before the next start takes at most half the rest,
        // so the final subscription always fits before the horizon.
        let room = horizon - t;
        if room < 30 * DAY {
            break;
        }
        let ended = cancelled_subscription(rng, h, t, t + room / 5 * 3);
        let gap_max = ((horizon - ended) / 2).min(240 * DAY);
        t = ended + rng.random_range(3 * DAY..=gap_max);
    }
    let status = if core.deleted_at.is_some() {
        SubscriptionStatus::Cancelled
    } else {
        weighted(rng, &FINAL_STATUS)
    };
    match status {
        SubscriptionStatus::Cancelled => {
            cancelled_subscription(rng, h, t, horizon);
        }
        SubscriptionStatus::Trialing => {
            let start = t.max(NOW - rng.random_range(MINUTE..14 * DAY));
            let mut sub = new_subscription(rng, start);
            sub.status = SubscriptionStatus::Trialing;
            sub.current_period_end = start + 14 * DAY;
            h.subscriptions.push(sub);
        }
        SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
            let mut sub = new_subscription(rng, t);
            sub.status = status;
            let index = h.subscriptions.len() as u32;
            let mut periods = 0;
            loop {
                let period_start = copy::add_months(t, periods);
                if period_start >= NOW {
                    break;
                }
                let is_last = copy::add_months(t, periods + 1) >= NOW;
                let last = match (is_last, status) {
                    (true, SubscriptionStatus::PastDue) => LastPeriod::Unpaid,
                    (true, _) => LastPeriod::MaybePending,
                    _ => LastPeriod::No,
                };
                let paid = bill(rng, h, index, &sub, period_start, NOW, last);
                sub.updated_at = sub.updated_at.max(paid);
                periods += 1;
            }
            sub.current_period_end = copy::add_months(t, periods);
            h.subscriptions.push(sub);
        }
    }
}

/// A subscription that churned: cancelled in its trial (12 %) or after a number of paid months
/// (geometric, 85 % chance to renew each month, at most 36). Returns its `cancelled_at`.
fn cancelled_subscription(rng: &mut ChaCha8Rng, h: &mut History, start: i64, horizon: i64) -> i64 {
    let mut sub = new_subscription(rng, start);
    sub.status = SubscriptionStatus::Cancelled;
    if per_mille(rng, 120) {
        let cancelled = (start + rng.random_range(HOUR..14 * DAY)).min(horizon);
        sub.current_period_end = start + 14 * DAY;
        sub.cancelled_at = Some(cancelled);
        sub.updated_at = cancelled;
        h.subscriptions.push(sub);
        return cancelled;
    }
    let mut months = 1;
    while months < 36 && per_mille(rng, 850) {
        months += 1;
    }
    let index = h.subscriptions.len() as u32;
    let mut last_period_start = start;
    let mut billed = 0;
    for k in 0..months {
        let period_start = copy::add_months(start, k);
        if period_start >= horizon {
            break;
        }
        let paid = bill(rng, h, index, &sub, period_start, horizon, LastPeriod::No);
        sub.updated_at = sub.updated_at.max(paid);
        last_period_start = period_start;
        billed = k + 1;
    }
    let cancelled = (last_period_start + rng.random_range(6 * HOUR..28 * DAY)).min(horizon);
    sub.current_period_end = copy::add_months(start, billed);
    sub.cancelled_at = Some(cancelled);
    sub.updated_at = sub.updated_at.max(cancelled);
    h.subscriptions.push(sub);
    cancelled
}

/// The attributes every subscription draws at its start.
fn new_subscription(rng: &mut ChaCha8Rng, start: i64) -> Subscription {
    let plan = vocab::pick_weighted(PLANS.iter().map(|p| p.weight), rng.random_range(0..1000u32));
    let channel = if per_mille(rng, 700) {
        Some(vocab::pick_weighted(
            CHANNELS.iter().map(|c| c.1),
            rng.random_range(0..1000u32),
        ))
    } else {
        None
    };
    let coupon = if channel.is_some() && per_mille(rng, 150) {
        Some(weighted(rng, &COUPONS))
    } else {
        None
    };
    let seats = if channel.is_some() && PLANS[plan].code == "business" {
        Some(rng.random_range(2..=50u16))
    } else {
        None
    };
    let method = match rng.random_range(0..1000u32) {
        0..800 => PaymentMethod::Card {
            brand: weighted(rng, &CARD_BRANDS),
            last4: rng.random_range(0..10_000u16),
        },
        800..950 => PaymentMethod::SepaDebit {
            mandate: rng.random_range(0..100_000_000u32),
        },
        _ => PaymentMethod::Unrecorded,
    };
    Subscription {
        plan,
        status: SubscriptionStatus::Active,
        started_at: start,
        current_period_end: start,
        cancelled_at: None,
        updated_at: start,
        channel,
        coupon,
        seats,
        method,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastPeriod {
    /// Not the last period of a live subscription.
    No,
    /// Last period of a past-due subscription: the charge failed and is not retried yet.
    Unpaid,
    /// Last period of an active subscription: pending if it began less than a day ago.
    MaybePending,
}

/// Bills one period: 3 % of charges fail and are retried 1-3 days later; 1 % of successful
/// charges are refunded later. Returns the time of the last event it wrote.
fn bill(
    rng: &mut ChaCha8Rng,
    h: &mut History,
    subscription: u32,
    sub: &Subscription,
    period_start: i64,
    horizon: i64,
    last: LastPeriod,
) -> i64 {
    let paid_at = (period_start + rng.random_range(0..6 * HOUR)).min(horizon);
    let mut payment = Payment {
        subscription,
        status: PaymentStatus::Succeeded,
        period_start,
        paid_at,
        refunded_at: None,
        attempt: 1,
        failure_code: None,
        refund_reason: None,
    };
    let failure_code = |rng: &mut ChaCha8Rng| match sub.method {
        PaymentMethod::SepaDebit { .. } => weighted(rng, &SEPA_FAILURES),
        _ => weighted(rng, &CARD_FAILURES),
    };
    if last == LastPeriod::Unpaid {
        payment.status = PaymentStatus::Failed;
        payment.failure_code = Some(failure_code(rng));
        h.payments.push(payment);
        return paid_at;
    }
    if last == LastPeriod::MaybePending && period_start > NOW - DAY {
        payment.status = PaymentStatus::Pending;
        h.payments.push(payment);
        return paid_at;
    }
    if per_mille(rng, 30) {
        let mut failed = payment;
        failed.status = PaymentStatus::Failed;
        failed.failure_code = Some(failure_code(rng));
        h.payments.push(failed);
        payment.attempt = 2;
        payment.paid_at = (paid_at + rng.random_range(DAY..3 * DAY)).min(horizon);
    }
    let mut last_event = payment.paid_at;
    if per_mille(rng, 10) {
        let refunded_at = (payment.paid_at + rng.random_range(HOUR..14 * DAY)).min(NOW);
        payment.status = PaymentStatus::Refunded;
        payment.refunded_at = Some(refunded_at);
        payment.refund_reason = Some(weighted(rng, &REFUND_REASONS));
        last_event = refunded_at;
    }
    h.payments.push(payment);
    last_event
}

fn encode_plan(buf: &mut BytesMut, plan: &vocab::Plan) {
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

fn encode_user_row(
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

fn encode_subscription(buf: &mut BytesMut, id: i64, user_id: u64, sub: &Subscription) {
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

fn encode_payment(
    buf: &mut BytesMut,
    gen: &Generator,
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
    let mut v = mix64(id as u64 ^ gen.provider_ref_key);
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
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
