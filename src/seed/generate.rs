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

use super::copy;
use super::encode::{encode_payment, encode_plan, encode_subscription, encode_user_row, mix64};
use super::history::{per_mille, simulate_history, History, UserCore, HOUR, NOW};
use super::vocab::PLANS;
use super::{SeedSpec, SeedStats};
use bytes::{Bytes, BytesMut};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use super::history::{HISTORY_SPAN, REFERENCE_INSTANT};

/// Size of the COPY chunks handed to the connection.
pub const CHUNK_BYTES: usize = 1 << 20;

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
                    encode_payment(
                        buf,
                        self.gen.provider_ref_key,
                        self.next_payment_id,
                        sub_id,
                        sub,
                        p,
                    );
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

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
