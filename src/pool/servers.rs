//! The servers of one pool as the admin console and metrics see them: one entry per
//! server from the moment pgmux starts opening it until it is closed, with its state.
//! The pool moves an entry between states at the same points where it moves the
//! server itself (open, checkout, release, health check, close), so `SHOW SERVERS` and
//! the `sv_*` counts of `SHOW POOLS` are read from the servers' real states.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::registry::Endpoints;

/// A server's state, as PgBouncer names it. `used` is derived: an idle server idle for
/// longer than `server_check_delay`, which must pass `server_check_query` before reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Connecting or logging in (`new` in SHOW SERVERS, `sv_login` in SHOW POOLS).
    Login,
    /// Serving a client.
    Active,
    Idle,
    /// Running the health check or the reset query.
    Tested,
}

#[derive(Debug, Clone)]
pub struct ServerNow {
    pub state: ServerState,
    pub request_time: SystemTime,
    pub last_used: Instant,
    /// The client it serves (0: none).
    pub link: u64,
    pub remote_pid: i32,
    pub endpoints: Endpoints,
}

#[derive(Debug)]
pub struct ServerInfo {
    pub id: u64,
    pub connect_time: SystemTime,
    pub created: Instant,
    now: Mutex<ServerNow>,
}

impl ServerInfo {
    fn lock(&self) -> MutexGuard<'_, ServerNow> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn now(&self) -> ServerNow {
        self.lock().clone()
    }

    pub fn set_link(&self, client_id: u64) {
        self.lock().link = client_id;
    }

    /// The name SHOW SERVERS prints for the state, with `used` derived from idleness.
    pub fn state_name(now: &ServerNow, check_delay: Duration, check_enabled: bool) -> &'static str {
        match now.state {
            ServerState::Login => "new",
            ServerState::Active => "active",
            ServerState::Tested => "tested",
            ServerState::Idle if check_enabled && now.last_used.elapsed() >= check_delay => "used",
            ServerState::Idle => "idle",
        }
    }
}

/// The entries of one pool, by server id.
#[derive(Debug, Default)]
pub struct ServerList {
    entries: Mutex<BTreeMap<u64, Arc<ServerInfo>>>,
}

impl ServerList {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ServerInfo>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn opening(&self, id: u64, endpoints: Endpoints) {
        let now = Instant::now();
        self.lock().insert(
            id,
            Arc::new(ServerInfo {
                id,
                connect_time: SystemTime::now(),
                created: now,
                now: Mutex::new(ServerNow {
                    state: ServerState::Login,
                    request_time: SystemTime::now(),
                    last_used: now,
                    link: 0,
                    remote_pid: 0,
                    endpoints,
                }),
            }),
        );
    }

    pub(super) fn logged_in(&self, id: u64, remote_pid: i32, endpoints: Endpoints) {
        if let Some(info) = self.get(id) {
            let mut now = info.lock();
            now.remote_pid = remote_pid;
            now.endpoints = endpoints;
        }
    }

    pub(super) fn set_state(&self, id: u64, state: ServerState) {
        if let Some(info) = self.get(id) {
            let mut now = info.lock();
            now.state = state;
            now.request_time = SystemTime::now();
            if state == ServerState::Idle {
                now.last_used = Instant::now();
                now.link = 0;
            }
        }
    }

    pub(super) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn get(&self, id: u64) -> Option<Arc<ServerInfo>> {
        self.lock().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ServerInfo>> {
        self.lock().values().cloned().collect()
    }
}
