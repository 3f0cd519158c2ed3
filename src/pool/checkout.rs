//! Checkout: how a client gets a server. An idle one is vetted (still alive, and answering
//! `server_check_query` when due) before it is handed out; with none idle, a slot under the
//! pool, database and user limits lets the caller open a new one; otherwise the caller
//! waits its turn in the FIFO queue, up to `query_wait_timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::state::{Grant, PoolState, Waiter};
use super::{CheckoutError, Pool, PooledServer, ServerState, Slot};
use crate::logfmt::reason;

/// Idle servers older than this are probed for a close before being handed out.
const PROBE_AFTER_IDLE: Duration = Duration::from_millis(5);

impl Pool {
    /// A server for one transaction (or session), waiting in FIFO order when the pool is
    /// full, up to `query_wait_timeout`.
    pub async fn checkout(self: &Arc<Self>) -> Result<PooledServer, CheckoutError> {
        let mut deadline: Option<Instant> = None;
        loop {
            let grant = match self.try_take() {
                Ok(grant) => grant,
                Err(receiver) => {
                    let timeout = self.lock().limits.query_wait_timeout;
                    // query_wait_timeout = 0 waits forever, as in PgBouncer.
                    let until = (!timeout.is_zero())
                        .then(|| *deadline.get_or_insert_with(|| Instant::now() + timeout));
                    self.wait(receiver, until).await?
                }
            };
            match grant {
                Grant::Server(server) => {
                    if let Some(server) = self.vet(server).await {
                        return Ok(server);
                    }
                }
                Grant::Slot(slot) => return self.open(slot).await,
                Grant::Failed(error) => return Err(error),
            }
        }
    }

    /// The synchronous half of checkout: an idle server, a slot to open one, a fast
    /// failure, or a place in the queue.
    fn try_take(self: &Arc<Self>) -> Result<Grant, oneshot::Receiver<Grant>> {
        let mut state = self.lock();
        if state.closed {
            return Ok(Grant::Failed(CheckoutError::Closed));
        }
        // Someone queued first keeps their turn: FIFO even when a server frees up now.
        if !state.has_live_waiters() {
            if let Some(conn) = state.idle.pop() {
                return Ok(Grant::Server(self.guard(conn)));
            }
            // Within server_login_retry of a failed login, fail at once with its error
            // instead of asking PostgreSQL again.
            if let Some(error) = state.recent_login_failure() {
                return Ok(Grant::Failed(error));
            }
            if self.reserve_slot(&mut state, false) {
                return Ok(Grant::Slot(Slot::new(self)));
            }
        }
        let (grant, receiver) = oneshot::channel();
        state.waiters.push_back(Waiter {
            since: Instant::now(),
            grant,
        });
        Err(receiver)
    }

    async fn wait(
        &self,
        mut receiver: oneshot::Receiver<Grant>,
        deadline: Option<Instant>,
    ) -> Result<Grant, CheckoutError> {
        let Some(deadline) = deadline else {
            return receiver.await.map_err(|_| CheckoutError::Closed);
        };
        match tokio::time::timeout_at(deadline.into(), &mut receiver).await {
            Ok(grant) => grant.map_err(|_| CheckoutError::Closed),
            Err(_) => {
                // A grant may have been sent in the instant the timer fired: take it
                // rather than let it be dropped.
                receiver.close();
                receiver
                    .try_recv()
                    .map_err(|_| CheckoutError::QueryWaitTimeout)
            }
        }
    }

    /// Counts a new server against every limit; true when there was room.
    pub(super) fn reserve_slot(&self, state: &mut PoolState, allow_reserve: bool) -> bool {
        let limits = &state.limits;
        let cap = limits.pool_size
            + if allow_reserve {
                limits.reserve_pool_size
            } else {
                0
            };
        if state.total >= cap {
            return false;
        }
        if !self.db_count.try_acquire(limits.max_db_connections) {
            return false;
        }
        if !self.user_count.try_acquire(limits.max_user_connections) {
            self.db_count.release();
            return false;
        }
        state.total += 1;
        true
    }

    /// Makes sure an idle server is still usable: not closed by PostgreSQL meanwhile and,
    /// after `server_check_delay` of idleness, answering `server_check_query`.
    async fn vet(&self, mut server: PooledServer) -> Option<PooledServer> {
        // A server idle a while may have been closed by PostgreSQL (pg_terminate_backend,
        // a restart). One reused within moments of its release cannot plausibly have been,
        // and probing it costs a recvfrom on the hottest path.
        let idle = server.last_used.elapsed();
        if idle >= PROBE_AFTER_IDLE && !server.is_idle_and_alive() {
            server.close(reason::SERVER_CONN_CRASHED);
            return None;
        }
        // The check query is copied out only when a check is due, not on every checkout.
        let due = {
            let state = self.lock();
            let limits = &state.limits;
            let enabled =
                !limits.server_check_delay.is_zero() && !limits.server_check_query.is_empty();
            (enabled && idle >= limits.server_check_delay).then(|| {
                (
                    limits.server_check_query.clone(),
                    limits.server_connect_timeout,
                )
            })
        };
        if let Some((query, timeout)) = due {
            self.servers.set_state(server.id, ServerState::Tested);
            let check = tokio::time::timeout(
                timeout.max(Duration::from_secs(1)),
                server.run_internal(&query),
            );
            if !matches!(check.await, Ok(Ok(b'I'))) {
                server.close(reason::TEST_QUERY_FAILED);
                return None;
            }
            self.servers.set_state(server.id, ServerState::Active);
        }
        Some(server)
    }
}
