//! pgmux under things going wrong: clients vanishing mid-transaction, backends killed by
//! PostgreSQL, a PostgreSQL restart, query cancellation, servers swapped under a prepared
//! statement. Malformed input on the wire is in `malformed_input.rs`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{self, pgmux, postgres, Pgmux};
use crate::support::{owned_connect, simple_value, sqlstate, ScratchDb};

async fn pgmux_for(db: &ScratchDb, pool_size: usize) -> Pgmux {
    pgmux()
        .setting("default_pool_size", &pool_size.to_string())
        .database(&db.name, &db.entry())
        .start()
        .await
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_client_killed_inside_a_transaction_leaves_no_open_transaction_behind() {
    let _guard = harness::shared();
    let db = ScratchDb::create("killed").await;
    let pgmux = pgmux_for(&db, 2).await;
    let setup = pgmux.connect("app", "secret", &db.name).await;
    setup.batch_execute("create table t (x int)").await.unwrap();

    let victim = owned_connect(&pgmux.url("app", "secret", &db.name)).await;
    victim
        .client
        .batch_execute("begin; insert into t values (1), (2)")
        .await
        .unwrap();
    assert_eq!(
        db.backends(Some("idle in transaction")).await,
        1,
        "the transaction is open on a backend"
    );
    // Dropping the socket with no Terminate, as a killed process or a lost network would.
    victim.task.abort();
    drop(victim.client);

    assert!(
        db.no_backends_within(Some("idle in transaction"), Duration::from_secs(5))
            .await,
        "a backend stayed idle in transaction after its client vanished\n{}",
        pgmux.logs()
    );
    let fresh = pgmux.connect("app", "secret", &db.name).await;
    assert_eq!(
        count(&fresh, "t").await,
        0,
        "the dead client's uncommitted rows are gone"
    );
    fresh
        .batch_execute("insert into t values (3)")
        .await
        .unwrap();
    assert_eq!(count(&fresh, "t").await, 1);
    drop((setup, fresh, pgmux));
    db.drop_db().await;
}

#[tokio::test]
async fn servers_terminated_while_idle_in_the_pool_are_replaced_unnoticed() {
    let _guard = harness::shared();
    let db = ScratchDb::create("termidle").await;
    let pgmux = pgmux_for(&db, 2).await;
    let client = pgmux.connect("app", "secret", &db.name).await;
    let first: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        db.terminate_all().await >= 1,
        "pgmux keeps its server open between transactions"
    );
    assert!(
        db.no_backends_within(None, Duration::from_secs(5)).await,
        "terminated backends exit"
    );

    let row = client
        .query_one("select pg_backend_pid(), 41 + 1", &[])
        .await;
    let row = row.unwrap_or_else(|e| {
        panic!(
            "query after the pool lost its server: {e:?}\n{}",
            pgmux.logs()
        )
    });
    assert_eq!(row.get::<_, i32>(1), 42);
    assert_ne!(
        row.get::<_, i32>(0),
        first,
        "a new backend served the query"
    );
    drop((client, pgmux));
    db.drop_db().await;
}

#[tokio::test]
async fn a_server_terminated_mid_transaction_fails_only_that_client() {
    let _guard = harness::shared();
    let db = ScratchDb::create("termbusy").await;
    let mut pgmux = pgmux_for(&db, 2).await;
    let bystander = pgmux.connect("app", "secret", &db.name).await;
    bystander.batch_execute("select 1").await.unwrap();
    let client = pgmux.connect("app", "secret", &db.name).await;
    client.batch_execute("begin").await.unwrap();
    let pid: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let su = postgres().superuser().await;
    let killed: bool = su
        .query_one("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);

    let next =
        tokio::time::timeout(Duration::from_secs(10), client.batch_execute("select 1")).await;
    match next {
        Err(_) => panic!(
            "the client hung after its server was terminated\n{}",
            pgmux.logs()
        ),
        Ok(Ok(())) => panic!("a statement of a transaction whose backend died succeeded"),
        Ok(Err(_)) => {}
    }
    // pgmux itself is fine: still running, the other client and new ones work.
    assert!(
        pgmux.wait_exit(Duration::ZERO).await.is_none(),
        "pgmux exited"
    );
    bystander.batch_execute("select 1").await.unwrap();
    let fresh = pgmux.connect("app", "secret", &db.name).await;
    assert_eq!(
        fresh
            .query_one("select 7", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );
    drop((client, bystander, fresh, pgmux));
    db.drop_db().await;
}

#[tokio::test]
async fn pgmux_recovers_when_postgres_restarts_under_load() {
    let _guard = harness::exclusive();
    let pgmux = Arc::new(pgmux().setting("server_login_retry", "0.2").start().await);
    let stop = Arc::new(AtomicBool::new(false));
    let successes = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..4i32 {
        let (pgmux, stop, successes) = (pgmux.clone(), stop.clone(), successes.clone());
        workers.push(tokio::spawn(async move {
            // Errors while PostgreSQL is down are expected; a worker just reconnects.
            let mut client = None;
            while !stop.load(Ordering::Relaxed) {
                if client.is_none() {
                    client = pgmux.try_connect("app", "secret", "app").await.ok();
                }
                if let Some(c) = &client {
                    match simple_value(c, &format!("select {worker} + 1")).await {
                        Ok(value) => {
                            assert_eq!(value, (worker + 1).to_string(), "a wrong answer");
                            successes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => client = None,
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while successes.load(Ordering::Relaxed) < 8 {
        assert!(
            Instant::now() < deadline,
            "load never got going\n{}",
            pgmux.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::spawn_blocking(|| postgres().restart())
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        if let Ok(client) = pgmux.try_connect("app", "secret", "app").await {
            if let Ok(value) = simple_value(&client, "select 20 + 22").await {
                break Some(value);
            }
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        recovered.as_deref(),
        Some("42"),
        "no working connection 10 s after the restart\n{}",
        pgmux.logs()
    );
    for i in 0..3i32 {
        let client = pgmux.app().await;
        assert_eq!(
            simple_value(&client, &format!("select {i} * 3"))
                .await
                .unwrap(),
            (i * 3).to_string()
        );
    }
    let after_restart = successes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("no worker saw a wrong answer");
    }
    assert!(
        successes.load(Ordering::Relaxed) > after_restart,
        "the load resumed after the restart"
    );
}

#[tokio::test]
async fn cancel_requests_reach_the_running_query_and_only_it() {
    let _guard = harness::shared();
    let db = ScratchDb::create("cancel").await;
    let pgmux = pgmux_for(&db, 1).await;
    let client = Arc::new(pgmux.connect("app", "secret", &db.name).await);
    let running = tokio::spawn({
        let client = client.clone();
        async move {
            let started = Instant::now();
            (
                client.batch_execute("select pg_sleep(30)").await,
                started.elapsed(),
            )
        }
    });
    wait_until_sleeping(&db).await;
    client
        .cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (result, took) = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("cancel worked")
        .unwrap();
    let error = result.expect_err("the canceled query fails");
    assert_eq!(sqlstate(&error), "57014", "{error:?}");
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    assert_eq!(
        client
            .query_one("select 5", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        5,
        "connection still usable"
    );

    // With one server, the idle client's last server is the one `busy` now uses: a cancel
    // from the idle client must not be routed to it.
    let busy = Arc::new(pgmux.connect("app", "secret", &db.name).await);
    let running = tokio::spawn({
        let busy = busy.clone();
        async move {
            busy.query_one("select pg_sleep(1.5)::text, 'done'", &[])
                .await
        }
    });
    wait_until_sleeping(&db).await;
    client
        .cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .unwrap();
    let row = running
        .await
        .unwrap()
        .expect("another client's query is not canceled");
    assert_eq!(row.get::<_, String>(1), "done");
    drop((client, busy, pgmux));
    db.drop_db().await;
}

/// Waits until a `pg_sleep` runs on a backend of `db`.
async fn wait_until_sleeping(db: &ScratchDb) {
    let su = db.direct().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let sql = "select count(*) from pg_stat_activity where datname = current_database()
               and state = 'active' and query like '%pg_sleep%' and pid <> pg_backend_pid()";
    while su.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the pg_sleep query never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A named statement prepared by one client must still work when its next transaction
/// lands on another server (DESIGN fact 3): tokio-postgres prepares (Parse/Describe/Sync),
/// then binds in a later round trip, as asyncpg, pgjdbc and `pgbench -M prepared` do.
#[tokio::test]
async fn prepared_statements_survive_landing_on_another_server() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "2").start().await;
    let (a, b) = (pgmux.app().await, pgmux.app().await);
    let statement = a.prepare("select $1::int * 2").await.unwrap();
    // `b` takes the one idle server, the one holding the statement; `a` gets a new one.
    b.batch_execute("begin; select 1").await.unwrap();
    let row = a.query_one(&statement, &[&21i32]).await;
    let row = row.unwrap_or_else(|e| panic!("prepared statement lost: {e:?}\n{}", pgmux.logs()));
    assert_eq!(row.get::<_, i32>(0), 42);
    b.batch_execute("commit").await.unwrap();
}
