//! The admin console: who may log in, the wire shape of every SHOW (column names, order
//! and type OIDs as PgBouncer 1.25 sends them), psql over the unix socket, the harmless
//! answers drivers get, several commands in one query string.

use std::time::Duration;

use crate::admin_support::{admin, admin_error, admin_pgmux, show, ADMIN, WATCHER};
use crate::harness::{self, postgres};
use crate::raw_wire::{cstr, message, RawConn};

const TEXT: u32 = 25;
const INT4: u32 = 23;
const INT8: u32 = 20;
const NUMERIC: u32 = 1700;
const BYTEA: u32 = 17;

/// Columns of SHOW CLIENTS/SERVERS (`socket_header` in PgBouncer's admin.c).
fn socket_columns() -> Vec<(&'static str, u32)> {
    vec![
        ("type", TEXT), ("user", TEXT), ("database", TEXT), ("replication", TEXT),
        ("state", TEXT), ("addr", TEXT), ("port", INT4), ("local_addr", TEXT),
        ("local_port", INT4), ("connect_time", TEXT), ("request_time", TEXT), ("wait", INT4),
        ("wait_us", INT4), ("close_needed", INT4), ("ptr", TEXT), ("link", TEXT),
        ("remote_pid", INT4), ("tls", TEXT), ("application_name", TEXT),
        ("prepared_statements", INT4), ("id", INT4),
    ]
}

fn expected_shapes() -> Vec<(&'static str, Vec<(&'static str, u32)>)> {
    let numeric = |names: &[&'static str]| names.iter().map(|n| (*n, NUMERIC)).collect::<Vec<_>>();
    let mut stats = vec![("database", TEXT)];
    stats.extend(numeric(&[
        "total_server_assignment_count", "total_xact_count", "total_query_count",
        "total_received", "total_sent", "total_xact_time", "total_query_time",
        "total_wait_time", "total_client_parse_count", "total_server_parse_count",
        "total_bind_count", "avg_server_assignment_count", "avg_xact_count",
        "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time",
        "avg_wait_time", "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count",
    ]));
    let mut totals = vec![("database", TEXT)];
    totals.extend(numeric(&[
        "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
        "xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count",
        "bind_count",
    ]));
    let mut averages = vec![("database", TEXT)];
    averages.extend(numeric(&[
        "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
        "xact_time", "query_time", "wait_time", "avg_client_parse_count",
        "avg_server_parse_count", "avg_bind_count",
    ]));
    let mut sockets = socket_columns();
    sockets.extend(["recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain", "pkt_avail", "send_avail"].map(|n| (n, INT4)));
    vec![
        ("pools", vec![
            ("database", TEXT), ("user", TEXT), ("cl_active", INT4), ("cl_waiting", INT4),
            ("cl_active_cancel_req", INT4), ("cl_waiting_cancel_req", INT4), ("sv_active", INT4),
            ("sv_active_cancel", INT4), ("sv_being_canceled", INT4), ("sv_idle", INT4),
            ("sv_used", INT4), ("sv_tested", INT4), ("sv_login", INT4), ("maxwait", INT4),
            ("maxwait_us", INT4), ("pool_mode", TEXT), ("load_balance_hosts", TEXT),
        ]),
        ("stats", stats),
        ("stats_totals", totals),
        ("stats_averages", averages),
        ("totals", vec![("name", TEXT), ("value", NUMERIC)]),
        ("clients", socket_columns()),
        ("servers", socket_columns()),
        ("sockets", sockets.clone()),
        ("active_sockets", sockets),
        ("databases", vec![
            ("name", TEXT), ("host", TEXT), ("port", INT4), ("database", TEXT),
            ("force_user", TEXT), ("pool_size", INT4), ("min_pool_size", INT4),
            ("reserve_pool_size", INT4), ("server_lifetime", INT4), ("pool_mode", TEXT),
            ("load_balance_hosts", TEXT), ("max_connections", INT4),
            ("current_connections", INT4), ("max_client_connections", INT4),
            ("current_client_connections", INT4), ("paused", INT4), ("disabled", INT4),
        ]),
        ("users", vec![
            ("name", TEXT), ("pool_size", TEXT), ("reserve_pool_size", TEXT), ("pool_mode", TEXT),
            ("max_user_connections", INT4), ("current_connections", INT4),
            ("max_user_client_connections", INT4), ("current_client_connections", INT4),
        ]),
        ("lists", vec![("list", TEXT), ("items", INT4)]),
        ("config", vec![("key", TEXT), ("value", TEXT), ("default", TEXT), ("changeable", TEXT)]),
        ("mem", vec![("name", TEXT), ("size", INT4), ("used", INT4), ("free", INT4), ("memtotal", INT4)]),
        ("state", vec![("key", TEXT), ("value", TEXT)]),
        ("version", vec![("version", TEXT)]),
        ("fds", vec![
            ("fd", INT4), ("task", TEXT), ("user", TEXT), ("database", TEXT), ("addr", TEXT),
            ("port", INT4), ("cancel", INT8), ("link", INT4), ("client_encoding", TEXT),
            ("std_strings", TEXT), ("datestyle", TEXT), ("timezone", TEXT), ("password", TEXT),
            ("scram_client_key", BYTEA), ("scram_server_key", BYTEA),
        ]),
        ("dns_hosts", vec![("hostname", TEXT), ("ttl", INT8), ("addrs", TEXT)]),
        ("dns_zones", vec![("zonename", TEXT), ("serial", INT8), ("count", INT4)]),
        ("peers", vec![("peer_id", INT4), ("host", TEXT), ("port", INT4), ("pool_size", INT4)]),
        ("peer_pools", vec![
            ("peer_id", INT4), ("cl_active_cancel_req", INT4), ("cl_waiting_cancel_req", INT4),
            ("sv_active_cancel", INT4), ("sv_login", INT4),
        ]),
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
    let pgmux = admin_pgmux().setting("auth_type", "\"trust\"").start().await;
    let _app = pgmux.app().await; // a pool exists, so SHOW POOLS/STATS have rows
    let mut raw = RawConn::login(pgmux.addr(), &[("user", "admin"), ("database", "pgbouncer")])
        .await
        .expect("admin login");
    for (command, expected) in expected_shapes() {
        raw.send(&message(b'Q', &cstr(&format!("SHOW {command}")))).await;
        let replies = raw.read_until_ready().await.unwrap_or_else(|e| panic!("SHOW {command}: {e:?}"));
        let (_, body) = replies.iter().find(|(tag, _)| *tag == b'T').unwrap_or_else(|| panic!("SHOW {command}: no RowDescription"));
        let expected: Vec<(String, u32)> = expected.into_iter().map(|(n, t)| (n.to_owned(), t)).collect();
        assert_eq!(row_description(body), expected, "SHOW {command}");
    }
}

#[tokio::test]
async fn only_admin_and_stats_users_reach_the_console_and_stats_users_only_show() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    // A known user that is neither admin nor stats user: PostgreSQL's permission error.
    let error = pgmux.try_connect("app", "secret", "pgbouncer").await.err().expect("refused");
    assert_eq!(error.code().map(|c| c.code()), Some("42501"), "{error:?}");
    // A wrong password is still a password failure, not a permission question.
    let error = pgmux.try_connect(ADMIN.0, "wrong", "pgbouncer").await.err().expect("refused");
    assert_eq!(error.code().map(|c| c.code()), Some("28P01"));

    let watcher = pgmux.connect(WATCHER.0, WATCHER.1, "pgbouncer").await;
    assert!(!show(&watcher, "SHOW POOLS").await.rows.is_empty());
    for command in ["PAUSE", "RELOAD", "KILL_CLIENT 1", "SET default_pool_size = 3", "SHOW FDS"] {
        let (code, text) = admin_error(&watcher, command).await;
        assert_eq!((code.as_str(), text.as_str()), ("42501", "admin access needed"), "{command}");
    }
    // The alias works too.
    let alias = pgmux.connect(ADMIN.0, ADMIN.1, "pgmux").await;
    let version = show(&alias, "SHOW VERSION").await;
    assert!(version.rows[0]["version"].as_deref().unwrap().starts_with("PgBouncer 1.25"));
}

#[tokio::test]
async fn drivers_get_harmless_answers_and_several_commands_run_in_one_query() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    let console = admin(&pgmux).await;
    let encoding = show(&console, "SHOW client_encoding").await;
    assert_eq!(encoding.rows[0]["client_encoding"].as_deref(), Some("UTF-8"));
    console.simple_query("SET extra_float_digits = 3").await.expect("SET ignored");
    console.simple_query("SET application_name = 'JDBC'").await.expect("SET ignored");

    let messages = console.simple_query("show version; show state;").await.unwrap();
    let rows = messages.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count();
    assert_eq!(rows, 1 + 3, "one VERSION row and three STATE rows");
    // An error stops the rest of the string, as in PostgreSQL.
    let (code, text) = admin_error(&console, "show nothing; pause").await;
    assert_eq!(code, "08P01");
    assert_eq!(text, "invalid command 'show nothing', use SHOW HELP;");
    assert_eq!(show(&console, "SHOW STATE").await.get("key", "paused", "value").as_deref(), Some("no"));
}

#[tokio::test]
async fn psql_runs_show_commands_over_the_unix_socket() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    let _app = pgmux.app().await;
    let psql = postgres().bin("psql");
    let run = |sql: &str| {
        let mut cmd = pgmux.tool_command(&psql, ADMIN.0, ADMIN.1, "pgbouncer");
        cmd.env("PGHOST", pgmux.socket_dir()).args(["-X", "-A", "-F", "|", "-c", sql]);
        harness::run_tool(&mut cmd, Duration::from_secs(20))
    };
    let pools = run("show pools");
    pools.assert_success();
    assert!(pools.stdout.starts_with("database|user|cl_active|cl_waiting|"), "{}", pools.stdout);
    assert!(pools.stdout.contains("\napp|app|"), "{}", pools.stdout);
    let help = run("show help");
    help.assert_success();
    assert!(help.stderr.contains("SHOW HELP|CONFIG|DATABASES"), "{}", help.stderr);
    let clients = run("show clients");
    clients.assert_success();
    // psql itself is listed as a console client over the unix socket.
    assert!(clients.stdout.contains("|admin|pgbouncer|none|active|unix|"), "{}", clients.stdout);
}

#[tokio::test]
async fn configuration_databases_users_and_lists_describe_the_running_pooler() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux()
        .setting("default_pool_size", "4")
        .database("forced", "host = \"127.0.0.1\"\nport = {PGPORT}\ndbname = \"app\"\nuser = \"app\"\npassword = \"secret\"\npool_mode = \"session\"\npool_size = 2")
        .start()
        .await;
    let _app = pgmux.app().await;
    let console = admin(&pgmux).await;

    let config = show(&console, "SHOW CONFIG").await;
    assert_eq!(config.get("key", "default_pool_size", "value").as_deref(), Some("4"));
    assert_eq!(config.get("key", "default_pool_size", "default").as_deref(), Some("20"));
    assert_eq!(config.get("key", "default_pool_size", "changeable").as_deref(), Some("yes"));
    assert_eq!(config.get("key", "listen_port", "changeable").as_deref(), Some("no"));
    assert_eq!(config.get("key", "stats_period", "value").as_deref(), Some("60"));

    let databases = show(&console, "SHOW DATABASES").await;
    assert_eq!(databases.num("name", "app", "port"), i64::from(postgres().port()));
    assert_eq!(databases.num("name", "app", "pool_size"), 4);
    assert_eq!(databases.get("name", "app", "force_user"), None);
    assert_eq!(databases.get("name", "forced", "force_user").as_deref(), Some("app"));
    assert_eq!(databases.get("name", "forced", "pool_mode").as_deref(), Some("session"));
    assert_eq!(databases.num("name", "forced", "pool_size"), 2);
    assert_eq!(databases.num("name", "app", "current_client_connections"), 1);
    assert_eq!(databases.num("name", "app", "current_connections"), 1);
    assert!(databases.get("name", "pgbouncer", "name").is_some());

    let users = show(&console, "SHOW USERS").await;
    assert_eq!(users.num("name", "app", "current_client_connections"), 1);
    assert!(users.get("name", "watcher", "name").is_some());

    let lists = show(&console, "SHOW LISTS").await;
    assert_eq!(lists.num("list", "databases", "items"), 3, "app, forced and the console");
    assert_eq!(lists.num("list", "used_clients", "items"), 2, "app and this console");
    assert_eq!(lists.num("list", "used_servers", "items"), 1);
    for empty in ["SHOW DNS_HOSTS", "SHOW DNS_ZONES", "SHOW PEERS", "SHOW PEER_POOLS", "SHOW FDS"] {
        assert!(show(&console, empty).await.rows.is_empty(), "{empty}");
    }
}
