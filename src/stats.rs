//! Counters of one pool, updated once per transaction (not per message) and read by
//! the admin console and metrics. Totals only; averages are derived by the reader.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct PoolStats {
    pub server_assignments: AtomicU64,
    pub transactions: AtomicU64,
    pub queries: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub transaction_time_us: AtomicU64,
    pub query_time_us: AtomicU64,
    pub wait_time_us: AtomicU64,
    /// Parse messages of named statements from clients.
    pub client_parses: AtomicU64,
    /// Parse messages pgmux sent to servers (a client's first, or a re-prepare).
    pub server_parses: AtomicU64,
    pub binds: AtomicU64,
    /// Client Parses answered from a server's cache without asking it.
    pub prepared_cache_hits: AtomicU64,
    /// Statements closed on a server to keep it under `max_prepared_statements`.
    pub prepared_evictions: AtomicU64,
    /// Latency histograms for `/metrics`.
    pub latencies: Latencies,
    /// Totals at the last two `stats_period` ticks: (older, newer).
    periods: std::sync::Mutex<(Totals, Totals)>,
}

impl PoolStats {
    pub fn add(counter: &AtomicU64, amount: u64) {
        if amount > 0 {
            counter.fetch_add(amount, Ordering::Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Upper bounds (µs) of the latency histogram buckets; the last bucket is +Inf.
pub const BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// A fixed-bucket latency histogram (Prometheus style), updated without locks.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// Cumulative bucket counts (one per bound, then +Inf), the sum and the count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<u64>,
    pub sum_us: u64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, us: u64) {
        let index = BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|bucket| {
                running += bucket.load(Ordering::Relaxed);
                running
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_us: self.sum_us.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// Latency distributions of one pool, for `/metrics`.
#[derive(Debug, Default)]
pub struct Latencies {
    /// How long clients waited for a server (observed at checkout).
    pub wait: Histogram,
    pub query: Histogram,
    pub transaction: Histogram,
}

/// A plain copy of a pool's counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub server_assignments: u64,
    pub transactions: u64,
    pub queries: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub transaction_time_us: u64,
    pub query_time_us: u64,
    pub wait_time_us: u64,
    pub client_parses: u64,
    pub server_parses: u64,
    pub binds: u64,
}

impl std::ops::Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            server_assignments: self.server_assignments + o.server_assignments,
            transactions: self.transactions + o.transactions,
            queries: self.queries + o.queries,
            bytes_received: self.bytes_received + o.bytes_received,
            bytes_sent: self.bytes_sent + o.bytes_sent,
            transaction_time_us: self.transaction_time_us + o.transaction_time_us,
            query_time_us: self.query_time_us + o.query_time_us,
            wait_time_us: self.wait_time_us + o.wait_time_us,
            client_parses: self.client_parses + o.client_parses,
            server_parses: self.server_parses + o.server_parses,
            binds: self.binds + o.binds,
        }
    }
}

impl Totals {
    /// PgBouncer's `calc_average`: counts and bytes per second over `elapsed`; times per
    /// transaction, per query, and per server assignment (wait), in microseconds.
    pub fn average_since(&self, old: &Totals, elapsed: std::time::Duration) -> Totals {
        let us = elapsed.as_micros() as u64;
        if us == 0 {
            return Totals::default();
        }
        let rate = |now: u64, then: u64| now.saturating_sub(then) * 1_000_000 / us;
        let per =
            |now: u64, then: u64, n: u64| now.saturating_sub(then).checked_div(n).unwrap_or(0);
        let xacts = self.transactions.saturating_sub(old.transactions);
        let queries = self.queries.saturating_sub(old.queries);
        let assignments = self
            .server_assignments
            .saturating_sub(old.server_assignments);
        Totals {
            server_assignments: rate(self.server_assignments, old.server_assignments),
            transactions: rate(self.transactions, old.transactions),
            queries: rate(self.queries, old.queries),
            bytes_received: rate(self.bytes_received, old.bytes_received),
            bytes_sent: rate(self.bytes_sent, old.bytes_sent),
            transaction_time_us: per(self.transaction_time_us, old.transaction_time_us, xacts),
            query_time_us: per(self.query_time_us, old.query_time_us, queries),
            wait_time_us: per(self.wait_time_us, old.wait_time_us, assignments),
            client_parses: rate(self.client_parses, old.client_parses),
            server_parses: rate(self.server_parses, old.server_parses),
            binds: rate(self.binds, old.binds),
        }
    }
}

impl PoolStats {
    pub fn totals(&self) -> Totals {
        let get = Self::get;
        Totals {
            server_assignments: get(&self.server_assignments),
            transactions: get(&self.transactions),
            queries: get(&self.queries),
            bytes_received: get(&self.bytes_received),
            bytes_sent: get(&self.bytes_sent),
            transaction_time_us: get(&self.transaction_time_us),
            query_time_us: get(&self.query_time_us),
            wait_time_us: get(&self.wait_time_us),
            client_parses: get(&self.client_parses),
            server_parses: get(&self.server_parses),
            binds: get(&self.binds),
        }
    }

    /// One finished transaction and its duration, for the histograms (the counters are
    /// added by the relay's tally). Call once per transaction.
    pub fn observe_transaction(&self, transaction_us: u64) {
        self.latencies.transaction.observe(transaction_us);
    }

    /// One finished query and its duration, for the histograms.
    pub fn observe_query(&self, query_us: u64) {
        self.latencies.query.observe(query_us);
    }

    /// How long a client waited for a server, for the histograms.
    pub fn observe_wait(&self, wait_us: u64) {
        self.latencies.wait.observe(wait_us);
    }

    /// Every `stats_period`: the previous period's snapshot becomes the base of averages.
    pub fn roll_period(&self) {
        let mut periods = self.periods.lock().unwrap_or_else(|p| p.into_inner());
        periods.0 = periods.1;
        periods.1 = self.totals();
    }

    /// The totals at the start of the current averaging window (PgBouncer's `older_stats`).
    pub fn older(&self) -> Totals {
        self.periods.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// When the last two `stats_period` ticks happened (PgBouncer's `old_stamp`/`new_stamp`).
#[derive(Debug)]
pub struct StatsClock {
    stamps: std::sync::Mutex<(std::time::Instant, std::time::Instant)>,
}

impl Default for StatsClock {
    fn default() -> Self {
        let now = std::time::Instant::now();
        // As PgBouncer's stats_setup: the first window pretends to have begun 1 s ago.
        let old = now
            .checked_sub(std::time::Duration::from_secs(1))
            .unwrap_or(now);
        StatsClock {
            stamps: std::sync::Mutex::new((old, now)),
        }
    }
}

impl StatsClock {
    pub fn tick(&self) {
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        stamps.0 = stamps.1;
        stamps.1 = std::time::Instant::now();
    }

    /// Time since the start of the averaging window.
    pub fn window(&self) -> std::time::Duration {
        self.stamps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .elapsed()
    }
}
