//! The log lines of PgBouncer that alerts and scripts match on, word for word: a
//! client's `login attempt` and `closing because: REASON (age=Ns)`, `pooler error: …`
//! for what a client was told, a server's `new connection to server (from …)` and its
//! own closing reasons. Connection prefixes carry the `ptr` SHOW CLIENTS/SERVERS list.

use std::time::Duration;

use crate::admin_support::{admin, admin_pgmux, show};
use crate::harness::{self, pgmux, postgres, Pgmux};
use crate::support::{message, owned_connect, sqlstate, within};

const WAIT: Duration = Duration::from_secs(5);

async fn expect_line(pgmux: &Pgmux, needle: &str) {
    assert!(
        pgmux.wait_for_log(needle, WAIT).await,
        "no line with {needle:?}\n{}",
        pgmux.logs()
    );
}

/// The log line containing every one of `parts`, once it has arrived.
async fn expect_line_with(pgmux: &Pgmux, parts: &[&str]) -> String {
    pgmux
        .wait_for_line(parts, WAIT)
        .await
        .unwrap_or_else(|| panic!("no line with {parts:?}\n{}", pgmux.logs()))
}

#[tokio::test]
async fn a_client_and_its_server_are_logged_from_login_to_close_under_their_ptrs() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    let console = admin(&pgmux).await;
    let client = pgmux.app().await;
    client.simple_query("select 1").await.unwrap();

    let clients = show(&console, "SHOW CLIENTS").await;
    let me = clients.rows_where("user", "app")[0];
    let field = |name: &str| me[name].clone().unwrap();
    let prefix = format!(
        "C-{}: app/app@{}:{}",
        field("ptr"),
        field("addr"),
        field("port")
    );
    let servers = show(&console, "SHOW SERVERS").await;
    let server = servers.rows_where("user", "app")[0];
    let sfield = |name: &str| server[name].clone().unwrap();
    let server_prefix = format!(
        "S-{}: app/app@127.0.0.1:{}",
        sfield("ptr"),
        postgres().port()
    );

    expect_line(
        &pgmux,
        &format!("{prefix} login attempt: db=app user=app tls=no replication=no"),
    )
    .await;
    expect_line(
        &pgmux,
        &format!(
            "{server_prefix} new connection to server (from 127.0.0.1:{})",
            sfield("local_port")
        ),
    )
    .await;
    drop(client);
    expect_line(
        &pgmux,
        &format!("{prefix} closing because: client close request (age="),
    )
    .await;
    // Nothing was sent to the client, so nothing is a pooler error.
    assert!(pgmux.line_with(&[&prefix, "pooler error"]).is_none());

    // A client that vanishes without Terminate.
    let vanishing = owned_connect(&pgmux.url("app", "secret", "app")).await;
    vanishing.client.simple_query("select 1").await.unwrap();
    vanishing.task.abort();
    expect_line(&pgmux, "closing because: client unexpected eof (age=").await;
}

#[tokio::test]
async fn failed_logins_log_the_attempt_the_reason_and_the_pooler_error() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let error = pgmux.try_connect("app", "wrong", "app").await.unwrap_err();
    assert_eq!(message(&error), "SASL authentication failed");
    expect_line_with(
        &pgmux,
        &["app/app@127.0.0.1:", "login attempt: db=app user=app"],
    )
    .await;
    expect_line_with(
        &pgmux,
        &[
            "app/app@127.0.0.1:",
            "closing because: SASL authentication failed (age=",
        ],
    )
    .await;
    let told = expect_line_with(&pgmux, &["pooler error: SASL authentication failed"]).await;
    // PgBouncer's pooler errors are warnings.
    assert!(told.contains("WARN"), "{told}");

    // An unknown database: PgBouncer's (nodb) prefix and its "login failed" line.
    let error = pgmux
        .try_connect("app", "secret", "nosuchdb")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "08P01");
    expect_line(&pgmux, "pooler error: no such database: nosuchdb").await;
    for line in [
        "login attempt: db=nosuchdb user=app tls=no replication=no",
        "login failed: db=nosuchdb user=app",
        "closing because: no such database: nosuchdb (age=",
    ] {
        expect_line_with(&pgmux, &["C-0x", ": (nodb)/app@127.0.0.1:", line]).await;
    }
}

#[tokio::test]
async fn log_settings_switch_their_lines_off() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("log_pooler_errors", "false")
        .setting("log_connections", "false")
        .start()
        .await;
    drop(pgmux.app().await);
    let error = pgmux
        .try_connect("app", "wrong", "app")
        .await
        .expect_err("wrong password");
    // Switching the log line off does not change what the client is told.
    assert_eq!(message(&error), "SASL authentication failed");
    expect_line(&pgmux, "closing because: SASL authentication failed").await;
    expect_line(&pgmux, "closing because: client close request").await;
    let logs = pgmux.logs();
    assert!(!logs.contains("pooler error"), "{logs}");
    assert!(!logs.contains("login attempt"), "{logs}");
    assert!(!logs.contains("new connection to server"), "{logs}");
}

#[tokio::test]
async fn timeouts_close_the_client_and_its_server_with_pgbouncers_reasons() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("idle_transaction_timeout", "1")
        .setting("client_idle_timeout", "1")
        .start()
        .await;
    let idler = owned_connect(&pgmux.url("app", "secret", "app")).await;
    idler.client.batch_execute("begin; select 1").await.unwrap();
    let (_, ended) = idler.ended_within(WAIT).await;
    assert_eq!(message(&ended.unwrap_err()), "idle transaction timeout");
    // The server goes first, as in PgBouncer, then the client it served.
    let server = format!("app/app@127.0.0.1:{}", postgres().port());
    expect_line_with(
        &pgmux,
        &[
            "S-0x",
            &server,
            "closing because: idle transaction timeout (age=",
        ],
    )
    .await;
    expect_line_with(
        &pgmux,
        &["C-0x", "closing because: idle transaction timeout (age="],
    )
    .await;
    expect_line_with(&pgmux, &["C-0x", "pooler error: idle transaction timeout"]).await;

    let idle = owned_connect(&pgmux.url("app", "secret", "app")).await;
    idle.client.simple_query("select 1").await.unwrap();
    let (_, ended) = idle.ended_within(WAIT).await;
    assert_eq!(message(&ended.unwrap_err()), "client_idle_timeout");
    expect_line(&pgmux, "closing because: client_idle_timeout (age=").await;
}

#[tokio::test]
async fn a_client_that_waits_too_long_is_closed_with_query_wait_timeout() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("default_pool_size", "1")
        .setting("query_wait_timeout", "1")
        .start()
        .await;
    let holder = pgmux.app().await;
    let held = tokio::spawn(async move { holder.simple_query("select pg_sleep(3)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiter = pgmux.app().await;
    let error = waiter.simple_query("select 1").await.unwrap_err();
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "query_wait_timeout".into())
    );
    expect_line(&pgmux, "closing because: query_wait_timeout (age=").await;
    expect_line(&pgmux, "pooler error: query_wait_timeout").await;
    within(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn idle_and_old_servers_close_with_pgbouncers_reasons() {
    let _guard = harness::shared();
    let idle = pgmux().setting("server_idle_timeout", "1").start().await;
    idle.app().await.simple_query("select 1").await.unwrap();
    expect_line(&idle, "closing because: server idle timeout (age=").await;

    let old = pgmux().setting("server_lifetime", "1").start().await;
    let client = old.app().await;
    client.simple_query("select 1").await.unwrap();
    expect_line(&old, "closing because: server lifetime over (age=").await;
    expect_line_with(&old, &["S-0x", "/app@127.0.0.1:", "server lifetime over"]).await;
}

/// pg_terminate_backend under an open transaction: the client already has PostgreSQL's
/// FATAL; both ends are logged as PgBouncer's "server conn crashed?".
#[tokio::test]
async fn a_server_killed_under_a_transaction_is_logged_as_crashed() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let victim = owned_connect(&pgmux.url("app", "secret", "app")).await;
    let rows = victim
        .client
        .simple_query("begin; select pg_backend_pid()")
        .await
        .unwrap();
    let pid: i32 = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap();
    postgres()
        .superuser()
        .await
        .query_one("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let (_, ended) = victim.ended_within(WAIT).await;
    assert_eq!(
        sqlstate(&ended.unwrap_err()),
        "57P01",
        "PostgreSQL's own FATAL"
    );
    expect_line_with(
        &pgmux,
        &["S-0x", "closing because: server conn crashed? (age="],
    )
    .await;
    expect_line_with(
        &pgmux,
        &["C-0x", "closing because: server conn crashed? (age="],
    )
    .await;
}
