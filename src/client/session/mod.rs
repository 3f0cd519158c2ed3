//! The session loop: one client paired with servers, transaction by transaction.
//!
//! Idle (no server) ─▶ a message arrives ─▶ checkout + parameter sync ─▶ relay both ways
//! until the reply queue says the server may go back ─▶ release (transaction and
//! statement mode) or keep (session mode) ─▶ idle.

mod checkout;

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;

use crate::cancel::CancelSlot;
use crate::client::login::Login;
use crate::client::relay::{
    check_client_message, check_message_length, ClientStatements, Model, Outbox,
};
use crate::client::sql::settings::SessionSettings;
use crate::client::{ClientLog, Refusal};
use crate::config::{PoolMode, Settings};
use crate::context::{ClientSlot, Shared};
use crate::logfmt::reason;
use crate::net::Stream;
use crate::params::Params;
use crate::pool::{Pool, PooledServer};
use crate::protocol::builders;
use crate::protocol::frame::HEADER_LEN;
use crate::protocol::FrameCursor;
use crate::shutdown::Drain;

/// How much is read from a client socket at once.
const CLIENT_READ: usize = 8 * 1024;

pub struct Session {
    pub(super) shared: Arc<Shared>,
    /// The settings in force, refreshed once per transaction.
    pub(super) config: Arc<Settings>,
    pub(super) stream: Stream,
    pub(super) buf: BytesMut,
    pub(super) cursor: FrameCursor,
    pub(super) pool: Arc<Pool>,
    pub(super) mode: PoolMode,
    /// The parameters this client's transactions must see.
    pub(super) params: Params,
    /// The client's named prepared statements.
    pub(super) statements: ClientStatements,
    /// Settings the client changed with SQL, replayed wherever it goes.
    pub(super) settings: SessionSettings,
    /// The protocol state of the server this session holds (reset at each checkout).
    pub(super) model: Model,
    /// What is due to the server beyond the client's own bytes (rewritten messages,
    /// pgmux's own requests), reused from transaction to transaction.
    pub(super) to_server: Outbox,
    /// What is due to the client beyond the server's own bytes (pgmux's replies, replies
    /// left unsent when the server went back to its pool).
    pub(super) to_client: Outbox,
    /// The rest of the client frame at the cursor is dropped as it arrives.
    pub(super) dropping_frame: bool,
    /// The relay's one timer (query and idle-in-transaction timeouts), kept and reset.
    pub(super) timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// This client's place under `max_client_conn`.
    _slot: ClientSlot,
    /// Scratch space for rewritten messages and synthetic replies, reused.
    pub(super) scratch: BytesMut,
    cancel_key: (i32, i32),
    cancel: Arc<CancelSlot>,
    pub(super) drain: Drain,
    database: Arc<str>,
    /// The client's PgBouncer-format log lines.
    log: ClientLog,
    /// How the client left: Terminate ("client close request") or a closed socket.
    pub(super) left: &'static str,
    /// This client's entry in the admin console's registry (issue 3).
    client: crate::registry::ClientHandle,
    /// The server already told the client why it is going away (a FATAL such as
    /// `pg_terminate_backend`'s 57P01): when its socket then closes, say nothing more.
    pub(super) server_sent_fatal: bool,
}

/// How a relay ended.
pub(super) enum Relayed {
    /// The transaction (or statement) is over and the server is clean.
    Done,
    /// The client sent Terminate or closed its socket (`Session::left` says which);
    /// `clean` says whether the server can be reused.
    ClientLeft { clean: bool },
}

impl Session {
    pub fn new(shared: Arc<Shared>, stream: Stream, login: Login, mut log: ClientLog) -> Session {
        let config = shared.settings();
        let mode = config.pool_mode_for(&login.database, &login.user);
        let (cancel_key, cancel) = shared.cancels.register();
        let drain = shared.drain();
        let client = shared.registry.register(crate::registry::NewClient {
            id: log.id,
            database: &login.database,
            user: &login.user,
            pool_user: &login.pool.key.user,
            endpoints: crate::registry::Endpoints::of(&stream, config.listen_port),
            application_name: login.params.get("application_name").unwrap_or(""),
        });
        log.share_names(&client.info.database, &client.info.user);
        let database = Arc::clone(&client.info.database);
        Session {
            client,
            shared,
            config,
            stream,
            buf: login.leftover,
            cursor: FrameCursor::default(),
            pool: login.pool,
            mode,
            params: login.params,
            statements: ClientStatements::default(),
            settings: SessionSettings::default(),
            model: Model::default(),
            to_server: Outbox::default(),
            to_client: Outbox::default(),
            dropping_frame: false,
            timer: None,
            _slot: login.slot,
            scratch: BytesMut::new(),
            cancel_key,
            cancel,
            drain,
            database,
            log,
            left: reason::CLIENT_CLOSE_REQUEST,
            server_sent_fatal: false,
        }
    }

    pub async fn run(mut self: Box<Self>) {
        // KILL / KILL_CLIENT end the session wherever it is; dropping a held server
        // closes it.
        let info = std::sync::Arc::clone(&self.client.info);
        let outcome = tokio::select! {
            outcome = async {
                match self.greet().await {
                    Ok(()) => self.serve().await,
                    Err(refusal) => Err(refusal),
                }
            } => outcome,
            why = info.killed() => Err(Refusal::Killed(why)),
        };
        let settings = self.shared.settings();
        match outcome {
            Ok(()) => self.log.closing(&settings, self.left, false),
            // Logged before the client is told, as PgBouncer does.
            Err(refusal) => {
                refusal.log(&settings, &self.log);
                refusal.send(&mut self.stream).await;
            }
        }
    }

    async fn greet(&mut self) -> Result<(), Refusal> {
        let mut out = BytesMut::with_capacity(32);
        builders::backend_key_data(&mut out, self.cancel_key.0, self.cancel_key.1);
        builders::ready_for_query(&mut out, b'I');
        self.stream
            .write_all(&out)
            .await
            .map_err(|_| Refusal::ClientGone)
    }

    async fn serve(&mut self) -> Result<(), Refusal> {
        loop {
            self.shared.refresh_settings(&mut self.config);
            if !self.await_request().await? {
                return Ok(());
            }
            // Boxed: a transaction's state (checkout, relay, release) is large, and an idle
            // client should hold none of it — only this loop's small waiting state.
            if !Box::pin(self.serve_transaction()).await? {
                return Ok(());
            }
        }
    }

    /// One transaction (in session mode, the rest of the session). False when the client
    /// left.
    async fn serve_transaction(&mut self) -> Result<bool, Refusal> {
        let mut server = self.checkout().await?;
        let relayed = self.relay(&mut server).await;
        self.cancel.detach();
        let relayed = match relayed {
            Ok(relayed) => relayed,
            Err(refusal) => {
                server.close(refusal.server_close_reason());
                return Err(refusal);
            }
        };
        match relayed {
            Relayed::Done => {
                if self.settings.changed {
                    self.capture_settings(&mut server).await?;
                }
                self.release(server, false).await;
                let name = self.params.get("application_name");
                self.client.info.set_idle(name);
                Ok(true)
            }
            Relayed::ClientLeft { clean } => {
                if clean {
                    self.release(server, true).await;
                } else {
                    server.close(reason::CLIENT_DISCONNECT_NOT_READY);
                }
                Ok(false)
            }
        }
    }

    /// Waits, holding no server and no read buffer, for the client's next request; on
    /// the way, sends what the last transaction left due and drops what PostgreSQL would
    /// ignore. False when the client sent Terminate or went away.
    async fn await_request(&mut self) -> Result<bool, Refusal> {
        if !self.flush_to_client().await {
            return Ok(false);
        }
        loop {
            if self.buf.is_empty() {
                // An idle client owns no buffer: thousands of idle clients cost almost
                // nothing.
                self.buf = BytesMut::new();
            }
            if !self.fill_to(HEADER_LEN).await? {
                self.left = reason::CLIENT_UNEXPECTED_EOF;
                return Ok(false);
            }
            // Garbage must not cost a server: check the first header before taking one.
            let tag = self.buf[0];
            let length =
                u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if length < 4 {
                return Err(Refusal::Protocol(format!(
                    "invalid message length {length}"
                )));
            }
            check_client_message(tag)?;
            check_message_length(length - 4, self.config.max_packet_size)?;
            match tag {
                b'X' => return Ok(false),
                // Copy messages after a COPY the server failed, and a Flush with nothing
                // to flush: PostgreSQL ignores them, and they cost no server here.
                b'd' | b'c' | b'f' | b'H' => {
                    if !self.drop_frame(1 + length).await? {
                        self.left = reason::CLIENT_UNEXPECTED_EOF;
                        return Ok(false);
                    }
                }
                _ => return Ok(true),
            }
        }
    }

    /// Sends the client what the last transaction left due; false when it is gone.
    async fn flush_to_client(&mut self) -> bool {
        if self.to_client.is_empty() {
            return true;
        }
        let due = self.to_client.take();
        if self.stream.write_all(&due).await.is_err() || self.stream.flush().await.is_err() {
            self.left = reason::CLIENT_UNEXPECTED_EOF;
            return false;
        }
        true
    }

    /// Reads until the buffer holds `wanted` bytes, with the idle client's timeouts and
    /// the drain in force; false when the client went away.
    async fn fill_to(&mut self, wanted: usize) -> Result<bool, Refusal> {
        let idle_timeout = self.config.client_idle_timeout;
        // No clock read and no timer when the timeout is off (the common case). Boxed: a
        // timer is 112 bytes that every idle client would otherwise carry in its task.
        let mut idle_timer =
            (!idle_timeout.is_zero()).then(|| Box::pin(tokio::time::sleep(idle_timeout)));
        while self.buf.len() < wanted {
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
                    return Err(Refusal::ShuttingDown);
                }
                // PgBouncer closes idle clients with its own 08P01, not PostgreSQL's 57P05.
                _ = async { idle_timer.as_mut().expect("guarded").await }, if idle_timer.is_some() => {
                    return Err(Refusal::ClientIdleTimeout);
                }
            }
        }
        Ok(true)
    }

    /// Drops the `total` bytes of the frame at the front, reading them as they come
    /// (a large late CopyData); false when the client went away.
    async fn drop_frame(&mut self, mut total: usize) -> Result<bool, Refusal> {
        loop {
            let here = total.min(self.buf.len());
            self.buf.advance(here);
            total -= here;
            if total == 0 {
                return Ok(true);
            }
            if !self.fill_to(1).await? {
                return Ok(false);
            }
        }
    }

    /// Gives a clean server back. Session mode (and `server_reset_query_always`) resets it
    /// first so nothing of this client's session reaches the next one.
    async fn release(&mut self, mut server: PooledServer, client_left: bool) {
        let settings = &self.config;
        let needs_reset = match self.mode {
            PoolMode::Session => client_left,
            _ => settings.server_reset_query_always,
        };
        if needs_reset && !settings.server_reset_query.is_empty() {
            match server.run_internal(&settings.server_reset_query).await {
                Ok(b'I') => forget_session_state(&mut server, &settings.track_extra_parameters),
                _ => return server.close(reason::RESET_QUERY_FAILED),
            }
        }
        if self.mode != PoolMode::Session || client_left {
            server.release();
        }
    }
}

impl Session {
    /// The server's socket closed under a transaction: PgBouncer's "server conn
    /// crashed?" (08P01, as all its own errors).
    pub(super) fn server_lost(&self) -> Refusal {
        if self.server_sent_fatal {
            Refusal::ServerFatalRelayed
        } else {
            Refusal::ServerConnCrashed
        }
    }
}

/// After the reset query (DISCARD ALL) the server has no prepared statements, and its
/// settings are back at their defaults: what pgmux recorded of them is gone too, so the
/// next checkout sets the next client's again (issue 12, case 9). Reported parameters
/// were updated by the ParameterStatus the reset sent.
fn forget_session_state(server: &mut PooledServer, extras: &[String]) {
    server.statements.clear();
    server.session = Params::default();
    for name in extras {
        server.params.remove(name);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.cancels.unregister(self.cancel_key);
    }
}
