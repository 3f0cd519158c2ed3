//! Many clients on few servers: the pool size is a hard ceiling on PostgreSQL backends,
//! every client's work still gets done, waiters are served in order or refused on time,
//! and the client, reserve and per-database limits hold.
//!
//! Backends are counted directly in PostgreSQL, per test-dedicated database, so other
//! tests running at the same time never show up in the counts.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, pgmux, postgres, Pgmux, ToolOutput};

// ---------------------------------------------------------------------------------
// Helpers shared with modes.rs
// ---------------------------------------------------------------------------------

/// A fresh PostgreSQL database owned by `app`, so the backends of this test's pgmux
/// can be counted by `datname` without seeing anyone else's.
pub(crate) async fn dedicated_database(prefix: &str) -> String {
    let name = harness::unique_name(prefix);
    let su = postgres().superuser().await;
    su.batch_execute(&format!("create database {name} owner app"))
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e:?}"));
    name
}

/// The `[databases.X]` body pointing at PostgreSQL database `dbname`.
pub(crate) fn database_entry(dbname: &str) -> String {
    format!("host = \"127.0.0.1\"\nport = {{PGPORT}}\ndbname = \"{dbname}\"")
}

/// Client backends PostgreSQL has for `dbname` right now, optionally only in `state`.
pub(crate) async fn backends(su: &Client, dbname: &str, state_like: &str) -> i64 {
    su.query_one(
        "select count(*) from pg_stat_activity \
         where datname = $1 and backend_type = 'client backend' and coalesce(state, '') like $2",
        &[&dbname, &state_like],
    )
    .await
    .expect("count backends")
    .get(0)
}

/// Polls `backends()` until it equals `want`; returns the last count seen.
pub(crate) async fn wait_for_backends(
    su: &Client,
    dbname: &str,
    want: i64,
    timeout: Duration,
) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = backends(su, dbname, "%").await;
        if n == want || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Samples the backend count of one database every ~20 ms in the background.
pub(crate) struct BackendSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl BackendSampler {
    pub(crate) async fn start(dbname: &str) -> BackendSampler {
        let su = postgres().superuser().await;
        let (stop, max) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicI64::new(0)),
        );
        let (stop2, max2, dbname) = (stop.clone(), max.clone(), dbname.to_owned());
        let task = tokio::spawn(async move {
            while !stop2.load(Ordering::Relaxed) {
                max2.fetch_max(backends(&su, &dbname, "%").await, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        BackendSampler { stop, max, task }
    }

    /// Stops sampling (after one last sample) and returns the highest count seen.
    pub(crate) async fn finish(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("sampler task");
        self.max.load(Ordering::Relaxed)
    }
}

/// The first column of the first row of a simple query.
pub(crate) async fn scalar(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("").to_owned()),
            _ => None,
        })
        .expect("a row"))
}

pub(crate) async fn backend_pid(client: &Client) -> i32 {
    scalar(client, "select pg_backend_pid()")
        .await
        .unwrap()
        .parse()
        .unwrap()
}

pub(crate) fn sqlstate(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| format!("no SQLSTATE: {error:?}"))
}

pub(crate) fn message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| error.to_string())
}

/// Waits (bounded) for a client's connection to be closed by the other side.
pub(crate) async fn closed_soon(client: &Client) -> bool {
    for _ in 0..100 {
        if client.is_closed() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// pgbench through pgmux as `app`, with enough file descriptors for many clients.
fn pgbench(pgmux: &Pgmux, db: &str, args: &[&str], timeout: Duration) -> ToolOutput {
    let mut cmd = pgmux.tool_command(Path::new("sh"), "app", "secret", db);
    // `$0 "$@"` is pgbench and its arguments; raise the soft limit only if it is low.
    cmd.arg("-c")
        .arg(r#"[ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 || exit 111; exec "$0" "$@""#)
        .arg(postgres().bin("pgbench"))
        .args(args);
    harness::run_tool(&mut cmd, timeout)
}

/// Asserts pgbench finished cleanly: exit 0, `number of failed transactions: 0`, no
/// client errors; returns the number of processed transactions.
fn assert_pgbench_clean(out: &ToolOutput, what: &str) -> u64 {
    out.assert_success();
    assert!(
        out.stdout.contains("number of failed transactions: 0 "),
        "{what}: failed transactions\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !out.stderr.contains("error"),
        "{what}: client errors\n{}",
        out.stderr
    );
    let processed = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{what}: no processed count in\n{}", out.stdout));
    assert!(processed > 0, "{what}: nothing processed\n{}", out.stdout);
    processed
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_share_25_backends_and_all_their_work_is_done() {
    let _guard = harness::shared();
    const CLIENTS: usize = 1000;
    const ROUNDS: i32 = 3;
    let db = dedicated_database("thousand").await;
    let pgmux = pgmux()
        .setting("default_pool_size", "25")
        .setting("max_client_conn", "1100")
        // Client logins are not what this test is about: with SCRAM, every one costs a
        // PBKDF2 run on both sides, minutes for 1,000 of them in a debug build.
        .setting("auth_type", "\"md5\"")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let table = harness::unique_name("counters");
    let setup = pgmux.connect("app", "secret", &db).await;
    setup
        .batch_execute(&format!(
            "create table {table} (id int primary key, n int not null);
             insert into {table} select g, 0 from generate_series(0, {}) g",
            CLIENTS - 1
        ))
        .await
        .unwrap();
    let sampler = BackendSampler::start(&db).await;

    // All 1,000 are logged in and open at once before any of them works.
    let connected: Vec<_> = stream::iter(0..CLIENTS)
        .map(|_| pgmux.try_connect("app", "secret", &db))
        .buffer_unordered(200)
        .collect()
        .await;
    let failed_logins: Vec<_> = connected.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed_logins.is_empty(),
        "{} logins failed, first: {:?}",
        failed_logins.len(),
        failed_logins.first()
    );
    let clients: Vec<Client> = connected.into_iter().map(Result::unwrap).collect();

    let update = format!("update {table} set n = n + 1 where id = $1");
    let work = clients.into_iter().enumerate().map(|(id, mut client)| {
        let update = update.clone();
        async move {
            for _ in 0..ROUNDS {
                let tx = client.transaction().await?;
                tx.execute("select pg_sleep(0.01)", &[]).await?;
                assert_eq!(tx.execute(&update, &[&(id as i32)]).await?, 1);
                tx.commit().await?;
            }
            Ok::<_, tokio_postgres::Error>(client)
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(90), join_all(work))
        .await
        .unwrap_or_else(|_| panic!("1,000 clients did not finish in 90 s\n{}", pgmux.logs()));
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} clients failed, first: {:?}",
        errors.len(),
        errors.first()
    );

    let max = sampler.finish().await;
    let row = setup
        .query_one(
            &format!("select count(*) filter (where n = {ROUNDS}), sum(n) from {table}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        CLIENTS as i64,
        "every client's counter moved exactly {ROUNDS} times"
    );
    assert_eq!(row.get::<_, i64>(1), CLIENTS as i64 * ROUNDS as i64);
    assert!(max <= 25, "{max} backends for {db}, pool size is 25");
    assert!(
        max > 1,
        "only {max} backend: the clients never ran side by side"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_with_1000_clients_on_a_pool_of_25_has_no_failures() {
    let _guard = harness::shared();
    let db = dedicated_database("bench1000").await;
    let pgmux = pgmux()
        .setting("default_pool_size", "25")
        .setting("max_client_conn", "1100")
        // As above: 1,000 SCRAM logins would cost pgmux 1,000 PBKDF2 runs.
        .setting("auth_type", "\"md5\"")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let pgmux = Arc::new(pgmux);
    let run = |args: &'static [&'static str], timeout: u64| {
        let (pgmux, db) = (pgmux.clone(), db.clone());
        tokio::task::spawn_blocking(move || {
            pgbench(&pgmux, &db, args, Duration::from_secs(timeout))
        })
    };
    run(&["-i", "-s", "1", "-q"], 60)
        .await
        .unwrap()
        .assert_success();
    let sampler = BackendSampler::start(&db).await;
    let out = run(&["-c", "1000", "-j", "2", "-T", "10", "-M", "extended"], 90)
        .await
        .unwrap();
    let max = sampler.finish().await;
    assert_pgbench_clean(&out, "pgbench -c 1000 -M extended");
    assert!(max <= 25, "{max} backends for {db}, pool size is 25");
    assert!(
        max > 1,
        "only {max} backend: pgbench clients never ran side by side"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_simple_and_extended_with_50_clients_have_no_failures() {
    let _guard = harness::shared();
    let db = dedicated_database("bench50").await;
    let pgmux = pgmux()
        .setting("default_pool_size", "25")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let pgmux = Arc::new(pgmux);
    let run = |args: &'static [&'static str]| {
        let (pgmux, db) = (pgmux.clone(), db.clone());
        tokio::task::spawn_blocking(move || pgbench(&pgmux, &db, args, Duration::from_secs(60)))
    };
    run(&["-i", "-s", "1", "-q"])
        .await
        .unwrap()
        .assert_success();
    for mode in ["simple", "extended"] {
        let sampler = BackendSampler::start(&db).await;
        let args: &'static [&'static str] = if mode == "simple" {
            &["-c", "50", "-j", "2", "-t", "20", "-M", "simple"]
        } else {
            &["-c", "50", "-j", "2", "-t", "20", "-M", "extended"]
        };
        let out = run(args).await.unwrap();
        let max = sampler.finish().await;
        let processed = assert_pgbench_clean(&out, mode);
        assert_eq!(
            processed,
            50 * 20,
            "-M {mode}: every transaction ran\n{}",
            out.stdout
        );
        assert!(
            max <= 25,
            "-M {mode}: {max} backends for {db}, pool size is 25"
        );
    }
}

#[tokio::test]
async fn a_client_waiting_longer_than_query_wait_timeout_is_refused_and_closed() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("default_pool_size", "1")
        .setting("query_wait_timeout", "1")
        .start()
        .await;
    let table = harness::unique_name("qwt");
    let holder = pgmux.app().await;
    holder
        .batch_execute(&format!("create table {table} (x int)"))
        .await
        .unwrap();
    holder
        .batch_execute(&format!("begin; insert into {table} values (1)"))
        .await
        .unwrap();

    let waiter = pgmux.app().await;
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(10), waiter.simple_query("select 1"))
        .await
        .expect("the waiting query must not hang past query_wait_timeout")
        .expect_err("no server was free for the whole query_wait_timeout");
    let waited = started.elapsed();
    assert_eq!(sqlstate(&error), "08P01", "{error:?}");
    assert_eq!(message(&error), "query_wait_timeout");
    assert!(
        waited >= Duration::from_millis(900),
        "refused after {waited:?}, before query_wait_timeout = 1 s"
    );
    assert!(
        closed_soon(&waiter).await,
        "the refused client's connection stays open"
    );

    // The holder's transaction is untouched and commits.
    holder
        .batch_execute(&format!("insert into {table} values (2); commit"))
        .await
        .unwrap();
    assert_eq!(
        scalar(&holder, &format!("select count(*) from {table}"))
            .await
            .unwrap(),
        "2"
    );
    holder
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn waiting_clients_get_the_server_in_the_order_they_asked() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let table = harness::unique_name("fifo");
    let holder = pgmux.app().await;
    holder
        .batch_execute(&format!("create table {table} (id serial, name text)"))
        .await
        .unwrap();
    holder.batch_execute("begin; select 1").await.unwrap();

    let mut waiting = Vec::new();
    for name in ["b", "c", "d"] {
        let client = pgmux.app().await;
        let insert = format!("insert into {table} (name) values ('{name}')");
        waiting.push(tokio::spawn(
            async move { client.batch_execute(&insert).await },
        ));
        // Gaps make the arrival order unambiguous.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        waiting.iter().all(|t| !t.is_finished()),
        "a client got the server held in a transaction"
    );
    holder.batch_execute("commit").await.unwrap();
    for task in waiting {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("waiter served")
            .unwrap()
            .unwrap();
    }
    let rows = holder
        .query(&format!("select name from {table} order by id"), &[])
        .await
        .unwrap();
    let order: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        order,
        ["b", "c", "d"],
        "waiters were not served first come, first served"
    );
    holder
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn max_client_conn_refuses_the_extra_client_until_one_leaves() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("max_client_conn", "3").start().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = pgmux.app().await;
        scalar(&client, "select 1").await.unwrap();
        clients.push(client);
    }
    let error = pgmux
        .try_connect("app", "secret", "app")
        .await
        .expect_err("a 4th client is refused");
    // PgBouncer's text, with PostgreSQL's 53300 (too_many_connections) as the security
    // issue asks, rather than PgBouncer's 08P01.
    assert_eq!(sqlstate(&error), "53300", "{error:?}");
    assert_eq!(
        message(&error),
        "no more connections allowed (max_client_conn)"
    );

    drop(clients.remove(0));
    // pgmux notices the disconnect a moment later; until then the refusal is still right.
    let deadline = Instant::now() + Duration::from_secs(5);
    let newcomer = loop {
        match pgmux.try_connect("app", "secret", "app").await {
            Ok(client) => break client,
            Err(e) if message(&e).contains("max_client_conn") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("no room after a client left: {e:?}"),
        }
    };
    assert_eq!(scalar(&newcomer, "select 1").await.unwrap(), "1");
    for client in &clients {
        assert_eq!(
            scalar(client, "select 2").await.unwrap(),
            "2",
            "the other clients stay connected"
        );
    }
}
