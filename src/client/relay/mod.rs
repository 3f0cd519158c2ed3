//! Relaying one transaction (or, in session mode, the whole session) between a client
//! and its server: client messages are forwarded as they arrive — rewritten only when
//! they name a prepared statement — and server replies are walked header by header,
//! matched against the reply queue, and forwarded in one write per read.

mod from_client;
mod prepared;
mod replies;
mod splice;

pub(super) use prepared::ClientStatements;

use std::time::Instant;

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::session::{sleep_until_opt, Relayed, Session, CLIENT_READ};
use crate::client::Refusal;
use crate::config::{PoolMode, Settings};
use crate::logfmt::reason;
use crate::pool::PooledServer;
use crate::protocol::frame::parameter_status;
use crate::protocol::FrameCursor;
use crate::server::ServerConn;
use crate::stats::PoolStats;
pub(super) use from_client::check_client_message;
use replies::{Disposition, ReplyQueue};
use splice::Splice;
use std::time::Duration;

const SERVER_READ: usize = 16 * 1024;
/// Server messages pgmux reads whole (ReadyForQuery, ParameterStatus, ErrorResponse,
/// CommandComplete) are small; anything larger streams through like a DataRow.
const MAX_INSPECTED: usize = 64 * 1024;

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
        let settings = RelayLimits::from(&*self.config);
        let conn: &mut ServerConn = server;
        let mut queue = ReplyQueue::default();
        let mut server_cursor = FrameCursor::default();
        let mut last_client_activity = Instant::now();
        let mut waiting_since: Option<Instant> = None;
        loop {
            let terminated = self
                .forward_client(conn, &mut queue, &settings, tally)
                .await?;
            if terminated {
                return Ok(Relayed::ClientLeft {
                    clean: queue.is_idle() && !server_cursor.mid_frame(),
                });
            }
            // Everything the client sent was answered by pgmux itself (a refusal): nothing
            // happened on the server, which may go back at once.
            let nothing_pending = self.buf.is_empty() && !self.cursor.mid_frame();
            if self.mode != PoolMode::Session
                && queue.is_idle()
                && nothing_pending
                && tally.transaction_started.is_none()
            {
                return Ok(Relayed::Done);
            }
            if queue.awaiting_server() {
                waiting_since.get_or_insert_with(Instant::now);
                tally.transaction_started.get_or_insert_with(Instant::now);
            }
            let deadline = self.deadline(&settings, &queue, waiting_since, last_client_activity);
            conn.read_buf.reserve(SERVER_READ);
            self.buf.reserve(CLIENT_READ);
            tokio::select! {
                biased;
                read = conn.stream.read_buf(&mut conn.read_buf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Err(self.server_lost());
                    }
                    self.relay_server(conn, &mut server_cursor, &mut queue, tally).await?;
                    if !queue.awaiting_server() {
                        if let Some(since) = waiting_since.take() {
                            let query_us = since.elapsed().as_micros() as u64;
                            tally.query_us += query_us;
                            self.pool.stats.observe_query(query_us);
                        }
                    }
                    if queue.is_idle() && !server_cursor.mid_frame() {
                        if let Some(started) = tally.transaction_started.take() {
                            let transaction_us = started.elapsed().as_micros() as u64;
                            tally.transactions += 1;
                            tally.transaction_us += transaction_us;
                            self.pool.stats.observe_transaction(transaction_us);
                        }
                        if self.mode != PoolMode::Session {
                            return Ok(Relayed::Done);
                        }
                    }
                }
                read = self.stream.read_buf(&mut self.buf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        // The client hung up on the server's FATAL, maybe before pgmux saw
                        // the server's socket close: the server is what ended this.
                        if self.server_sent_fatal {
                            return Err(self.server_lost());
                        }
                        self.left = reason::CLIENT_UNEXPECTED_EOF;
                        return Ok(Relayed::ClientLeft { clean: queue.is_idle() && !server_cursor.mid_frame() });
                    }
                    // Only idle_transaction_timeout reads it: no clock read per message when off.
                    if !settings.idle_transaction_timeout.is_zero() {
                        last_client_activity = Instant::now();
                    }
                }
                _ = self.drain.started(), if self.mode == PoolMode::Session && queue.is_idle() => {
                    return Err(Refusal::ShuttingDown);
                }
                _ = sleep_until_opt(deadline.map(|(at, _)| at)), if deadline.is_some() => {
                    let (_, refusal) = deadline.expect("branch enabled only with a deadline");
                    return Err(refusal());
                }
            }
        }
    }

    /// The next timeout that applies in the relay's current state, with the error it ends
    /// in: PgBouncer's texts, with its 08P01 rather than PostgreSQL's codes for the same
    /// timeouts (57014, 25P03, 57P05), so that clients see what they saw before.
    fn deadline(
        &self,
        settings: &RelayLimits,
        queue: &ReplyQueue,
        waiting_since: Option<Instant>,
        last_client_activity: Instant,
    ) -> Option<(Instant, fn() -> Refusal)> {
        if let Some(since) = waiting_since.filter(|_| !settings.query_timeout.is_zero()) {
            return Some((since + settings.query_timeout, || Refusal::QueryTimeout));
        }
        if queue.idle_in_transaction() && !settings.idle_transaction_timeout.is_zero() {
            return Some((
                last_client_activity + settings.idle_transaction_timeout,
                || Refusal::IdleTransactionTimeout,
            ));
        }
        // No client_idle_timeout here: as in PgBouncer, it closes only clients that hold
        // no server, and a session-mode client holds its server all along.
        None
    }

    /// Walks what the server sent, matching it against the reply queue, and forwards it to
    /// the client in one write — minus replies to pgmux's own requests, plus the replies
    /// pgmux answers itself, each in its place.
    async fn relay_server(
        &mut self,
        conn: &mut ServerConn,
        cursor: &mut FrameCursor,
        queue: &mut ReplyQueue,
        tally: &mut Tally,
    ) -> Result<(), Refusal> {
        let mut splice = Splice::default();
        let mut synthetic = Vec::new();
        let mut failed = Vec::new();
        loop {
            let start = cursor.consumed();
            let frame = cursor
                .next(
                    &conn.read_buf,
                    |tag, _, _| matches!(tag, b'Z' | b'S' | b'E' | b'C'),
                    MAX_INSPECTED,
                )
                .map_err(|e| Refusal::ServerProtocol(e.to_string()))?;
            let Some(frame) = frame else { break };
            let end = cursor.consumed();
            let tag = frame.tag;
            let status = match (tag, frame.body) {
                (b'Z', Some(body)) => {
                    tally.queries += 1;
                    body.first().copied()
                }
                (b'S', Some(body)) => {
                    if let Some((name, value)) = parameter_status(body) {
                        // A parameter the client changed (`SET application_name`) is
                        // what its later transactions must see.
                        if self.params.get(name).is_some() {
                            self.params.set(name, value);
                        }
                        conn.params.set(name, value);
                    }
                    None
                }
                (b'E', Some(body)) => {
                    let severity = crate::server::error_field(body, b'V');
                    self.server_sent_fatal |= matches!(severity, Some("FATAL" | "PANIC"));
                    None
                }
                (b'C', Some(body)) => {
                    self.settings.note_command(body);
                    // DISCARD ALL / DEALLOCATE ALL dropped every prepared statement of
                    // the server; so did this client.
                    if matches!(body, b"DISCARD ALL\0" | b"DEALLOCATE ALL\0") {
                        conn.statements.clear();
                        self.statements.clear();
                    }
                    None
                }
                _ => None,
            };
            if self.mode == PoolMode::Statement && matches!(status, Some(b'T' | b'E')) {
                // A transaction block began: refuse it before the client sees it succeed,
                // as PgBouncer does (the server, mid-transaction, is closed).
                let before = &conn.read_buf[..start];
                self.stream
                    .write_all(before)
                    .await
                    .map_err(|_| Refusal::ClientGone)?;
                return Err(Refusal::StatementModeTransaction);
            }
            let disposition = queue.on_server(tag, status, &mut synthetic, &mut failed);
            if disposition == Disposition::Swallow {
                splice.replace(&conn.read_buf, start, end, &synthetic);
            } else if !synthetic.is_empty() {
                splice.insert(&conn.read_buf, end, &synthetic);
            }
            synthetic.clear();
        }
        for statement in failed {
            conn.statements.remove(statement.id);
        }
        let len = cursor.consumed();
        cursor.rebase();
        let outgoing = splice.finish(&conn.read_buf, len);
        tally.sent += outgoing.len() as u64;
        let result = self.stream.write_all(outgoing).await;
        conn.read_buf.advance(len);
        result.map_err(|_| Refusal::ClientGone)
    }
}
