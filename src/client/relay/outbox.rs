//! What one direction of the relay owes its peer. Frames walked in the read buffer are
//! sent straight from it; only an edit (a message renamed, dropped, answered by pgmux or
//! replaced) copies, and then only the bytes before the edit. Invariant: `edited` holds
//! what is due before the read buffer's walked bytes, so writing `edited` first and then
//! the walked bytes keeps the order.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;

use crate::net::Stream;
use crate::protocol::FrameCursor;

/// The read buffer of one direction with its frame cursor: walked bytes are due.
pub struct Source<'a> {
    pub buf: &'a mut BytesMut,
    pub cursor: &'a mut FrameCursor,
}

impl Source<'_> {
    /// Bytes walked and not yet sent.
    pub fn walked(&self) -> usize {
        self.cursor.consumed()
    }

    /// Splits off the first `n` walked bytes.
    fn advance(&mut self, n: usize) {
        self.buf.advance(n);
        self.cursor.rebase_by(n);
    }
}

#[derive(Debug, Default)]
pub struct Outbox {
    edited: BytesMut,
}

impl Outbox {
    /// The frame at `source.buf[start..end]` (walked) is replaced by `replacement`
    /// (empty: dropped).
    pub fn replace(
        &mut self,
        source: &mut Source<'_>,
        start: usize,
        end: usize,
        replacement: &[u8],
    ) {
        self.edited.extend_from_slice(&source.buf[..start]);
        self.edited.extend_from_slice(replacement);
        source.advance(end);
    }

    /// `bytes` are due after everything walked so far.
    pub fn append(&mut self, source: &mut Source<'_>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let walked = source.walked();
        self.replace(source, walked, walked, bytes);
    }

    /// `bytes` are due before anything the source walks from now on (nothing may be
    /// walked and unsent when this is called).
    pub fn push(&mut self, bytes: &[u8]) {
        self.edited.extend_from_slice(bytes);
    }

    /// Takes the walked bytes out of a buffer that is about to go (a server going back to
    /// its pool with replies the client has not taken yet).
    pub fn keep_walked(&mut self, source: &mut Source<'_>) {
        let walked = source.walked();
        self.replace(source, walked, walked, &[]);
    }

    pub fn is_empty(&self) -> bool {
        self.edited.is_empty()
    }

    /// Bytes held here (edited), not counting walked bytes still in a read buffer.
    pub fn pending_len(&self) -> usize {
        self.edited.len()
    }

    /// The bytes held here (only those: the caller sends none from a read buffer).
    pub fn take(&mut self) -> BytesMut {
        self.edited.split()
    }

    /// Writes what is due to `stream` until it is all sent (`Ready(Ok(bytes written))`)
    /// or the socket is full (`Pending`, woken when writable).
    pub fn poll_send(
        &mut self,
        stream: &mut Stream,
        source: &mut Source<'_>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut wrote = 0;
        loop {
            let n = if !self.edited.is_empty() {
                let n = ready!(poll_write(stream, cx, &self.edited))?;
                self.edited.advance(n);
                n
            } else if source.walked() > 0 {
                let walked = source.walked();
                let n = ready!(poll_write(stream, cx, &source.buf[..walked]))?;
                source.advance(n);
                n
            } else {
                // TLS keeps the last records until flushed; plain sockets have nothing.
                ready!(Pin::new(&mut *stream).poll_flush(cx))?;
                return Poll::Ready(Ok(wrote));
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            wrote += n;
        }
    }
}

fn poll_write(stream: &mut Stream, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
    Pin::new(stream).poll_write(cx, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_the_order_of_the_stream() {
        let mut buf = BytesMut::from(&b"aaBBccDDee"[..]);
        let mut cursor = FrameCursor::default();
        let mut outbox = Outbox::default();
        // Four bytes walked ("aaBB"); "BB" is replaced by "X".
        cursor.unread(4);
        let mut source = Source {
            buf: &mut buf,
            cursor: &mut cursor,
        };
        outbox.replace(&mut source, 2, 4, b"X");
        assert_eq!(&source.buf[..], b"ccDDee");
        assert_eq!(source.walked(), 0);
        // Two more walked ("cc"), then pgmux's own reply goes after them.
        source.cursor.unread(2);
        outbox.append(&mut source, b"!");
        assert_eq!(outbox.pending_len() + source.walked(), 6);
        assert_eq!(outbox.take(), &b"aaXcc!"[..]);
        assert_eq!(&buf[..], b"DDee");
    }
}
