//! The relay's engine: both directions at once, from one task, driven by readiness
//! (DESIGN.md fact 12). Each turn sends what is due to the server, reads the client when
//! there is room, reads the server when there is room, sends what is due to the client,
//! and asks whether the transaction is over. Nothing waits on one direction while the
//! other is blocked: PostgreSQL stops reading while it is blocked writing, so a relay that
//! did could deadlock with a pipelining client. Buffers are bounded: a direction whose
//! peer is slow stops being read until it drains.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::outbox::Source;
use super::{RelayLimits, Tally};
use crate::client::session::{Relayed, Session};
use crate::client::Refusal;
use crate::config::PoolMode;
use crate::logfmt::reason;
use crate::protocol::FrameCursor;
use crate::server::ServerConn;

/// Bytes due to a peer (walked and unsent, or edited) past which its source is not read.
const OUT_LIMIT: usize = 64 * 1024;
/// How much is read from a socket at once.
const CLIENT_READ: usize = 8 * 1024;
const SERVER_READ: usize = 16 * 1024;
/// Server messages pgmux reads whole (ReadyForQuery, ParameterStatus, ErrorResponse,
/// CommandComplete) are small; anything larger streams through like a DataRow.
pub(super) const MAX_INSPECTED: usize = 64 * 1024;

pub(super) struct Pump<'a> {
    pub session: &'a mut Session,
    pub conn: &'a mut ServerConn,
    pub server_cursor: FrameCursor,
    pub limits: RelayLimits,
    pub tally: &'a mut Tally,
    /// A client message waits for the server to settle earlier statement changes.
    pub held: bool,
    /// Anything was sent or answered: until then an empty, clean model means nothing.
    pub started: bool,
    /// The client sent Terminate or closed its socket: what it sent before is delivered,
    /// and then the relay ends.
    pub leaving: bool,
    /// The relay ends in this refusal once what is due to the client is sent.
    pub ending: Option<Refusal>,
    /// Session mode while draining: end as soon as the server is clean.
    pub end_when_clean: bool,
    waiting_since: Option<Instant>,
    idle_since: Option<Instant>,
}

impl<'a> Pump<'a> {
    pub fn new(
        session: &'a mut Session,
        conn: &'a mut ServerConn,
        limits: RelayLimits,
        tally: &'a mut Tally,
    ) -> Pump<'a> {
        Pump {
            session,
            conn,
            server_cursor: FrameCursor::default(),
            limits,
            tally,
            held: false,
            started: false,
            leaving: false,
            ending: None,
            end_when_clean: false,
            waiting_since: None,
            idle_since: None,
        }
    }

    /// One relay turn after another until the transaction (or session) is over, or
    /// until no direction can move (then woken by whichever becomes ready).
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Relayed, Refusal>> {
        loop {
            let mut progress = self.walk_client()?;
            progress |= self.send_to_server(cx)?;
            if self.may_read_client() {
                progress |= self.read_client(cx)?;
            }
            if self.may_read_server() {
                progress |= self.read_server(cx)?;
            }
            progress |= self.send_to_client(cx)?;
            self.follow_state();
            if let Some(outcome) = self.outcome() {
                return Poll::Ready(outcome);
            }
            if let Poll::Ready(refusal) = self.poll_deadline(cx) {
                return Poll::Ready(Err(refusal));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn send_to_server(&mut self, cx: &mut Context<'_>) -> Result<bool, Refusal> {
        let session = &mut *self.session;
        let mut source = Source {
            buf: &mut session.buf,
            cursor: &mut session.cursor,
        };
        match session
            .to_server
            .poll_send(&mut self.conn.stream, &mut source, cx)
        {
            Poll::Ready(Ok(wrote)) => Ok(wrote > 0),
            Poll::Ready(Err(_)) => Err(self.session.server_lost()),
            Poll::Pending => Ok(false),
        }
    }

    fn send_to_client(&mut self, cx: &mut Context<'_>) -> Result<bool, Refusal> {
        let session = &mut *self.session;
        let mut source = Source {
            buf: &mut self.conn.read_buf,
            cursor: &mut self.server_cursor,
        };
        if self.leaving {
            // Nobody to tell: what the server says is dropped as it is walked.
            session.to_client.take();
            session.to_client.keep_walked(&mut source);
            session.to_client.take();
            return Ok(false);
        }
        match session
            .to_client
            .poll_send(&mut session.stream, &mut source, cx)
        {
            Poll::Ready(Ok(wrote)) => {
                self.tally.sent += wrote as u64;
                Ok(wrote > 0)
            }
            Poll::Ready(Err(_)) => {
                self.client_left(reason::CLIENT_UNEXPECTED_EOF);
                Ok(true)
            }
            Poll::Pending => Ok(false),
        }
    }

    /// Room for more client input: what is due to the server is under the limit, and
    /// what is not yet walked is a frame still arriving (bounded by `max_packet_size`).
    fn may_read_client(&self) -> bool {
        let session = &*self.session;
        if self.leaving || self.ending.is_some() {
            return false;
        }
        let walked = session.cursor.consumed();
        if session.to_server.pending_len() + walked >= OUT_LIMIT {
            return false;
        }
        let unwalked = session.buf.len() - walked;
        unwalked < OUT_LIMIT
            || (!self.held
                && session
                    .cursor
                    .awaiting_whole()
                    .is_some_and(|total| unwalked < total))
    }

    fn may_read_server(&self) -> bool {
        let walked = self.server_cursor.consumed();
        if self.ending.is_some() || self.session.to_client.pending_len() + walked >= OUT_LIMIT {
            return false;
        }
        self.conn.read_buf.len() - walked <= MAX_INSPECTED
    }

    fn read_client(&mut self, cx: &mut Context<'_>) -> Result<bool, Refusal> {
        let session = &mut *self.session;
        session.buf.reserve(CLIENT_READ);
        match session.stream.poll_read_buf(cx, &mut session.buf) {
            Poll::Ready(Ok(n)) if n > 0 => Ok(true),
            Poll::Ready(_) => {
                // The client hung up on the server's FATAL, maybe before pgmux saw the
                // server's socket close: the server is what ended this.
                if self.session.server_sent_fatal {
                    return Err(self.session.server_lost());
                }
                self.client_left(reason::CLIENT_UNEXPECTED_EOF);
                Ok(true)
            }
            Poll::Pending => Ok(false),
        }
    }

    fn read_server(&mut self, cx: &mut Context<'_>) -> Result<bool, Refusal> {
        self.conn.read_buf.reserve(SERVER_READ);
        match self.conn.stream.poll_read_buf(cx, &mut self.conn.read_buf) {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.walk_server()?;
                Ok(true)
            }
            Poll::Ready(_) => Err(self.session.server_lost()),
            Poll::Pending => Ok(false),
        }
    }

    pub(super) fn client_left(&mut self, how: &'static str) {
        self.session.left = how;
        self.leaving = true;
    }

    /// Whole frames both ways, nothing due to the server, nothing owed by it, no
    /// transaction: the server may go back to its pool (DESIGN.md facts 1 and 12).
    pub(super) fn releasable(&self) -> bool {
        let session = &*self.session;
        session.model.is_clean()
            && !session.cursor.mid_frame()
            && session.cursor.consumed() == 0
            && session.to_server.is_empty()
            && !self.server_cursor.mid_frame()
    }

    fn outcome(&mut self) -> Option<Result<Relayed, Refusal>> {
        if self.ending.is_some() {
            let flushed = self.session.to_client.is_empty() && self.server_cursor.consumed() == 0;
            return flushed.then(|| Err(self.ending.take().expect("checked")));
        }
        if self.leaving {
            // Complete messages reach the server before it is let go: PostgreSQL runs
            // what it received whole, as it would for a client that hangs up directly.
            let delivered =
                self.session.to_server.is_empty() && self.session.cursor.consumed() == 0;
            return delivered.then(|| {
                Ok(Relayed::ClientLeft {
                    clean: self.releasable(),
                })
            });
        }
        if !self.started || !self.releasable() {
            return None;
        }
        match self.session.mode {
            PoolMode::Session if self.end_when_clean => Some(Err(Refusal::ShuttingDown)),
            PoolMode::Session => None,
            PoolMode::Transaction | PoolMode::Statement => Some(Ok(Relayed::Done)),
        }
    }

    /// Clocks for the statistics and the timeouts, from the model's state after the turn.
    fn follow_state(&mut self) {
        let model = &self.session.model;
        if model.awaiting_server() {
            if self.waiting_since.is_none() {
                let now = Instant::now();
                self.waiting_since = Some(now);
                self.tally.transaction_started.get_or_insert(now);
            }
        } else if let Some(since) = self.waiting_since.take() {
            let query_us = since.elapsed().as_micros() as u64;
            self.tally.query_us += query_us;
            self.session.pool.stats.observe_query(query_us);
        }
        // Idle in a transaction counts from when the server's answer made it so, not
        // from the client's last message (issue 12, case 3).
        if model.idle_in_transaction() {
            if self.idle_since.is_none() && !self.limits.idle_transaction_timeout.is_zero() {
                self.idle_since = Some(Instant::now());
            }
        } else {
            self.idle_since = None;
        }
        if model.is_clean() {
            if let Some(started) = self.tally.transaction_started.take() {
                let transaction_us = started.elapsed().as_micros() as u64;
                self.tally.transactions += 1;
                self.tally.transaction_us += transaction_us;
                self.session.pool.stats.observe_transaction(transaction_us);
            }
        }
    }

    /// The next timeout that applies in the relay's current state, with the refusal it
    /// ends in: PgBouncer's texts and 08P01 rather than PostgreSQL's codes for the same
    /// timeouts (57014, 25P03), so that clients see what they saw before.
    fn deadline(&self) -> Option<(Instant, Refusal)> {
        let limits = &self.limits;
        if let Some(since) = self
            .waiting_since
            .filter(|_| !limits.query_timeout.is_zero())
        {
            return Some((since + limits.query_timeout, Refusal::QueryTimeout));
        }
        if let Some(since) = self.idle_since {
            return Some((
                since + limits.idle_transaction_timeout,
                Refusal::IdleTransactionTimeout,
            ));
        }
        // No client_idle_timeout here: as in PgBouncer, it closes only clients that hold
        // no server, and a session-mode client holds its server all along.
        None
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Refusal> {
        let Some((at, refusal)) = self.deadline() else {
            return Poll::Pending;
        };
        let timer = self
            .session
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::ZERO)));
        if timer.deadline() != at.into() {
            timer.as_mut().reset(at.into());
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(refusal),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs a pump to its end.
pub(super) async fn run(pump: &mut Pump<'_>) -> Result<Relayed, Refusal> {
    std::future::poll_fn(|cx| pump.poll(cx)).await
}
