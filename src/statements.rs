//! Named prepared statements shared across server connections (DESIGN.md fact 3).
//!
//! A statement is identified by its Parse body after the name — query text, parameter
//! count and types — and gets one server-side name, `pgmux_<id>`, for every server and
//! every client. A client's own name maps to it; a server that lacks it is sent the Parse
//! just before the Bind/Describe that needs it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use dashmap::DashMap;

#[derive(Debug)]
pub struct StatementDef {
    pub id: u64,
    /// Created by SQL `PREPARE` (its body is `[ ( types ) ] AS statement`) rather than by
    /// a protocol Parse; both live in one namespace on the server.
    pub sql: bool,
    /// The name pgmux prepares it under on servers.
    pub name: String,
    /// The Parse body after the statement name: query, parameter count, parameter types.
    parse_rest: Bytes,
}

impl StatementDef {
    /// Appends a Parse message creating this statement under its server-side name.
    pub fn write_parse(&self, out: &mut BytesMut) {
        out.put_u8(b'P');
        out.put_u32((4 + self.name.len() + 1 + self.parse_rest.len()) as u32);
        out.put_slice(self.name.as_bytes());
        out.put_u8(0);
        out.put_slice(&self.parse_rest);
    }

    /// Appends a simple Query preparing this SQL-level statement under its server name.
    pub fn write_prepare_query(&self, out: &mut BytesMut) {
        let sql = format!(
            "PREPARE {} {}",
            self.name,
            String::from_utf8_lossy(&self.parse_rest)
        );
        crate::protocol::builders::query(out, &sql);
    }

    /// Appends a Close of this statement's server-side name.
    pub fn write_close(&self, out: &mut BytesMut) {
        out.put_u8(b'C');
        out.put_u32((4 + 1 + self.name.len() + 1) as u32);
        out.put_u8(b'S');
        out.put_slice(self.name.as_bytes());
        out.put_u8(0);
    }

    #[doc(hidden)]
    pub fn for_tests(id: u64) -> StatementDef {
        StatementDef {
            id,
            sql: false,
            name: format!("pgmux_{id}"),
            parse_rest: Bytes::from_static(b"select 1\0\0\0"),
        }
    }
}

/// Every distinct statement any client prepared and still references.
#[derive(Debug, Default)]
pub struct StatementRegistry {
    by_body: DashMap<Bytes, Weak<StatementDef>>,
    next_id: AtomicU64,
    /// Entries when dead ones were last swept; the map is swept when it doubles.
    swept_at: AtomicUsize,
}

impl StatementRegistry {
    /// The statement for this Parse body, shared with every client that prepared the same.
    pub fn intern(&self, parse_rest: &[u8]) -> Arc<StatementDef> {
        self.intern_keyed(parse_rest, false)
    }

    /// The statement for an SQL `PREPARE name <rest>`.
    pub fn intern_sql(&self, rest: &str) -> Arc<StatementDef> {
        self.intern_keyed(rest.as_bytes(), true)
    }

    fn intern_keyed(&self, body: &[u8], sql: bool) -> Arc<StatementDef> {
        // A leading 0xFF (never valid UTF-8, so never a Parse body) keeps the two kinds apart.
        let keyed;
        let parse_rest = if sql {
            keyed = [&[0xFF][..], body].concat();
            &keyed[..]
        } else {
            body
        };
        if let Some(existing) = self.by_body.get(parse_rest).and_then(|weak| weak.upgrade()) {
            return existing;
        }
        let body = Bytes::copy_from_slice(parse_rest);
        let mut created = None;
        self.by_body
            .entry(body.clone())
            .and_modify(|weak| {
                if let Some(live) = weak.upgrade() {
                    created = Some(live);
                } else {
                    let fresh = self.create(body.clone(), sql);
                    *weak = Arc::downgrade(&fresh);
                    created = Some(fresh);
                }
            })
            .or_insert_with(|| {
                let fresh = self.create(body.clone(), sql);
                let weak = Arc::downgrade(&fresh);
                created = Some(fresh);
                weak
            });
        self.sweep_if_grown();
        created.expect("set by one of the branches")
    }

    fn create(&self, key: Bytes, sql: bool) -> Arc<StatementDef> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let parse_rest = if sql { key.slice(1..) } else { key };
        Arc::new(StatementDef {
            id,
            sql,
            name: format!("pgmux_{id}"),
            parse_rest,
        })
    }

    /// Statements no client or server holds any more are dropped from the map.
    fn sweep_if_grown(&self) {
        let len = self.by_body.len();
        if len > 2 * self.swept_at.load(Ordering::Relaxed) + 1024 {
            self.by_body.retain(|_, weak| weak.strong_count() > 0);
            self.swept_at.store(self.by_body.len(), Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.by_body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_body.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_and_types_share_one_server_name() {
        let registry = StatementRegistry::default();
        let a = registry.intern(b"select $1\0\0\x01\0\0\0\x17");
        let b = registry.intern(b"select $1\0\0\x01\0\0\0\x17");
        let other_types = registry.intern(b"select $1\0\0\x01\0\0\0\x19");
        assert_eq!(a.name, b.name);
        assert_ne!(a.name, other_types.name);
    }

    #[test]
    fn parse_and_close_messages_carry_the_server_name() {
        let registry = StatementRegistry::default();
        let statement = registry.intern(b"select 1\0\0\0");
        let mut out = BytesMut::new();
        statement.write_parse(&mut out);
        let expected_len = 4 + statement.name.len() + 1 + b"select 1\0\0\0".len();
        assert_eq!(out[0], b'P');
        assert_eq!(
            u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize,
            expected_len
        );
        assert_eq!(out.len(), 1 + expected_len);
        out.clear();
        statement.write_close(&mut out);
        assert_eq!(&out[5..], format!("S{}\0", statement.name).as_bytes());
    }

    #[test]
    fn dropped_statements_are_recreated() {
        let registry = StatementRegistry::default();
        let first = registry.intern(b"select 2\0\0\0").id;
        let again = registry.intern(b"select 2\0\0\0");
        assert_ne!(
            first, again.id,
            "the first one was dropped, a new id is drawn"
        );
    }
}
