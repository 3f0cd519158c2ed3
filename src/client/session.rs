//! The session loop: one client paired with servers, transaction by transaction.
//!
//! Idle (no server) ─▶ a message arrives ─▶ checkout + parameter sync ─▶ relay both ways
//! until the reply tracker says the server may go back ─▶ release (transaction and
//! statement mode) or keep (session mode) ─▶ idle.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::relay::ReplyTracker;
use super::startup::Login;
use super::Refusal;
use crate::cancel::{CancelSlot, ServerKey};
use crate::config::PoolMode;
use crate::context::Shared;
use crate::net::Stream;
use crate::params::{sync_statements, Params};
use crate::pool::{CheckoutError, Pool, PooledServer};
use crate::protocol::builders;
use crate::protocol::sqlstate::{
    ADMIN_SHUTDOWN, CONNECTION_FAILURE, FEATURE_NOT_SUPPORTED, IDLE_IN_TRANSACTION_TIMEOUT,
    IDLE_SESSION_TIMEOUT, PROTOCOL_VIOLATION, QUERY_CANCELED,
};
use crate::protocol::FrameCursor;
use crate::server::ServerConn;
use crate::shutdown::Drain;

/// How much is read from a socket at once.
const CLIENT_READ: usize = 8 * 1024;
const SERVER_READ: usize = 16 * 1024;
/// Server messages pgmux reads whole (ReadyForQuery, ParameterStatus, ErrorResponse) are
/// small; anything larger streams through like a DataRow.
const MAX_INSPECTED: usize = 64 * 1024;

pub struct Session {
    shared: Arc<Shared>,
    stream: Stream,
    buf: BytesMut,
    cursor: FrameCursor,
    pool: Arc<Pool>,
    mode: PoolMode,
    /// The parameters this client's transactions must see.
    params: Params,
    cancel_key: (i32, i32),
    cancel: Arc<CancelSlot>,
    drain: Drain,
    peer: String,
    database: String,
    user: String,
    connected_at: Instant,
    /// The server already told the client why it is going away (a FATAL such as
    /// `pg_terminate_backend`'s 57P01): when its socket then closes, say nothing more.
    server_sent_fatal: bool,
}

/// How a relay ended.
enum Relayed {
    /// The transaction (or statement) is over and the server is clean.
    Done,
    /// The client sent Terminate or closed its socket; `clean` says whether the server
    /// can be reused.
    ClientLeft { clean: bool },
}

impl Session {
    pub fn new(shared: Arc<Shared>, stream: Stream, login: Login, peer: String) -> Session {
        let settings = shared.settings();
        let mode = settings.pool_mode_for(&login.database, &login.user);
        let (cancel_key, cancel) = shared.cancels.register();
        let drain = shared.drain();
        Session {
            shared,
            stream,
            buf: login.leftover,
            cursor: FrameCursor::default(),
            pool: login.pool,
            mode,
            params: login.params,
            cancel_key,
            cancel,
            drain,
            peer,
            database: login.database,
            user: login.user,
            connected_at: Instant::now(),
            server_sent_fatal: false,
        }
    }

    pub async fn run(mut self) {
        let outcome = match self.greet().await {
            Ok(()) => self.serve().await,
            Err(refusal) => Err(refusal),
        };
        let reason = match outcome {
            Ok(()) => "client close request".to_owned(),
            Err(refusal) => {
                refusal.send(&mut self.stream).await;
                refusal.message
            }
        };
        tracing::info!(
            peer = %self.peer, db = %self.database, user = %self.user,
            age_s = self.connected_at.elapsed().as_secs(), "closing client: {reason}"
        );
    }

    async fn greet(&mut self) -> Result<(), Refusal> {
        let mut out = BytesMut::with_capacity(32);
        builders::backend_key_data(&mut out, self.cancel_key.0, self.cancel_key.1);
        builders::ready_for_query(&mut out, b'I');
        self.stream
            .write_all(&out)
            .await
            .map_err(|_| Refusal::gone())
    }

    async fn serve(&mut self) -> Result<(), Refusal> {
        loop {
            if !self.await_request().await? {
                return Ok(());
            }
            let mut server = self.checkout().await?;
            let relayed = self.relay(&mut server).await;
            self.cancel.detach();
            match relayed? {
                Relayed::Done => self.release(server, false).await,
                Relayed::ClientLeft { clean } => {
                    if clean {
                        self.release(server, true).await;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Waits, holding no server and no read buffer, for the client's next request.
    /// False when the client sent Terminate or went away.
    async fn await_request(&mut self) -> Result<bool, Refusal> {
        if self.buf.is_empty() {
            // An idle client owns no buffer: thousands of idle clients cost almost nothing.
            self.buf = BytesMut::new();
        }
        let idle_timeout = self.shared.settings().client_idle_timeout;
        let idle_deadline = tokio::time::Instant::now() + idle_timeout;
        while self.buf.len() < crate::protocol::frame::HEADER_LEN {
            tokio::select! {
                readable = self.stream.readable() => {
                    if readable.is_err() {
                        return Ok(false);
                    }
                    self.buf.reserve(CLIENT_READ);
                    match self.stream.try_read_buf(&mut self.buf) {
                        Ok(0) => return Ok(false),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return Ok(false),
                    }
                }
                _ = self.drain.started() => {
                    return Err(Refusal::new(ADMIN_SHUTDOWN, "pooler is shutting down"));
                }
                _ = tokio::time::sleep_until(idle_deadline), if !idle_timeout.is_zero() => {
                    return Err(Refusal::new(IDLE_SESSION_TIMEOUT, "client_idle_timeout"));
                }
            }
        }
        Ok(self.buf[0] != b'X')
    }

    /// A server for the next transaction, with this client's parameters applied.
    async fn checkout(&mut self) -> Result<PooledServer, Refusal> {
        let mut server = self.pool.checkout().await.map_err(|error| match error {
            CheckoutError::QueryWaitTimeout => {
                Refusal::new(PROTOCOL_VIOLATION, "query_wait_timeout")
            }
            CheckoutError::Server { code, message } => Refusal::new(&code, message),
            CheckoutError::Closed => Refusal::new(ADMIN_SHUTDOWN, "database removed"),
        })?;
        if let Some(sql) = sync_statements(&self.params, &server.params) {
            apply_params(&mut server, &self.params, &sql)
                .await
                .map_err(|message| {
                    Refusal::new(
                        CONNECTION_FAILURE,
                        format!("could not apply session parameters: {message}"),
                    )
                })?;
            // Keep the server's canonical spelling ("ISO, MDY" for "iso") so the next
            // comparison matches without another SET.
            for (name, value) in server.params.iter() {
                if self.params.get(name).is_some() {
                    self.params.set(name, value);
                }
            }
        }
        self.cancel.attach(ServerKey {
            target: Arc::clone(&self.pool.target),
            process_id: server.process_id,
            secret_key: server.secret_key,
        });
        Ok(server)
    }

    /// Gives a clean server back. Session mode (and `server_reset_query_always`) resets it
    /// first so nothing of this client's session reaches the next one.
    async fn release(&mut self, mut server: PooledServer, client_left: bool) {
        let settings = self.shared.settings();
        let needs_reset = match self.mode {
            PoolMode::Session => client_left,
            _ => settings.server_reset_query_always,
        };
        if needs_reset && !settings.server_reset_query.is_empty() {
            match server.run_internal(&settings.server_reset_query).await {
                Ok(b'I') => {}
                _ => return, // dropping the guard closes the server
            }
        }
        if self.mode != PoolMode::Session || client_left {
            server.release();
        }
    }

    /// Relays between the client and `server` until the server may be released (or, in
    /// session mode, until the client leaves).
    async fn relay(&mut self, server: &mut PooledServer) -> Result<Relayed, Refusal> {
        let settings = self.shared.settings();
        let conn: &mut ServerConn = server;
        let mut tracker = ReplyTracker::default();
        let mut server_cursor = FrameCursor::default();
        let mut last_client_activity = Instant::now();
        let mut waiting_since: Option<Instant> = None;
        loop {
            if self.forward_client(conn, &mut tracker).await? {
                return Ok(Relayed::ClientLeft {
                    clean: tracker.is_idle() && !server_cursor.mid_frame(),
                });
            }
            if tracker.awaiting_server() {
                waiting_since.get_or_insert_with(Instant::now);
            }
            let deadline = self.deadline(&settings, &tracker, waiting_since, last_client_activity);
            conn.read_buf.reserve(SERVER_READ);
            self.buf.reserve(CLIENT_READ);
            tokio::select! {
                biased;
                read = conn.stream.read_buf(&mut conn.read_buf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Err(self.server_lost());
                    }
                    self.relay_server(conn, &mut server_cursor, &mut tracker).await?;
                    if !tracker.awaiting_server() {
                        waiting_since = None;
                    }
                    if tracker.status() != b'I' && self.mode == PoolMode::Statement && !tracker.awaiting_server() {
                        return Err(Refusal::new(
                            FEATURE_NOT_SUPPORTED,
                            "transaction blocks not allowed in statement pooling mode",
                        ).with_hint("use transaction or session pool_mode for this database"));
                    }
                    if tracker.is_idle() && !server_cursor.mid_frame() && self.mode != PoolMode::Session {
                        return Ok(Relayed::Done);
                    }
                }
                read = self.stream.read_buf(&mut self.buf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Ok(Relayed::ClientLeft { clean: tracker.is_idle() && !server_cursor.mid_frame() });
                    }
                    last_client_activity = Instant::now();
                }
                _ = self.drain.started(), if self.mode == PoolMode::Session && tracker.is_idle() => {
                    return Err(Refusal::new(ADMIN_SHUTDOWN, "pooler is shutting down"));
                }
                _ = sleep_until_opt(deadline.map(|(at, _)| at)), if deadline.is_some() => {
                    let (_, refusal) = deadline.expect("branch enabled only with a deadline");
                    return Err(refusal());
                }
            }
        }
    }

    /// The next timeout that applies in the relay's current state, with the error it ends in.
    fn deadline(
        &self,
        settings: &crate::config::Settings,
        tracker: &ReplyTracker,
        waiting_since: Option<Instant>,
        last_client_activity: Instant,
    ) -> Option<(Instant, fn() -> Refusal)> {
        if let Some(since) = waiting_since.filter(|_| !settings.query_timeout.is_zero()) {
            return Some((since + settings.query_timeout, || {
                Refusal::new(QUERY_CANCELED, "query timeout")
            }));
        }
        if tracker.idle_in_transaction() && !settings.idle_transaction_timeout.is_zero() {
            return Some((
                last_client_activity + settings.idle_transaction_timeout,
                || Refusal::new(IDLE_IN_TRANSACTION_TIMEOUT, "idle transaction timeout"),
            ));
        }
        if self.mode == PoolMode::Session
            && tracker.is_idle()
            && !settings.client_idle_timeout.is_zero()
        {
            return Some((last_client_activity + settings.client_idle_timeout, || {
                Refusal::new(IDLE_SESSION_TIMEOUT, "client_idle_timeout")
            }));
        }
        None
    }

    /// Forwards every client message buffered so far to the server, counting the ones
    /// that expect a ReadyForQuery. True when the client sent Terminate.
    async fn forward_client(
        &mut self,
        conn: &mut ServerConn,
        tracker: &mut ReplyTracker,
    ) -> Result<bool, Refusal> {
        let mut terminated = false;
        loop {
            let before = self.cursor.consumed();
            match self.cursor.next(&self.buf, |_| false, 0) {
                Ok(Some(frame)) if frame.tag == b'X' => {
                    terminated = true;
                    // Terminate is ours to act on, not the server's.
                    self.flush_to_server(conn, before).await?;
                    self.buf
                        .advance(crate::protocol::frame::HEADER_LEN.min(self.buf.len()));
                    break;
                }
                Ok(Some(frame)) => tracker.client_sent(frame.tag),
                Ok(None) => break,
                Err(error) => {
                    return Err(Refusal::new(
                        PROTOCOL_VIOLATION,
                        format!("invalid client message: {error}"),
                    ))
                }
            }
        }
        if !terminated {
            let consumed = self.cursor.consumed();
            self.flush_to_server(conn, consumed).await?;
        }
        Ok(terminated)
    }

    async fn flush_to_server(&mut self, conn: &mut ServerConn, len: usize) -> Result<(), Refusal> {
        if len > 0 {
            conn.stream
                .write_all(&self.buf[..len])
                .await
                .map_err(|_| self.server_lost())?;
            self.buf.advance(len);
        }
        self.cursor.rebase();
        Ok(())
    }

    /// Walks what the server sent, noting ReadyForQuery and ParameterStatus, and forwards
    /// it to the client in one write.
    async fn relay_server(
        &mut self,
        conn: &mut ServerConn,
        cursor: &mut FrameCursor,
        tracker: &mut ReplyTracker,
    ) -> Result<(), Refusal> {
        loop {
            let frame = cursor
                .next(
                    &conn.read_buf,
                    |tag| matches!(tag, b'Z' | b'S' | b'E'),
                    MAX_INSPECTED,
                )
                .map_err(|e| {
                    Refusal::new(CONNECTION_FAILURE, format!("server protocol error: {e}"))
                })?;
            let Some(frame) = frame else { break };
            match (frame.tag, frame.body) {
                (b'Z', Some(body)) => tracker.server_ready(body.first().copied().unwrap_or(b'I')),
                (b'S', Some(body)) => {
                    let body = body.to_vec();
                    conn.note_parameter(&body);
                    note_client_parameter(&mut self.params, &body);
                }
                (b'E', Some(body)) => {
                    let severity = crate::server::error_field(body, b'V');
                    self.server_sent_fatal |=
                        matches!(severity.as_deref(), Some("FATAL" | "PANIC"));
                }
                _ => {}
            }
        }
        let len = cursor.consumed();
        cursor.rebase();
        let result = self.stream.write_all(&conn.read_buf[..len]).await;
        conn.read_buf.advance(len);
        result.map_err(|_| Refusal::gone())
    }
}

impl Session {
    fn server_lost(&self) -> Refusal {
        if self.server_sent_fatal {
            let mut quiet = Refusal::gone();
            quiet.message = "server closed the connection after a FATAL error".into();
            return quiet;
        }
        Refusal::new(CONNECTION_FAILURE, "server conn crashed?")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.cancels.unregister(self.cancel_key);
    }
}

/// A parameter the server reported (a client's `SET application_name`, say) becomes part
/// of what this client's later transactions must see.
fn note_client_parameter(params: &mut Params, body: &[u8]) {
    let Some((name, rest)) = crate::protocol::frame::take_cstr(body) else {
        return;
    };
    let Some((value, _)) = crate::protocol::frame::take_cstr(rest) else {
        return;
    };
    if params.get(name).is_some() {
        params.set(name, value);
    }
}

/// Runs the parameter-sync `SET`s on a freshly checked-out server.
async fn apply_params(server: &mut PooledServer, wanted: &Params, sql: &str) -> Result<(), String> {
    // Parameters the server does not report (search_path, …) are recorded as set.
    for (name, value) in wanted.iter() {
        server.params.set(name, value);
    }
    match server.run_internal(sql).await {
        Ok(b'I') => Ok(()),
        Ok(_) => Err("server left a transaction open".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
