//! The startup decoder on arbitrary bytes: it must never panic, and each packet it
//! returns must consume input.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgmux::protocol::startup::read_startup;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match read_startup(&mut buf) {
            Ok(Some(_)) => assert!(buf.len() < before),
            Ok(None) | Err(_) => break,
        }
    }
});
