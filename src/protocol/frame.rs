//! Framing of regular (tagged) v3 messages: `tag: u8, length: i32 (counting itself), body`.
//!
//! The relay never needs most message bodies, so a frame whose tag does not need
//! inspecting is *streamed*: its bytes are forwarded as they arrive and only the count
//! still to come is remembered. Memory per connection is therefore bounded by the read
//! buffer, whatever the size of a DataRow or CopyData.

use bytes::Buf;

/// The header: one tag byte and a four-byte length.
pub const HEADER_LEN: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {0}")]
    BadLength(u32),
    #[error("message of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
}

/// What the cursor found at its position.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub tag: u8,
    /// The whole body when it is all in the buffer; `None` when the frame is being
    /// streamed through because it was not wholly buffered and its body is not needed.
    pub body: Option<&'a [u8]>,
    /// The part of the body in the buffer now (all of it when `body` is `Some`).
    pub available: &'a [u8],
    /// The length of the whole body.
    pub body_len: usize,
}

/// Walks the frames of one direction of a connection. Survives across reads: it keeps the
/// count of bytes still owed by a streamed frame, never a borrowed slice.
#[derive(Debug, Default)]
pub struct FrameCursor {
    pos: usize,
    streaming_left: usize,
    /// The whole length of the frame at `pos` while it waits for its body to be read
    /// whole (0 when none waits).
    awaiting: usize,
}

impl FrameCursor {
    /// Bytes of the buffer already walked over: they may be forwarded.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Call after the first `consumed()` bytes were split off the buffer.
    pub fn rebase(&mut self) {
        self.pos = 0;
    }

    /// The whole length of the frame at the cursor when it waits to be read whole: the
    /// buffer must be allowed to grow to it.
    pub fn awaiting_whole(&self) -> Option<usize> {
        (self.awaiting > 0).then_some(self.awaiting)
    }

    /// True while a streamed frame still owes bytes (the connection is mid-message).
    pub fn mid_frame(&self) -> bool {
        self.streaming_left > 0
    }

    /// The bytes of a streamed frame's body that have arrived since the last call: they
    /// are walked over, and their range in `buf` returned (empty when none are due).
    /// `next` calls this first; a caller that must act on them (drop a streamed frame's
    /// rest) calls it itself.
    pub fn continue_streaming(&mut self, buf: &[u8]) -> std::ops::Range<usize> {
        let start = self.pos;
        let taken = (buf.len() - self.pos).min(self.streaming_left);
        self.pos += taken;
        self.streaming_left -= taken;
        start..self.pos
    }

    /// The next frame at the cursor. `needs_body(tag, body_so_far, body_len)` says which
    /// frames must be seen whole (it may decide from the first bytes of the body, e.g. a
    /// statement name, or from its length):
    /// they wait in the buffer up to `limits.whole` bytes; a larger one streams like any
    /// other frame (body `None`), so a buffer never grows past `limits.whole`. A frame
    /// longer than `limits.len` is refused from its header, before any of it is kept.
    /// `Ok(None)`: not enough bytes yet.
    pub fn next<'a>(
        &mut self,
        buf: &'a [u8],
        needs_body: impl Fn(u8, &[u8], usize) -> bool,
        limits: Limits,
    ) -> Result<Option<Frame<'a>>, FrameError> {
        self.continue_streaming(buf);
        self.awaiting = 0;
        if self.streaming_left > 0 {
            return Ok(None);
        }
        let rest = &buf[self.pos..];
        if rest.len() < HEADER_LEN {
            return Ok(None);
        }
        let tag = rest[0];
        let length = (&rest[1..5]).get_u32();
        if length < 4 || length > i32::MAX as u32 {
            return Err(FrameError::BadLength(length));
        }
        let total = 1 + length as usize;
        if total > limits.len {
            return Err(FrameError::TooLarge(total, limits.len));
        }
        if rest.len() >= total {
            self.pos += total;
            let body = &rest[HEADER_LEN..total];
            return Ok(Some(Frame {
                tag,
                body: Some(body),
                available: body,
                body_len: total - HEADER_LEN,
            }));
        }
        if total <= limits.whole && needs_body(tag, &rest[HEADER_LEN..], total - HEADER_LEN) {
            self.awaiting = total;
            return Ok(None);
        }
        self.pos += rest.len();
        self.streaming_left = total - rest.len();
        Ok(Some(Frame {
            tag,
            body: None,
            available: &rest[HEADER_LEN.min(rest.len())..],
            body_len: total - HEADER_LEN,
        }))
    }

    /// Puts back the frame `next` just returned, which began at `start`: it will be
    /// returned again (a relay holding a message until the server has answered others).
    pub fn unread(&mut self, start: usize) {
        self.pos = start;
        self.streaming_left = 0;
        self.awaiting = 0;
    }

    /// Call after the first `n` walked bytes were split off the buffer.
    pub fn rebase_by(&mut self, n: usize) {
        debug_assert!(n <= self.pos);
        self.pos -= n;
    }
}

/// How large a frame may be: `whole` for one that must be read whole (larger ones
/// stream), `len` for any frame at all.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub whole: usize,
    pub len: usize,
}

impl Limits {
    /// Frames read whole up to `whole` bytes, any length accepted.
    pub const fn whole_up_to(whole: usize) -> Limits {
        Limits {
            whole,
            len: usize::MAX,
        }
    }
}

/// A whole message at the front of a buffer: its tag, body, and length with the header.
pub type Whole<'a> = (u8, &'a [u8], usize);

/// Reads a whole frame from the front of `buf` without consuming it.
/// For cold paths (login, injected queries) where every message is small and wanted whole.
pub fn peek_whole(buf: &[u8], max_len: usize) -> Result<Option<Whole<'_>>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let length = (&buf[1..5]).get_u32();
    if length < 4 || length > i32::MAX as u32 {
        return Err(FrameError::BadLength(length));
    }
    let total = 1 + length as usize;
    if total > max_len {
        return Err(FrameError::TooLarge(total, max_len));
    }
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((buf[0], &buf[HEADER_LEN..total], total)))
}

/// Splits a NUL-terminated string off the front of `body`.
pub fn take_cstr(body: &[u8]) -> Option<(&str, &[u8])> {
    let nul = body.iter().position(|&b| b == 0)?;
    let text = std::str::from_utf8(&body[..nul]).ok()?;
    Some((text, &body[nul + 1..]))
}

/// The name and value of a ParameterStatus body.
pub fn parameter_status(body: &[u8]) -> Option<(&str, &str)> {
    let (name, rest) = take_cstr(body)?;
    let (value, _) = take_cstr(rest)?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn whole_frames_are_returned_with_bodies() {
        let mut buf = msg(b'Z', b"I");
        buf.extend(msg(b'C', b"SELECT 1\0"));
        let mut cursor = FrameCursor::default();
        let first = cursor
            .next(&buf, |_, _, _| true, Limits::whole_up_to(1024))
            .unwrap()
            .unwrap();
        assert_eq!((first.tag, first.body), (b'Z', Some(&b"I"[..])));
        let second = cursor
            .next(&buf, |_, _, _| true, Limits::whole_up_to(1024))
            .unwrap()
            .unwrap();
        assert_eq!(second.tag, b'C');
        assert_eq!(
            cursor
                .next(&buf, |_, _, _| true, Limits::whole_up_to(1024))
                .unwrap(),
            None
        );
        assert_eq!(cursor.consumed(), buf.len());
    }

    #[test]
    fn partial_header_waits() {
        let buf = msg(b'Z', b"I");
        let mut cursor = FrameCursor::default();
        assert_eq!(
            cursor
                .next(&buf[..3], |_, _, _| true, Limits::whole_up_to(1024))
                .unwrap(),
            None
        );
        assert_eq!(cursor.consumed(), 0);
    }

    #[test]
    fn unneeded_bodies_stream_across_reads() {
        let big = msg(b'D', &[7u8; 100]);
        let mut cursor = FrameCursor::default();
        let frame = cursor
            .next(&big[..40], |t, _, _| t == b'Z', Limits::whole_up_to(1024))
            .unwrap()
            .unwrap();
        assert_eq!((frame.tag, frame.body), (b'D', None));
        assert_eq!(cursor.consumed(), 40);
        cursor.rebase();
        assert!(cursor.mid_frame());
        // The rest of the DataRow plus a ReadyForQuery arrive together.
        let mut next = big[40..].to_vec();
        next.extend(msg(b'Z', b"I"));
        let frame = cursor
            .next(&next, |t, _, _| t == b'Z', Limits::whole_up_to(1024))
            .unwrap()
            .unwrap();
        assert_eq!((frame.tag, frame.body), (b'Z', Some(&b"I"[..])));
        assert_eq!(cursor.consumed(), next.len());
    }

    #[test]
    fn needed_bodies_wait_until_whole_and_are_bounded() {
        let error = msg(b'E', &[1u8; 50]);
        let mut cursor = FrameCursor::default();
        assert_eq!(
            cursor
                .next(&error[..20], |t, _, _| t == b'E', Limits::whole_up_to(1024))
                .unwrap(),
            None
        );
        assert_eq!(cursor.consumed(), 0);
        let streamed = cursor
            .next(&error[..20], |t, _, _| t == b'E', Limits::whole_up_to(30))
            .unwrap()
            .unwrap();
        assert_eq!((streamed.tag, streamed.body), (b'E', None));
    }

    #[test]
    fn frames_over_the_length_limit_are_refused_from_their_header() {
        let header = [b'P', 0, 0, 1, 0];
        let limits = Limits {
            whole: 1 << 20,
            len: 100,
        };
        let mut cursor = FrameCursor::default();
        assert_eq!(
            cursor.next(&header, |_, _, _| true, limits),
            Err(FrameError::TooLarge(257, 100))
        );
    }

    #[test]
    fn a_streamed_frames_rest_is_walked_and_can_be_put_back() {
        let big = msg(b'd', &[7u8; 100]);
        let mut cursor = FrameCursor::default();
        let frame = cursor.next(&big[..40], |_, _, _| false, Limits::whole_up_to(1024));
        assert_eq!(frame.unwrap().unwrap().body, None);
        cursor.rebase_by(40);
        assert_eq!(cursor.continue_streaming(&big[40..70]), 0..30);
        assert!(cursor.mid_frame());
        cursor.unread(0);
        assert!(!cursor.mid_frame());
    }

    #[test]
    fn lengths_below_four_are_rejected() {
        let buf = [b'Q', 0, 0, 0, 3];
        let mut cursor = FrameCursor::default();
        assert_eq!(
            cursor.next(&buf, |_, _, _| false, Limits::whole_up_to(1024)),
            Err(FrameError::BadLength(3))
        );
    }
}
