//! One client connection, from the first byte to the last:
//!
//! ```text
//! startup (SSLRequest → 'S' + TLS or 'N', CancelRequest, StartupMessage) ─▶ auth ─▶ welcome
//!   ─▶ session loop: idle (no server) ─▶ checkout + parameter sync ─▶ relay until the
//!      server may go back (pool mode decides) ─▶ idle …
//! ```

mod login;
mod relay;
mod session;
mod sql;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::context::Shared;
use crate::net::Stream;
pub use login::ClientLog;
pub use login::{ConsoleLogin, Entered};

/// Logs one accepted connection in: the session or console login it enters, with its
/// place in `Shared::clients`. `None` when it ended before (its closing line is logged).
pub async fn log_in(shared: Arc<Shared>, stream: Stream) -> Option<(ClientCount, Entered)> {
    let count = ClientCount::new(&shared);
    let peer = stream.peer_description();
    // The id SHOW CLIENTS will list, taken now so the lines before login name it too.
    let log = ClientLog::new(
        shared.registry.next_id(),
        &stream,
        shared.settings().listen_port,
    );
    let entered = login::accept(&shared, stream, &peer, log).await?;
    Some((count, entered))
}

/// One connection counted in `Shared::clients` for as long as it lives.
pub struct ClientCount(Arc<Shared>);

impl ClientCount {
    fn new(shared: &Arc<Shared>) -> ClientCount {
        shared.clients.fetch_add(1, Ordering::Relaxed);
        ClientCount(Arc::clone(shared))
    }
}

impl Drop for ClientCount {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why pgmux ends a client connection; unless the client is already gone, it is told
/// with a FATAL ErrorResponse carrying `code`.
#[derive(Debug)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub hint: Option<&'static str>,
    /// The client went away (or the socket failed): nobody to tell.
    pub client_gone: bool,
    /// The server caused it (a crash, a failed statement of pgmux's own), which decides
    /// the reason the server is closed with.
    pub server_side: bool,
}

impl Refusal {
    pub fn new(code: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            code: code.to_owned(),
            message: message.into(),
            hint: None,
            client_gone: false,
            server_side: false,
        }
    }

    pub fn with_hint(mut self, hint: &'static str) -> Refusal {
        self.hint = Some(hint);
        self
    }

    pub fn gone() -> Refusal {
        Refusal {
            code: String::new(),
            message: crate::logfmt::reason::CLIENT_UNEXPECTED_EOF.into(),
            hint: None,
            client_gone: true,
            server_side: false,
        }
    }

    pub fn from_server(mut self) -> Refusal {
        self.server_side = true;
        self
    }

    /// The reason the server a session held is closed with when the session ends in
    /// this refusal: the refusal's own when the server caused it (a timeout, a crash),
    /// else PgBouncer's line for a client leaving mid-transaction.
    pub(crate) fn server_close_reason(&self) -> &'static str {
        use crate::logfmt::reason;
        const SERVER_SIDE: [&str; 4] = [
            reason::QUERY_TIMEOUT,
            reason::IDLE_TRANSACTION_TIMEOUT,
            reason::SERVER_CONN_CRASHED,
            reason::STATEMENT_MODE_TRANSACTION,
        ];
        match SERVER_SIDE.iter().find(|r| **r == self.message) {
            Some(known) => known,
            None if self.server_side => reason::UNCLEAN_SERVER,
            None => reason::CLIENT_DISCONNECT_NOT_READY,
        }
    }

    /// Tells the client (when it is still there) and closes nothing itself.
    pub(crate) async fn send(&self, stream: &mut Stream) {
        if !self.client_gone {
            crate::net::send_fatal(stream, &self.code, &self.message, self.hint).await;
        }
    }

    /// The connection's last lines: why it closed and, when the client was told, the
    /// pooler error.
    pub(crate) fn log(&self, settings: &crate::config::Settings, log: &ClientLog) {
        log.closing(settings, &self.message, !self.client_gone);
    }
}
