//! One client connection, from the first byte to the last:
//!
//! ```text
//! startup (SSLRequest → 'S' + TLS or 'N', CancelRequest, StartupMessage) ─▶ auth ─▶ welcome
//!   ─▶ session loop: idle (no server) ─▶ checkout + parameter sync ─▶ relay until the
//!      server may go back (pool mode decides) ─▶ idle …
//! ```

mod auth;
mod hba;
mod prepared;
mod relay;
mod replies;
mod session;
mod session_only;
mod settings;
mod splice;
mod sql_prepare;
mod startup;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::context::Shared;
use crate::net::Stream;
use crate::protocol::builders::{self, Severity};

/// Serves one accepted connection until it ends. Counts itself in `Shared::clients`.
pub async fn serve(shared: Arc<Shared>, stream: Stream) {
    let _count = ClientCount::new(&shared);
    let peer = stream.peer_description();
    // Boxed: the login's state is large and short-lived; the task keeps only the session.
    match Box::pin(startup::accept(&shared, stream, &peer)).await {
        Ok(Some(session)) => session.run().await,
        Ok(None) => {}
        Err(refusal) => refusal.log(&peer),
    }
}

struct ClientCount(Arc<Shared>);

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
}

impl Refusal {
    pub fn new(code: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            code: code.to_owned(),
            message: message.into(),
            hint: None,
            client_gone: false,
        }
    }

    pub fn with_hint(mut self, hint: &'static str) -> Refusal {
        self.hint = Some(hint);
        self
    }

    pub fn gone() -> Refusal {
        Refusal {
            code: String::new(),
            message: "client unexpected eof".into(),
            hint: None,
            client_gone: true,
        }
    }

    /// Tells the client (when it is still there) and closes nothing itself.
    pub(crate) async fn send(&self, stream: &mut Stream) {
        if !self.client_gone {
            send_fatal(stream, &self.code, &self.message, self.hint).await;
        }
    }

    fn log(&self, peer: &str) {
        tracing::info!(peer, code = %self.code, "closing client: {}", self.message);
    }
}

/// Writes a FATAL ErrorResponse; the caller closes the connection afterwards.
pub(crate) async fn send_fatal(stream: &mut Stream, code: &str, message: &str, hint: Option<&str>) {
    let mut out = BytesMut::new();
    builders::error_response(&mut out, Severity::Fatal, code, message, hint);
    let _ = stream.write_all(&out).await;
    let _ = stream.flush().await;
}
