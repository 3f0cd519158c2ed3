//! Unit tests of the reply queue: which server messages release the server, which are
//! swallowed, and where pgmux's own replies come out, for simple queries, pipelines,
//! errors and COPY.

use super::*;

fn run(queue: &mut ReplyQueue, tags: &[u8]) -> (Vec<Disposition>, Vec<u8>) {
    let mut dispositions = Vec::new();
    let mut synthetic = Vec::new();
    let mut failed = Vec::new();
    for &tag in tags {
        let status = (tag == b'Z').then_some(b'I');
        dispositions.push(queue.on_server(tag, status, &mut synthetic, &mut failed));
    }
    (dispositions, synthetic)
}

#[test]
fn simple_query_releases_on_idle_ready() {
    let mut queue = ReplyQueue::default();
    queue.expect(Request::Query);
    assert!(!queue.is_idle());
    run(&mut queue, b"TDCZ");
    assert!(queue.is_idle());
}

#[test]
fn open_transaction_keeps_the_server() {
    let mut queue = ReplyQueue::default();
    queue.expect(Request::Query);
    let mut scratch = (Vec::new(), Vec::new());
    queue.on_server(b'C', None, &mut scratch.0, &mut scratch.1);
    queue.on_server(b'Z', Some(b'T'), &mut scratch.0, &mut scratch.1);
    assert!(!queue.is_idle());
    assert!(queue.idle_in_transaction());
}

#[test]
fn pipelined_syncs_are_all_awaited() {
    let mut queue = ReplyQueue::default();
    for request in [
        Request::Parse,
        Request::Bind,
        Request::Execute,
        Request::Sync,
    ] {
        queue.expect(request);
    }
    for request in [Request::Bind, Request::Execute, Request::Sync] {
        queue.expect(request);
    }
    run(&mut queue, b"12CZ");
    assert!(!queue.is_idle(), "one Sync is still unanswered");
    run(&mut queue, b"2CZ");
    assert!(queue.is_idle());
}

#[test]
fn extended_messages_without_sync_pin_the_server() {
    let mut queue = ReplyQueue::default();
    queue.expect(Request::Parse);
    run(&mut queue, b"1");
    assert!(!queue.is_idle(), "a Parse awaits its Sync");
    queue.expect(Request::Sync);
    run(&mut queue, b"Z");
    assert!(queue.is_idle());
}

#[test]
fn synthetic_replies_come_out_in_order() {
    let mut queue = ReplyQueue::default();
    queue.expect(Request::Bind);
    queue.expect(Request::Execute);
    queue.synthesize(b'1');
    queue.expect(Request::Bind);
    queue.expect(Request::Sync);
    let mut out = Vec::new();
    queue.drain_synthetic(&mut out);
    assert!(out.is_empty(), "the first Bind is answered first");
    let (_, synthetic) = run(&mut queue, b"2DC");
    assert_eq!(
        synthetic,
        [b'1', 0, 0, 0, 4],
        "ParseComplete right after the Execute's end"
    );
    run(&mut queue, b"2Z");
    assert!(queue.is_idle());
}

#[test]
fn injected_parse_replies_are_swallowed() {
    let mut queue = ReplyQueue::default();
    queue.expect_swallowed(Request::Parse);
    queue.expect(Request::Bind);
    queue.expect(Request::Sync);
    let (dispositions, _) = run(&mut queue, b"12Z");
    assert_eq!(
        dispositions,
        [
            Disposition::Swallow,
            Disposition::Forward,
            Disposition::Forward
        ]
    );
}

#[test]
fn an_error_skips_to_sync_and_drops_what_postgres_will_not_answer() {
    let mut queue = ReplyQueue::default();
    let statement = Arc::new(StatementDef::for_tests(7));
    queue.expect(Request::Bind);
    queue.expect_parse(Arc::clone(&statement), false);
    queue.synthesize(b'3');
    queue.expect(Request::Sync);
    let mut synthetic = Vec::new();
    let mut failed = Vec::new();
    assert_eq!(
        queue.on_server(b'E', None, &mut synthetic, &mut failed),
        Disposition::Forward
    );
    assert!(synthetic.is_empty(), "no CloseComplete after an error");
    assert_eq!(
        failed.len(),
        1,
        "the skipped Parse never created its statement"
    );
    queue.on_server(b'Z', Some(b'I'), &mut synthetic, &mut failed);
    assert!(queue.is_idle());
}

#[test]
fn a_sync_sent_into_copy_in_is_not_answered() {
    // tokio-postgres copy_in: Bind, Execute, Sync; then data, CopyDone, Sync.
    let mut queue = ReplyQueue::default();
    for request in [Request::Bind, Request::Execute, Request::Sync] {
        queue.expect(request);
    }
    run(&mut queue, b"2G");
    queue.expect(Request::Sync); // a Sync inside the copy: ignored by the server
    queue.client_copy_ended();
    queue.expect(Request::Sync);
    run(&mut queue, b"CZ");
    assert!(queue.is_idle(), "only the Sync after CopyDone is answered");
}

#[test]
fn errors_inside_a_simple_query_wait_for_its_ready() {
    let mut queue = ReplyQueue::default();
    queue.expect(Request::Query);
    run(&mut queue, b"E");
    assert!(!queue.is_idle());
    run(&mut queue, b"Z");
    assert!(queue.is_idle());
}
