//! The client → server half of the relay: every client message is checked (a type
//! PostgreSQL knows, within `max_packet_size`), refused in place when it uses a
//! session-only feature under transaction pooling, rewritten when it names a prepared
//! statement, and otherwise forwarded as it arrives, with the replies it is owed recorded
//! in the reply queue.

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;

use super::prepared::{request_for, Rewriter};
use super::replies::ReplyQueue;
use super::splice::Splice;
use super::{RelayLimits, Tally};
use crate::client::session::Session;
use crate::client::sql::session_only::{self, session_only_feature};
use crate::client::Refusal;
use crate::config::PoolMode;
use crate::protocol::builders::{self, Severity};
use crate::protocol::frame::HEADER_LEN;
use crate::protocol::sqlstate::FEATURE_NOT_SUPPORTED;
use crate::server::ServerConn;

/// Parse/Bind/Describe/Close are read whole to rename statements; a larger one (a Bind
/// with huge parameters) streams through unchanged.
const MAX_REWRITTEN: usize = 256 << 20;
/// Statement texts up to this size are read whole to check for session-only features.
const MAX_CHECKED: usize = 64 * 1024;

impl Session {
    /// Forwards every client message buffered so far to the server, recording the
    /// replies each one is owed; messages naming prepared statements are rewritten, and
    /// session-only features refused in place. True when the client sent Terminate.
    pub(super) async fn forward_client(
        &mut self,
        conn: &mut ServerConn,
        queue: &mut ReplyQueue,
        settings: &RelayLimits,
        tally: &mut Tally,
    ) -> Result<bool, Refusal> {
        let capacity = settings.max_prepared_statements;
        let rewriting = capacity > 0;
        let transactional = self.mode != PoolMode::Session;
        let needs_body = |tag: u8, body: &[u8], body_len: usize| match tag {
            b'D' | b'C' => true,
            // Statement texts are checked for session-only features when pooling by
            // transaction; long ones stream unchecked.
            b'Q' | b'P' if transactional && body_len <= MAX_CHECKED => true,
            // A Bind waits only until its names are in: its parameters may stream.
            b'B' if rewriting => !bind_names_complete(body),
            b'P' if rewriting => names_a_statement(tag, body),
            _ => false,
        };
        let mut splice = Splice::default();
        let mut terminate_at = None;
        loop {
            let start = self.cursor.consumed();
            let frame = self
                .cursor
                .next(&self.buf, needs_body, MAX_REWRITTEN)
                .map_err(|e| Refusal::Protocol(format!("invalid client message: {e}")))?;
            let Some(frame) = frame else { break };
            check_client_message(frame.tag, frame.body_len, settings.max_packet_size)?;
            if frame.tag == b'X' {
                // Terminate is for pgmux, not for a pooled server.
                terminate_at = Some(start);
                break;
            }
            let end = self.cursor.consumed();
            self.scratch.clear();
            let replaced = if self.skipping_until_sync && frame.tag != b'S' {
                // After an error pgmux raised, PostgreSQL's rule: ignore all up to Sync.
                true
            } else if let Some(refused) = transactional.then(|| refusal_for(&frame)).flatten() {
                queue.respond(refused.into_boxed_slice());
                if frame.tag == b'Q' {
                    queue.ready();
                } else {
                    self.skipping_until_sync = true;
                }
                true
            } else {
                if transactional {
                    match frame.tag {
                        b'Q' => self.settings.note_sql(frame.available),
                        b'P' => self.settings.note_sql(statement_text(frame.available)),
                        _ => {}
                    }
                }
                let mut rewriter = Rewriter {
                    statements: &mut self.statements,
                    server: &mut conn.statements,
                    registry: &self.shared.statements,
                    queue,
                    stats: &self.pool.stats,
                    capacity,
                };
                match (frame.tag, frame.body) {
                    (b'Q', Some(query)) => {
                        rewriting && transactional && rewriter.sql_command(query, &mut self.scratch)
                    }
                    _ => {
                        let (available, body_len) = (frame.available, frame.body_len);
                        rewriting
                            && rewriter.rewrite(frame.tag, available, body_len, &mut self.scratch)
                    }
                }
            };
            if replaced {
                splice.replace(&self.buf, start, end, &self.scratch);
                continue;
            }
            if frame.tag == b'S' {
                self.skipping_until_sync = false;
            }
            if let Some(request) = request_for(frame.tag, frame.body) {
                queue.expect(request);
            } else if matches!(frame.tag, b'c' | b'f') {
                queue.client_copy_ended();
            }
        }
        let end = terminate_at.unwrap_or_else(|| self.cursor.consumed());
        let outgoing = splice.finish(&self.buf, end);
        if !outgoing.is_empty() {
            conn.stream
                .write_all(outgoing)
                .await
                .map_err(|_| self.server_lost())?;
        }
        tally.received += end as u64;
        self.buf.advance(end);
        if terminate_at.is_some() {
            self.buf.advance(HEADER_LEN.min(self.buf.len()));
        }
        self.cursor.rebase();
        // Replies pgmux makes itself that nothing from the server precedes.
        let mut synthetic = Vec::new();
        queue.drain_synthetic(&mut synthetic);
        if !synthetic.is_empty() {
            self.stream
                .write_all(&synthetic)
                .await
                .map_err(|_| Refusal::ClientGone)?;
            tally.sent += synthetic.len() as u64;
        }
        Ok(terminate_at.is_some())
    }
}

/// Whether a Parse or Bind whose body starts with `body` names a prepared statement (and
/// so must be read whole to be renamed), or is still too short to tell. Unnamed ones —
/// possibly carrying huge queries or parameters — stream through unread.
fn names_a_statement(tag: u8, body: &[u8]) -> bool {
    // Bind starts with the portal name, then the statement name; Parse with the statement.
    let start = match tag {
        b'B' => match body.iter().position(|&b| b == 0) {
            Some(portal_end) => portal_end + 1,
            None => return true,
        },
        _ => 0,
    };
    // An empty name ends at once; no terminator yet means "too short to tell".
    body[start..].first() != Some(&0)
}

/// Whether the portal and statement names at the start of a Bind body are all there.
fn bind_names_complete(body: &[u8]) -> bool {
    body.iter().filter(|&&b| b == 0).take(2).count() == 2
}

/// The query text of a Parse body (after the statement name).
fn statement_text(parse_body: &[u8]) -> &[u8] {
    match parse_body.iter().position(|&b| b == 0) {
        Some(end) => &parse_body[end + 1..],
        None => &[],
    }
}

/// The ErrorResponse for a Query or Parse using a feature that cannot work when pooling
/// by transaction, if it does.
fn refusal_for(frame: &crate::protocol::frame::Frame<'_>) -> Option<Vec<u8>> {
    let body = frame.body?;
    let text = match frame.tag {
        b'Q' => body,
        b'P' => statement_text(body),
        _ => return None,
    };
    let feature = session_only_feature(text)?;
    let mut error = BytesMut::new();
    builders::error_response(
        &mut error,
        Severity::Error,
        FEATURE_NOT_SUPPORTED,
        &format!("{feature} cannot be used in transaction pooling mode"),
        Some(session_only::HINT),
    );
    Some(error.to_vec())
}

/// Messages a client may send once logged in (PostgreSQL's own list in postgres.c).
fn is_frontend_message(tag: u8) -> bool {
    matches!(
        tag,
        b'Q' | b'P' | b'B' | b'E' | b'D' | b'C' | b'S' | b'H' | b'F' | b'd' | b'c' | b'f' | b'X'
    )
}

/// Ends the client (08P01) for a message type PostgreSQL does not know or one larger
/// than `max_packet_size`, before any of it reaches a server.
pub(in crate::client) fn check_client_message(
    tag: u8,
    body_len: usize,
    max_packet_size: usize,
) -> Result<(), Refusal> {
    if !is_frontend_message(tag) {
        let shown = if tag.is_ascii_graphic() {
            format!("'{}'", tag as char)
        } else {
            tag.to_string()
        };
        return Err(Refusal::Protocol(format!(
            "invalid frontend message type {shown}"
        )));
    }
    if body_len.saturating_add(HEADER_LEN) > max_packet_size {
        return Err(Refusal::Protocol(format!(
            "message of {} bytes exceeds max_packet_size ({max_packet_size})",
            body_len + HEADER_LEN
        )));
    }
    Ok(())
}
