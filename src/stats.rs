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
