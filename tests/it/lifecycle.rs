//! The pgmux process over its life: SIGHUP reloads, SIGTERM/SIGINT drains, the command
//! line, and the unix socket. The client and transaction timeouts are in `timeouts.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{self, pgmux, postgres, Pgmux};
use crate::support::{direct, message, owned_connect, sqlstate, within};

const PGMUX_BIN: &str = env!("CARGO_BIN_EXE_pgmux");

/// Waits until `needle` has appeared in `n` log lines (reloads log the same line each time).
async fn wait_for_log_count(pgmux: &Pgmux, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pgmux.logs().lines().filter(|l| l.contains(needle)).count() < n {
        assert!(
            Instant::now() < deadline,
            "no {n}× `{needle}` in the log:\n{}",
            pgmux.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn current_config(pgmux: &Pgmux) -> String {
    std::fs::read_to_string(pgmux.config_path()).expect("read pgmux config")
}

#[tokio::test]
async fn sighup_applies_a_larger_pool_size() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let clients = [pgmux.app().await, pgmux.app().await, pgmux.app().await];
    // Before: one server, so a second transaction waits for the first.
    clients[0].batch_execute("begin; select 1").await.unwrap();
    let waiting = tokio::spawn({
        let url = pgmux.url("app", "secret", "app");
        async move {
            let second = owned_connect(&url).await;
            second.client.batch_execute("begin; select 1; commit").await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "default_pool_size = 1 allowed a second transaction"
    );
    clients[0].batch_execute("commit").await.unwrap();
    waiting.await.unwrap().unwrap();

    let config = current_config(&pgmux);
    assert!(config.contains("default_pool_size = 1\n"));
    pgmux.rewrite_config(&config.replace("default_pool_size = 1\n", "default_pool_size = 3\n"));
    pgmux.signal("HUP");
    wait_for_log_count(&pgmux, "reloaded", 1).await;
    for (i, client) in clients.iter().enumerate() {
        let begun = within(
            Duration::from_secs(5),
            client.batch_execute("begin; select 1"),
        )
        .await;
        assert!(
            begun.is_some(),
            "transaction {} of 3 waited after reload to pool size 3",
            i + 1
        );
        begun.unwrap().unwrap();
    }
    for client in &clients {
        client.batch_execute("commit").await.unwrap();
    }
}

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_the_old_settings() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let client = pgmux.app().await;
    pgmux.rewrite_config("default_pool_size = [[[ not toml\n");
    pgmux.signal("HUP");
    assert!(
        pgmux
            .wait_for_log("reload failed", Duration::from_secs(5))
            .await,
        "{}",
        pgmux.logs()
    );
    assert_eq!(
        client
            .query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    let fresh = pgmux.app().await;
    assert_eq!(
        fresh
            .query_one("select 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2,
        "logins still work"
    );
}

#[tokio::test]
async fn sighup_adds_and_removes_databases() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let original = current_config(&pgmux);
    let Err(error) = pgmux.try_connect("app", "secret", "newdb").await else {
        panic!("newdb unknown at first, yet the login succeeded");
    };
    assert_eq!(message(&error), "no such database: newdb");

    let newdb = format!(
        "{original}\n[databases.newdb]\nhost = \"127.0.0.1\"\nport = {}\ndbname = \"app\"\n",
        postgres().port()
    );
    pgmux.rewrite_config(&newdb);
    pgmux.signal("HUP");
    wait_for_log_count(&pgmux, "reloaded", 1).await;
    let client = pgmux.connect("app", "secret", "newdb").await;
    let row = client
        .query_one("select current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "app",
        "newdb reaches the server database it names"
    );

    pgmux.rewrite_config(&original);
    pgmux.signal("HUP");
    wait_for_log_count(&pgmux, "reloaded", 2).await;
    let Err(error) = pgmux.try_connect("app", "secret", "newdb").await else {
        panic!("newdb removed, yet the login succeeded");
    };
    assert_eq!(sqlstate(&error), "08P01", "{error:?}");
    assert!(
        message(&error).contains("no such database: newdb"),
        "{error:?}"
    );
}

async fn drain_on(sig: &str) {
    let table = harness::unique_name("drain");
    let mut pgmux = pgmux().start().await;
    let admin = pgmux.app().await;
    admin
        .batch_execute(&format!("create table {table} (x int)"))
        .await
        .unwrap();
    drop(admin);
    let url = pgmux.url("app", "secret", "app");
    let busy = pgmux.app().await;
    let idle = owned_connect(&url).await;
    idle.client.batch_execute("select 1").await.unwrap();
    busy.batch_execute(&format!("begin; insert into {table} values (1)"))
        .await
        .unwrap();

    pgmux.signal(sig);
    assert!(
        pgmux
            .wait_for_log(&format!("got SIG{sig}"), Duration::from_secs(5))
            .await
    );
    // The idle client is told why it is being closed.
    let (idle_client, ended) = idle.ended_within(Duration::from_secs(5)).await;
    let error = ended.expect_err("the idle client's connection ends with an error");
    assert_eq!(sqlstate(&error), "57P01", "{error:?}");
    assert_eq!(message(&error), "pooler is shutting down");
    assert!(idle_client
        .batch_execute("select 1")
        .await
        .expect_err("closed")
        .is_closed());
    // No new clients.
    assert!(
        tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .is_err(),
        "{sig}: a new login was accepted"
    );
    // The open transaction runs to its end.
    busy.batch_execute(&format!(
        "select pg_sleep(0.3); insert into {table} values (2)"
    ))
    .await
    .unwrap();
    busy.batch_execute("commit").await.unwrap();

    let status = pgmux.wait_exit(Duration::from_secs(5)).await;
    let status = status
        .unwrap_or_else(|| panic!("pgmux still running 5 s after SIG{sig}\n{}", pgmux.logs()));
    assert!(status.success(), "{status}\n{}", pgmux.logs());
    let check = direct("app").await;
    let rows: i64 = check
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "the transaction open at SIG{sig} committed");
    check
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn sigterm_drains_open_transactions_and_exits() {
    let _guard = harness::shared();
    drain_on("TERM").await;
}

#[tokio::test]
async fn sigint_drains_open_transactions_and_exits() {
    let _guard = harness::shared();
    drain_on("INT").await;
}

#[tokio::test]
async fn shutdown_timeout_cuts_a_transaction_that_never_ends() {
    let _guard = harness::shared();
    let mut pgmux = pgmux().setting("shutdown_timeout", "1").start().await;
    let stuck = pgmux.app().await;
    stuck.batch_execute("begin; select 1").await.unwrap();
    let signalled = Instant::now();
    pgmux.signal("TERM");
    let status = pgmux.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some(),
        "pgmux waited more than 5 s with shutdown_timeout = 1\n{}",
        pgmux.logs()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "exit took {:?}",
        signalled.elapsed()
    );
    let error = stuck
        .batch_execute("commit")
        .await
        .expect_err("the stuck client was cut");
    assert!(error.is_closed(), "{error:?}");
}

fn run_pgmux(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(PGMUX_BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PGMUX_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run pgmux")
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[tokio::test]
async fn command_line_version_and_check() {
    let _guard = harness::shared();
    let version = run_pgmux(&["--version"], &[]);
    assert!(version.status.success());
    assert_eq!(
        // Issue 8: the first line is what the console's SHOW VERSION returns.
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or(""),
        format!("PgBouncer 1.25.0 (pgmux {})", env!("CARGO_PKG_VERSION"))
    );

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, pgmux().toml()).unwrap();
    let good = good.to_str().unwrap();
    let checked = run_pgmux(&["--check", good], &[]);
    assert!(checked.status.success(), "{}", stderr_of(&checked));

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, format!("max_clinet_conn = 5\n{}", pgmux().toml())).unwrap();
    let refused = run_pgmux(&["--check", typo.to_str().unwrap()], &[]);
    let stderr = stderr_of(&refused);
    assert!(!refused.status.success());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(typo.to_str().unwrap()) && stderr.contains("max_clinet_conn"),
        "{stderr}"
    );

    let missing = dir.path().join("missing.toml");
    let refused = run_pgmux(&["--check", missing.to_str().unwrap()], &[]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains(missing.to_str().unwrap()),
        "{}",
        stderr_of(&refused)
    );

    let refused = run_pgmux(&["--check", good], &[("PGMUX_DEFAULT_POOL_SIZE", "abc")]);
    assert!(!refused.status.success(), "a non-numeric pool size passed");
    assert!(
        stderr_of(&refused).contains("PGMUX_DEFAULT_POOL_SIZE"),
        "{}",
        stderr_of(&refused)
    );
}

#[tokio::test]
async fn psql_connects_over_the_unix_socket() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    assert!(pgmux
        .socket_dir()
        .join(format!(".s.PGSQL.{}", pgmux.port()))
        .exists());
    let mut cmd = Command::new(postgres().bin("psql"));
    cmd.arg("-h")
        .arg(pgmux.socket_dir())
        .args([
            "-p",
            &pgmux.port().to_string(),
            "-U",
            "app",
            "-X",
            "-A",
            "-t",
            "-c",
            "select 42",
            "app",
        ])
        .env("PGPASSWORD", "secret");
    let output =
        tokio::task::spawn_blocking(move || harness::run_tool(&mut cmd, Duration::from_secs(20)))
            .await
            .unwrap();
    output.assert_success();
    assert_eq!(output.stdout.trim(), "42");
}
