//! Client messages that name prepared statements, rewritten for whichever server the
//! client's transaction landed on (DESIGN.md fact 3):
//!
//! - Parse "s1": the client's name maps to the shared `pgmux_<id>`; when this server has
//!   it already, pgmux answers ParseComplete itself, else it forwards the Parse renamed.
//! - Bind / Describe of "s1": renamed; a Parse is injected first (its reply swallowed)
//!   when this server lacks the statement, so errors in it surface on the Bind.
//! - Close of "s1": forgets the client's name and answers CloseComplete itself; the
//!   server keeps the statement for other clients until its cache evicts it.
//!
//! Unnamed statements and portals go through untouched.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::replies::{ReplyQueue, Request};
use crate::client::sql::prepare::{self as sql_prepare, SqlCommand};
use crate::protocol::builders;
use crate::protocol::frame::take_cstr;
use crate::server::prepared::ServerStatements;
use crate::statements::{StatementDef, StatementRegistry};
use crate::stats::PoolStats;

/// One client's named statements.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<String, Arc<StatementDef>>,
}

impl ClientStatements {
    /// DISCARD ALL / DEALLOCATE ALL ran in this client's session.
    pub fn clear(&mut self) {
        self.by_name.clear();
    }
}

/// What a client message expects back when it is forwarded unchanged.
pub fn request_for(tag: u8, body: Option<&[u8]>) -> Option<Request> {
    Some(match tag {
        b'P' => Request::Parse,
        b'B' => Request::Bind,
        b'D' if body.and_then(|b| b.first()) == Some(&b'S') => Request::DescribeStatement,
        b'D' => Request::DescribePortal,
        b'E' => Request::Execute,
        b'C' => Request::Close,
        b'S' => Request::Sync,
        b'Q' => Request::Query,
        b'F' => Request::FunctionCall,
        _ => return None,
    })
}

/// Everything a rewrite touches, borrowed from the session and its server for one message.
pub struct Rewriter<'a> {
    pub statements: &'a mut ClientStatements,
    pub server: &'a mut ServerStatements,
    pub registry: &'a StatementRegistry,
    pub queue: &'a mut ReplyQueue,
    pub stats: &'a PoolStats,
    pub capacity: usize,
}

impl Rewriter<'_> {
    /// For a Parse, Bind, Describe or Close: writes what the server must get into `out`
    /// (possibly nothing) and records the replies owed; false when the message names no
    /// prepared statement and goes through unchanged. `available` is the body so far and
    /// `body_len` its full length: only a Bind may be partial — its head is rewritten and
    /// the rest of its parameters stream through after it.
    pub fn rewrite(
        &mut self,
        tag: u8,
        available: &[u8],
        body_len: usize,
        out: &mut BytesMut,
    ) -> bool {
        let whole = available.len() == body_len;
        match tag {
            b'B' => self.bind(available, body_len, out),
            b'P' if whole => self.parse(available, out),
            b'D' | b'C' if whole => self.describe_or_close(tag, available, out),
            _ => false,
        }
    }

    fn parse(&mut self, body: &[u8], out: &mut BytesMut) -> bool {
        let Some((name, rest)) = take_cstr(body) else {
            return false;
        };
        if name.is_empty() {
            return false;
        }
        let statement = self.registry.intern(rest);
        self.statements
            .by_name
            .insert(name.to_owned(), Arc::clone(&statement));
        PoolStats::add(&self.stats.client_parses, 1);
        if self.server.touch(statement.id) {
            PoolStats::add(&self.stats.prepared_cache_hits, 1);
            self.queue.synthesize(b'1');
        } else {
            self.prepare(&statement, out, false);
        }
        true
    }

    fn bind(&mut self, available: &[u8], body_len: usize, out: &mut BytesMut) -> bool {
        let Some((portal, rest)) = take_cstr(available) else {
            return false;
        };
        let Some((name, rest)) = take_cstr(rest) else {
            return false;
        };
        let Some(statement) = self.known(name) else {
            return false;
        };
        self.ensure_prepared(&statement, out);
        PoolStats::add(&self.stats.binds, 1);
        // Only the head is rewritten; parameters not yet read stream through after it.
        let parameters_len = body_len - (portal.len() + 1 + name.len() + 1);
        out.put_u8(b'B');
        out.put_u32((4 + portal.len() + 1 + statement.name.len() + 1 + parameters_len) as u32);
        out.put_slice(portal.as_bytes());
        out.put_u8(0);
        out.put_slice(statement.name.as_bytes());
        out.put_u8(0);
        out.put_slice(rest);
        self.queue.expect(Request::Bind);
        true
    }

    fn describe_or_close(&mut self, tag: u8, body: &[u8], out: &mut BytesMut) -> bool {
        let Some((&b'S', rest)) = body.split_first() else {
            return false;
        };
        let Some((name, _)) = take_cstr(rest) else {
            return false;
        };
        if name.is_empty() {
            return false;
        }
        if tag == b'C' {
            // Closing a statement the client never prepared is not an error either.
            self.statements.by_name.remove(name);
            self.queue.synthesize(b'3');
            return true;
        }
        let Some(statement) = self.known(name) else {
            return false;
        };
        self.ensure_prepared(&statement, out);
        out.put_u8(b'D');
        out.put_u32((4 + 1 + statement.name.len() + 1) as u32);
        out.put_u8(b'S');
        out.put_slice(statement.name.as_bytes());
        out.put_u8(0);
        self.queue.expect(Request::DescribeStatement);
        true
    }

    fn known(&self, name: &str) -> Option<Arc<StatementDef>> {
        if name.is_empty() {
            return None;
        }
        self.statements.by_name.get(name).cloned()
    }

    fn ensure_prepared(&mut self, statement: &Arc<StatementDef>, out: &mut BytesMut) {
        if !self.server.touch(statement.id) {
            self.prepare(statement, out, true);
        }
    }

    /// Sends the Parse (inside the client's extended-protocol request), first closing the
    /// least recently used statement when the server's cache is full.
    fn prepare(&mut self, statement: &Arc<StatementDef>, out: &mut BytesMut, swallow: bool) {
        self.make_room(statement, out, false);
        self.write_prepare(statement, out, swallow, false);
    }

    /// Prepares outside any extended-protocol request, before a simple Query: each step
    /// ends with its own Sync.
    fn prepare_standalone(
        &mut self,
        statement: &Arc<StatementDef>,
        out: &mut BytesMut,
        swallow: bool,
    ) {
        self.make_room(statement, out, true);
        self.write_prepare(statement, out, swallow, true);
    }

    fn make_room(&mut self, statement: &Arc<StatementDef>, out: &mut BytesMut, standalone: bool) {
        if let Some(evicted) = self.server.insert(Arc::clone(statement), self.capacity) {
            evicted.write_close(out);
            self.queue.expect_swallowed(Request::Close);
            if standalone {
                builders::sync(out);
                self.queue.expect_swallowed(Request::Sync);
            }
            PoolStats::add(&self.stats.prepared_evictions, 1);
        }
    }

    fn write_prepare(
        &mut self,
        statement: &Arc<StatementDef>,
        out: &mut BytesMut,
        swallow: bool,
        standalone: bool,
    ) {
        PoolStats::add(&self.stats.server_parses, 1);
        if statement.sql {
            statement.write_prepare_query(out);
            self.queue
                .expect_query_creating(Arc::clone(statement), swallow);
            return;
        }
        statement.write_parse(out);
        self.queue.expect_parse(Arc::clone(statement), swallow);
        if standalone {
            builders::sync(out);
            self.queue.expect_swallowed(Request::Sync);
        }
    }

    /// SQL `PREPARE` / `EXECUTE` / `DEALLOCATE` alone in a simple Query: the same shared
    /// statements as protocol-level ones (PostgreSQL keeps both in one namespace). False
    /// for any other Query, which goes through unchanged.
    pub fn sql_command(&mut self, query: &[u8], out: &mut BytesMut) -> bool {
        let Some(command) = sql_prepare::parse(query) else {
            return false;
        };
        match command {
            SqlCommand::Prepare { name, rest } => {
                let statement = self.registry.intern_sql(rest);
                self.statements.by_name.insert(name, Arc::clone(&statement));
                PoolStats::add(&self.stats.client_parses, 1);
                if self.server.touch(statement.id) {
                    PoolStats::add(&self.stats.prepared_cache_hits, 1);
                    self.complete("PREPARE");
                } else {
                    self.prepare_standalone(&statement, out, false);
                }
            }
            SqlCommand::Execute { name, rest } => {
                let Some(statement) = self.known(&name) else {
                    return false; // the server reports the client's own name as unknown
                };
                if !self.server.touch(statement.id) {
                    self.prepare_standalone(&statement, out, true);
                }
                builders::query(out, &format!("EXECUTE {}{rest}", statement.name));
                self.queue.expect(Request::Query);
            }
            SqlCommand::Deallocate { name } => {
                if self.statements.by_name.remove(&name).is_none() {
                    return false; // let the server raise "does not exist"
                }
                // Other clients may share the statement: the server keeps it until evicted.
                self.complete("DEALLOCATE");
            }
        }
        true
    }

    /// Answers a simple Query with CommandComplete and ReadyForQuery from pgmux.
    fn complete(&mut self, tag: &str) {
        let mut reply = BytesMut::new();
        builders::command_complete(&mut reply, tag);
        self.queue.respond(reply.to_vec().into_boxed_slice());
        self.queue.ready();
    }
}
