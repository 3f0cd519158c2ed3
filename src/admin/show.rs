//! SHOW commands with PgBouncer 1.25's columns, order and wire types (`src/admin.c`,
//! `src/stats.c`). Counts are derived from the registry of clients and the pools'
//! server lists, so they describe the connections' real states.

use std::sync::Arc;

use super::result::{ResultSet, Type};
use super::{AdminError, Console, Reply};
use crate::context::Shared;
use crate::control::PauseMode;
use crate::pool::{Pool, ServerInfo};

use Type::{Int4, Int8, Text};

pub(super) fn show(console: &Console, what: &str) -> Result<Reply, AdminError> {
    let what = what.to_ascii_lowercase();
    if let Some(reply) = fake_parameter(&what) {
        return Ok(reply);
    }
    let set = match what.as_str() {
        "help" => return Ok(help()),
        "pools" => super::show_pools::pools(console),
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
        "databases" => super::show_databases_users::databases(console),
        "users" => super::show_databases_users::users(console),
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
        "peers" => peers(console),
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

/// Server counts of one pool by SHOW SERVERS state name.
pub(super) fn server_states(shared: &Shared, pool: &Pool) -> Vec<(Arc<ServerInfo>, &'static str)> {
    let settings = shared.settings();
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

/// The `[peers]` cancel requests are forwarded to. pgmux forwards each at once, so
/// `pool_size` shows what PgBouncer would (its default, `default_pool_size`).
fn peers(console: &Console) -> ResultSet {
    let settings = console.shared.settings();
    let mut set = ResultSet::new(&[
        ("peer_id", Int4),
        ("host", Text),
        ("port", Int4),
        ("pool_size", Int4),
    ]);
    for peer in settings.peers.values() {
        set.row(vec![
            i64::from(peer.id).into(),
            peer.host.as_str().into(),
            i64::from(peer.port).into(),
            settings.default_pool_size.into(),
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
        ("peers", settings.peers.len()),
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
