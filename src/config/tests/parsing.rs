use std::path::PathBuf;
use std::time::Duration;

use super::*;

#[test]
fn empty_file_gives_pgbouncer_defaults() {
    let settings = parse("");
    assert_eq!(settings, Settings::default());
    assert_eq!(settings.source, None);
    assert_eq!(settings.listen_addr, "127.0.0.1");
    assert_eq!(settings.listen_port, 6432);
    assert_eq!(settings.unix_socket_dir, Some(PathBuf::from("/tmp")));
    assert_eq!(settings.pool_mode, PoolMode::Session);
    assert_eq!(settings.max_client_conn, 100);
    assert_eq!(settings.default_pool_size, 20);
    assert_eq!((settings.min_pool_size, settings.reserve_pool_size), (0, 0));
    assert_eq!(settings.reserve_pool_timeout, Duration::from_secs(5));
    assert_eq!(
        (settings.max_db_connections, settings.max_user_connections),
        (0, 0)
    );
    assert_eq!(settings.server_idle_timeout, Duration::from_secs(600));
    assert_eq!(settings.server_lifetime, Duration::from_secs(3600));
    assert_eq!(settings.server_connect_timeout, Duration::from_secs(15));
    assert_eq!(settings.server_login_retry, Duration::from_secs(15));
    assert_eq!(settings.query_wait_timeout, Duration::from_secs(120));
    assert_eq!(settings.query_timeout, Duration::ZERO);
    assert_eq!(settings.client_login_timeout, Duration::from_secs(60));
    assert_eq!(settings.client_idle_timeout, Duration::ZERO);
    assert_eq!(settings.idle_transaction_timeout, Duration::ZERO);
    assert_eq!(settings.server_reset_query, "DISCARD ALL");
    assert!(!settings.server_reset_query_always);
    assert_eq!(settings.server_check_query, "select 1");
    assert_eq!(settings.server_check_delay, Duration::from_secs(30));
    assert_eq!(settings.auth_type, AuthType::Md5);
    assert!(settings.admin_users.is_empty() && settings.stats_users.is_empty());
    assert!(settings.ignore_startup_parameters.is_empty());
    assert_eq!(
        settings.track_extra_parameters,
        ["IntervalStyle", "extra_float_digits"]
    );
    assert!(!settings.application_name_add_host);
    assert_eq!(settings.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(settings.workers, 0);
    assert!(settings.databases.is_empty() && settings.users.is_empty());
}

#[test]
fn for_tests_listens_on_an_ephemeral_port_without_a_unix_socket() {
    let settings = Settings::for_tests();
    assert_eq!(
        (settings.listen_addr.as_str(), settings.listen_port),
        ("127.0.0.1", 0)
    );
    assert_eq!(settings.unix_socket_dir, None);
    assert!(settings.databases.is_empty() && settings.users.is_empty());
    assert_eq!(settings.default_pool_size, 20);
}

const EVERY_KEY: &str = r#"
listen_addr = "*"
listen_port = 7432
unix_socket_dir = "/var/run/pgmux"
pool_mode = "statement"
max_client_conn = 5000
default_pool_size = 40
min_pool_size = 2
reserve_pool_size = 3
reserve_pool_timeout = 1.5
max_db_connections = 90
max_user_connections = 80
server_idle_timeout = "10m"
server_lifetime = 7200
server_connect_timeout = "3s"
server_login_retry = "250ms"
query_wait_timeout = 60
query_timeout = "30s"
client_login_timeout = 10
client_idle_timeout = "1h"
idle_transaction_timeout = "45s"
server_reset_query = ""
server_reset_query_always = true
server_check_query = "SELECT 1"
server_check_delay = 0
auth_type = "trust"
admin_users = ["alice", "bob"]
stats_users = ["carol"]
ignore_startup_parameters = ["extra_float_digits", "options"]
track_extra_parameters = ["IntervalStyle", "search_path"]
application_name_add_host = true
shutdown_timeout = "2m"
workers = 4

[databases.app]
host = "db.internal"
port = 5433
dbname = "app_production"
user = "app_owner"
password = "s3cret"
pool_size = 50
min_pool_size = 5
reserve_pool_size = 7
pool_mode = "session"
max_db_connections = 60

[databases.local]
host = "/var/run/postgresql"

[users.alice]
password = "md5a3556571e93b0d20722ba62be61e8c2d"
pool_mode = "transaction"
max_user_connections = 9
"#;

#[test]
fn every_key_is_parsed() {
    let settings = parse(EVERY_KEY);
    assert_eq!(settings.listen_addr, "0.0.0.0");
    assert_eq!(settings.listen_port, 7432);
    assert_eq!(
        settings.unix_socket_dir,
        Some(PathBuf::from("/var/run/pgmux"))
    );
    assert_eq!(settings.pool_mode, PoolMode::Statement);
    assert_eq!(settings.max_client_conn, 5000);
    assert_eq!(settings.default_pool_size, 40);
    assert_eq!((settings.min_pool_size, settings.reserve_pool_size), (2, 3));
    assert_eq!(settings.reserve_pool_timeout, Duration::from_millis(1500));
    assert_eq!(
        (settings.max_db_connections, settings.max_user_connections),
        (90, 80)
    );
    assert_eq!(settings.server_idle_timeout, Duration::from_secs(600));
    assert_eq!(settings.server_lifetime, Duration::from_secs(7200));
    assert_eq!(settings.server_connect_timeout, Duration::from_secs(3));
    assert_eq!(settings.server_login_retry, Duration::from_millis(250));
    assert_eq!(settings.query_wait_timeout, Duration::from_secs(60));
    assert_eq!(settings.query_timeout, Duration::from_secs(30));
    assert_eq!(settings.client_login_timeout, Duration::from_secs(10));
    assert_eq!(settings.client_idle_timeout, Duration::from_secs(3600));
    assert_eq!(settings.idle_transaction_timeout, Duration::from_secs(45));
    assert_eq!(settings.server_reset_query, "");
    assert!(settings.server_reset_query_always);
    assert_eq!(settings.server_check_query, "SELECT 1");
    assert_eq!(settings.server_check_delay, Duration::ZERO);
    assert_eq!(settings.auth_type, AuthType::Trust);
    assert_eq!(settings.admin_users, ["alice", "bob"]);
    assert_eq!(settings.stats_users, ["carol"]);
    assert_eq!(
        settings.ignore_startup_parameters,
        ["extra_float_digits", "options"]
    );
    assert_eq!(
        settings.track_extra_parameters,
        ["IntervalStyle", "search_path"]
    );
    assert!(settings.application_name_add_host);
    assert_eq!(settings.shutdown_timeout, Duration::from_secs(120));
    assert_eq!(settings.workers, 4);

    assert_eq!(
        settings.databases["app"],
        DatabaseSettings {
            name: "app".into(),
            host: "db.internal".into(),
            port: 5433,
            dbname: "app_production".into(),
            user: Some("app_owner".into()),
            password: Some("s3cret".into()),
            pool_size: Some(50),
            min_pool_size: Some(5),
            reserve_pool_size: Some(7),
            pool_mode: Some(PoolMode::Session),
            max_db_connections: Some(60),
            auth_user: None,
            auth_dbname: None,
            auth_query: None,
        }
    );
    let local = &settings.databases["local"];
    assert!(local.is_unix_socket());
    assert_eq!(
        (local.port, local.dbname.as_str(), local.user.as_deref()),
        (5432, "local", None)
    );
    assert_eq!(
        settings.users["alice"],
        UserSettings {
            name: "alice".into(),
            password: Some("md5a3556571e93b0d20722ba62be61e8c2d".into()),
            pool_mode: Some(PoolMode::Transaction),
            max_user_connections: Some(9),
        }
    );
}

#[test]
fn database_defaults() {
    let settings = parse("[databases.app]");
    let app = &settings.databases["app"];
    assert_eq!(
        (app.host.as_str(), app.port, app.dbname.as_str()),
        ("127.0.0.1", 5432, "app")
    );
    assert!(!app.is_unix_socket());
    assert_eq!(
        (app.user.as_ref(), app.password.as_ref(), app.pool_size),
        (None, None, None)
    );
}

#[test]
fn durations_accept_seconds_and_humantime_strings() {
    let cases: &[(&str, Duration)] = &[
        ("7", Duration::from_secs(7)),
        ("0", Duration::ZERO),
        ("0.25", Duration::from_millis(250)),
        ("\"5s\"", Duration::from_secs(5)),
        ("\"500ms\"", Duration::from_millis(500)),
        ("\"2m\"", Duration::from_secs(120)),
        ("\"1h\"", Duration::from_secs(3600)),
        ("\"1h 30m\"", Duration::from_secs(5400)),
        ("\"90\"", Duration::from_secs(90)),
        ("\"1.5\"", Duration::from_millis(1500)),
    ];
    for (written, expected) in cases {
        let settings = parse(&format!("query_timeout = {written}"));
        assert_eq!(
            settings.query_timeout, *expected,
            "query_timeout = {written}"
        );
    }
    for bad in ["-1", "-0.5", "true", "\"soon\"", "\"\"", "\"5 parsecs\""] {
        let message = error(&format!("server_lifetime = {bad}"));
        assert!(
            message.starts_with("pooler.toml: server_lifetime: invalid value"),
            "{message}"
        );
        assert!(message.contains("expected a duration"), "{message}");
    }
}

#[test]
fn url_databases() {
    let settings = parse(
        r#"
        [databases.app]
        url = "postgres://app%40corp:p%40ss@db.internal:6543/app_prod"
        pool_size = 15
        pool_mode = "statement"

        [databases.analytics]
        url = "postgresql:///warehouse?host=/var/run/postgresql"
        "#,
    );
    let app = &settings.databases["app"];
    assert_eq!(
        (app.host.as_str(), app.port, app.dbname.as_str()),
        ("db.internal", 6543, "app_prod")
    );
    assert_eq!(app.user.as_deref(), Some("app@corp"));
    assert_eq!(app.password.as_deref(), Some("p@ss"));
    assert_eq!(
        (app.pool_size, app.pool_mode),
        (Some(15), Some(PoolMode::Statement))
    );

    let analytics = &settings.databases["analytics"];
    assert_eq!(analytics.host, "/var/run/postgresql");
    assert!(analytics.is_unix_socket());
    assert_eq!(
        (analytics.port, analytics.dbname.as_str()),
        (5432, "warehouse")
    );
    assert_eq!(
        (analytics.user.as_ref(), analytics.password.as_ref()),
        (None, None)
    );

    let bare = parse("[databases.app]\nurl = \"postgres://db\"");
    assert_eq!(bare.databases["app"].dbname, "app");
}

#[test]
fn pool_mode_precedence_is_user_then_database_then_global() {
    let settings = parse(
        r#"
        pool_mode = "session"
        [databases.app]
        pool_mode = "transaction"
        [databases.plain]
        [users.batch]
        pool_mode = "statement"
        [users.plain]
        "#,
    );
    assert_eq!(settings.pool_mode_for("app", "batch"), PoolMode::Statement);
    assert_eq!(
        settings.pool_mode_for("plain", "batch"),
        PoolMode::Statement
    );
    assert_eq!(
        settings.pool_mode_for("app", "plain"),
        PoolMode::Transaction
    );
    assert_eq!(
        settings.pool_mode_for("app", "nobody"),
        PoolMode::Transaction
    );
    assert_eq!(settings.pool_mode_for("plain", "plain"), PoolMode::Session);
    assert_eq!(
        settings.pool_mode_for("missing", "nobody"),
        PoolMode::Session
    );
}

#[test]
fn per_database_and_per_user_limits_fall_back_to_globals() {
    let settings = parse(
        r#"
        default_pool_size = 10
        min_pool_size = 1
        reserve_pool_size = 2
        max_db_connections = 30
        max_user_connections = 40
        [databases.big]
        pool_size = 100
        min_pool_size = 10
        reserve_pool_size = 20
        max_db_connections = 0
        [databases.small]
        [users.capped]
        max_user_connections = 3
        "#,
    );
    assert_eq!(settings.pool_size_for("big"), 100);
    assert_eq!(settings.min_pool_size_for("big"), 10);
    assert_eq!(settings.reserve_pool_size_for("big"), 20);
    assert_eq!(settings.max_db_connections_for("big"), 0);
    for database in ["small", "missing"] {
        assert_eq!(settings.pool_size_for(database), 10);
        assert_eq!(settings.min_pool_size_for(database), 1);
        assert_eq!(settings.reserve_pool_size_for(database), 2);
        assert_eq!(settings.max_db_connections_for(database), 30);
    }
    assert_eq!(settings.max_user_connections_for("capped"), 3);
    assert_eq!(settings.max_user_connections_for("anyone"), 40);
}

#[test]
fn strings_are_accepted_for_numbers_and_booleans_and_lists() {
    let settings = parse(
        r#"
        listen_port = "7000"
        workers = "2"
        server_reset_query_always = "on"
        application_name_add_host = "yes"
        admin_users = "alice, bob,"
        unix_socket_dir = ""
        pool_mode = "Transaction"
        auth_type = "SCRAM-SHA-256"
        "#,
    );
    assert_eq!((settings.listen_port, settings.workers), (7000, 2));
    assert!(settings.server_reset_query_always && settings.application_name_add_host);
    assert_eq!(settings.admin_users, ["alice", "bob"]);
    assert_eq!(settings.unix_socket_dir, None);
    assert_eq!(settings.pool_mode, PoolMode::Transaction);
    assert_eq!(settings.auth_type, AuthType::ScramSha256);
}

#[test]
fn names_keep_their_case_in_the_file() {
    let settings = parse("[databases.AppDB]\n[users.Alice]");
    assert_eq!(settings.databases["AppDB"].dbname, "AppDB");
    assert!(settings.users.contains_key("Alice"));
    assert_eq!(
        error("MAX_CLIENT_CONN = 5"),
        "pooler.toml: unknown key `MAX_CLIENT_CONN` (did you mean `max_client_conn`?)"
    );
}
