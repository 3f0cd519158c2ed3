//! The queue of replies still owed to the client (DESIGN.md facts 1–3, STYLE.md
//! principle 5). Every forwarded request pushes what it will be answered with; pgmux's
//! own injected requests push replies to swallow; requests pgmux answers itself push a
//! synthetic reply that is emitted in order. The server may go back to the pool only when
//! nothing is owed, no extended-protocol message awaits its Sync, and the last
//! ReadyForQuery said idle.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::statements::StatementDef;

/// A request whose reply ends with a known message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Parse,
    Bind,
    DescribeStatement,
    DescribePortal,
    Execute,
    Close,
    Sync,
    Query,
    FunctionCall,
}

#[derive(Debug)]
enum Owed {
    /// The server will answer. `swallow`: pgmux asked, the client must not see it.
    /// `statement`: a Parse creating this server-side statement, forgotten if it fails.
    Server {
        request: Request,
        swallow: bool,
        statement: Option<Arc<StatementDef>>,
    },
    /// pgmux answers this itself (ParseComplete '1' or CloseComplete '3').
    Synthetic(u8),
    /// A reply pgmux makes in place of the server (a pre-built ErrorResponse, or a
    /// CommandComplete for a statement it answered from its own records).
    Reply(Box<[u8]>),
    /// A ReadyForQuery pgmux sends itself, with the transaction status as it is by then.
    Ready,
}

/// What to do with one server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Forward,
    Swallow,
}

#[derive(Debug)]
pub struct ReplyQueue {
    owed: VecDeque<Owed>,
    /// Extended-protocol messages forwarded since the last Sync: the server holds their
    /// state (unnamed statement, portals, implicit transaction) until the Sync.
    unsynced: bool,
    /// Status byte of the last ReadyForQuery: 'I' idle, 'T' in transaction, 'E' failed.
    status: u8,
    /// Between CopyInResponse and the client's CopyDone/CopyFail. PostgreSQL ignores Sync
    /// (and Flush) in this state — drivers send one after Execute without knowing the
    /// statement is a COPY — so such a Sync is answered by nothing.
    copy_in: bool,
}

impl Default for ReplyQueue {
    fn default() -> Self {
        ReplyQueue {
            owed: VecDeque::new(),
            unsynced: false,
            status: b'I',
            copy_in: false,
        }
    }
}

impl ReplyQueue {
    /// A client request was forwarded.
    pub fn expect(&mut self, request: Request) {
        self.push(request, false, None);
    }

    /// A Parse was forwarded (client's or injected) that creates `statement` on the server.
    pub fn expect_parse(&mut self, statement: Arc<StatementDef>, swallow: bool) {
        self.push(Request::Parse, swallow, Some(statement));
    }

    /// A simple Query (SQL `PREPARE`) was sent that creates `statement` on the server.
    pub fn expect_query_creating(&mut self, statement: Arc<StatementDef>, swallow: bool) {
        self.push(Request::Query, swallow, Some(statement));
    }

    /// pgmux sent this request on its own behalf: its reply is not the client's.
    pub fn expect_swallowed(&mut self, request: Request) {
        self.push(request, true, None);
    }

    fn push(&mut self, request: Request, swallow: bool, statement: Option<Arc<StatementDef>>) {
        if request == Request::Sync && self.copy_in {
            return;
        }
        match request {
            Request::Sync => self.unsynced = false,
            Request::Query | Request::FunctionCall => {}
            _ => self.unsynced = true,
        }
        self.owed.push_back(Owed::Server {
            request,
            swallow,
            statement,
        });
    }

    /// The client sent CopyDone or CopyFail: the server reads Sync again.
    pub fn client_copy_ended(&mut self) {
        self.copy_in = false;
    }

    /// pgmux answers a request itself with the one-message reply `tag` (no body).
    pub fn synthesize(&mut self, tag: u8) {
        self.owed.push_back(Owed::Synthetic(tag));
    }

    /// A reply pgmux answers a request with itself, in its place among the replies.
    pub fn respond(&mut self, reply: Box<[u8]>) {
        self.owed.push_back(Owed::Reply(reply));
    }

    /// A ReadyForQuery pgmux answers itself (for a simple Query it did not forward).
    pub fn ready(&mut self) {
        self.owed.push_back(Owed::Ready);
    }

    /// Replies pgmux makes itself that are now at the front: the client gets them before
    /// anything else.
    pub fn drain_synthetic(&mut self, out: &mut Vec<u8>) {
        loop {
            match self.owed.front() {
                Some(Owed::Synthetic(tag)) => out.extend_from_slice(&[*tag, 0, 0, 0, 4]),
                Some(Owed::Reply(reply)) => out.extend_from_slice(reply),
                Some(Owed::Ready) => out.extend_from_slice(&[b'Z', 0, 0, 0, 5, self.status]),
                _ => return,
            }
            self.owed.pop_front();
        }
    }

    /// Matches one server message against what is owed. Synthetic replies that become
    /// due after it are appended to `then`; statements whose Parse failed or was skipped
    /// (the server discards everything up to Sync after an error) go to `failed`.
    pub fn on_server(
        &mut self,
        tag: u8,
        status: Option<u8>,
        then: &mut Vec<u8>,
        failed: &mut Vec<Arc<StatementDef>>,
    ) -> Disposition {
        let head = match self.owed.front() {
            Some(Owed::Server {
                request, swallow, ..
            }) => Some((*request, *swallow)),
            _ => None,
        };
        let Some((request, swallow)) = head else {
            // Asynchronous messages (NoticeResponse, ParameterStatus, NotificationResponse).
            return Disposition::Forward;
        };
        let completes = match tag {
            b'1' => request == Request::Parse,
            b'2' => request == Request::Bind,
            b'3' => request == Request::Close,
            b'n' => matches!(
                request,
                Request::DescribeStatement | Request::DescribePortal
            ),
            b'T' => matches!(
                request,
                Request::DescribeStatement | Request::DescribePortal
            ),
            b'C' | b'I' | b's' => request == Request::Execute,
            b'G' => {
                self.enter_copy_in();
                false
            }
            b'Z' => {
                self.status = status.unwrap_or(b'I');
                matches!(
                    request,
                    Request::Sync | Request::Query | Request::FunctionCall
                )
            }
            b'E' if request == Request::Query => {
                // A failed PREPARE created nothing; the ReadyForQuery still follows.
                if let Some(Owed::Server { statement, .. }) = self.owed.front_mut() {
                    failed.extend(statement.take());
                }
                false
            }
            b'E' if !matches!(
                request,
                Request::Sync | Request::Query | Request::FunctionCall
            ) =>
            {
                self.fail_until_sync(failed);
                self.drain_synthetic(then);
                return Disposition::Forward;
            }
            _ => false,
        };
        if completes {
            self.owed.pop_front();
            self.drain_synthetic(then);
        }
        if swallow {
            Disposition::Swallow
        } else {
            Disposition::Forward
        }
    }

    /// CopyInResponse: Syncs the client already sent behind the COPY's Execute will be
    /// ignored by the server, so no ReadyForQuery is owed for them.
    fn enter_copy_in(&mut self) {
        self.copy_in = true;
        let mut index = 1;
        while index < self.owed.len() {
            if matches!(
                self.owed[index],
                Owed::Server {
                    request: Request::Sync,
                    ..
                }
            ) {
                self.owed.remove(index);
            } else {
                index += 1;
            }
        }
        self.unsynced = true;
    }

    /// An extended-protocol message failed: PostgreSQL ignores every message up to the
    /// next Sync, so nothing but that Sync's ReadyForQuery will come.
    fn fail_until_sync(&mut self, failed: &mut Vec<Arc<StatementDef>>) {
        while let Some(owed) = self.owed.front() {
            if let Owed::Server {
                request: Request::Sync,
                ..
            } = owed
            {
                break;
            }
            if let Some(Owed::Server {
                statement: Some(statement),
                ..
            }) = self.owed.pop_front()
            {
                failed.push(statement);
            }
        }
    }

    /// Nothing owed, nothing awaiting a Sync, no transaction open: the server may serve
    /// another client.
    pub fn is_idle(&self) -> bool {
        self.owed.is_empty() && !self.unsynced && self.status == b'I'
    }

    /// The server still owes the client something.
    pub fn awaiting_server(&self) -> bool {
        self.owed.iter().any(|o| matches!(o, Owed::Server { .. }))
    }

    /// Between statements inside an open (or failed) transaction block.
    pub fn idle_in_transaction(&self) -> bool {
        self.owed.is_empty() && self.status != b'I'
    }
}

#[cfg(test)]
mod tests;
