//! What the relay must know about the conversation: which replies are still owed by the
//! server (DESIGN.md facts 1 and 2). Everything else is forwarded unread.

/// Counts the requests that each end with one ReadyForQuery.
#[derive(Debug)]
pub struct ReplyTracker {
    /// Query, Sync and FunctionCall messages not yet answered by ReadyForQuery.
    outstanding: u32,
    /// Extended-protocol messages sent since the last Sync: they live on this server until
    /// a Sync is answered, so the server cannot go back before then.
    unsynced: bool,
    /// The status byte of the last ReadyForQuery: 'I' idle, 'T' in transaction, 'E' failed.
    status: u8,
}

impl Default for ReplyTracker {
    fn default() -> Self {
        ReplyTracker {
            outstanding: 0,
            unsynced: false,
            status: b'I',
        }
    }
}

impl ReplyTracker {
    /// A client message was forwarded.
    pub fn client_sent(&mut self, tag: u8) {
        match tag {
            b'Q' | b'F' => self.outstanding += 1,
            b'S' => {
                self.outstanding += 1;
                self.unsynced = false;
            }
            b'P' | b'B' | b'D' | b'E' | b'C' => self.unsynced = true,
            _ => {}
        }
    }

    /// The server sent ReadyForQuery with `status`.
    pub fn server_ready(&mut self, status: u8) {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.status = status;
    }

    /// Nothing owed, nothing pending, no transaction open: the server may serve another
    /// client.
    pub fn is_idle(&self) -> bool {
        self.outstanding == 0 && !self.unsynced && self.status == b'I'
    }

    /// Waiting for the server to answer something.
    pub fn awaiting_server(&self) -> bool {
        self.outstanding > 0
    }

    /// Between statements inside an open (or failed) transaction block.
    pub fn idle_in_transaction(&self) -> bool {
        self.outstanding == 0 && self.status != b'I'
    }

    pub fn status(&self) -> u8 {
        self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_query_releases_on_idle_ready() {
        let mut tracker = ReplyTracker::default();
        tracker.client_sent(b'Q');
        assert!(!tracker.is_idle());
        tracker.server_ready(b'I');
        assert!(tracker.is_idle());
    }

    #[test]
    fn open_transaction_keeps_the_server() {
        let mut tracker = ReplyTracker::default();
        tracker.client_sent(b'Q');
        tracker.server_ready(b'T');
        assert!(!tracker.is_idle());
        assert!(tracker.idle_in_transaction());
    }

    #[test]
    fn pipelined_syncs_are_all_awaited() {
        let mut tracker = ReplyTracker::default();
        for tag in [b'P', b'B', b'E', b'S', b'B', b'E', b'S'] {
            tracker.client_sent(tag);
        }
        tracker.server_ready(b'I');
        assert!(!tracker.is_idle(), "one Sync is still unanswered");
        tracker.server_ready(b'I');
        assert!(tracker.is_idle());
    }

    #[test]
    fn extended_messages_without_sync_pin_the_server() {
        let mut tracker = ReplyTracker::default();
        tracker.client_sent(b'Q');
        tracker.client_sent(b'P');
        tracker.client_sent(b'H');
        tracker.server_ready(b'I');
        assert!(!tracker.is_idle(), "a Parse awaits its Sync");
        tracker.client_sent(b'S');
        tracker.server_ready(b'I');
        assert!(tracker.is_idle());
    }
}
