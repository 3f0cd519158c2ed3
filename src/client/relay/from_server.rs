//! The server → client half of the relay, and the one match on backend message tags:
//! every server message is walked header by header (only ReadyForQuery, ParameterStatus,
//! ErrorResponse and CommandComplete are read whole), matched against the model, and
//! forwarded — minus replies to pgmux's own requests, plus the replies pgmux answers
//! itself, each in its place.

use super::model::Disposition;
use super::outbox::Source;
use super::pump::{Pump, MAX_INSPECTED};
use super::statements;
use crate::client::Refusal;
use crate::config::PoolMode;
use crate::protocol::frame::parameter_status;
use crate::protocol::Limits;

impl Pump<'_> {
    /// Walks what the server sent so far.
    pub(super) fn walk_server(&mut self) -> Result<(), Refusal> {
        let mut then = Vec::new();
        let mut undo = Vec::new();
        loop {
            let session = &mut *self.session;
            let conn = &mut *self.conn;
            let start = self.server_cursor.consumed();
            let frame = self
                .server_cursor
                .next(
                    &conn.read_buf,
                    |tag, _, _| matches!(tag, b'Z' | b'S' | b'E' | b'C'),
                    Limits::whole_up_to(MAX_INSPECTED),
                )
                .map_err(|e| Refusal::ServerProtocol(e.to_string()))?;
            let Some(frame) = frame else { break };
            let end = self.server_cursor.consumed();
            let (tag, whole) = (frame.tag, frame.body.is_some());
            let status = match (tag, frame.body) {
                (b'Z', Some(body)) => {
                    self.tally.queries += 1;
                    body.first().copied()
                }
                (b'S', Some(body)) => {
                    if let Some((name, value)) = parameter_status(body) {
                        // A parameter the client changed (`SET application_name`) is
                        // what its later transactions must see.
                        if session.params.get(name).is_some() {
                            session.params.set(name, value);
                        }
                        conn.params.set(name, value);
                    }
                    None
                }
                (b'E', Some(body)) => {
                    let severity = crate::server::error_field(body, b'V');
                    session.server_sent_fatal |= matches!(severity, Some("FATAL" | "PANIC"));
                    None
                }
                (b'C', Some(body)) => {
                    session.settings.note_command(body);
                    // DISCARD ALL / DEALLOCATE ALL dropped every prepared statement of
                    // the server; so did this client.
                    if matches!(body, b"DISCARD ALL\0" | b"DEALLOCATE ALL\0") {
                        conn.statements.clear();
                        session.statements.clear();
                    }
                    None
                }
                _ => None,
            };
            if session.mode == PoolMode::Statement && matches!(status, Some(b'T' | b'E')) {
                // A transaction block began: refuse it before the client sees it succeed,
                // as PgBouncer does (the server, mid-transaction, is closed).
                self.server_cursor.unread(start);
                self.ending = Some(Refusal::StatementModeTransaction);
                break;
            }
            let disposition = session.model.on_server(tag, status, &mut then, &mut undo);
            if !undo.is_empty() {
                let changes = std::mem::take(&mut undo);
                statements::undo(changes, &mut session.statements, &mut conn.statements);
            }
            let mut source = Source {
                buf: &mut conn.read_buf,
                cursor: &mut self.server_cursor,
            };
            match disposition {
                // A streamed frame (larger than anything pgmux replaces) goes on as is.
                Disposition::Swallow if whole => {
                    session.to_client.replace(&mut source, start, end, &then);
                }
                Disposition::Replace(error) if whole => {
                    then.splice(0..0, error.iter().copied());
                    session.to_client.replace(&mut source, start, end, &then);
                }
                _ => session.to_client.append(&mut source, &then),
            }
            then.clear();
        }
        Ok(())
    }
}
