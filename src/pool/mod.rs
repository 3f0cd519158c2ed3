//! Server connections of one (database, user): the idle list, the FIFO queue of waiting
//! clients, limits, and the janitor that retires and tops up servers.
//!
//! ```text
//! checkout ─▶ idle server?  ─yes─▶ vet (alive? check query?) ─▶ PooledServer
//!               │no
//!               ├─ room under the limits? ─▶ Slot ─▶ connect + login ─▶ PooledServer
//!               └─ queue (FIFO) ◀── release hands its server to the first waiter
//! ```
//! Every server is owned by exactly one thing at a time: the idle list, a
//! [`PooledServer`] guard, or a grant in flight to a waiter. Dropping a guard or a grant
//! closes the server and gives its place to the next waiter, so counts cannot drift.

mod error;
mod guard;
mod janitor;
mod log;
mod servers;
mod shared_count;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::logfmt::reason;
use crate::params::Params;
use crate::registry::Endpoints;
use crate::server::{self, ServerConn, ServerTarget};
use error::checkout_error;
pub use error::CheckoutError;
pub use guard::{PooledServer, Slot};
pub use servers::{ServerInfo, ServerList, ServerNow, ServerState};
pub use shared_count::SharedCount;
use state::{Grant, PoolState, Waiter};
pub use state::{PoolLimits, PoolSnapshot};

/// The pool a client's transactions draw from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    pub database: String,
    pub user: String,
}

/// Idle servers older than this are probed for a close before being handed out.
const PROBE_AFTER_IDLE: Duration = Duration::from_millis(5);

pub struct Pool {
    pub key: PoolKey,
    pub stats: crate::stats::PoolStats,
    pub target: Arc<ServerTarget>,
    /// The secret auth_query last found for this pool's user, when the settings give
    /// no password: new servers log in with it (see `login_target`).
    looked_up_secret: arc_swap::ArcSwapOption<String>,
    /// Every server of this pool with its state, for the admin console and metrics.
    pub servers: ServerList,
    state: Mutex<PoolState>,
    db_count: Arc<SharedCount>,
    user_count: Arc<SharedCount>,
    server_ids: Arc<AtomicU64>,
    /// The parameters the last client logged in with, shared with every client that
    /// presents the same ones (see `intern_params`).
    client_params: std::sync::Mutex<Params>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("key", &self.key).finish()
    }
}

impl Pool {
    pub fn new(
        key: PoolKey,
        target: ServerTarget,
        limits: PoolLimits,
        db_count: Arc<SharedCount>,
        user_count: Arc<SharedCount>,
        server_ids: Arc<AtomicU64>,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            key,
            stats: Default::default(),
            target: Arc::new(target),
            looked_up_secret: Default::default(),
            servers: ServerList::default(),
            state: Mutex::new(PoolState::new(limits)),
            db_count,
            user_count,
            server_ids,
            client_params: Default::default(),
        });
        pool.db_count.join(&pool);
        pool.user_count.join(&pool);
        janitor::spawn(&pool);
        pool
    }

    /// Closes this pool's longest-idle server, if it has one.
    fn close_one_idle(self: &Arc<Self>) -> bool {
        let oldest = {
            let mut state = self.lock();
            if state.idle.is_empty() {
                return false;
            }
            state.idle.remove(0)
        };
        self.forget(oldest, reason::EVICTED);
        true
    }

    /// When the pool has room of its own but a database/user-wide limit stops it, makes
    /// room by closing an idle server of a sibling pool.
    fn make_room_elsewhere(&self) -> bool {
        let blocked = {
            let state = self.lock();
            let limits = &state.limits;
            let own_room = state.total < limits.pool_size;
            let db_full =
                limits.max_db_connections > 0 && self.db_count.get() >= limits.max_db_connections;
            let user_full = limits.max_user_connections > 0
                && self.user_count.get() >= limits.max_user_connections;
            own_room.then_some((db_full, user_full))
        };
        match blocked {
            Some((db_full, user_full)) => {
                (db_full && self.db_count.evict_idle_elsewhere(self))
                    || (user_full && self.user_count.evict_idle_elsewhere(self))
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn limits(&self) -> PoolLimits {
        self.lock().limits.clone()
    }

    /// Records the secret auth_query found for this pool's user at a client's login. A
    /// changed password applies to servers opened from now on; those already logged in
    /// stay, as PostgreSQL keeps sessions open across ALTER ROLE … PASSWORD.
    pub fn set_looked_up_secret(&self, secret: &str) {
        let current = self.looked_up_secret.load();
        if current.as_deref().map(String::as_str) != Some(secret) {
            self.looked_up_secret
                .store(Some(Arc::new(secret.to_owned())));
        }
    }

    /// Whom new servers log in as: the target, with the looked-up secret when the
    /// settings give no password.
    fn login_target(&self) -> std::borrow::Cow<'_, ServerTarget> {
        match self.looked_up_secret.load_full() {
            Some(secret) if self.target.password.is_none() => {
                std::borrow::Cow::Owned(ServerTarget {
                    password: Some((*secret).clone()),
                    ..(*self.target).clone()
                })
            }
            _ => std::borrow::Cow::Borrowed(&*self.target),
        }
    }

    /// Applies reloaded settings; the janitor shrinks or grows the pool to match.
    pub fn set_limits(&self, limits: PoolLimits) {
        self.lock().limits = limits;
    }

    /// What the server reported at its first login: the ParameterStatus a new client is
    /// greeted with. None until a server has logged in.
    pub fn server_params(&self) -> Option<Params> {
        self.lock().server_params.clone()
    }

    /// `params`, or an equal set an earlier client of this pool holds: the clients of one
    /// application log in with the same parameters, and then share one copy of them.
    pub fn intern_params(&self, params: Params) -> Params {
        let mut last = self
            .client_params
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last != params {
            *last = params;
        }
        last.clone()
    }

    /// Prepared statements held by this pool's idle servers (busy ones are in use).
    pub fn statements_on_idle_servers(&self) -> usize {
        self.lock()
            .idle
            .iter()
            .map(|conn| conn.statements.len())
            .sum()
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        self.lock().snapshot()
    }

    /// Closes every idle server now (PAUSE: disconnect from the servers once idle),
    /// logging `why`.
    pub fn close_idle(self: &Arc<Self>, why: &'static str) {
        let idle = std::mem::take(&mut self.lock().idle);
        for conn in idle {
            self.forget(conn, why);
        }
    }

    /// RECONNECT: every server that exists now is closed as soon as it is idle; new ones
    /// replace them on demand.
    pub fn reconnect(self: &Arc<Self>) {
        self.lock().retire_before = Some(Instant::now());
        self.close_idle(reason::DATABASE_CONFIGURATION_CHANGED);
    }

    /// Whether a server opened at `created` is marked for closing (`close_needed`).
    pub fn close_needed(&self, created: Instant) -> bool {
        self.lock().retire_before.is_some_and(|at| created <= at)
    }

    /// Stops handing out servers: idle ones close now, busy ones when released (both
    /// logged with `why`), and waiting clients are told the database is gone.
    pub fn close(self: &Arc<Self>, why: &'static str) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            state.close_reason = why;
            for waiter in state.waiters.drain(..) {
                let _ = waiter.grant.send(Grant::Failed(CheckoutError::Closed));
            }
            std::mem::take(&mut state.idle)
        };
        for conn in idle {
            self.forget(conn, why);
        }
    }

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
    fn reserve_slot(&self, state: &mut PoolState, allow_reserve: bool) -> bool {
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

    async fn open(self: &Arc<Self>, slot: Slot) -> Result<PooledServer, CheckoutError> {
        let id = self.server_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let timeout = self.lock().limits.server_connect_timeout;
        let target_end = Endpoints {
            addr: self.target.host.as_str().into(),
            port: self.target.port,
            ..Endpoints::default()
        };
        self.servers.opening(id, target_end);
        let started = Instant::now();
        let connected = |stream: &crate::net::Stream| self.log_new_server(id, stream);
        match server::connect(&self.login_target(), id, timeout, &connected).await {
            Ok(conn) => {
                slot.disarm();
                let ends = Endpoints::of(&conn.stream, self.target.port);
                self.servers.logged_in(id, conn.process_id, ends);
                self.note_login(&conn);
                Ok(self.guard(conn))
            }
            Err(error) => {
                self.log_login_failure(id, &error, started);
                let error = checkout_error(&error);
                self.note_login_failure(&error);
                self.servers.remove(id);
                drop(slot);
                Err(error)
            }
        }
    }

    fn note_login(&self, conn: &ServerConn) {
        let mut state = self.lock();
        state.last_login_failure = None;
        if state.server_params.is_none() {
            state.server_params = Some(conn.params.clone());
        }
    }

    /// A failed login fails everyone waiting (they would only time out) and, for
    /// `server_login_retry`, fails new clients at once instead of hammering the server.
    fn note_login_failure(&self, error: &CheckoutError) {
        let mut state = self.lock();
        state.last_login_failure = Some((Instant::now(), error.clone_for_waiter()));
        for waiter in state.waiters.drain(..) {
            let _ = waiter.grant.send(Grant::Failed(error.clone_for_waiter()));
        }
    }

    fn guard(self: &Arc<Self>, conn: ServerConn) -> PooledServer {
        self.servers.set_state(conn.id, ServerState::Active);
        PooledServer::new(self, conn)
    }

    /// Returns a clean server (ReadyForQuery 'I', nothing outstanding): to the first
    /// waiter if there is one, else to the idle list.
    fn put_back(self: &Arc<Self>, mut conn: ServerConn) {
        let now = Instant::now();
        conn.last_used = now;
        let mut state = self.lock();
        let lifetime = state.limits.server_lifetime;
        let over_lifetime = !lifetime.is_zero() && now.duration_since(conn.created_at) >= lifetime;
        // RECONNECT marked servers opened before it for closing.
        let retired = state.retire_before.is_some_and(|at| conn.created_at <= at);
        let surplus = state.total > state.limits.pool_size + state.limits.reserve_pool_size;
        let close = if state.closed {
            Some(state.close_reason)
        } else if over_lifetime {
            Some(reason::SERVER_LIFETIME)
        } else if retired {
            Some(reason::CLOSE_NEEDED)
        } else if surplus {
            Some(reason::TOO_MANY_SERVERS)
        } else {
            None
        };
        if let Some(why) = close {
            drop(state);
            self.forget(conn, why);
            return;
        }
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.grant.send(Grant::Server(self.guard(conn))) {
                Ok(()) => return,
                Err(Grant::Server(mut returned)) => {
                    conn = returned.conn.take().expect("guard holds its server")
                }
                Err(_) => unreachable!("a send returns what it was given"),
            }
        }
        self.servers.set_state(conn.id, ServerState::Idle);
        state.idle.push(conn);
    }

    /// A server leaves the pool for good, for `why`; its place goes to the first waiter
    /// once the backend is gone. Freeing it earlier would let a new login overlap the old
    /// backend still exiting, and PostgreSQL would count one more than the limits allow.
    fn forget(self: &Arc<Self>, conn: ServerConn, why: &'static str) {
        self.log_server_closing(&conn, why);
        self.servers.remove(conn.id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let pool = Arc::clone(self);
                runtime.spawn(async move {
                    conn.terminate().await;
                    pool.free_slot();
                });
            }
            Err(_) => self.free_slot(),
        }
    }

    fn free_slot(self: &Arc<Self>) {
        let mut state = self.lock();
        if !state.closed {
            while let Some(waiter) = state.waiters.pop_front() {
                if waiter.grant.is_closed() {
                    continue;
                }
                // The freed place moves to the waiter: totals and shared counts stay.
                match waiter.grant.send(Grant::Slot(Slot::new(self))) {
                    Ok(()) => return,
                    Err(Grant::Slot(mut slot)) => slot.armed = false,
                    Err(_) => unreachable!("a send returns what it was given"),
                }
            }
        }
        state.total -= 1;
        self.db_count.release();
        self.user_count.release();
    }
}
