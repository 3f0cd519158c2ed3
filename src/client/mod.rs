//! One client connection, from the first byte to the last:
//!
//! ```text
//! startup (SSLRequest → 'S' + TLS or 'N', CancelRequest, StartupMessage) ─▶ auth ─▶ welcome
//!   ─▶ session loop: idle (no server) ─▶ checkout + parameter sync ─▶ relay until the
//!      server may go back (pool mode decides) ─▶ idle …
//! ```

mod login;
mod refusal;
mod relay;
mod session;
mod sql;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::context::Shared;
use crate::net::Stream;
pub use login::ClientLog;
pub use login::{ConsoleLogin, Entered};
pub use refusal::Refusal;

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
