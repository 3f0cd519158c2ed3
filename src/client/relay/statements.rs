//! Client messages that name prepared statements, rewritten for whichever server the
//! client's transaction landed on (DESIGN.md fact 3):
//!
//! - Parse "s1": the client's name maps to the shared `pgmux_<id>`; when this server has
//!   it already, pgmux answers ParseComplete itself, else it forwards the Parse renamed.
//!   A second Parse of a name the client has is refused with PostgreSQL's 42P05.
//! - Bind / Describe of "s1": renamed; a Parse is injected first (its reply swallowed)
//!   when this server lacks the statement, so errors in it surface on the Bind.
//! - Close of "s1": forgets the client's name and answers CloseComplete itself; the
//!   server keeps the statement for other clients until its cache evicts it.
//! - SQL `PREPARE` / `EXECUTE` / `DEALLOCATE` alone in a Query: the same, in SQL.
//!
//! Every change to the records (the client's names, the server's cache) is recorded
//! with the request that made it, and undone if the server discards that request after
//! an error (`model::Change`). Unnamed statements and portals go through untouched; names
//! starting with `pgmux_` that the client never prepared are refused, so no client can
//! reach (and close) the statements pgmux shares between them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::model::{Change, Model, Request, Route, Synthetic};
use super::refuse;
use crate::client::sql::prepare::{self as sql_prepare, SqlCommand};
use crate::protocol::builders;
use crate::protocol::frame::take_cstr;
use crate::protocol::sqlstate;
use crate::server::prepared::ServerStatements;
use crate::statements::{StatementDef, StatementRegistry};
use crate::stats::PoolStats;

/// How many named statements one client may hold: past it, Parse and PREPARE are
/// refused (54000), so a client cannot grow pgmux's memory without bound.
pub const MAX_CLIENT_STATEMENTS: usize = 10_000;
/// The prefix of the names pgmux gives statements on servers.
pub const RESERVED_PREFIX: &str = "pgmux_";

/// One client's named statements.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<Box<str>, Arc<StatementDef>>,
}

impl ClientStatements {
    /// DISCARD ALL / DEALLOCATE ALL ran in this client's session.
    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    fn get(&self, name: &str) -> Option<Arc<StatementDef>> {
        self.by_name.get(name).cloned()
    }

    /// Sets (or with `None` removes) `name`, returning the change that undoes it.
    fn set(&mut self, name: &str, to: Option<Arc<StatementDef>>) -> Change {
        let was = match to {
            Some(statement) => self.by_name.insert(name.into(), statement),
            None => self.by_name.remove(name),
        };
        Change::ClientName {
            name: name.into(),
            was,
        }
    }

    fn restore(&mut self, name: Box<str>, was: Option<Arc<StatementDef>>) {
        match was {
            Some(statement) => self.by_name.insert(name, statement),
            None => self.by_name.remove(&name),
        };
    }
}

/// Undoes the changes of requests the server discarded (given oldest first).
pub fn undo(changes: Vec<Change>, client: &mut ClientStatements, server: &mut ServerStatements) {
    for change in changes.into_iter().rev() {
        match change {
            Change::ServerStatement { id, was } => server.restore(id, was),
            Change::ClientName { name, was } => client.restore(name, was),
        }
    }
}

/// Whether a client message reads the statement records (and so may have to wait for
/// the server to settle earlier changes, see `Model::must_hold_statement_messages`).
pub fn names_a_statement(tag: u8, body: &[u8]) -> bool {
    match tag {
        b'P' => body.first().is_some_and(|&b| b != 0),
        b'B' => take_cstr(body).is_some_and(|(_, rest)| rest.first().is_some_and(|&b| b != 0)),
        b'D' | b'C' => body.first() == Some(&b'S') && body.get(1).is_some_and(|&b| b != 0),
        b'Q' => sql_prepare::parse(body).is_some(),
        _ => false,
    }
}

/// Everything a rewrite touches, borrowed from the session and its server for one message.
pub struct Rewriter<'a> {
    pub statements: &'a mut ClientStatements,
    pub server: &'a mut ServerStatements,
    pub registry: &'a StatementRegistry,
    pub model: &'a mut Model,
    pub stats: &'a PoolStats,
    pub capacity: usize,
}

impl Rewriter<'_> {
    /// For a Parse, Bind, Describe or Close: writes what the server must get into `out`
    /// (possibly nothing) and records what is owed; false when the message names no
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
        if self.refused_new_name(name, Request::Parse, out) {
            return true;
        }
        let statement = self.registry.intern(rest);
        let named = self.statements.set(name, Some(Arc::clone(&statement)));
        PoolStats::add(&self.stats.client_parses, 1);
        if self.server.touch(statement.id) {
            PoolStats::add(&self.stats.prepared_cache_hits, 1);
            self.synthesize(Synthetic::ParseComplete, vec![named]);
        } else {
            let prepared = self.make_room(&statement, out, false);
            statement.write_parse(out);
            PoolStats::add(&self.stats.server_parses, 1);
            self.push(Request::Parse, Route::Client, vec![prepared, named]);
        }
        true
    }

    /// Refuses a Parse or PREPARE of `name` as PostgreSQL would (it exists) or as pgmux
    /// must (too many); true when refused.
    fn refused_new_name(&mut self, name: &str, kind: Request, out: &mut BytesMut) -> bool {
        let (code, message) = if self.statements.by_name.contains_key(name) {
            (
                sqlstate::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            )
        } else if self.statements.by_name.len() >= MAX_CLIENT_STATEMENTS {
            (
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!("too many prepared statements: pgmux keeps at most {MAX_CLIENT_STATEMENTS} per client"),
            )
        } else {
            return false;
        };
        refuse::instead(self.model, kind, code, &message, out);
        true
    }

    /// A name the client never prepared: pgmux's own are refused as PostgreSQL would
    /// refuse any unknown name; others reach the server, which says so itself.
    fn unknown(&mut self, name: &str, kind: Request, out: &mut BytesMut) -> bool {
        if !name.starts_with(RESERVED_PREFIX) {
            return false;
        }
        let message = format!("prepared statement \"{name}\" does not exist");
        refuse::instead(
            self.model,
            kind,
            sqlstate::INVALID_SQL_STATEMENT_NAME,
            &message,
            out,
        );
        true
    }

    fn bind(&mut self, available: &[u8], body_len: usize, out: &mut BytesMut) -> bool {
        let Some((portal, rest)) = take_cstr(available) else {
            return false;
        };
        let Some((name, rest)) = take_cstr(rest) else {
            return false;
        };
        if name.is_empty() {
            return false;
        }
        let Some(statement) = self.statements.get(name) else {
            return self.unknown(name, Request::Bind, out);
        };
        self.ensure_prepared(&statement, out, false);
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
        self.push(Request::Bind, Route::Client, Vec::new());
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
            let closed = self
                .statements
                .get(name)
                .map(|_| self.statements.set(name, None));
            self.synthesize(Synthetic::CloseComplete, closed.into_iter().collect());
            return true;
        }
        let Some(statement) = self.statements.get(name) else {
            return self.unknown(name, Request::Describe, out);
        };
        self.ensure_prepared(&statement, out, false);
        out.put_u8(b'D');
        out.put_u32((4 + 1 + statement.name.len() + 1) as u32);
        out.put_u8(b'S');
        out.put_slice(statement.name.as_bytes());
        out.put_u8(0);
        self.push(Request::Describe, Route::Client, Vec::new());
        true
    }

    /// Prepares `statement` on this server when it lacks it, its replies swallowed.
    /// `standalone`: outside an extended-protocol request (before a simple Query), so
    /// each step ends with its own Sync.
    fn ensure_prepared(
        &mut self,
        statement: &Arc<StatementDef>,
        out: &mut BytesMut,
        standalone: bool,
    ) {
        if self.server.touch(statement.id) {
            return;
        }
        let prepared = self.make_room(statement, out, standalone);
        PoolStats::add(&self.stats.server_parses, 1);
        if statement.sql {
            statement.write_prepare_query(out);
            self.push(Request::Query, Route::Swallow, vec![prepared]);
            return;
        }
        statement.write_parse(out);
        self.push(Request::Parse, Route::Swallow, vec![prepared]);
        if standalone {
            self.sync(out);
        }
    }

    /// Records `statement` in the server's cache, first closing the least recently used
    /// one when the cache is full; returns the change the Parse makes.
    fn make_room(
        &mut self,
        statement: &Arc<StatementDef>,
        out: &mut BytesMut,
        standalone: bool,
    ) -> Change {
        if let Some(evicted) = self.server.insert(Arc::clone(statement), self.capacity) {
            evicted.write_close(out);
            let closed = Change::ServerStatement {
                id: evicted.id,
                was: Some(Arc::clone(&evicted)),
            };
            self.push(Request::Close, Route::Swallow, vec![closed]);
            if standalone {
                self.sync(out);
            }
            PoolStats::add(&self.stats.prepared_evictions, 1);
        }
        Change::ServerStatement {
            id: statement.id,
            was: None,
        }
    }

    /// Closes the statements over a capacity lowered since the server last served
    /// (`max_prepared_statements` reloaded), before the client's first message.
    pub fn shrink_cache(&mut self, out: &mut BytesMut) {
        let excess = self.server.excess(self.capacity);
        for statement in &excess {
            statement.write_close(out);
            let closed = Change::ServerStatement {
                id: statement.id,
                was: Some(Arc::clone(statement)),
            };
            self.push(Request::Close, Route::Swallow, vec![closed]);
        }
        if !excess.is_empty() {
            self.sync(out);
        }
    }

    fn sync(&mut self, out: &mut BytesMut) {
        builders::sync(out);
        self.push(Request::Sync, Route::Swallow, Vec::new());
    }

    fn push(&mut self, request: Request, route: Route, changes: Vec<Change>) {
        let discarded = self.model.push(request, route, changes);
        undo(discarded, self.statements, self.server);
    }

    fn synthesize(&mut self, reply: Synthetic, changes: Vec<Change>) {
        let discarded = self.model.push_synthetic(reply, changes);
        undo(discarded, self.statements, self.server);
    }

    /// SQL `PREPARE` / `EXECUTE` / `DEALLOCATE` alone in a simple Query: the same shared
    /// statements as protocol-level ones (PostgreSQL keeps both in one namespace). False
    /// for any other Query, which goes through unchanged — unless it reaches for one of
    /// pgmux's own statements, which is refused (42939).
    pub fn sql_command(&mut self, query: &[u8], out: &mut BytesMut) -> bool {
        let Some(command) = sql_prepare::parse(query) else {
            let Some(name) = sql_prepare::names_with_prefix(query, RESERVED_PREFIX) else {
                return false;
            };
            let message = format!(
                "prepared statement names starting with \"{RESERVED_PREFIX}\" are reserved by the pooler (\"{name}\")"
            );
            refuse::instead(
                self.model,
                Request::Query,
                sqlstate::RESERVED_NAME,
                &message,
                out,
            );
            return true;
        };
        match command {
            SqlCommand::Prepare { name, rest } => {
                if self.refused_new_name(&name, Request::Query, out) {
                    return true;
                }
                let statement = self.registry.intern_sql(rest);
                let named = self.statements.set(&name, Some(Arc::clone(&statement)));
                PoolStats::add(&self.stats.client_parses, 1);
                if self.server.touch(statement.id) {
                    PoolStats::add(&self.stats.prepared_cache_hits, 1);
                    self.complete("PREPARE", named);
                } else {
                    let prepared = self.make_room(&statement, out, true);
                    PoolStats::add(&self.stats.server_parses, 1);
                    statement.write_prepare_query(out);
                    self.push(Request::Query, Route::Client, vec![prepared, named]);
                }
            }
            SqlCommand::Execute { name, rest } => {
                let Some(statement) = self.statements.get(&name) else {
                    return self.unknown(&name, Request::Query, out);
                };
                self.ensure_prepared(&statement, out, true);
                builders::query(out, &format!("EXECUTE {}{rest}", statement.name));
                self.push(Request::Query, Route::Client, Vec::new());
            }
            SqlCommand::Deallocate { name } => {
                if self.statements.get(&name).is_none() {
                    return self.unknown(&name, Request::Query, out);
                }
                // Other clients may share the statement: the server keeps it until evicted.
                let closed = self.statements.set(&name, None);
                self.complete("DEALLOCATE", closed);
            }
        }
        true
    }

    /// Answers a simple Query with CommandComplete and ReadyForQuery from pgmux.
    fn complete(&mut self, tag: &str, change: Change) {
        let mut reply = BytesMut::new();
        builders::command_complete(&mut reply, tag);
        self.synthesize(
            Synthetic::Messages(reply.to_vec().into_boxed_slice()),
            vec![change],
        );
        self.synthesize(Synthetic::Ready, Vec::new());
    }
}
