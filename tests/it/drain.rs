//! Graceful drain, as Kubernetes triggers it with SIGTERM: a client inside a transaction
//! finishes it and is closed right after (not before), and under pgbench no transaction
//! that had started fails.
//!
//! "Started" is precise here: a transaction has started once its first statement reached
//! PostgreSQL. Those must all commit and their clients must see the commit. A client
//! closed between transactions (57P01, then EOF) sees its *next* transaction fail to
//! begin; pgbench reports that as the client aborting in command 0 (the BEGIN), which no
//! pooler can avoid without holding clients forever.

use std::time::Duration;

use crate::harness::{self, pgmux, postgres, ToolOutput};
use crate::support::{message, owned_connect, sqlstate, ScratchDb};

/// Transactions PostgreSQL rolled back in `db`: what "every started transaction committed" is checked against.
async fn rollbacks(db: &str) -> i64 {
    let su = postgres().superuser().await;
    su.query_one(
        "select xact_rollback from pg_stat_database where datname = $1",
        &[&db],
    )
    .await
    .unwrap()
    .get(0)
}

async fn closed_right_after_commit(mode: &str) {
    let db = ScratchDb::create("drainmid").await;
    let mut pgmux = pgmux()
        .setting("pool_mode", &format!("\"{mode}\""))
        .database(&db.name, &db.entry())
        .start()
        .await;
    let conn = owned_connect(&pgmux.url("app", "secret", &db.name)).await;
    conn.client
        .batch_execute("create table t (x int); begin; insert into t values (1)")
        .await
        .unwrap();

    pgmux.signal("TERM");
    assert!(
        pgmux
            .wait_for_log("got SIGTERM", Duration::from_secs(5))
            .await
    );
    // Longer than any grace for fresh clients: the client is kept because it is inside a
    // transaction, and it may go on issuing statements in it.
    conn.client
        .batch_execute("select pg_sleep(1.5); insert into t values (2)")
        .await
        .unwrap_or_else(|e| panic!("{mode}: cut inside its transaction: {e:?}"));
    conn.client.batch_execute("commit").await.unwrap();

    // Closed at that boundary, without the client asking anything more.
    let (client, ended) = conn.ended_within(Duration::from_secs(3)).await;
    let error = ended.expect_err("the connection ends with pgmux's FATAL");
    assert_eq!(sqlstate(&error), "57P01", "{mode}: {error:?}");
    assert_eq!(message(&error), "pooler is shutting down");
    assert!(client
        .batch_execute("select 1")
        .await
        .expect_err("closed")
        .is_closed());
    let status = pgmux.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{mode}: {status:?}\n{}",
        pgmux.logs()
    );
    let rows: i64 = db
        .direct()
        .await
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "{mode}: the transaction open at SIGTERM committed");
    db.drop_db().await;
}

#[tokio::test]
async fn sigterm_closes_a_client_in_a_transaction_right_after_its_commit() {
    let _guard = harness::shared();
    closed_right_after_commit("transaction").await;
}

#[tokio::test]
async fn sigterm_closes_a_session_mode_client_right_after_its_commit() {
    let _guard = harness::shared();
    closed_right_after_commit("session").await;
}

/// A transaction of four statements with a pause inside, so SIGTERM lands in the middle
/// of many of them. One row per transaction.
const SCRIPT: &str = "BEGIN;
INSERT INTO ledger VALUES (:client_id, 1);
SELECT pg_sleep(0.02);
UPDATE ledger SET step = 2 WHERE client = :client_id AND step = 1;
COMMIT;
";

pub fn processed(out: &ToolOutput) -> i64 {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no processed count in\n{}\n{}", out.stdout, out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_pgbench_fails_no_transaction_that_had_started() {
    let _guard = harness::shared();
    let db = ScratchDb::create("drainbench").await;
    db.direct()
        .await
        .batch_execute(
            "create table ledger (client int, step int); alter table ledger owner to app",
        )
        .await
        .unwrap();
    let mut pgmux = pgmux()
        .setting("auth_type", "\"md5\"")
        .setting("shutdown_timeout", "10")
        .database(&db.name, &db.entry())
        .start()
        .await;
    let before = rollbacks(&db.name).await;
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), SCRIPT).unwrap();

    let mut cmd = pgmux.tool_command(&postgres().bin("pgbench"), "app", "secret", &db.name);
    cmd.args(["-n", "-c", "8", "-j", "2", "-T", "10", "-f"])
        .arg(script.path());
    let bench =
        tokio::task::spawn_blocking(move || harness::run_tool(&mut cmd, Duration::from_secs(30)));
    // Let pgbench get going, then pull the plug as Kubernetes would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    pgmux.signal("TERM");
    let status = pgmux.wait_exit(Duration::from_secs(8)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "pgmux did not drain: {status:?}\n{}",
        pgmux.logs()
    );
    let out = bench.await.unwrap();

    // Every transaction pgbench finished is in the table, and nothing else is: no
    // transaction committed behind a client's back, none was cut short.
    let direct = db.direct().await;
    let committed: i64 = direct
        .query_one("select count(*) from ledger where step = 2", &[])
        .await
        .unwrap()
        .get(0);
    let partial: i64 = direct
        .query_one("select count(*) from ledger where step <> 2", &[])
        .await
        .unwrap()
        .get(0);
    drop(direct);
    let done = processed(&out);
    assert!(done > 0, "pgbench ran nothing\n{}", out.stdout);
    assert_eq!(
        committed, done,
        "committed rows vs transactions pgbench completed\n{}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(partial, 0);
    assert!(
        out.stdout.contains("number of failed transactions: 0 "),
        "{}",
        out.stdout
    );
    // PostgreSQL rolled back nothing: no server was closed inside a transaction.
    assert!(db.no_backends_within(None, Duration::from_secs(5)).await);
    assert_eq!(
        rollbacks(&db.name).await - before,
        0,
        "transactions rolled back\n{}\n{}",
        out.stderr,
        pgmux.logs()
    );
    // Clients were stopped only between transactions: at the BEGIN (command 0) of the
    // next one, never inside one.
    let aborts: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("aborted in command"))
        .collect();
    assert!(
        !aborts.is_empty(),
        "SIGTERM closed no client?\n{}",
        out.stderr
    );
    for line in &aborts {
        assert!(
            line.contains("aborted in command 0 "),
            "a client was cut inside a transaction: {line}\n{}",
            out.stderr
        );
    }
    db.drop_db().await;
}

/// The listener closes as the drain begins; a connection the kernel had already accepted
/// is a client about to run a transaction (a `pgbench -C` client, a web request), and
/// failing it would fail that transaction. It is served, then closed like the others.
#[tokio::test]
async fn a_connection_accepted_before_sigterm_runs_its_transaction() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let socket = tokio::net::TcpStream::connect(pgmux.addr()).await.unwrap();
    pgmux.signal("TERM");
    assert!(
        pgmux
            .wait_for_log("got SIGTERM", Duration::from_secs(5))
            .await
    );
    let config: tokio_postgres::Config = "user=app password=secret dbname=app".parse().unwrap();
    let (client, connection) = config
        .connect_raw(socket, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("login after SIGTERM refused: {e:?}\n{}", pgmux.logs()));
    let connection = tokio::spawn(connection);
    // An application takes a moment between connecting and its first statement.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = client
        .simple_query("begin; select 1; commit")
        .await
        .unwrap_or_else(|e| panic!("first transaction refused: {e:?}\n{}", pgmux.logs()));
    assert!(!rows.is_empty());
    // Then it is closed at that boundary like every other client.
    let ended = tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("client still open 5 s into the drain")
        .unwrap();
    let error = ended.expect_err("the connection ends with pgmux's FATAL");
    assert_eq!(sqlstate(&error), "57P01", "{error:?}");
}
