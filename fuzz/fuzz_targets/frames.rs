//! The frame cursor on arbitrary bytes fed in arbitrary pieces (the first byte of the
//! input picks the piece size): it must never panic or claim more than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgmux::protocol::FrameCursor;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else { return };
    let piece = usize::from(piece).max(1);
    let mut cursor = FrameCursor::default();
    let mut buf = Vec::new();
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match cursor.next(&buf, |tag, _, _| matches!(tag, b'Z' | b'S' | b'E'), 4096) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        let consumed = cursor.consumed();
        assert!(consumed <= buf.len());
        buf.drain(..consumed);
        cursor.rebase();
    }
});
