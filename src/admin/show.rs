//! SHOW commands with PgBouncer 1.25's columns, order and wire types (`src/admin.c`,
//! `src/stats.c`). Counts are derived from the registry of clients and the pools'
//! server lists, so they describe the connections' real states.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::result::{ResultSet, Type, Value};
use super::{AdminError, Console, Reply, CONSOLE_NAME};
use crate::control::PauseMode;
use crate::pool::{Pool, ServerInfo};
use crate::registry::ClientState;

use Type::{Int4, Int8, Text};

pub(super) fn show(console: &Console, what: &str) -> Result<Reply, AdminError> {
    let what = what.to_ascii_lowercase();
    if let Some(reply) = fake_parameter(&what) {
        return Ok(reply);
    }
    let set = match what.as_str() {
        "help" => return Ok(help()),
        "pools" => pools(console),
        "prepared_statements" => super::show_prepared::prepared_statements(console),
        "stats" => super::show_stats::stats(console),
        "stats_totals" => super::show_stats::stats_totals(console),
        "stats_averages" => super::show_stats::stats_averages(console),
        "totals" => super::show_stats::totals(console),
        "clients" => super::sockets::clients(console, false),
        "servers" => super::sockets::servers(console, false),
        "sockets" => super::sockets::sockets(console),
        "active_sockets" => super::sockets::active_sockets(),
        "fds" => {
            console.require_admin()?;
            super::sockets::fds()
        }
        "databases" => databases(console),
        "users" => users(console),
        "lists" => lists(console),
        "config" => super::config_table::show(console),
        "mem" => ResultSet::new(&[
            ("name", Text),
            ("size", Int4),
            ("used", Int4),
            ("free", Int4),
            ("memtotal", Int4),
        ]),
        "state" => state(console),
        "version" => {
            let mut set = ResultSet::new(&[("version", Text)]);
            set.row(vec![crate::version::VERSION_LINE.into()]);
            set
        }
        "dns_hosts" => ResultSet::new(&[("hostname", Text), ("ttl", Int8), ("addrs", Text)]),
        "dns_zones" => ResultSet::new(&[("zonename", Text), ("serial", Int8), ("count", Int4)]),
        "peers" => ResultSet::new(&[
            ("peer_id", Int4),
            ("host", Text),
            ("port", Int4),
            ("pool_size", Int4),
        ]),
        "peer_pools" => ResultSet::new(&[
            ("peer_id", Int4),
            ("cl_active_cancel_req", Int4),
            ("cl_waiting_cancel_req", Int4),
            ("sv_active_cancel", Int4),
            ("sv_login", Int4),
        ]),
        _ => return Err(super::syntax_error(&format!("show {what}"))),
    };
    Ok(Reply::Rows(set))
}

/// PgBouncer's `fake_show`: drivers that ask for these get a harmless constant.
pub(super) const FAKE_PARAMETERS: [(&str, &str); 7] = [
    ("client_encoding", "UTF-8"),
    ("default_transaction_isolation", "read committed"),
    ("standard_conforming_strings", "on"),
    ("datestyle", "ISO"),
    ("timezone", "GMT"),
    ("extra_float_digits", "2"),
    ("application_name", ""),
];

fn fake_parameter(name: &str) -> Option<Reply> {
    let (name, value) = FAKE_PARAMETERS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    let mut set = ResultSet::new(&[(name, Text)]);
    set.row(vec![(*value).into()]);
    Some(Reply::Rows(set))
}

const HELP: &str = "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n\
\tSHOW PEERS|PEER_POOLS\n\
\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n\
\tSHOW DNS_HOSTS|DNS_ZONES\n\
\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n\
\tSHOW PREPARED_STATEMENTS\n\
\tSET key = arg\n\
\tRELOAD\n\
\tPAUSE [<db>]\n\
\tRESUME [<db>]\n\
\tDISABLE <db>\n\
\tENABLE <db>\n\
\tRECONNECT [<db>]\n\
\tKILL [<db>]\n\
\tKILL_CLIENT <client_id>\n\
\tSUSPEND\n\
\tSHUTDOWN\n\
\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n\
\tWAIT_CLOSE [<db>]";

fn help() -> Reply {
    Reply::Notice {
        text: "Console usage".into(),
        detail: Some(HELP.into()),
        tag: "SHOW".into(),
    }
}

/// Pools sorted by (database, user), as PgBouncer keeps its pool list.
pub(super) fn sorted_pools(console: &Console) -> Vec<Arc<Pool>> {
    let mut pools = console.shared.pools();
    pools.sort_by(|a, b| a.key.cmp(&b.key));
    pools
}

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

/// Server counts of one pool by SHOW SERVERS state name.
pub(super) fn server_states(
    console: &Console,
    pool: &Pool,
) -> Vec<(Arc<ServerInfo>, &'static str)> {
    let settings = console.shared.settings();
    let check_enabled = !settings.server_check_query.is_empty();
    pool.servers
        .all()
        .into_iter()
        .map(|info| {
            let name =
                ServerInfo::state_name(&info.now(), settings.server_check_delay, check_enabled);
            (info, name)
        })
        .collect()
}

fn pools(console: &Console) -> ResultSet {
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

fn databases(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&[
        ("name", Text),
        ("host", Text),
        ("port", Int4),
        ("database", Text),
        ("force_user", Text),
        ("pool_size", Int4),
        ("min_pool_size", Int4),
        ("reserve_pool_size", Int4),
        ("server_lifetime", Int4),
        ("pool_mode", Text),
        ("load_balance_hosts", Text),
        ("max_connections", Int4),
        ("current_connections", Int4),
        ("max_client_connections", Int4),
        ("current_client_connections", Int4),
        ("paused", Int4),
        ("disabled", Int4),
    ]);
    let settings = console.shared.settings();
    let pools = sorted_pools(console);
    let clients = console.shared.registry.clients();
    let client_count = |db: &str| clients.iter().filter(|c| &*c.database == db).count();
    let control = &console.shared.control;
    let mut rows: Vec<(String, Vec<Value>)> = vec![(
        CONSOLE_NAME.into(),
        vec![
            CONSOLE_NAME.into(),
            Value::Null,
            settings.listen_port.into(),
            CONSOLE_NAME.into(),
            CONSOLE_NAME.into(),
            2i32.into(),
            0i32.into(),
            0i32.into(),
            settings.server_lifetime.as_secs().into(),
            "statement".into(),
            Value::Null,
            0i32.into(),
            0i32.into(),
            0i32.into(),
            client_count(CONSOLE_NAME).into(),
            0i32.into(),
            0i32.into(),
        ],
    )];
    for (name, db) in &settings.databases {
        let servers: usize = pools
            .iter()
            .filter(|p| &p.key.database == name)
            .map(|p| p.servers.all().len())
            .sum();
        rows.push((
            name.clone(),
            vec![
                name.as_str().into(),
                db.host.as_str().into(),
                db.port.into(),
                db.dbname.as_str().into(),
                db.user.as_deref().into(),
                settings.pool_size_for(name).into(),
                settings.min_pool_size_for(name).into(),
                settings.reserve_pool_size_for(name).into(),
                settings.server_lifetime.as_secs().into(),
                db.pool_mode.map(|m| m.as_str()).into(),
                Value::Null,
                settings.max_db_connections_for(name).into(),
                servers.into(),
                0i32.into(),
                client_count(name).into(),
                control.is_db_paused(name).into(),
                control.is_disabled(name).into(),
            ],
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, row) in rows {
        set.row(row);
    }
    set
}

fn users(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&[
        ("name", Text),
        ("pool_size", Text),
        ("reserve_pool_size", Text),
        ("pool_mode", Text),
        ("max_user_connections", Int4),
        ("current_connections", Int4),
        ("max_user_client_connections", Int4),
        ("current_client_connections", Int4),
    ]);
    let settings = console.shared.settings();
    let pools = sorted_pools(console);
    let clients = console.shared.registry.clients();
    let mut names: Vec<&str> = settings.users.keys().map(String::as_str).collect();
    names.push(CONSOLE_NAME);
    names.sort_unstable();
    names.dedup();
    for name in names {
        let servers: usize = pools
            .iter()
            .filter(|p| p.key.user == name)
            .map(|p| p.servers.all().len())
            .sum();
        let mode = settings.users.get(name).and_then(|u| u.pool_mode);
        set.row(vec![
            name.into(),
            "".into(),
            "".into(),
            mode.map(|m| m.as_str()).into(),
            settings.max_user_connections_for(name).into(),
            servers.into(),
            0i32.into(),
            clients.iter().filter(|c| &*c.user == name).count().into(),
        ]);
    }
    set
}

fn lists(console: &Console) -> ResultSet {
    let settings = console.shared.settings();
    let pools = console.shared.pools();
    let servers: usize = pools.iter().map(|p| p.servers.all().len()).sum();
    let logged_in = console.shared.registry.clients().len();
    let connected = console.shared.client_count();
    let mut set = ResultSet::new(&[("list", Text), ("items", Int4)]);
    for (name, items) in [
        ("databases", settings.databases.len() + 1),
        ("users", settings.users.len() + 1),
        ("peers", 0),
        ("pools", pools.len() + 1),
        ("peer_pools", 0),
        ("free_clients", 0),
        ("used_clients", logged_in),
        ("login_clients", connected.saturating_sub(logged_in)),
        ("free_servers", 0),
        ("used_servers", servers),
        ("dns_names", 0),
        ("dns_zones", 0),
        ("dns_queries", 0),
        ("dns_pending", 0),
    ] {
        set.row(vec![name.into(), items.into()]);
    }
    set
}

fn state(console: &Console) -> ResultSet {
    let mode = console.shared.control.mode();
    let yes_no = |on: bool| if on { "yes" } else { "no" };
    let mut set = ResultSet::new(&[("key", Text), ("value", Text)]);
    for (key, on) in [
        ("active", mode == PauseMode::None),
        ("paused", mode == PauseMode::Pause),
        ("suspended", mode == PauseMode::Suspend),
    ] {
        set.row(vec![key.into(), yes_no(on).into()]);
    }
    set
}
