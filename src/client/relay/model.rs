//! The protocol state of the server connection a session holds (DESIGN.md facts 1–2 and
//! 10–13, STYLE.md principle 5): what the server still owes, in the order it will answer,
//! and the one phase it is in. Both halves of the relay drive it — `push` as client
//! messages (and pgmux's own) are sent, `on_server` as replies arrive — and one function,
//! [`Model::is_clean`], says whether the server may serve another client.
//!
//! ```text
//!  client ─ Parse Bind Execute Sync ─▶ queue: [Parse, Bind, Execute, Sync]
//!  server ─ 1 ─ 2 ─ D… C ─ Z(I) ─────▶ each reply completes the entry at the head;
//!                                       Z pops the Sync; empty + 'I' + Ready = clean
//! ```
//!
//! PostgreSQL's own rules decide the rest:
//! - after an error in an extended-protocol message, the server discards every message
//!   up to the next Sync (queries included): those entries are dropped unanswered, and
//!   the changes they made to pgmux's records are undone ([`Change`]);
//! - in COPY FROM STDIN the server reads only copy messages and ignores Sync, so no
//!   ReadyForQuery is owed for a Sync sent then;
//! - a COPY ends with the client's CopyDone or CopyFail, or with the server's error.
//!
//! A server is released only when its model is clean, so a server in the pool has no
//! state to carry and a fresh model serves the next checkout. Coming next: a `Pinned`
//! phase for a server held by a client with session state (advisory locks, LISTEN).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::statements::StatementDef;

/// A request whose reply the server owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    Query,
    FunctionCall,
}

impl Request {
    /// Sync, Query and FunctionCall are answered with ReadyForQuery: each ends a stretch
    /// the server either runs or (after an extended-protocol error) discards as a whole.
    fn ends_with_ready(self) -> bool {
        matches!(self, Request::Sync | Request::Query | Request::FunctionCall)
    }
}

/// Where the replies to one request go.
#[derive(Debug)]
pub enum Route {
    /// The client's own request.
    Client,
    /// pgmux's own (an injected Parse, an eviction Close, a standalone Sync): its replies
    /// are dropped, but an error still reaches the client, whose request needed it.
    Swallow,
    /// Stands in for a request pgmux refused (DESIGN.md fact 13): the server fails it,
    /// so a transaction fails as PostgreSQL would fail it, and the client gets this
    /// ErrorResponse in place of the server's.
    Refused(Box<[u8]>),
}

/// A reply pgmux gives itself, in its place among the server's.
#[derive(Debug)]
pub enum Synthetic {
    ParseComplete,
    CloseComplete,
    /// Whole messages (a CommandComplete for a SQL `PREPARE` answered from the cache).
    Messages(Box<[u8]>),
    /// ReadyForQuery with the transaction status as it stands when it is sent.
    Ready,
}

/// A change pgmux made to its statement records when it sent a request, undone if the
/// server discards the request: records follow what the server did, not what was sent.
#[derive(Debug)]
pub enum Change {
    /// The server connection's cache entry for statement `id` was `was` before.
    ServerStatement {
        id: u64,
        was: Option<Arc<StatementDef>>,
    },
    /// The client's statement `name` was `was` before.
    ClientName {
        name: Box<str>,
        was: Option<Arc<StatementDef>>,
    },
}

#[derive(Debug)]
enum Owed {
    Server {
        request: Request,
        route: Route,
        changes: Vec<Change>,
    },
    Synthetic {
        reply: Synthetic,
        changes: Vec<Change>,
    },
}

impl Owed {
    fn changes(&self) -> &[Change] {
        match self {
            Owed::Server { changes, .. } | Owed::Synthetic { changes, .. } => changes,
        }
    }

    fn ends_with_ready(&self) -> bool {
        matches!(self, Owed::Server { request, .. } if request.ends_with_ready())
    }

    fn into_changes(self) -> Vec<Change> {
        match self {
            Owed::Server { changes, .. } | Owed::Synthetic { changes, .. } => changes,
        }
    }
}

/// The phase of the server connection, as far as its answers so far tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Running the queue in order.
    #[default]
    Ready,
    /// An extended-protocol message failed and no Sync has been sent since: the server
    /// discards everything the client sends until one.
    SkippingUntilSync,
    /// COPY FROM STDIN: the server reads the client's CopyData until CopyDone/CopyFail.
    CopyIn,
}

/// What happens to one server message.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    Forward,
    Swallow,
    /// Replace it with pgmux's ErrorResponse for a refused request.
    Replace(Box<[u8]>),
}

#[derive(Debug, Default)]
pub struct Model {
    owed: VecDeque<Owed>,
    phase: Phase,
    /// Status byte of the last ReadyForQuery: 'I' idle, 'T' in a transaction, 'E' failed.
    status: Status,
    /// Entries in `owed` answered by ReadyForQuery.
    boundaries: usize,
    /// Entries in `owed` with changes, and of those the ones a boundary follows.
    changed: usize,
    changed_before_boundary: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Status(u8);

impl Default for Status {
    fn default() -> Self {
        Status(b'I')
    }
}

impl Model {
    /// A request was sent to the server. Pushed while the server is discarding until
    /// Sync, it is answered by nothing: its changes come back to be undone, and a
    /// synthetic reply it stood for is never sent.
    pub fn push(&mut self, request: Request, route: Route, changes: Vec<Change>) -> Vec<Change> {
        match self.phase {
            Phase::CopyIn if request == Request::Sync => return changes,
            Phase::SkippingUntilSync if request != Request::Sync => return changes,
            Phase::SkippingUntilSync => self.phase = Phase::Ready,
            _ => {}
        }
        self.enqueue(Owed::Server {
            request,
            route,
            changes,
        });
        Vec::new()
    }

    /// pgmux answers a request itself, in its place after what is owed before it.
    pub fn push_synthetic(&mut self, reply: Synthetic, changes: Vec<Change>) -> Vec<Change> {
        if self.phase == Phase::SkippingUntilSync {
            return changes;
        }
        self.enqueue(Owed::Synthetic { reply, changes });
        Vec::new()
    }

    fn enqueue(&mut self, owed: Owed) {
        if owed.ends_with_ready() {
            self.boundaries += 1;
            // Changes before this boundary, and its own (a SQL PREPARE), now stand
            // before it for everything sent later.
            self.changed_before_boundary = self.changed + usize::from(!owed.changes().is_empty());
        }
        if !owed.changes().is_empty() {
            self.changed += 1;
        }
        self.owed.push_back(owed);
    }

    fn pop_front(&mut self) -> Option<Owed> {
        let owed = self.owed.pop_front()?;
        if !owed.changes().is_empty() {
            self.changed -= 1;
            self.changed_before_boundary = self.changed_before_boundary.saturating_sub(1);
        }
        if owed.ends_with_ready() {
            self.boundaries -= 1;
            if self.boundaries == 0 {
                self.changed_before_boundary = 0;
            }
        }
        Some(owed)
    }

    /// The client sent CopyDone or CopyFail: the server reads Sync again.
    pub fn client_copy_done(&mut self) {
        if self.phase == Phase::CopyIn {
            self.phase = Phase::Ready;
        }
    }

    /// Whether copy messages from the client reach a COPY: during one, or while a request
    /// that may start one is owed. Otherwise PostgreSQL drops them (they come late, after
    /// a COPY failed), and so does pgmux.
    pub fn takes_copy_data(&self) -> bool {
        self.phase == Phase::CopyIn || !self.owed.is_empty()
    }

    /// A message that reads the statement records must wait while a change to them is
    /// owed before a ReadyForQuery still to come: an error before that change would undo
    /// it, and this message, sent after the Sync, would not be discarded with it.
    pub fn must_hold_statement_messages(&self) -> bool {
        self.changed_before_boundary > 0
    }

    /// Matches one server message (its tag, and the status byte of a ReadyForQuery)
    /// against what is owed. Synthetic replies due after it go to `then`; changes of
    /// requests the server discarded go to `undo`, oldest first.
    pub fn on_server(
        &mut self,
        tag: u8,
        ready_status: Option<u8>,
        then: &mut Vec<u8>,
        undo: &mut Vec<Change>,
    ) -> Disposition {
        let Some(Owed::Server { request, route, .. }) = self.owed.front() else {
            // Nothing owed: NoticeResponse, ParameterStatus, NotificationResponse, or a
            // ReadyForQuery ending a stretch pgmux did not expect to be answered (a Sync
            // sent during a COPY that failed before reading it).
            if tag == b'Z' {
                self.on_ready(ready_status);
            }
            return Disposition::Forward;
        };
        let request = *request;
        let disposition = match (tag, route) {
            (b'E', Route::Refused(error)) => Disposition::Replace(error.clone()),
            // The client learns why its request failed, even when pgmux sent the part
            // that failed (a statement prepared again for its Bind); and a refused
            // Query's ReadyForQuery answers the client's Query.
            (b'E', _) | (b'Z', Route::Refused(_)) | (_, Route::Client) => Disposition::Forward,
            (_, Route::Swallow | Route::Refused(_)) => Disposition::Swallow,
        };
        let completes = match tag {
            b'1' => request == Request::Parse,
            b'2' => request == Request::Bind,
            b'3' => request == Request::Close,
            b'n' | b'T' => request == Request::Describe,
            b'C' | b'I' | b's' => request == Request::Execute,
            b'G' | b'W' => {
                self.enter_copy_in();
                false
            }
            b'Z' => {
                self.on_ready(ready_status);
                // Whatever is still owed before the entry it answers was discarded.
                while let Some(owed) = self.pop_front() {
                    if owed.ends_with_ready() {
                        break;
                    }
                    undo.extend(owed.into_changes());
                }
                self.drain_synthetic(then);
                return disposition;
            }
            b'E' => {
                if self.phase == Phase::CopyIn {
                    self.phase = Phase::Ready;
                }
                if !request.ends_with_ready() {
                    self.discard_until_sync(undo);
                }
                false
            }
            _ => false,
        };
        if completes {
            self.pop_front();
            self.drain_synthetic(then);
        }
        disposition
    }

    fn on_ready(&mut self, status: Option<u8>) {
        self.status = Status(status.unwrap_or(b'I'));
        if self.phase == Phase::SkippingUntilSync {
            self.phase = Phase::Ready;
        }
    }

    /// CopyInResponse: the server now reads only copy messages and ignores Sync, so the
    /// Syncs already sent behind the COPY (libpq sends one after every Execute) are
    /// answered by nothing.
    fn enter_copy_in(&mut self) {
        self.phase = Phase::CopyIn;
        let mut index = 1;
        while index < self.owed.len() {
            if matches!(
                self.owed[index],
                Owed::Server {
                    request: Request::Sync,
                    ..
                }
            ) {
                let sync = self.owed.remove(index).expect("index in range");
                self.boundaries -= 1;
                debug_assert!(sync.changes().is_empty());
                self.recount_changes_before_boundary();
            } else {
                index += 1;
            }
        }
    }

    fn recount_changes_before_boundary(&mut self) {
        let last_boundary = self.owed.iter().rposition(Owed::ends_with_ready);
        self.changed_before_boundary = match last_boundary {
            Some(at) => self
                .owed
                .iter()
                .take(at + 1)
                .filter(|owed| !owed.changes().is_empty())
                .count(),
            None => 0,
        };
    }

    /// An extended-protocol request failed: PostgreSQL discards every message up to the
    /// next Sync, so nothing but that Sync's ReadyForQuery will come. With no Sync sent
    /// yet, what the client sends until one is discarded too.
    fn discard_until_sync(&mut self, undo: &mut Vec<Change>) {
        while let Some(owed) = self.owed.front() {
            if owed.ends_with_ready() {
                return;
            }
            let owed = self.pop_front().expect("front exists");
            undo.extend(owed.into_changes());
        }
        self.phase = Phase::SkippingUntilSync;
    }

    /// Synthetic replies now at the head of the queue, which the client gets next.
    pub fn drain_synthetic(&mut self, out: &mut Vec<u8>) {
        while let Some(Owed::Synthetic { reply, .. }) = self.owed.front() {
            match reply {
                Synthetic::ParseComplete => out.extend_from_slice(&[b'1', 0, 0, 0, 4]),
                Synthetic::CloseComplete => out.extend_from_slice(&[b'3', 0, 0, 0, 4]),
                Synthetic::Messages(bytes) => out.extend_from_slice(bytes),
                Synthetic::Ready => out.extend_from_slice(&[b'Z', 0, 0, 0, 5, self.status.0]),
            }
            self.pop_front();
        }
    }

    /// Nothing owed, no transaction, no COPY, nothing being discarded: the server may
    /// serve another client (as far as the protocol goes; the relay also checks that no
    /// message is half sent either way).
    pub fn is_clean(&self) -> bool {
        self.owed.is_empty() && self.status == Status(b'I') && self.phase == Phase::Ready
    }

    /// The server owes the client a reply (a query is running, as far as timeouts go).
    pub fn awaiting_server(&self) -> bool {
        self.owed
            .iter()
            .any(|owed| matches!(owed, Owed::Server { .. }))
    }

    /// Between statements inside an open (or failed) transaction block.
    pub fn idle_in_transaction(&self) -> bool {
        self.owed.is_empty() && self.status != Status(b'I')
    }

    /// Entries owed, the server's and pgmux's own.
    pub fn owed_len(&self) -> usize {
        self.owed.len()
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Back to the state of a server fresh from the pool; the queue keeps its memory.
    pub fn reset(&mut self) {
        self.owed.clear();
        *self = Model {
            owed: std::mem::take(&mut self.owed),
            ..Model::default()
        };
    }
}

#[cfg(test)]
mod tests;
