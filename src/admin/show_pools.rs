//! SHOW POOLS: one row per (database, user) pool plus the console's own, with client
//! counts from the registry and server counts by state from the pool's server list.

use std::collections::BTreeMap;

use super::result::{ResultSet, Type, Value};
use super::show::server_states;
use super::{Console, CONSOLE_NAME};
use crate::context::Shared;
use crate::registry::ClientState;

use Type::{Int4, Text};

/// Client counts of one pool.
#[derive(Default)]
pub(crate) struct ClientCounts {
    pub active: usize,
    pub waiting: usize,
    pub max_wait: std::time::Duration,
}

/// Server counts of one pool by SHOW SERVERS state name.
#[derive(Default)]
pub(crate) struct ServerCounts {
    pub active: usize,
    pub idle: usize,
    pub used: usize,
    pub tested: usize,
    pub login: usize,
}

/// One pool's SHOW POOLS figures (the Prometheus pools families publish the same).
pub(crate) struct PoolCounts {
    pub database: String,
    pub user: String,
    pub clients: ClientCounts,
    pub servers: ServerCounts,
}

type ClientsByPool = BTreeMap<(String, String), ClientCounts>;

/// Every pool's counts, in (database, user) order, and the clients of (database, user)
/// pairs that have no pool (such as the console's).
pub(crate) fn pool_counts(shared: &Shared) -> (Vec<PoolCounts>, ClientsByPool) {
    let mut clients = client_counts(shared);
    let mut pools = shared.pools();
    pools.sort_by(|a, b| a.key.cmp(&b.key));
    let counts = pools
        .iter()
        .map(|pool| {
            let key = (pool.key.database.clone(), pool.key.user.clone());
            let mut servers = ServerCounts::default();
            for (_, state) in server_states(shared, pool) {
                match state {
                    "active" => servers.active += 1,
                    "idle" => servers.idle += 1,
                    "used" => servers.used += 1,
                    "tested" => servers.tested += 1,
                    "new" => servers.login += 1,
                    _ => {}
                }
            }
            PoolCounts {
                clients: clients.remove(&key).unwrap_or_default(),
                database: key.0,
                user: key.1,
                servers,
            }
        })
        .collect();
    (counts, clients)
}

fn client_counts(shared: &Shared) -> ClientsByPool {
    let mut counts = ClientsByPool::new();
    for client in shared.registry.clients() {
        let now = client.now();
        let entry = counts
            .entry((client.database.to_string(), client.pool_user.to_string()))
            .or_default();
        match now.state {
            ClientState::Waiting => {
                entry.waiting += 1;
                let waited = now.wait_started.map(|t| t.elapsed()).unwrap_or_default();
                entry.max_wait = entry.max_wait.max(waited);
            }
            ClientState::Idle | ClientState::Active => entry.active += 1,
        }
    }
    counts
}

pub(super) fn pools(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&[
        ("database", Text),
        ("user", Text),
        ("cl_active", Int4),
        ("cl_waiting", Int4),
        ("cl_active_cancel_req", Int4),
        ("cl_waiting_cancel_req", Int4),
        ("sv_active", Int4),
        ("sv_active_cancel", Int4),
        ("sv_being_canceled", Int4),
        ("sv_idle", Int4),
        ("sv_used", Int4),
        ("sv_tested", Int4),
        ("sv_login", Int4),
        ("maxwait", Int4),
        ("maxwait_us", Int4),
        ("pool_mode", Text),
        ("load_balance_hosts", Text),
    ]);
    let settings = console.shared.settings();
    let (pools, mut others) = pool_counts(&console.shared);
    let console_key = (CONSOLE_NAME.to_owned(), CONSOLE_NAME.to_owned());
    let admin = PoolCounts {
        database: CONSOLE_NAME.into(),
        user: CONSOLE_NAME.into(),
        clients: others.remove(&console_key).unwrap_or_default(),
        servers: ServerCounts::default(),
    };
    let mut rows = vec![pool_row(&admin, "statement")];
    for pool in &pools {
        let mode = settings.pool_mode_for(&pool.database, &pool.user);
        rows.push(pool_row(pool, mode.as_str()));
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (database, user, rest) in rows {
        let mut row: Vec<Value> = vec![database.into(), user.into()];
        row.extend(rest);
        set.row(row);
    }
    set
}

fn pool_row(pool: &PoolCounts, mode: &str) -> (String, String, Vec<Value>) {
    let (clients, servers) = (&pool.clients, &pool.servers);
    let values = vec![
        clients.active.into(),
        clients.waiting.into(),
        0i32.into(),
        0i32.into(),
        servers.active.into(),
        0i32.into(),
        0i32.into(),
        servers.idle.into(),
        servers.used.into(),
        servers.tested.into(),
        servers.login.into(),
        clients.max_wait.as_secs().into(),
        clients.max_wait.subsec_micros().into(),
        mode.into(),
        Value::Null,
    ];
    (pool.database.clone(), pool.user.clone(), values)
}
