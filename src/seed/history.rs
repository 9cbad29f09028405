//! A user's subscription and payment history, replayed from its history stream: the
//! subscriptions in start order, each with its billing periods and payments. Pure: the same
//! stream always gives the same history (see the generate module for the streams).

use super::copy::{self, MICROS_PER_DAY};
use super::vocab::{self, PLANS};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// The instant the generated business "now" is: 2026-01-01T00:00:00Z, in PostgreSQL
/// microseconds since 2000-01-01. Fixed so the data never depends on when it is generated.
pub const REFERENCE_INSTANT: i64 = copy::pg_micros(2026, 1, 1, 0, 0, 0);

/// Users signed up during the three years (3 × 365 days) before [`REFERENCE_INSTANT`].
pub const HISTORY_SPAN: i64 = 3 * 365 * DAY;

pub(super) const MINUTE: i64 = 60_000_000;
pub(super) const HOUR: i64 = 60 * MINUTE;
pub(super) const DAY: i64 = MICROS_PER_DAY;
pub(super) const NOW: i64 = REFERENCE_INSTANT;

/// The part of a user the history depends on.
#[derive(Debug, Clone, Copy)]
pub(super) struct UserCore {
    pub(super) id: u64,
    pub(super) created_at: i64,
    pub(super) deleted_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubscriptionStatus {
    Trialing,
    Active,
    PastDue,
    Cancelled,
}

impl SubscriptionStatus {
    pub(super) fn label(self) -> &'static str {
        match self {
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PaymentStatus {
    Succeeded,
    Failed,
    Refunded,
    Pending,
}

impl PaymentStatus {
    pub(super) fn label(self) -> &'static str {
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
pub(super) enum PaymentMethod {
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
pub(super) struct Subscription {
    pub(super) plan: usize,
    pub(super) status: SubscriptionStatus,
    pub(super) started_at: i64,
    pub(super) current_period_end: i64,
    pub(super) cancelled_at: Option<i64>,
    pub(super) updated_at: i64,
    /// Index into `CHANNELS`; `None` means `metadata` is NULL.
    pub(super) channel: Option<usize>,
    pub(super) coupon: Option<&'static str>,
    pub(super) seats: Option<u16>,
    pub(super) method: PaymentMethod,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Payment {
    /// Index into the user's subscriptions.
    pub(super) subscription: u32,
    pub(super) status: PaymentStatus,
    pub(super) period_start: i64,
    pub(super) paid_at: i64,
    pub(super) refunded_at: Option<i64>,
    pub(super) attempt: u8,
    pub(super) failure_code: Option<&'static str>,
    pub(super) refund_reason: Option<&'static str>,
}

/// One user's subscriptions (in start order) and payments (in subscription, period order).
#[derive(Debug, Default)]
pub(super) struct History {
    pub(super) subscriptions: Vec<Subscription>,
    pub(super) payments: Vec<Payment>,
}

/// `true` with probability `n`/1000.
#[inline]
pub(super) fn per_mille(rng: &mut ChaCha8Rng, n: u32) -> bool {
    rng.random_range(0..1000u32) < n
}

#[inline]
pub(super) fn weighted<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let draw = rng.random_range(0..1000u32);
    table[vocab::pick_weighted(table.iter().map(|e| e.1), draw)].0
}

const FINAL_STATUS: [(SubscriptionStatus, u32); 4] = [
    (SubscriptionStatus::Active, 740),
    (SubscriptionStatus::Trialing, 40),
    (SubscriptionStatus::PastDue, 40),
    (SubscriptionStatus::Cancelled, 180),
];
pub(super) const CHANNELS: [(&str, u32); 4] =
    [("web", 570), ("ios", 170), ("android", 145), ("sales", 115)];
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
/// Replays a user's subscription and payment history from its history stream.
///
/// The rules (documented in fixtures/README.md) keep every schema constraint true by
/// construction: subscriptions of a user follow each other in time and only the last one can
/// be live; payments start at the subscription's start and never after the user's deletion or
/// the reference instant.
pub(super) fn simulate_history(core: &UserCore, rng: &mut ChaCha8Rng, h: &mut History) {
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
