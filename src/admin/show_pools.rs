//! SHOW POOLS: one row per (database, user) pool plus the console's own, with client
//! counts from the registry and server counts by state from the pool's server list.

use std::collections::BTreeMap;

use super::result::{ResultSet, Type, Value};
use super::show::{server_states, sorted_pools};
use super::{Console, CONSOLE_NAME};
use crate::registry::ClientState;

use Type::{Int4, Text};

/// Client counts of one pool.
#[derive(Default)]
struct ClientCounts {
    active: usize,
    waiting: usize,
    max_wait: std::time::Duration,
}

fn client_counts(console: &Console) -> BTreeMap<(String, String), ClientCounts> {
    let mut counts: BTreeMap<(String, String), ClientCounts> = BTreeMap::new();
    for client in console.shared.registry.clients() {
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
    let mut clients = client_counts(console);
    let console_key = (CONSOLE_NAME.to_owned(), CONSOLE_NAME.to_owned());
    let admin = clients.remove(&console_key).unwrap_or_default();
    let mut rows: Vec<(String, String, Vec<Value>)> = Vec::new();
    rows.push((
        CONSOLE_NAME.into(),
        CONSOLE_NAME.into(),
        pool_row(&admin, &[], "statement"),
    ));
    for pool in sorted_pools(console) {
        let key = (pool.key.database.clone(), pool.key.user.clone());
        let counts = clients.remove(&key).unwrap_or_default();
        let states: Vec<&str> = server_states(console, &pool)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        let mode = settings.pool_mode_for(&pool.key.database, &pool.key.user);
        rows.push((key.0, key.1, pool_row(&counts, &states, mode.as_str())));
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (database, user, rest) in rows {
        let mut row: Vec<Value> = vec![database.into(), user.into()];
        row.extend(rest);
        set.row(row);
    }
    set
}

fn pool_row(clients: &ClientCounts, servers: &[&str], mode: &str) -> Vec<Value> {
    let count = |name: &str| servers.iter().filter(|s| **s == name).count();
    vec![
        clients.active.into(),
        clients.waiting.into(),
        0i32.into(),
        0i32.into(),
        count("active").into(),
        0i32.into(),
        0i32.into(),
        count("idle").into(),
        count("used").into(),
        count("tested").into(),
        count("new").into(),
        clients.max_wait.as_secs().into(),
        clients.max_wait.subsec_micros().into(),
        mode.into(),
        Value::Null,
    ]
}
