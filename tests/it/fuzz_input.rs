//! Property tests: arbitrary and mutated byte streams thrown at the startup and message
//! decoders, and at a live pgmux before and after login. The decoders never panic or
//! over-read; pgmux answers garbage with an error or a close, and good clients are
//! unaffected. Case counts are fixed so CI time is bounded; `fuzz/` has cargo-fuzz targets
//! for long runs.

use ::pgmux::protocol::startup::read_startup;
use ::pgmux::protocol::{FrameCursor, Limits};
use bytes::BytesMut;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{self, pgmux};
use crate::raw_wire::{message, startup_message};

/// A valid startup packet or a message stream, with a few bytes flipped.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    proptest::collection::vec((0..len, any::<u8>()), 0..4).prop_map(move |flips| {
        let mut bytes = valid.clone();
        for (at, value) in flips {
            bytes[at] = value;
        }
        bytes
    })
}

fn inputs(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        mutated(valid)
    ]
}

#[test]
fn the_startup_decoder_never_panics_or_over_reads() {
    let valid = startup_message(&[("user", "app"), ("database", "app")]);
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    runner
        .run(&inputs(valid), |bytes| {
            let mut buf = BytesMut::from(&bytes[..]);
            loop {
                let before = buf.len();
                match read_startup(&mut buf) {
                    Ok(Some(_)) => prop_assert!(buf.len() < before, "a packet was consumed"),
                    Ok(None) | Err(_) => break,
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_frame_cursor_walks_any_split_of_any_stream_without_panicking() {
    let valid = [
        message(b'Q', b"select 1\0"),
        message(b'S', b""),
        message(b'D', &[7; 300]),
    ]
    .concat();
    let strategy = (inputs(valid), proptest::collection::vec(1usize..64, 1..20));
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    runner
        .run(&strategy, |(bytes, splits)| {
            let mut cursor = FrameCursor::default();
            let mut buf = Vec::new();
            let mut fed = 0;
            for step in splits.iter().cycle().take(200) {
                let take = (*step).min(bytes.len() - fed);
                buf.extend_from_slice(&bytes[fed..fed + take]);
                fed += take;
                loop {
                    match cursor.next(&buf, |tag, _, _| tag == b'Q', Limits::whole_up_to(1024)) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                let consumed = cursor.consumed();
                prop_assert!(consumed <= buf.len());
                buf.drain(..consumed);
                cursor.rebase();
                if fed == bytes.len() {
                    break;
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Sends `bytes` on a fresh connection and reads whatever comes back until pgmux closes,
/// answers, or a short while passes.
async fn throw(addr: std::net::SocketAddr, prefix: &[u8], bytes: &[u8]) {
    let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let _ = socket.write_all(prefix).await;
    let _ = socket.write_all(bytes).await;
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        while let Ok(n) = socket.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_live_pgmux_survives_garbage_before_and_after_login() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("auth_type", "\"trust\"")
        .setting("client_login_timeout", "1")
        .start()
        .await;
    let startup = startup_message(&[("user", "app"), ("database", "app")]);
    let after_login = [
        message(b'Q', b"select 1\0"),
        message(b'P', b"\0select 1\0\0\0"),
        message(b'S', b""),
    ]
    .concat();
    let mut runner = TestRunner::new(Config::default());
    let strategy = (inputs(startup.clone()), inputs(after_login));
    let cases: Vec<(Vec<u8>, Vec<u8>)> = (0..48)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("a generated case")
                .current()
        })
        .collect();
    let good = pgmux.app().await;
    for chunk in cases.chunks(16) {
        let throws = chunk.iter().flat_map(|(before, after)| {
            [
                throw(pgmux.addr(), &[], before),
                throw(pgmux.addr(), &startup, after),
            ]
        });
        futures_util::future::join_all(throws).await;
        assert_eq!(
            good.query_one("select 2", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            2
        );
    }
    let fresh = pgmux.app().await;
    assert_eq!(
        fresh
            .query_one("select 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
}
