//! Builders for the messages pgmux writes itself, each appending one message to the
//! caller's buffer with its length patched in one place.

use bytes::{BufMut, BytesMut};

/// Appends a tagged message whose body is written by `body`.
fn message(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let length_at = buf.len();
    buf.put_u32(0);
    body(buf);
    let length = (buf.len() - length_at) as u32;
    buf[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
}

fn put_cstr(buf: &mut BytesMut, text: &str) {
    buf.put_slice(text.as_bytes());
    buf.put_u8(0);
}

/// Severity of an ErrorResponse: FATAL ends the session, ERROR only the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// ErrorResponse ('E') with the fields libpq shows: severity (localized and not), code,
/// message and an optional hint.
pub fn error_response(
    buf: &mut BytesMut,
    severity: Severity,
    code: &str,
    text: &str,
    hint: Option<&str>,
) {
    message(buf, b'E', |b| {
        b.put_u8(b'S');
        put_cstr(b, severity.as_str());
        b.put_u8(b'V');
        put_cstr(b, severity.as_str());
        b.put_u8(b'C');
        put_cstr(b, code);
        b.put_u8(b'M');
        put_cstr(b, text);
        if let Some(hint) = hint {
            b.put_u8(b'H');
            put_cstr(b, hint);
        }
        b.put_u8(0);
    });
}

pub fn notice_response(buf: &mut BytesMut, code: &str, text: &str) {
    message(buf, b'N', |b| {
        for (field, value) in [
            (b'S', "NOTICE"),
            (b'V', "NOTICE"),
            (b'C', code),
            (b'M', text),
        ] {
            b.put_u8(field);
            put_cstr(b, value);
        }
        b.put_u8(0);
    });
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    message(buf, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

pub fn backend_key_data(buf: &mut BytesMut, process_id: i32, secret: i32) {
    message(buf, b'K', |b| {
        b.put_i32(process_id);
        b.put_i32(secret);
    });
}

pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    message(buf, b'Z', |b| b.put_u8(status));
}

/// The Authentication family ('R'): its first int32 says which request it is.
pub fn authentication_ok(buf: &mut BytesMut) {
    message(buf, b'R', |b| b.put_i32(0));
}

pub fn authentication_cleartext(buf: &mut BytesMut) {
    message(buf, b'R', |b| b.put_i32(3));
}

pub fn authentication_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    message(buf, b'R', |b| {
        b.put_i32(5);
        b.put_slice(&salt);
    });
}

pub fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    message(buf, b'R', |b| {
        b.put_i32(10);
        for mechanism in mechanisms {
            put_cstr(b, mechanism);
        }
        b.put_u8(0);
    });
}

pub fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(11);
        b.put_slice(data);
    });
}

pub fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(12);
        b.put_slice(data);
    });
}

/// NegotiateProtocolVersion ('v'): the newest minor version pgmux speaks and the
/// `_pq_` options it did not recognise.
pub fn negotiate_protocol_version(buf: &mut BytesMut, newest_minor: u16, unrecognised: &[String]) {
    message(buf, b'v', |b| {
        b.put_i32(newest_minor as i32);
        b.put_i32(unrecognised.len() as i32);
        for option in unrecognised {
            put_cstr(b, option);
        }
    });
}

/// CommandComplete ('C') with its tag, e.g. "PREPARE" or "SELECT 3".
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    message(buf, b'C', |b| put_cstr(b, tag));
}

/// A Parse ('P') of `sql` as statement `name`, with no parameter types given.
pub fn parse(buf: &mut BytesMut, name: &str, sql: &str) {
    message(buf, b'P', |b| {
        put_cstr(b, name);
        put_cstr(b, sql);
        b.put_i16(0);
    });
}

/// A Sync ('S').
pub fn sync(buf: &mut BytesMut) {
    message(buf, b'S', |_| {});
}

/// A simple Query ('Q').
pub fn query(buf: &mut BytesMut, sql: &str) {
    message(buf, b'Q', |b| put_cstr(b, sql));
}

pub fn terminate(buf: &mut BytesMut) {
    message(buf, b'X', |_| {});
}

/// CancelRequest: untagged, length 16, code 80877102, then the target's key.
pub fn cancel_request(buf: &mut BytesMut, process_id: i32, secret: i32) {
    buf.put_i32(16);
    buf.put_i32(80_877_102);
    buf.put_i32(process_id);
    buf.put_i32(secret);
}

/// Quotes `value` as an SQL string literal: doubled quotes, and the `E''` form when a
/// backslash would otherwise depend on standard_conforming_strings.
pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if escaped.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

/// Quotes an identifier (a GUC name) with double quotes when it is not plain lower case.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if plain && !name.is_empty() {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::backend::Message;

    #[test]
    fn error_response_parses_as_postgres_would_send_it() {
        let mut buf = BytesMut::new();
        error_response(
            &mut buf,
            Severity::Fatal,
            "53300",
            "no more connections allowed (max_client_conn)",
            Some("later"),
        );
        let Some(Message::ErrorResponse(body)) = Message::parse(&mut buf).unwrap() else {
            panic!()
        };
        use fallible_iterator::FallibleIterator;
        let fields: Vec<(u8, String)> = body
            .fields()
            .map(|f| {
                Ok((
                    f.type_(),
                    String::from_utf8_lossy(f.value_bytes()).into_owned(),
                ))
            })
            .collect()
            .unwrap();
        assert!(fields.contains(&(b'C', "53300".to_owned())));
        assert!(fields.contains(&(b'S', "FATAL".to_owned())));
        assert!(fields.contains(&(b'H', "later".to_owned())));
    }

    #[test]
    fn lengths_are_patched() {
        let mut buf = BytesMut::new();
        ready_for_query(&mut buf, b'I');
        assert_eq!(&buf[..], &[b'Z', 0, 0, 0, 5, b'I']);
        let mut buf = BytesMut::new();
        parameter_status(&mut buf, "a", "b");
        let Some(Message::ParameterStatus(status)) = Message::parse(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!(
            (status.name().unwrap(), status.value().unwrap()),
            ("a", "b")
        );
    }

    #[test]
    fn literals_and_identifiers_are_quoted() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_ident("application_name"), "application_name");
        assert_eq!(quote_ident("DateStyle"), "\"DateStyle\"");
    }
}
