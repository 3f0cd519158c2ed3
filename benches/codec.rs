//! The relay's hot path without sockets: walking a stream of DataRows the way the session
//! does (headers only, bodies forwarded unread), and building ErrorResponses.

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pgmux::protocol::builders::{self, Severity};
use pgmux::protocol::FrameCursor;

/// A server reply to `select` of `rows` rows of `width` bytes: RowDescription-free, just
/// DataRows, CommandComplete and ReadyForQuery.
fn data_row_stream(rows: usize, width: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for _ in 0..rows {
        buf.put_u8(b'D');
        buf.put_u32((4 + 2 + 4 + width) as u32);
        buf.put_u16(1);
        buf.put_u32(width as u32);
        buf.put_bytes(b'x', width);
    }
    buf.put_u8(b'C');
    buf.put_u32(4 + 9);
    buf.put_slice(b"SELECT 1\0");
    builders::ready_for_query(&mut buf, b'I');
    buf
}

fn walk(stream: &[u8], chunk: usize) -> usize {
    let mut cursor = FrameCursor::default();
    let mut ready = 0;
    for piece in stream.chunks(chunk) {
        while let Some(frame) = cursor
            .next(piece, |t, _, _| matches!(t, b'Z' | b'S' | b'E'), 64 * 1024)
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
        b.iter(|| walk(&stream, 16 * 1024))
    });
    group.finish();
}

fn error_response(c: &mut Criterion) {
    c.bench_function("error_response", |b| {
        b.iter_batched_ref(
            || BytesMut::with_capacity(256),
            |buf| {
                builders::error_response(buf, Severity::Fatal, "08P01", "query_wait_timeout", None)
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, frames, error_response);
criterion_main!(benches);
