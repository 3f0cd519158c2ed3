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

mod checkout;
mod error;
mod guard;
mod janitor;
mod log;
mod new_servers;
mod servers;
mod shared_count;
mod state;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::logfmt::reason;
use crate::params::Params;
use crate::server::{ServerConn, ServerTarget};
pub use error::CheckoutError;
pub use guard::{PooledServer, Slot};
pub use servers::{ServerInfo, ServerList, ServerNow, ServerState};
pub use shared_count::SharedCount;
use state::{Grant, PoolState};
pub use state::{PoolLimits, PoolSnapshot};

/// The pool a client's transactions draw from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    pub database: String,
    pub user: String,
}

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
    /// PAUSE/SUSPEND: while they hold this pool's database, no servers are opened to
    /// keep `min_pool_size` (PgBouncer opens none either).
    pauses: std::sync::OnceLock<Arc<crate::control::Control>>,
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
            pauses: Default::default(),
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

    /// Follows `control`'s PAUSE/SUSPEND for this pool's database from now on.
    pub fn follow_pauses(&self, control: Arc<crate::control::Control>) {
        let _ = self.pauses.set(control);
    }

    /// Whether a PAUSE/SUSPEND holds this pool's database now.
    fn paused(&self) -> bool {
        self.pauses
            .get()
            .is_some_and(|control| control.is_held(&self.key.database))
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
