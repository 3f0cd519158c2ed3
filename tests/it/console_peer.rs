//! PgBouncer's console login without a password: over the unix socket, the OS user that
//! runs the pooler may log in as `pgbouncer` (peer credentials), with admin rights. Over
//! TCP, or as any other name, the usual authentication applies.

use std::process::Command;
use std::time::Duration;

use crate::harness::{self, pgmux, postgres, Pgmux};

/// psql as `user` to the console, with no password anywhere and no prompt.
fn console_psql(pgmux: &Pgmux, host: &str, user: &str, sql: &str) -> harness::ToolOutput {
    let mut cmd = Command::new(postgres().bin("psql"));
    cmd.env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env("PGSSLMODE", "disable")
        .args(["-X", "-A", "-t", "-w", "-h", host])
        .args(["-p", &pgmux.port().to_string(), "-U", user, "pgbouncer"])
        .args(["-c", sql]);
    harness::run_tool(&mut cmd, Duration::from_secs(20))
}

#[tokio::test]
async fn the_pgmux_os_user_reaches_the_console_as_pgbouncer_over_the_unix_socket() {
    let _guard = harness::shared();
    // No admin_users and no `pgbouncer` user anywhere: only the peer rule can let it in.
    let pgmux = pgmux().start().await;
    let socket_dir = pgmux.socket_dir().display().to_string();

    let version = console_psql(&pgmux, &socket_dir, "pgbouncer", "SHOW VERSION");
    version.assert_success();
    assert!(
        version.stdout.starts_with("PgBouncer"),
        "{}",
        version.stdout
    );
    // With admin rights: control commands run too.
    let control = console_psql(&pgmux, &socket_dir, "pgbouncer", "PAUSE; RESUME; RELOAD");
    control.assert_success();
    assert!(
        pgmux
            .wait_for_log("pgbouncer access from unix socket", Duration::from_secs(5))
            .await,
        "{}",
        pgmux.logs()
    );
    // Logged as PgBouncer does, with the peer's pid: `pgbouncer/pgbouncer@unix(PID):PORT`
    // (the line follows the one above: wait for it too).
    let login = format!(
        "):{} login attempt: db=pgbouncer user=pgbouncer",
        pgmux.port()
    );
    assert!(
        pgmux
            .wait_for_line(
                &["pgbouncer/pgbouncer@unix(", &login],
                Duration::from_secs(5)
            )
            .await
            .is_some(),
        "{}",
        pgmux.logs()
    );
}

#[tokio::test]
async fn without_the_unix_socket_or_as_another_name_a_password_is_needed() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let socket_dir = pgmux.socket_dir().display().to_string();

    let over_tcp = console_psql(&pgmux, "127.0.0.1", "pgbouncer", "SHOW VERSION");
    assert!(!over_tcp.success(), "{}", over_tcp.stdout);
    assert!(over_tcp.stderr.contains("password"), "{}", over_tcp.stderr);

    let other_name = console_psql(&pgmux, &socket_dir, "app", "SHOW VERSION");
    assert!(!other_name.success(), "{}", other_name.stdout);
    assert!(
        other_name.stderr.contains("password"),
        "{}",
        other_name.stderr
    );
    assert_eq!(
        pgmux.count_log_lines("pgbouncer access from unix socket"),
        0
    );
}

/// A unix-socket client appears in SHOW CLIENTS with the port pgmux really listens on
/// (`listen_port = 0` in the harness lets the kernel pick one), as PgBouncer shows it.
#[tokio::test]
async fn show_clients_lists_unix_socket_clients_on_the_real_port() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(pgmux.socket_dir())
        .port(pgmux.port())
        .user("app")
        .password("secret")
        .dbname("app");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.simple_query("select 1").await.unwrap();

    let socket_dir = pgmux.socket_dir().display().to_string();
    let clients = console_psql(&pgmux, &socket_dir, "pgbouncer", "SHOW CLIENTS");
    clients.assert_success();
    let row = clients
        .stdout
        .lines()
        .find(|line| line.contains("|app|app|") || line.starts_with("C|app|app|"))
        .unwrap_or_else(|| panic!("no client row:\n{}", clients.stdout));
    let columns: Vec<&str> = row.split('|').collect();
    // type, user, database, replication, state, addr, port, local_addr, local_port …
    let port = pgmux.port().to_string();
    assert!(
        columns
            .windows(2)
            .any(|pair| pair == ["unix", port.as_str()]),
        "{row}"
    );
    assert_ne!(pgmux.port(), 0);
}
