//! Who is connected right now: one entry per logged-in client with its state, so that
//! `SHOW CLIENTS`, the client counts of `SHOW POOLS` and the metrics are all read from
//! the same place and cannot drift (PgBouncer keeps each client on the list of its
//! state; here the state is a field of the entry, and counts are derived by reading it).
//!
//! ```text
//! login ─▶ register (idle) ─▶ request ─▶ waiting ─▶ server granted ─▶ active ─▶ release ─▶ idle …
//!                                                        kill (admin) ─▶ session ends ─▶ unregister
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::net::Stream;

/// A logged-in client's state, as `SHOW CLIENTS` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Logged in, holding no server and asking for none.
    Idle,
    /// Asked for a server and is queued for one (or held by PAUSE).
    Waiting,
    /// Holds a server.
    Active,
}

impl ClientState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Waiting => "waiting",
            ClientState::Active => "active",
        }
    }
}

/// The two ends of a socket, as `SHOW CLIENTS/SERVERS` print them ("unix" for a unix
/// socket, whose port is the listening port).
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub addr: Arc<str>,
    pub port: u16,
    pub local_addr: Arc<str>,
    pub local_port: u16,
}

impl Endpoints {
    pub fn of(stream: &Stream, unix_port: u16) -> Endpoints {
        // TLS streams report their TCP socket (issue 5); anything else is a unix socket.
        match stream.tcp_socket() {
            Some(socket) => {
                let peer = socket.peer_addr().ok();
                let local = socket.local_addr().ok();
                Endpoints {
                    addr: peer.map_or_else(|| "".into(), |a| a.ip().to_string().into()),
                    port: peer.map(|a| a.port()).unwrap_or(0),
                    local_addr: local.map_or_else(|| "".into(), |a| a.ip().to_string().into()),
                    local_port: local.map(|a| a.port()).unwrap_or(0),
                }
            }
            None => {
                let port = stream.unix_port().unwrap_or(unix_port);
                Endpoints {
                    addr: "unix".into(),
                    port,
                    local_addr: "unix".into(),
                    local_port: port,
                }
            }
        }
    }
}

/// What changes during a client's life; one small lock, taken a few times per transaction.
#[derive(Debug, Clone)]
pub struct ClientNow {
    pub state: ClientState,
    pub request_time: SystemTime,
    /// Since when the client has been waiting for a server.
    pub wait_started: Option<Instant>,
    /// The server it holds (0: none).
    pub link: u64,
    pub application_name: Arc<str>,
}

#[derive(Debug)]
pub struct ClientInfo {
    /// PgBouncer's `id` column and the argument of `KILL_CLIENT`.
    pub id: u64,
    /// Shared with every client of the same names (see `Registry::name`).
    pub database: Arc<str>,
    pub user: Arc<str>,
    /// The user of the pool the client draws from (a database's forced user, or `user`).
    pub pool_user: Arc<str>,
    pub endpoints: Endpoints,
    pub connect_time: SystemTime,
    now: Mutex<ClientNow>,
    kill: Notify,
    kill_reason: Mutex<Option<String>>,
}

impl ClientInfo {
    pub fn now(&self) -> ClientNow {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, ClientNow> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client asked for a server.
    pub fn set_waiting(&self) {
        let mut now = self.lock();
        now.state = ClientState::Waiting;
        now.request_time = SystemTime::now();
        now.wait_started = Some(Instant::now());
    }

    /// The client got server `server_id`.
    pub fn set_active(&self, server_id: u64, application_name: Option<&str>) {
        let mut now = self.lock();
        now.state = ClientState::Active;
        now.wait_started = None;
        now.link = server_id;
        if let Some(name) = application_name {
            if *now.application_name != *name {
                now.application_name = Arc::from(name);
            }
        }
    }

    /// The client gave its server back; `application_name` as the transaction left it.
    pub fn set_idle(&self, application_name: Option<&str>) {
        let mut now = self.lock();
        now.state = ClientState::Idle;
        now.wait_started = None;
        now.link = 0;
        if let Some(name) = application_name {
            if *now.application_name != *name {
                now.application_name = Arc::from(name);
            }
        }
    }

    /// Asks the client's session to end now, telling the client `reason`.
    pub fn kill(&self, reason: &str) {
        *self.kill_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
        self.kill.notify_one();
    }

    /// Resolves when an admin kills this client; the reason to tell it.
    pub async fn killed(&self) -> String {
        self.kill.notified().await;
        self.kill_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "admin forced disconnect".into())
    }
}

/// Every logged-in client (admin console sessions are not listed, as in PgBouncer's
/// SHOW CLIENTS for pools other than the admin one).
#[derive(Debug, Default)]
pub struct Registry {
    clients: DashMap<u64, Arc<ClientInfo>>,
    next_id: AtomicU64,
    /// Database and user names, one copy each: thousands of clients share a few names.
    /// Only names that passed a login get here, so the set stays as small as the
    /// configuration (or the roles auth_query admits).
    names: Mutex<Names>,
}

#[derive(Debug, Default)]
struct Names {
    shared: std::collections::HashSet<Arc<str>>,
    /// The set's size at which names nobody holds are dropped: twice what was still held
    /// after the last pruning, so pruning costs O(1) per name added.
    prune_at: usize,
}

/// Below this many shared names, none are pruned.
const NAMES_PRUNED_AT: usize = 64;

/// What a new client entry is made of.
pub struct NewClient<'a> {
    /// From [`Registry::next_id`], taken when the connection was accepted so that log
    /// lines before login name the same client as SHOW CLIENTS afterwards.
    pub id: u64,
    pub database: &'a str,
    pub user: &'a str,
    pub pool_user: &'a str,
    pub endpoints: Endpoints,
    pub application_name: &'a str,
}

impl Registry {
    /// The shared copy of `name` (a database, user or address).
    pub fn name(&self, name: &str) -> Arc<str> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = names.shared.get(name) {
            return Arc::clone(known);
        }
        // Names nobody holds any more go, so the set stays about the size of what is in
        // use (client addresses come and go).
        if names.shared.len() >= names.prune_at.max(NAMES_PRUNED_AT) {
            names.shared.retain(|known| Arc::strong_count(known) > 1);
            names.prune_at = 2 * names.shared.len();
        }
        let shared: Arc<str> = Arc::from(name);
        names.shared.insert(Arc::clone(&shared));
        shared
    }

    /// Ids for clients and admin sessions alike, so KILL_CLIENT can never hit the wrong one.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn register(self: &Arc<Self>, client: NewClient<'_>) -> ClientHandle {
        let id = client.id;
        let now = SystemTime::now();
        let info = Arc::new(ClientInfo {
            id,
            database: self.name(client.database),
            user: self.name(client.user),
            pool_user: self.name(client.pool_user),
            endpoints: Endpoints {
                addr: self.name(&client.endpoints.addr),
                local_addr: self.name(&client.endpoints.local_addr),
                ..client.endpoints
            },
            connect_time: now,
            now: Mutex::new(ClientNow {
                state: ClientState::Idle,
                request_time: now,
                wait_started: None,
                link: 0,
                application_name: self.name(client.application_name),
            }),
            kill: Notify::new(),
            kill_reason: Mutex::new(None),
        });
        self.clients.insert(id, Arc::clone(&info));
        ClientHandle {
            info,
            registry: Arc::clone(self),
        }
    }

    /// Every client, oldest first.
    pub fn clients(&self) -> Vec<Arc<ClientInfo>> {
        let mut all: Vec<_> = self.clients.iter().map(|e| Arc::clone(e.value())).collect();
        all.sort_by_key(|c| c.id);
        all
    }

    pub fn client(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.get(&id).map(|e| Arc::clone(e.value()))
    }
}

/// A session's entry; dropping it removes the client from the registry.
#[derive(Debug)]
pub struct ClientHandle {
    pub info: Arc<ClientInfo>,
    registry: Arc<Registry>,
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.registry.clients.remove(&self.info.id);
    }
}

/// PgBouncer prints timestamps as `2024-01-31 12:00:00 UTC`.
pub fn format_time(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_print_as_pgbouncer_does() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_706_702_400 + 3661);
        assert_eq!(format_time(t), "2024-01-31 13:01:01 UTC");
        assert_eq!(
            format_time(SystemTime::UNIX_EPOCH),
            "1970-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn names_are_shared_and_unheld_ones_are_pruned() {
        let registry = Registry::default();
        let app = registry.name("app");
        assert!(Arc::ptr_eq(&app, &registry.name("app")));
        // Addresses of clients long gone do not pile up.
        for n in 0..10 * NAMES_PRUNED_AT {
            registry.name(&format!("10.0.{}.{}", n / 256, n % 256));
        }
        let held = registry.names.lock().unwrap().shared.len();
        assert!(held <= 2 * NAMES_PRUNED_AT + 1, "{held} names kept");
        assert!(
            Arc::ptr_eq(&app, &registry.name("app")),
            "a held name survives"
        );
    }
}
