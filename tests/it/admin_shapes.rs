//! The wire shape of every SHOW: column names, order and type OIDs as PgBouncer 1.25
//! sends them (`pktbuf_write_RowDescription` type letters: s text, i int4, q int8,
//! N numeric, b bytea).

use crate::admin_support::admin_pgmux;
use crate::harness;
use crate::raw_wire::{cstr, message, RawConn};

const TEXT: u32 = 25;
const INT4: u32 = 23;
const INT8: u32 = 20;
const NUMERIC: u32 = 1700;
const BYTEA: u32 = 17;

/// Columns of SHOW CLIENTS/SERVERS (`socket_header` in PgBouncer's admin.c).
fn socket_columns() -> Vec<(&'static str, u32)> {
    vec![
        ("type", TEXT),
        ("user", TEXT),
        ("database", TEXT),
        ("replication", TEXT),
        ("state", TEXT),
        ("addr", TEXT),
        ("port", INT4),
        ("local_addr", TEXT),
        ("local_port", INT4),
        ("connect_time", TEXT),
        ("request_time", TEXT),
        ("wait", INT4),
        ("wait_us", INT4),
        ("close_needed", INT4),
        ("ptr", TEXT),
        ("link", TEXT),
        ("remote_pid", INT4),
        ("tls", TEXT),
        ("application_name", TEXT),
        ("prepared_statements", INT4),
        ("id", INT4),
    ]
}

fn expected_shapes() -> Vec<(&'static str, Vec<(&'static str, u32)>)> {
    let numeric = |names: &[&'static str]| names.iter().map(|n| (*n, NUMERIC)).collect::<Vec<_>>();
    let mut stats = vec![("database", TEXT)];
    stats.extend(numeric(&[
        "total_server_assignment_count",
        "total_xact_count",
        "total_query_count",
        "total_received",
        "total_sent",
        "total_xact_time",
        "total_query_time",
        "total_wait_time",
        "total_client_parse_count",
        "total_server_parse_count",
        "total_bind_count",
        "avg_server_assignment_count",
        "avg_xact_count",
        "avg_query_count",
        "avg_recv",
        "avg_sent",
        "avg_xact_time",
        "avg_query_time",
        "avg_wait_time",
        "avg_client_parse_count",
        "avg_server_parse_count",
        "avg_bind_count",
    ]));
    let mut totals = vec![("database", TEXT)];
    totals.extend(numeric(&[
        "server_assignment_count",
        "xact_count",
        "query_count",
        "bytes_received",
        "bytes_sent",
        "xact_time",
        "query_time",
        "wait_time",
        "client_parse_count",
        "server_parse_count",
        "bind_count",
    ]));
    let mut averages = vec![("database", TEXT)];
    averages.extend(numeric(&[
        "server_assignment_count",
        "xact_count",
        "query_count",
        "bytes_received",
        "bytes_sent",
        "xact_time",
        "query_time",
        "wait_time",
        "avg_client_parse_count",
        "avg_server_parse_count",
        "avg_bind_count",
    ]));
    let mut sockets = socket_columns();
    sockets.extend(
        [
            "recv_pos",
            "pkt_pos",
            "pkt_remain",
            "send_pos",
            "send_remain",
            "pkt_avail",
            "send_avail",
        ]
        .map(|n| (n, INT4)),
    );
    vec![
        (
            "pools",
            vec![
                ("database", TEXT),
                ("user", TEXT),
                ("cl_active", INT4),
                ("cl_waiting", INT4),
                ("cl_active_cancel_req", INT4),
                ("cl_waiting_cancel_req", INT4),
                ("sv_active", INT4),
                ("sv_active_cancel", INT4),
                ("sv_being_canceled", INT4),
                ("sv_idle", INT4),
                ("sv_used", INT4),
                ("sv_tested", INT4),
                ("sv_login", INT4),
                ("maxwait", INT4),
                ("maxwait_us", INT4),
                ("pool_mode", TEXT),
                ("load_balance_hosts", TEXT),
            ],
        ),
        ("stats", stats),
        ("stats_totals", totals),
        ("stats_averages", averages),
        ("totals", vec![("name", TEXT), ("value", NUMERIC)]),
        ("clients", socket_columns()),
        ("servers", socket_columns()),
        ("sockets", sockets.clone()),
        ("active_sockets", sockets),
        (
            "databases",
            vec![
                ("name", TEXT),
                ("host", TEXT),
                ("port", INT4),
                ("database", TEXT),
                ("force_user", TEXT),
                ("pool_size", INT4),
                ("min_pool_size", INT4),
                ("reserve_pool_size", INT4),
                ("server_lifetime", INT4),
                ("pool_mode", TEXT),
                ("load_balance_hosts", TEXT),
                ("max_connections", INT4),
                ("current_connections", INT4),
                ("max_client_connections", INT4),
                ("current_client_connections", INT4),
                ("paused", INT4),
                ("disabled", INT4),
            ],
        ),
        (
            "users",
            vec![
                ("name", TEXT),
                ("pool_size", TEXT),
                ("reserve_pool_size", TEXT),
                ("pool_mode", TEXT),
                ("max_user_connections", INT4),
                ("current_connections", INT4),
                ("max_user_client_connections", INT4),
                ("current_client_connections", INT4),
            ],
        ),
        ("lists", vec![("list", TEXT), ("items", INT4)]),
        (
            "config",
            vec![
                ("key", TEXT),
                ("value", TEXT),
                ("default", TEXT),
                ("changeable", TEXT),
            ],
        ),
        (
            "mem",
            vec![
                ("name", TEXT),
                ("size", INT4),
                ("used", INT4),
                ("free", INT4),
                ("memtotal", INT4),
            ],
        ),
        ("state", vec![("key", TEXT), ("value", TEXT)]),
        ("version", vec![("version", TEXT)]),
        (
            "fds",
            vec![
                ("fd", INT4),
                ("task", TEXT),
                ("user", TEXT),
                ("database", TEXT),
                ("addr", TEXT),
                ("port", INT4),
                ("cancel", INT8),
                ("link", INT4),
                ("client_encoding", TEXT),
                ("std_strings", TEXT),
                ("datestyle", TEXT),
                ("timezone", TEXT),
                ("password", TEXT),
                ("scram_client_key", BYTEA),
                ("scram_server_key", BYTEA),
            ],
        ),
        (
            "dns_hosts",
            vec![("hostname", TEXT), ("ttl", INT8), ("addrs", TEXT)],
        ),
        (
            "dns_zones",
            vec![("zonename", TEXT), ("serial", INT8), ("count", INT4)],
        ),
        (
            "peers",
            vec![
                ("peer_id", INT4),
                ("host", TEXT),
                ("port", INT4),
                ("pool_size", INT4),
            ],
        ),
        (
            "peer_pools",
            vec![
                ("peer_id", INT4),
                ("cl_active_cancel_req", INT4),
                ("cl_waiting_cancel_req", INT4),
                ("sv_active_cancel", INT4),
                ("sv_login", INT4),
            ],
        ),
    ]
}

/// Column names and type OIDs of a RowDescription body.
fn row_description(body: &[u8]) -> Vec<(String, u32)> {
    let count = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut columns = Vec::new();
    for _ in 0..count {
        let nul = body[at..].iter().position(|b| *b == 0).unwrap();
        let name = String::from_utf8(body[at..at + nul].to_vec()).unwrap();
        at += nul + 1;
        let oid = u32::from_be_bytes(body[at + 6..at + 10].try_into().unwrap());
        at += 18;
        columns.push((name, oid));
    }
    columns
}

#[tokio::test]
async fn every_show_has_pgbouncer_columns_order_and_wire_types() {
    let _guard = harness::shared();
    // trust: the raw wire client below needs no password exchange.
    let pgmux = admin_pgmux()
        .setting("auth_type", "\"trust\"")
        .start()
        .await;
    let _app = pgmux.app().await; // a pool exists, so SHOW POOLS/STATS have rows
    let mut raw = RawConn::login(
        pgmux.addr(),
        &[("user", "admin"), ("database", "pgbouncer")],
    )
    .await
    .expect("admin login");
    for (command, expected) in expected_shapes() {
        raw.send(&message(b'Q', &cstr(&format!("SHOW {command}"))))
            .await;
        let replies = raw
            .read_until_ready()
            .await
            .unwrap_or_else(|e| panic!("SHOW {command}: {e:?}"));
        let (_, body) = replies
            .iter()
            .find(|(tag, _)| *tag == b'T')
            .unwrap_or_else(|| panic!("SHOW {command}: no RowDescription"));
        let expected: Vec<(String, u32)> = expected
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t))
            .collect();
        assert_eq!(row_description(body), expected, "SHOW {command}");
    }
}
