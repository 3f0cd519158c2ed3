//! The relay's hot path without sockets: walking server and client messages the way the
//! session does (headers only; bodies forwarded unread unless the relay must look), and
//! building the messages pgmux writes itself (ErrorResponse, the login greeting).

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pgmux::protocol::builders::{self, Severity};
use pgmux::protocol::{FrameCursor, Limits};

/// Server frames the relay reads whole (src/client/relay.rs `relay_server`).
fn server_needs_body(tag: u8, _: &[u8], _: usize) -> bool {
    matches!(tag, b'Z' | b'S' | b'E' | b'C')
}

/// Client frames the relay reads whole with statement caching off (`forward_client`).
fn client_needs_body(tag: u8, _: &[u8], _: usize) -> bool {
    matches!(tag, b'D' | b'C')
}

fn message(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    buf.put_u8(tag);
    buf.put_u32(4 + body.len() as u32);
    buf.put_slice(body);
}

/// A server reply to `select` of `rows` rows of `width` bytes: just DataRows,
/// CommandComplete and ReadyForQuery.
fn data_row_stream(rows: usize, width: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for _ in 0..rows {
        buf.put_u8(b'D');
        buf.put_u32((4 + 2 + 4 + width) as u32);
        buf.put_u16(1);
        buf.put_u32(width as u32);
        buf.put_bytes(b'x', width);
    }
    message(&mut buf, b'C', b"SELECT 1\0");
    builders::ready_for_query(&mut buf, b'I');
    buf
}

/// What PostgreSQL answers one `pgbench -S -M extended` transaction: ParseComplete,
/// BindComplete, RowDescription, one DataRow, CommandComplete, ReadyForQuery.
fn select_extended_reply() -> BytesMut {
    let mut buf = BytesMut::new();
    message(&mut buf, b'1', b"");
    message(&mut buf, b'2', b"");
    let mut row_description = BytesMut::new();
    row_description.put_u16(1);
    row_description.put_slice(b"abalance\0");
    row_description.put_u32(16_396);
    row_description.put_u16(3);
    row_description.put_u32(23);
    row_description.put_i16(4);
    row_description.put_i32(-1);
    row_description.put_i16(0);
    message(&mut buf, b'T', &row_description);
    message(&mut buf, b'D', b"\x00\x01\x00\x00\x00\x04-123");
    message(&mut buf, b'C', b"SELECT 1\0");
    builders::ready_for_query(&mut buf, b'I');
    buf
}

/// What pgbench sends for that transaction: Parse, Bind, Describe, Execute, Sync.
fn select_extended_request() -> BytesMut {
    let sql = b"SELECT abalance FROM pgbench_accounts WHERE aid = $1;\0";
    let mut buf = BytesMut::new();
    let mut parse = BytesMut::new();
    parse.put_u8(0);
    parse.put_slice(sql);
    parse.put_u16(0);
    message(&mut buf, b'P', &parse);
    message(&mut buf, b'B', b"\0\0\0\0\0\x01\0\0\0\x0512345\0\0");
    message(&mut buf, b'D', b"P\0");
    message(&mut buf, b'E', b"\0\0\0\0\0");
    message(&mut buf, b'S', b"");
    buf
}

/// Walks `stream` as it would arrive in reads of `chunk` bytes; counts ReadyForQuery.
fn walk(stream: &[u8], chunk: usize, needs_body: fn(u8, &[u8], usize) -> bool) -> usize {
    let mut cursor = FrameCursor::default();
    let mut ready = 0;
    for piece in stream.chunks(chunk) {
        while let Some(frame) = cursor
            .next(piece, needs_body, Limits::whole_up_to(64 * 1024))
            .unwrap()
        {
            ready += usize::from(frame.tag == b'Z');
        }
        cursor.rebase();
    }
    ready
}

fn frames(c: &mut Criterion) {
    let stream = data_row_stream(10_000, 100);
    let mut group = c.benchmark_group("relay_scan");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("data_rows_16k_reads", |b| {
        b.iter(|| walk(&stream, 16 * 1024, server_needs_body))
    });
    group.bench_function("data_rows_4k_reads", |b| {
        b.iter(|| walk(&stream, 4 * 1024, server_needs_body))
    });
    // One transaction per read, as the relay sees a pgbench -S -M extended exchange.
    let reply = select_extended_reply();
    let request = select_extended_request();
    group.throughput(Throughput::Elements(1));
    group.bench_function("select_extended_reply", |b| {
        b.iter(|| walk(&reply, reply.len(), server_needs_body))
    });
    group.bench_function("select_extended_request", |b| {
        b.iter(|| walk(&request, request.len(), client_needs_body))
    });
    group.finish();
}

fn built_messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.bench_function("error_response", |b| {
        b.iter_batched_ref(
            || BytesMut::with_capacity(256),
            |buf| {
                builders::error_response(buf, Severity::Fatal, "08P01", "query_wait_timeout", None)
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("error_response_with_hint", |b| {
        b.iter_batched_ref(
            || BytesMut::with_capacity(256),
            |buf| {
                builders::error_response(
                    buf,
                    Severity::Error,
                    "0A000",
                    "transaction blocks not allowed in statement pooling mode",
                    Some("use transaction or session pool_mode for this database"),
                )
            },
            BatchSize::SmallInput,
        )
    });
    // What every client login is answered with (the cost a `pgbench -C` churn pays).
    let params = [
        ("application_name", "pgbench"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("default_transaction_read_only", "off"),
        ("in_hot_standby", "off"),
        ("integer_datetimes", "on"),
        ("IntervalStyle", "postgres"),
        ("is_superuser", "off"),
        ("server_encoding", "UTF8"),
        ("server_version", "15.18"),
        ("session_authorization", "bench"),
        ("standard_conforming_strings", "on"),
        ("TimeZone", "Etc/UTC"),
    ];
    group.bench_function("login_greeting", |b| {
        b.iter_batched_ref(
            || BytesMut::with_capacity(1024),
            |buf| {
                builders::authentication_ok(buf);
                for (name, value) in params {
                    builders::parameter_status(buf, name, value);
                }
                builders::backend_key_data(buf, 4242, 0x5eed);
                builders::ready_for_query(buf, b'I');
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, frames, built_messages);
criterion_main!(benches);
