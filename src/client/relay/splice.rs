//! What a relay writes when it edits a stream of frames: untouched stretches of the read
//! buffer are passed on by reference, and only when a frame is replaced or dropped are
//! the stretches copied around the replacement. Both directions edit this way (client
//! messages renamed or refused, server replies swallowed or answered by pgmux).

use bytes::BytesMut;

#[derive(Default)]
pub struct Splice {
    edited: Option<BytesMut>,
    /// Where the untouched stretch since the last edit begins.
    kept_from: usize,
}

impl Splice {
    /// `buf[start..end]` is replaced by `replacement` (empty: dropped); whatever came
    /// before it since the last edit is kept.
    pub fn replace(&mut self, buf: &[u8], start: usize, end: usize, replacement: &[u8]) {
        let out = self.edited.get_or_insert_with(BytesMut::new);
        out.extend_from_slice(&buf[self.kept_from..start]);
        out.extend_from_slice(replacement);
        self.kept_from = end;
    }

    /// `insertion` goes in at `at`, nothing is removed.
    pub fn insert(&mut self, buf: &[u8], at: usize, insertion: &[u8]) {
        self.replace(buf, at, at, insertion);
    }

    /// The bytes to send for `buf[..end]`: the buffer itself when nothing was edited.
    pub fn finish<'a>(&'a mut self, buf: &'a [u8], end: usize) -> &'a [u8] {
        match self.edited.as_mut() {
            None => &buf[..end],
            Some(out) => {
                out.extend_from_slice(&buf[self.kept_from..end]);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_buffers_are_passed_through() {
        let mut splice = Splice::default();
        assert_eq!(splice.finish(b"abcdef", 4), b"abcd");
    }

    #[test]
    fn replacements_drops_and_insertions_keep_order() {
        let buf = b"aaBBccDDee";
        let mut splice = Splice::default();
        splice.replace(buf, 2, 4, b"X"); // BB -> X
        splice.replace(buf, 6, 8, b""); // DD dropped
        splice.insert(buf, 10, b"!");
        assert_eq!(splice.finish(buf, 10), b"aaXccee!");
    }
}
