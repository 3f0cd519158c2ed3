//! The two tickets a checkout hands out: a [`PooledServer`] (a server on loan, which goes
//! back on `release()` and closes when dropped) and a [`Slot`] (room to open one).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::Pool;
use crate::logfmt::reason;
use crate::server::ServerConn;

/// A server checked out of its pool. `release()` returns it; dropping it closes it.
pub struct PooledServer {
    pub(super) conn: Option<ServerConn>,
    pub(super) pool: Arc<Pool>,
    /// Why the server closes if it is dropped rather than released (its log line).
    close_reason: &'static str,
}

impl PooledServer {
    pub(super) fn new(pool: &Arc<Pool>, conn: ServerConn) -> PooledServer {
        PooledServer {
            conn: Some(conn),
            pool: Arc::clone(pool),
            close_reason: reason::UNCLEAN_SERVER,
        }
    }

    /// Back to the pool. Only for a server at ReadyForQuery 'I' with nothing outstanding.
    pub fn release(mut self) {
        let conn = self.conn.take().expect("guard holds its server");
        self.pool.put_back(conn);
    }

    /// Closes the server now, logging `reason` (one of `logfmt::reason`'s server texts).
    pub fn close(mut self, reason: &'static str) {
        self.close_reason = reason;
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Deref for PooledServer {
    type Target = ServerConn;
    fn deref(&self) -> &ServerConn {
        self.conn.as_ref().expect("guard holds its server")
    }
}

impl DerefMut for PooledServer {
    fn deref_mut(&mut self) -> &mut ServerConn {
        self.conn.as_mut().expect("guard holds its server")
    }
}

impl Drop for PooledServer {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.forget(conn, self.close_reason);
        }
    }
}

/// Permission to open one server, already counted against every limit. Dropped
/// unused, it frees its place.
pub struct Slot {
    pool: Arc<Pool>,
    pub(super) armed: bool,
}

impl Slot {
    pub(super) fn new(pool: &Arc<Pool>) -> Slot {
        Slot {
            pool: Arc::clone(pool),
            armed: true,
        }
    }

    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.pool.free_slot();
        }
    }
}
