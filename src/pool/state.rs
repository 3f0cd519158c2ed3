//! The synchronous state of one pool, guarded by its mutex and never held across `.await`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{CheckoutError, PooledServer, Slot};
use crate::params::Params;
use crate::server::ServerConn;

/// The settings one pool obeys; replaced whole on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLimits {
    pub pool_size: usize,
    pub min_pool_size: usize,
    pub reserve_pool_size: usize,
    pub reserve_pool_timeout: Duration,
    pub max_db_connections: usize,
    pub max_user_connections: usize,
    pub server_lifetime: Duration,
    pub server_idle_timeout: Duration,
    pub server_connect_timeout: Duration,
    pub server_login_retry: Duration,
    pub server_check_delay: Duration,
    pub server_check_query: String,
    pub query_wait_timeout: Duration,
    /// `log_connections` / `log_disconnections`, for this pool's server lines.
    pub log_connections: bool,
    pub log_disconnections: bool,
}

/// What a waiting client is handed. Unboxed: a grant moves once, through a oneshot, and
/// boxing the server would cost an allocation on every handoff to a waiter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Grant {
    Server(PooledServer),
    Slot(Slot),
    Failed(CheckoutError),
}

pub(super) struct Waiter {
    pub since: Instant,
    pub grant: oneshot::Sender<Grant>,
}

pub(super) struct PoolState {
    pub limits: PoolLimits,
    /// Most recently used last: checkout pops the warmest server, the janitor retires
    /// from the cold end.
    pub idle: Vec<ServerConn>,
    /// Every server that exists or is being opened: idle + in use + logging in.
    pub total: usize,
    pub waiters: VecDeque<Waiter>,
    pub last_login_failure: Option<(Instant, CheckoutError)>,
    pub server_params: Option<Params>,
    pub closed: bool,
    /// Why the pool closed: the log reason of servers that close because of it.
    pub close_reason: &'static str,
    /// RECONNECT: servers opened at or before this instant close when next idle.
    pub retire_before: Option<Instant>,
}

/// Counts for SHOW POOLS and metrics, derived from the state itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    pub idle: usize,
    /// Checked out by clients or logging in.
    pub busy: usize,
    pub waiting: usize,
    pub longest_wait: Duration,
}

impl PoolState {
    pub fn new(limits: PoolLimits) -> PoolState {
        PoolState {
            limits,
            idle: Vec::new(),
            total: 0,
            waiters: VecDeque::new(),
            last_login_failure: None,
            server_params: None,
            closed: false,
            close_reason: crate::logfmt::reason::DATABASE_REMOVED,
            retire_before: None,
        }
    }

    pub fn has_live_waiters(&mut self) -> bool {
        while let Some(front) = self.waiters.front() {
            if !front.grant.is_closed() {
                return true;
            }
            self.waiters.pop_front();
        }
        false
    }

    /// Within `server_login_retry` of a failed login, the error a new client gets
    /// instead of another attempt: PgBouncer's "server login has been failing" with the
    /// cached message.
    pub fn recent_login_failure(&self) -> Option<CheckoutError> {
        let (when, error) = self.last_login_failure.as_ref()?;
        (when.elapsed() < self.limits.server_login_retry).then(|| error.cached())
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        let live = self.waiters.iter().filter(|w| !w.grant.is_closed());
        PoolSnapshot {
            idle: self.idle.len(),
            busy: self.total - self.idle.len(),
            waiting: live.clone().count(),
            longest_wait: live.map(|w| w.since.elapsed()).max().unwrap_or_default(),
        }
    }
}
