//! Result sets of the admin console: each SHOW declares its columns once (name and wire
//! type, as PgBouncer's `pktbuf_write_RowDescription` type letters do) and adds rows
//! against them; `write` turns them into RowDescription, DataRows and CommandComplete.

use bytes::{BufMut, BytesMut};

/// The wire types PgBouncer's console uses: `s` text, `i` int4, `q` int8, `N` numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Text,
    Int4,
    Int8,
    Numeric,
    Bytea,
}

impl Type {
    fn oid(self) -> u32 {
        match self {
            Type::Text => 25,
            Type::Int4 => 23,
            Type::Int8 => 20,
            Type::Numeric => 1700,
            Type::Bytea => 17,
        }
    }

    fn size(self) -> i16 {
        match self {
            Type::Int4 => 4,
            Type::Int8 => 8,
            Type::Text | Type::Numeric | Type::Bytea => -1,
        }
    }
}

/// One cell: text, a number, or SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
    Null,
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(text)
    }
}

impl From<Option<&str>> for Value {
    fn from(text: Option<&str>) -> Value {
        text.map_or(Value::Null, Value::from)
    }
}

impl From<Option<String>> for Value {
    fn from(text: Option<String>) -> Value {
        text.map_or(Value::Null, Value::Text)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
    )*};
}
from_int!(i32, i64, u16, u32, u64, usize);

impl From<bool> for Value {
    fn from(flag: bool) -> Value {
        Value::Int(i64::from(flag))
    }
}

#[derive(Debug, Clone)]
pub struct ResultSet {
    pub columns: Vec<(&'static str, Type)>,
    pub rows: Vec<Vec<Value>>,
}

impl ResultSet {
    pub fn new(columns: &[(&'static str, Type)]) -> ResultSet {
        ResultSet {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; `values` must match the columns one for one.
    pub fn row(&mut self, values: Vec<Value>) {
        debug_assert_eq!(values.len(), self.columns.len(), "row shape");
        self.rows.push(values);
    }

    pub fn write(&self, out: &mut BytesMut) {
        message(out, b'T', |b| {
            b.put_i16(self.columns.len() as i16);
            for (name, kind) in &self.columns {
                put_cstr(b, name);
                b.put_u32(0); // table oid
                b.put_i16(0); // column number
                b.put_u32(kind.oid());
                b.put_i16(kind.size());
                b.put_i32(-1); // type modifier
                b.put_i16(0); // text format
            }
        });
        for row in &self.rows {
            message(out, b'D', |b| {
                b.put_i16(row.len() as i16);
                for value in row {
                    match value {
                        Value::Null => b.put_i32(-1),
                        Value::Text(text) => put_counted(b, text.as_bytes()),
                        Value::Int(n) => put_counted(b, n.to_string().as_bytes()),
                    }
                }
            });
        }
        command_complete(out, "SHOW");
    }
}

fn put_counted(b: &mut BytesMut, bytes: &[u8]) {
    b.put_i32(bytes.len() as i32);
    b.put_slice(bytes);
}

fn put_cstr(b: &mut BytesMut, text: &str) {
    b.put_slice(text.as_bytes());
    b.put_u8(0);
}

fn message(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_u32(0);
    body(buf);
    let length = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&length.to_be_bytes());
}

pub fn command_complete(out: &mut BytesMut, tag: &str) {
    message(out, b'C', |b| put_cstr(b, tag));
}

pub fn empty_query(out: &mut BytesMut) {
    message(out, b'I', |_| {});
}

/// An ERROR the console reports (the session goes on), with an optional DETAIL.
pub fn error(out: &mut BytesMut, code: &str, text: &str, detail: Option<&str>) {
    report(out, b'E', "ERROR", code, text, detail);
}

/// A NoticeResponse with a detail, as SHOW HELP sends its usage text.
pub fn notice(out: &mut BytesMut, text: &str, detail: Option<&str>) {
    report(out, b'N', "NOTICE", "00000", text, detail);
}

fn report(
    out: &mut BytesMut,
    tag: u8,
    severity: &str,
    code: &str,
    text: &str,
    detail: Option<&str>,
) {
    message(out, tag, |b| {
        for (field, value) in [
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', text),
        ] {
            b.put_u8(field);
            put_cstr(b, value);
        }
        if let Some(detail) = detail {
            b.put_u8(b'D');
            put_cstr(b, detail);
        }
        b.put_u8(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::backend::Message;

    #[test]
    fn a_result_set_parses_as_a_postgres_reply() {
        let mut set = ResultSet::new(&[("name", Type::Text), ("n", Type::Int4)]);
        set.row(vec!["a".into(), 5i32.into()]);
        set.row(vec![Value::Null, 6i32.into()]);
        let mut out = BytesMut::new();
        set.write(&mut out);
        let Some(Message::RowDescription(desc)) = Message::parse(&mut out).unwrap() else {
            panic!("no RowDescription")
        };
        use fallible_iterator::FallibleIterator;
        let fields: Vec<(String, u32)> = desc
            .fields()
            .map(|f| Ok((f.name().to_owned(), f.type_oid())))
            .collect()
            .unwrap();
        assert_eq!(fields, vec![("name".into(), 25), ("n".into(), 23)]);
        assert!(matches!(
            Message::parse(&mut out).unwrap(),
            Some(Message::DataRow(_))
        ));
        assert!(matches!(
            Message::parse(&mut out).unwrap(),
            Some(Message::DataRow(_))
        ));
        assert!(matches!(
            Message::parse(&mut out).unwrap(),
            Some(Message::CommandComplete(_))
        ));
    }
}
