//! Relaying one transaction (or, in session mode, the whole session) between a client
//! and the server it holds:
//!
//! ```text
//!   client ──▶ from_client: check, rewrite, refuse, hold ──▶ outbox ──▶ server
//!                         │ push what the server will owe
//!                         ▼
//!                       model  (one protocol state per server connection)
//!                         ▲ match each reply, undo what the server discarded
//!   client ◀── outbox ◀── from_server: swallow, replace, insert pgmux's replies ◀── server
//! ```
//!
//! `pump` drives both halves at once from one task; `model` alone decides when the
//! server may go back to its pool; `statements` renames prepared statements for whichever
//! server a transaction lands on; `refuse` fails a refused request on the server too.

mod from_client;
mod from_server;
mod model;
mod outbox;
mod pump;
mod refuse;
mod statements;

use std::time::{Duration, Instant};

use crate::client::session::{Relayed, Session};
use crate::client::Refusal;
use crate::config::{PoolMode, Settings};
use crate::pool::PooledServer;
use crate::server::ServerConn;
use crate::stats::PoolStats;
pub(in crate::client) use from_client::{check_client_message, check_message_length};
pub(super) use model::Model;
pub(super) use outbox::Outbox;
use pump::Pump;
pub(super) use statements::ClientStatements;

/// The settings a relay consults, copied once per transaction.
#[derive(Clone, Copy)]
struct RelayLimits {
    query_timeout: Duration,
    idle_transaction_timeout: Duration,
    max_prepared_statements: usize,
    max_packet_size: usize,
}

impl From<&Settings> for RelayLimits {
    fn from(settings: &Settings) -> RelayLimits {
        RelayLimits {
            query_timeout: settings.query_timeout,
            idle_transaction_timeout: settings.idle_transaction_timeout,
            max_prepared_statements: settings.max_prepared_statements,
            max_packet_size: settings.max_packet_size,
        }
    }
}

/// Per-relay counters, added to the pool's stats once at the end.
#[derive(Default)]
struct Tally {
    transactions: u64,
    queries: u64,
    received: u64,
    sent: u64,
    transaction_us: u64,
    query_us: u64,
    transaction_started: Option<Instant>,
}

impl Session {
    /// Relays between the client and `server` until the server may be released (or, in
    /// session mode, until the client leaves).
    pub(super) async fn relay(&mut self, server: &mut PooledServer) -> Result<Relayed, Refusal> {
        let mut tally = Tally::default();
        let outcome = self.relay_counted(server, &mut tally).await;
        let stats = &server.pool().stats;
        PoolStats::add(&stats.transactions, tally.transactions);
        PoolStats::add(&stats.queries, tally.queries);
        PoolStats::add(&stats.bytes_received, tally.received);
        PoolStats::add(&stats.bytes_sent, tally.sent);
        PoolStats::add(&stats.transaction_time_us, tally.transaction_us);
        PoolStats::add(&stats.query_time_us, tally.query_us);
        outcome
    }

    async fn relay_counted(
        &mut self,
        server: &mut PooledServer,
        tally: &mut Tally,
    ) -> Result<Relayed, Refusal> {
        let limits = RelayLimits::from(&*self.config);
        let conn: &mut ServerConn = server;
        self.model.reset();
        self.shrink_statement_cache(conn, limits.max_prepared_statements);
        let session_mode = self.mode == PoolMode::Session;
        let mut drain = self.drain.clone();
        let mut pump = Pump::new(self, conn, limits, tally);
        if session_mode {
            tokio::select! {
                biased;
                outcome = pump::run(&mut pump) => return outcome,
                // Draining: the session ends once its server is clean.
                () = drain.started() => pump.end_when_clean = true,
            }
        }
        pump::run(&mut pump).await
    }

    /// `max_prepared_statements` lowered by a reload: the server closes what it holds
    /// over the new capacity before it serves this client.
    fn shrink_statement_cache(&mut self, conn: &mut ServerConn, capacity: usize) {
        if capacity == 0 || conn.statements.len() <= capacity {
            return;
        }
        self.scratch.clear();
        statements::Rewriter {
            statements: &mut self.statements,
            server: &mut conn.statements,
            registry: &self.shared.statements,
            model: &mut self.model,
            stats: &self.pool.stats,
            capacity,
        }
        .shrink_cache(&mut self.scratch);
        self.to_server.push(&self.scratch);
    }
}
