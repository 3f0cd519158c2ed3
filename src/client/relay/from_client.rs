//! The client → server half of the relay, and the one match on frontend message tags:
//! every client message is checked (a type PostgreSQL knows, within `max_packet_size`,
//! both from its header), then forwarded as it arrives, rewritten when it names a
//! prepared statement, refused in place when it uses a session-only feature under
//! transaction pooling, held while the server settles earlier statement changes, or
//! dropped when PostgreSQL would ignore it — and what the server will owe for it is
//! pushed onto the model.

use bytes::BytesMut;

use super::model::{Model, Request, Route};
use super::outbox::Source;
use super::pump::Pump;
use super::refuse;
use super::statements::{self, ClientStatements, Rewriter};
use crate::client::sql::session_only::{self, session_only_feature};
use crate::client::sql::settings::SessionSettings;
use crate::client::Refusal;
use crate::protocol::frame::{Frame, FrameError, HEADER_LEN};
use crate::protocol::sqlstate::FEATURE_NOT_SUPPORTED;
use crate::protocol::Limits;
use crate::server::prepared::ServerStatements;
use crate::statements::StatementRegistry;
use crate::stats::PoolStats;

/// Parse/Bind/Describe/Close are read whole to rename statements; a larger one (a Bind
/// with huge parameters) streams through unchanged.
const MAX_REWRITTEN: usize = 256 << 20;
/// Statement texts up to this size are read whole to check for session-only features.
const MAX_CHECKED: usize = 64 * 1024;
/// Requests the server may owe at once before pgmux stops reading the client: replies
/// pgmux answers itself wait behind a slow query, and must not pile up without bound.
pub(super) const MAX_OWED: usize = 16 * 1024;

/// What becomes of one client message.
enum Action {
    Forward,
    /// Replaced by what `scratch` holds (possibly nothing).
    Replace,
    /// Not sent: PostgreSQL would ignore it.
    Drop,
    /// Not yet: sent once the server has settled what it must first.
    Hold,
    Terminate,
}

/// What handling a client message may touch, borrowed from the session and its server.
struct Handler<'a> {
    model: &'a mut Model,
    statements: &'a mut ClientStatements,
    server: &'a mut ServerStatements,
    registry: &'a StatementRegistry,
    stats: &'a PoolStats,
    settings: &'a mut SessionSettings,
    scratch: &'a mut BytesMut,
    capacity: usize,
    /// Transaction or statement pooling: session-only features are refused, settings
    /// tracked, SQL PREPARE followed.
    transactional: bool,
}

impl Pump<'_> {
    /// Walks every client message buffered so far; true when anything was walked.
    pub(super) fn walk_client(&mut self) -> Result<bool, Refusal> {
        if self.leaving || self.ending.is_some() {
            return Ok(false);
        }
        let capacity = self.limits.max_prepared_statements;
        let transactional = self.session.mode != crate::config::PoolMode::Session;
        let limits = Limits {
            whole: MAX_REWRITTEN,
            len: self.limits.max_packet_size,
        };
        let needs_body = |tag: u8, body: &[u8], body_len: usize| match tag {
            b'D' | b'C' => true,
            // Statement texts are checked for session-only features when pooling by
            // transaction; long ones stream unchecked.
            b'Q' | b'P' if transactional && body_len <= MAX_CHECKED => true,
            // A Bind waits only until its names are in: its parameters may stream.
            b'B' if capacity > 0 => !bind_names_complete(body),
            b'P' if capacity > 0 => body.first() != Some(&0),
            _ => false,
        };
        let mut walked = false;
        self.held = false;
        loop {
            let session = &mut *self.session;
            let continued = session.cursor.continue_streaming(&session.buf);
            self.tally.received += continued.len() as u64;
            if session.dropping_frame && !continued.is_empty() {
                let mut source = Source {
                    buf: &mut session.buf,
                    cursor: &mut session.cursor,
                };
                session
                    .to_server
                    .replace(&mut source, continued.start, continued.end, &[]);
            }
            if session.cursor.mid_frame() {
                break;
            }
            session.dropping_frame = false;
            if session.model.owed_len() >= MAX_OWED {
                self.held = true;
                break;
            }
            let start = session.cursor.consumed();
            let frame = session
                .cursor
                .next(&session.buf, needs_body, limits)
                .map_err(|e| match e {
                    FrameError::TooLarge(total, max) => too_large(total, max),
                    other => Refusal::Protocol(format!("invalid client message: {other}")),
                })?;
            let Some(frame) = frame else { break };
            check_client_message(frame.tag)?;
            let streamed = frame.body.is_none();
            session.scratch.clear();
            let action = Handler {
                model: &mut session.model,
                statements: &mut session.statements,
                server: &mut self.conn.statements,
                registry: &session.shared.statements,
                stats: &session.pool.stats,
                settings: &mut session.settings,
                scratch: &mut session.scratch,
                capacity,
                transactional,
            }
            .handle(&frame);
            let end = session.cursor.consumed();
            self.tally.received += (end - start) as u64;
            let mut source = Source {
                buf: &mut session.buf,
                cursor: &mut session.cursor,
            };
            match action {
                Action::Forward => {}
                Action::Replace => {
                    session
                        .to_server
                        .replace(&mut source, start, end, &session.scratch)
                }
                Action::Drop => {
                    session.to_server.replace(&mut source, start, end, &[]);
                    session.dropping_frame = streamed;
                    walked = true;
                    continue;
                }
                Action::Hold => {
                    source.cursor.unread(start);
                    self.tally.received -= (end - start) as u64;
                    self.held = true;
                    break;
                }
                Action::Terminate => {
                    // Terminate is for pgmux, not for a pooled server.
                    session.to_server.replace(&mut source, start, end, &[]);
                    self.client_left(crate::logfmt::reason::CLIENT_CLOSE_REQUEST);
                    walked = true;
                    break;
                }
            }
            walked = true;
            self.started = true;
        }
        self.send_due_synthetic();
        Ok(walked)
    }

    /// Replies pgmux answers itself that nothing from the server precedes any more.
    pub(super) fn send_due_synthetic(&mut self) {
        let mut due = Vec::new();
        self.session.model.drain_synthetic(&mut due);
        if !due.is_empty() {
            let mut source = Source {
                buf: &mut self.conn.read_buf,
                cursor: &mut self.server_cursor,
            };
            self.session.to_client.append(&mut source, &due);
        }
    }
}

impl Handler<'_> {
    fn handle(mut self, frame: &Frame<'_>) -> Action {
        let (tag, available, body_len) = (frame.tag, frame.available, frame.body_len);
        if self.capacity > 0
            && self.model.must_hold_statement_messages()
            && statements::names_a_statement(tag, available)
        {
            return Action::Hold;
        }
        match tag {
            b'X' => return Action::Terminate,
            // Late copy messages, after the server failed the COPY: PostgreSQL drops them.
            b'd' | b'c' | b'f' if !self.model.takes_copy_data() => return Action::Drop,
            b'd' | b'H' => return Action::Forward,
            b'c' | b'f' => {
                self.model.client_copy_done();
                return Action::Forward;
            }
            b'Q' => return self.query(frame.body),
            b'P' if self.refused(frame) => return Action::Replace,
            _ => {}
        }
        if tag == b'P' && self.transactional {
            self.settings.note_sql(statement_text(available));
        }
        if self.capacity > 0 {
            let (mut rewriter, scratch) = self.rewriter();
            if rewriter.rewrite(tag, available, body_len, scratch) {
                return Action::Replace;
            }
        }
        let request = match tag {
            b'P' => Request::Parse,
            b'B' => Request::Bind,
            b'D' => Request::Describe,
            b'E' => Request::Execute,
            b'C' => Request::Close,
            b'S' => Request::Sync,
            b'F' => Request::FunctionCall,
            _ => unreachable!("check_client_message lets through only frontend messages"),
        };
        self.model.push(request, Route::Client, Vec::new());
        Action::Forward
    }

    fn query(&mut self, body: Option<&[u8]>) -> Action {
        if let Some(text) = body.filter(|_| self.transactional) {
            if let Some(feature) = session_only_feature(text) {
                refuse_session_only(self.model, Request::Query, feature, self.scratch);
                return Action::Replace;
            }
            self.settings.note_sql(text);
            if self.capacity > 0 {
                let (mut rewriter, scratch) = self.rewriter();
                if rewriter.sql_command(text, scratch) {
                    return Action::Replace;
                }
            }
        }
        self.model.push(Request::Query, Route::Client, Vec::new());
        Action::Forward
    }

    /// A Parse of a session-only feature under transaction pooling.
    fn refused(&mut self, frame: &Frame<'_>) -> bool {
        let Some(body) = frame.body.filter(|_| self.transactional) else {
            return false;
        };
        let Some(feature) = session_only_feature(statement_text(body)) else {
            return false;
        };
        refuse_session_only(self.model, Request::Parse, feature, self.scratch);
        true
    }

    /// The statement rewriter, and the buffer it writes the server's messages to.
    fn rewriter(&mut self) -> (Rewriter<'_>, &mut BytesMut) {
        let rewriter = Rewriter {
            statements: self.statements,
            server: self.server,
            registry: self.registry,
            model: self.model,
            stats: self.stats,
            capacity: self.capacity,
        };
        (rewriter, self.scratch)
    }
}

fn refuse_session_only(model: &mut Model, kind: Request, feature: &str, out: &mut BytesMut) {
    let message = format!("{feature} cannot be used in transaction pooling mode");
    refuse::with_hint(
        model,
        kind,
        FEATURE_NOT_SUPPORTED,
        &message,
        Some(session_only::HINT),
        out,
    );
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

/// Messages a client may send once logged in (PostgreSQL's own list in postgres.c).
fn is_frontend_message(tag: u8) -> bool {
    matches!(
        tag,
        b'Q' | b'P' | b'B' | b'E' | b'D' | b'C' | b'S' | b'H' | b'F' | b'd' | b'c' | b'f' | b'X'
    )
}

/// Ends the client (08P01) for a message type PostgreSQL does not know, before any of
/// it reaches a server.
pub(in crate::client) fn check_client_message(tag: u8) -> Result<(), Refusal> {
    if is_frontend_message(tag) {
        return Ok(());
    }
    let shown = if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        tag.to_string()
    };
    Err(Refusal::Protocol(format!(
        "invalid frontend message type {shown}"
    )))
}

/// Ends the client (08P01) for a message larger than `max_packet_size`, from its header.
pub(in crate::client) fn check_message_length(
    body_len: usize,
    max_packet_size: usize,
) -> Result<(), Refusal> {
    let total = body_len.saturating_add(HEADER_LEN);
    if total > max_packet_size {
        return Err(too_large(total, max_packet_size));
    }
    Ok(())
}

fn too_large(total: usize, max_packet_size: usize) -> Refusal {
    Refusal::Protocol(format!(
        "message of {total} bytes exceeds max_packet_size ({max_packet_size})"
    ))
}
