//! The admin console: who may log in, the wire shape of every SHOW (column names, order
//! and type OIDs as PgBouncer 1.25 sends them), psql over the unix socket, the harmless
//! answers drivers get, several commands in one query string.

use std::time::Duration;

use crate::admin_support::{admin, admin_error, admin_pgmux, paused, show, ADMIN, WATCHER};
use crate::harness::{self, postgres};
use crate::support::{message, sqlstate};

#[tokio::test]
async fn only_admin_and_stats_users_reach_the_console_and_stats_users_only_show() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    // A known user that is neither admin nor stats user: PgBouncer's "not allowed".
    let error = pgmux
        .try_connect("app", "secret", "pgbouncer")
        .await
        .expect_err("refused");
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "not allowed".into())
    );
    // A wrong password is still a password failure, not a permission question.
    let error = pgmux
        .try_connect(ADMIN.0, "wrong", "pgbouncer")
        .await
        .expect_err("refused");
    assert_eq!(message(&error), "SASL authentication failed");

    let watcher = pgmux.connect(WATCHER.0, WATCHER.1, "pgbouncer").await;
    assert!(!show(&watcher, "SHOW POOLS").await.rows.is_empty());
    for command in [
        "PAUSE",
        "RELOAD",
        "KILL_CLIENT 1",
        "SET default_pool_size = 3",
        "SHOW FDS",
    ] {
        let (code, text) = admin_error(&watcher, command).await;
        assert_eq!(
            (code.as_str(), text.as_str()),
            ("08P01", "admin access needed"),
            "{command}"
        );
    }
    // The alias works too.
    let alias = pgmux.connect(ADMIN.0, ADMIN.1, "pgmux").await;
    let version = show(&alias, "SHOW VERSION").await;
    assert!(version.rows[0]["version"]
        .as_deref()
        .unwrap()
        .starts_with("PgBouncer 1.25"));
}

#[tokio::test]
async fn drivers_get_harmless_answers_and_several_commands_run_in_one_query() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    let console = admin(&pgmux).await;
    let encoding = show(&console, "SHOW client_encoding").await;
    assert_eq!(
        encoding.rows[0]["client_encoding"].as_deref(),
        Some("UTF-8")
    );
    console
        .simple_query("SET extra_float_digits = 3")
        .await
        .expect("SET ignored");
    console
        .simple_query("SET application_name = 'JDBC'")
        .await
        .expect("SET ignored");

    let messages = console
        .simple_query("show version; show state;")
        .await
        .unwrap();
    let rows = messages
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(rows, 1 + 3, "one VERSION row and three STATE rows");
    // An error stops the rest of the string, as in PostgreSQL.
    let (code, text) = admin_error(&console, "show nothing; pause").await;
    assert_eq!(code, "08P01");
    assert_eq!(text, "invalid command 'show nothing', use SHOW HELP;");
    assert_eq!(paused(&console).await, "no");
}

#[tokio::test]
async fn psql_runs_show_commands_over_the_unix_socket() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    let _app = pgmux.app().await;
    let psql = postgres().bin("psql");
    let run = |sql: &str| {
        let mut cmd = pgmux.tool_command(&psql, ADMIN.0, ADMIN.1, "pgbouncer");
        cmd.env("PGHOST", pgmux.socket_dir())
            .args(["-X", "-A", "-F", "|", "-c", sql]);
        harness::run_tool(&mut cmd, Duration::from_secs(20))
    };
    let pools = run("show pools");
    pools.assert_success();
    assert!(
        pools
            .stdout
            .starts_with("database|user|cl_active|cl_waiting|"),
        "{}",
        pools.stdout
    );
    assert!(pools.stdout.contains("\napp|app|"), "{}", pools.stdout);
    let help = run("show help");
    help.assert_success();
    assert!(
        help.stderr.contains("SHOW HELP|CONFIG|DATABASES"),
        "{}",
        help.stderr
    );
    let clients = run("show clients");
    clients.assert_success();
    // psql itself is listed as a console client over the unix socket.
    assert!(
        clients
            .stdout
            .contains("|admin|pgbouncer|none|active|unix|"),
        "{}",
        clients.stdout
    );
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
    assert_eq!(
        config.get("key", "default_pool_size", "value").as_deref(),
        Some("4")
    );
    assert_eq!(
        config.get("key", "default_pool_size", "default").as_deref(),
        Some("20")
    );
    assert_eq!(
        config
            .get("key", "default_pool_size", "changeable")
            .as_deref(),
        Some("yes")
    );
    assert_eq!(
        config.get("key", "listen_port", "changeable").as_deref(),
        Some("no")
    );
    assert_eq!(
        config.get("key", "stats_period", "value").as_deref(),
        Some("60")
    );

    let databases = show(&console, "SHOW DATABASES").await;
    assert_eq!(
        databases.num("name", "app", "port"),
        i64::from(postgres().port())
    );
    assert_eq!(databases.num("name", "app", "pool_size"), 4);
    assert_eq!(databases.get("name", "app", "force_user"), None);
    assert_eq!(
        databases.get("name", "forced", "force_user").as_deref(),
        Some("app")
    );
    assert_eq!(
        databases.get("name", "forced", "pool_mode").as_deref(),
        Some("session")
    );
    assert_eq!(databases.num("name", "forced", "pool_size"), 2);
    assert_eq!(
        databases.num("name", "app", "current_client_connections"),
        1
    );
    assert_eq!(databases.num("name", "app", "current_connections"), 1);
    assert!(databases.get("name", "pgbouncer", "name").is_some());

    let users = show(&console, "SHOW USERS").await;
    assert_eq!(users.num("name", "app", "current_client_connections"), 1);
    assert!(users.get("name", "watcher", "name").is_some());

    let lists = show(&console, "SHOW LISTS").await;
    assert_eq!(
        lists.num("list", "databases", "items"),
        3,
        "app, forced and the console"
    );
    assert_eq!(
        lists.num("list", "used_clients", "items"),
        2,
        "app and this console"
    );
    assert_eq!(lists.num("list", "used_servers", "items"), 1);
    for empty in [
        "SHOW DNS_HOSTS",
        "SHOW DNS_ZONES",
        "SHOW PEERS",
        "SHOW PEER_POOLS",
        "SHOW FDS",
    ] {
        assert!(show(&console, empty).await.rows.is_empty(), "{empty}");
    }
}

#[tokio::test]
async fn show_peers_lists_the_configured_peers() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux()
        .setting("peer_id", "1")
        .env("PGMUX_PEERS__1__HOST", "127.0.0.1")
        .env("PGMUX_PEERS__1__PORT", "6432")
        .env("PGMUX_PEERS__2__HOST", "/var/run/pgmux")
        .env("PGMUX_PEERS__2__PORT", "6433")
        .start()
        .await;
    let console = admin(&pgmux).await;
    let peers = show(&console, "SHOW PEERS").await;
    assert_eq!(peers.rows.len(), 2);
    assert_eq!(
        peers.get("peer_id", "2", "host").as_deref(),
        Some("/var/run/pgmux")
    );
    assert_eq!(peers.num("peer_id", "1", "port"), 6432);
    let lists = show(&console, "SHOW LISTS").await;
    assert_eq!(lists.num("list", "peers", "items"), 2);
}
