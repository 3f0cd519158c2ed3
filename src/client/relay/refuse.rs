//! Refusing a client request the way PostgreSQL fails one (DESIGN.md fact 13): pgmux
//! sends the server, in the request's place, one that fails at once — a syntax error,
//! which touches nothing — and gives the client its own ErrorResponse instead of the
//! server's. So a refusal inside a transaction fails the transaction on the server too
//! (a later COMMIT rolls back), an extended-protocol refusal makes the server discard
//! what follows up to Sync, and a refusal the server would itself have discarded (after
//! an earlier error) reaches the client as nothing, exactly as PostgreSQL behaves.

use bytes::BytesMut;

use super::model::{Model, Request, Route};
use crate::protocol::builders::{self, Severity};

/// Fails in PostgreSQL's parser, before anything is looked up or run.
const FAILING_SQL: &str = "REFUSED BY PGMUX";
/// The failing stand-in for an extended-protocol request: a named Parse, which on
/// failure leaves even the unnamed statement alone.
const FAILING_STATEMENT: &str = "pgmux_refused";

/// Writes the failing stand-in for a refused `kind` of request (a simple Query, or any
/// extended-protocol message) to `out`, and records that the client gets the error
/// `code`/`message` in place of the server's.
pub fn instead(model: &mut Model, kind: Request, code: &str, message: &str, out: &mut BytesMut) {
    with_hint(model, kind, code, message, None, out);
}

pub fn with_hint(
    model: &mut Model,
    kind: Request,
    code: &str,
    message: &str,
    hint: Option<&str>,
    out: &mut BytesMut,
) {
    let mut error = BytesMut::new();
    builders::error_response(&mut error, Severity::Error, code, message, hint);
    let route = Route::Refused(error.to_vec().into_boxed_slice());
    if kind == Request::Query {
        builders::query(out, FAILING_SQL);
        model.push(Request::Query, route, Vec::new());
    } else {
        builders::parse(out, FAILING_STATEMENT, FAILING_SQL);
        model.push(Request::Parse, route, Vec::new());
    }
}
