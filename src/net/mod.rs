//! Sockets: one stream type for TCP and unix connections, both directions.
mod peer;
mod stream;
pub use peer::{own_os_user, peer_os_user};
pub use stream::Stream;

use crate::protocol::builders::{self, Severity};

/// Writes a FATAL ErrorResponse; the caller closes the connection afterwards.
pub async fn send_fatal(stream: &mut Stream, code: &str, message: &str, hint: Option<&str>) {
    use tokio::io::AsyncWriteExt;
    let mut out = bytes::BytesMut::new();
    builders::error_response(&mut out, Severity::Fatal, code, message, hint);
    let _ = stream.write_all(&out).await;
    let _ = stream.flush().await;
}
