//! `idle_transaction_timeout`, `client_idle_timeout` and `query_timeout`: what the client
//! sees when each fires, and that no server is left behind in a transaction.

use std::time::{Duration, Instant};

use crate::harness::{self, pgmux};
use crate::support::{message, owned_connect, sqlstate, within, ScratchDb};

#[tokio::test]
async fn idle_transaction_timeout_closes_the_client_and_discards_its_server() {
    let _guard = harness::shared();
    let db = ScratchDb::create("idletx").await;
    let pgmux = pgmux()
        .setting("idle_transaction_timeout", "1")
        .database(&db.name, &db.entry())
        .start()
        .await;
    let setup = pgmux.connect("app", "secret", &db.name).await;
    setup.batch_execute("create table t (x int)").await.unwrap();
    let idler = owned_connect(&pgmux.url("app", "secret", &db.name)).await;
    idler
        .client
        .batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    let (client, ended) = idler.ended_within(Duration::from_secs(4)).await;
    let error = ended.expect_err("closed with an error");
    // PgBouncer's text, and its 08P01 rather than PostgreSQL's 25P03.
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "idle transaction timeout".into()),
        "{error:?}"
    );
    assert!(
        client
            .batch_execute("commit")
            .await
            .expect_err("the next statement fails")
            .is_closed(),
        "the connection is closed"
    );

    assert!(
        db.no_backends_within(Some("idle in transaction"), Duration::from_secs(3))
            .await,
        "the timed-out transaction's server was kept open in its transaction"
    );
    assert_eq!(
        setup
            .query_one("select count(*) from t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        0
    );
    drop((setup, client, pgmux));
    db.drop_db().await;
}

#[tokio::test]
async fn client_idle_timeout_disconnects_idle_clients() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("client_idle_timeout", "1").start().await;
    let idle = owned_connect(&pgmux.url("app", "secret", "app")).await;
    idle.client.batch_execute("select 1").await.unwrap();
    let since = Instant::now();
    let (client, ended) = idle.ended_within(Duration::from_secs(4)).await;
    assert!(
        since.elapsed() >= Duration::from_millis(500),
        "closed before being idle for long"
    );
    let error = ended.expect_err("closed with an error");
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "client_idle_timeout".into()),
        "{error:?}"
    );
    assert!(client
        .batch_execute("select 1")
        .await
        .expect_err("closed")
        .is_closed());
}

/// As in PgBouncer, client_idle_timeout spares a client that holds a server, which a
/// session-mode client does for its whole session.
#[tokio::test]
async fn client_idle_timeout_spares_session_mode_clients() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("client_idle_timeout", "1")
        .setting("pool_mode", "\"session\"")
        .start()
        .await;
    let client = pgmux.app().await;
    client.batch_execute("select 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let n: i32 = client
        .query_one("select 7", &[])
        .await
        .unwrap_or_else(|e| panic!("session client closed while idle: {e:?}"))
        .get(0);
    assert_eq!(n, 7);
}

#[tokio::test]
async fn query_timeout_fails_long_queries() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("query_timeout", "1").start().await;
    let client = pgmux.app().await;
    let started = Instant::now();
    let result = within(
        Duration::from_secs(10),
        client.batch_execute("select pg_sleep(5)"),
    )
    .await;
    let error = result
        .expect("the query did not hang")
        .expect_err("a 5 s query fails with query_timeout = 1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "query timeout".into()),
        "{error:?}"
    );
    let fresh = pgmux.app().await;
    assert_eq!(
        fresh
            .query_one("select pg_sleep(0.1)::text, 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(1),
        3
    );
}
