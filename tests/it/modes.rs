//! Pool modes: what a client keeps between transactions in session, transaction and
//! statement mode, what the next client on the same server must not see, and which
//! `pool_mode` (user, database, global) wins.

use std::time::{Duration, Instant};

use crate::harness::{self, pgmux, postgres, Pgmux};
use crate::pooling::{
    backend_pid, backends, closed_soon, database_entry, dedicated_database, message, scalar,
    sqlstate,
};

async fn connect_as_app_named(
    pgmux: &Pgmux,
    db: &str,
    application_name: &str,
) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = pgmux.url("app", "secret", db).parse().unwrap();
    config.application_name(application_name);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[tokio::test]
async fn session_mode_keeps_session_state_for_its_client_and_resets_it_for_the_next() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("pool_mode", "\"session\"")
        .setting("default_pool_size", "1")
        .start()
        .await;
    let first = pgmux.app().await;
    first
        .batch_execute(
            "set application_name = 'sess_keep'; set search_path = pg_catalog, public;
             create temp table sess_tmp (x int)",
        )
        .await
        .unwrap();
    let pid = backend_pid(&first).await;
    for i in 0..3 {
        first
            .batch_execute(&format!("begin; insert into sess_tmp values ({i}); commit"))
            .await
            .unwrap();
        assert_eq!(
            scalar(&first, "show application_name").await.unwrap(),
            "sess_keep"
        );
        assert_eq!(
            scalar(&first, "show search_path").await.unwrap(),
            "pg_catalog, public"
        );
        assert_eq!(
            backend_pid(&first).await,
            pid,
            "session mode moved the client to another server"
        );
    }
    assert_eq!(
        scalar(&first, "select count(*) from sess_tmp")
            .await
            .unwrap(),
        "3"
    );
    drop(first);

    // The only server goes to the next client, reset: none of the first one's state.
    let second = pgmux.app().await;
    assert_eq!(
        backend_pid(&second).await,
        pid,
        "expected the same (only) server, reset, not a new one"
    );
    assert_ne!(
        scalar(&second, "show application_name").await.unwrap(),
        "sess_keep"
    );
    assert_eq!(
        scalar(&second, "show search_path").await.unwrap(),
        "\"$user\", public"
    );
    let error = second
        .simple_query("select * from sess_tmp")
        .await
        .expect_err("temp table survived");
    assert_eq!(sqlstate(&error), "42P01", "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_gives_each_client_its_own_startup_parameters_on_a_shared_server() {
    let _guard = harness::shared();
    let db = dedicated_database("txparams").await;
    let pgmux = pgmux()
        .setting("default_pool_size", "1")
        .database(&db, &database_entry(&db))
        .start()
        .await;

    // Two psql processes with different TimeZone/application_name startup parameters
    // (PGTZ, PGAPPNAME), 25 one-statement transactions each, sharing the one server.
    let psql_runs: Vec<_> = [
        ("Asia/Tokyo", "tz_tokyo"),
        ("America/New_York", "tz_newyork"),
    ]
    .into_iter()
    .map(|(tz, app)| {
        let mut cmd = pgmux.tool_command(&postgres().bin("psql"), "app", "secret", &db);
        cmd.env("PGTZ", tz)
            .env("PGAPPNAME", app)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        for _ in 0..25 {
            cmd.args([
                "-c",
                "select current_setting('TimeZone') || '/' || current_setting('application_name') \
                     from pg_sleep(0.01)",
            ]);
        }
        let expected = format!("{tz}/{app}");
        tokio::task::spawn_blocking(move || {
            (
                expected,
                harness::run_tool(&mut cmd, Duration::from_secs(60)),
            )
        })
    })
    .collect();

    // Meanwhile two tokio-postgres clients alternate on the same server.
    let alpha = connect_as_app_named(&pgmux, &db, "alpha").await;
    let beta = connect_as_app_named(&pgmux, &db, "beta").await;
    for _ in 0..20 {
        assert_eq!(
            scalar(&alpha, "show application_name").await.unwrap(),
            "alpha"
        );
        assert_eq!(
            scalar(&beta, "show application_name").await.unwrap(),
            "beta"
        );
    }
    // A SET outside a transaction sticks for that client's later transactions only.
    alpha
        .batch_execute("set application_name = 'alpha_renamed'")
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(
            scalar(&beta, "show application_name").await.unwrap(),
            "beta"
        );
        assert_eq!(
            scalar(&alpha, "show application_name").await.unwrap(),
            "alpha_renamed"
        );
    }
    assert_eq!(
        backend_pid(&alpha).await,
        backend_pid(&beta).await,
        "the pool of 1 must be shared"
    );

    for run in psql_runs {
        let (expected, out) = run.await.unwrap();
        out.assert_success();
        let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 25, "{}", out.stdout);
        assert!(
            lines.iter().all(|l| *l == expected),
            "expected every line {expected}:\n{}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn statement_mode_runs_single_statements_and_refuses_transaction_blocks() {
    let _guard = harness::shared();
    let db = dedicated_database("stmtmode").await;
    let pgmux = pgmux()
        .setting("pool_mode", "\"statement\"")
        .setting("default_pool_size", "1")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let client = pgmux.connect("app", "secret", &db).await;
    assert_eq!(scalar(&client, "select 41 + 1").await.unwrap(), "42");
    // As in PgBouncer, the refusal is the answer to BEGIN itself (its ReadyForQuery is
    // never forwarded), with PgBouncer's SQLSTATE 08P01: clients such as PostgREST
    // recognise this error by code and text.
    let error = client
        .batch_execute("begin")
        .await
        .expect_err("begin must be refused in statement mode");
    assert_eq!(sqlstate(&error), "08P01", "{error:?}");
    assert_eq!(
        message(&error),
        "transaction blocks not allowed in statement pooling mode"
    );
    assert!(
        closed_soon(&client).await,
        "the client that tried a transaction block stays connected"
    );

    // The server that saw the BEGIN is not left idle in a transaction, and the pool of 1
    // still serves the next client.
    let su = postgres().superuser().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while backends(&su, &db, "idle in transaction%").await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        backends(&su, &db, "idle in transaction%").await,
        0,
        "a server was left in a transaction"
    );
    let next = pgmux.connect("app", "secret", &db).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        scalar(&next, "select 'still served'"),
    )
    .await
    .expect("the pool's only server was lost");
    assert_eq!(answer.unwrap(), "still served");
}

/// Whether a second client of (user, db) waits while the first one is connected and
/// idle: true in session mode (the first keeps its server), false in transaction mode.
/// Needs a pool size of 1.
async fn second_client_waits_for_the_first(
    pgmux: &Pgmux,
    user: &str,
    password: &str,
    db: &str,
) -> bool {
    let first = pgmux.connect(user, password, db).await;
    scalar(&first, "select 1").await.unwrap();
    let second = pgmux.connect(user, password, db).await;
    let query = tokio::spawn(async move { scalar(&second, "select 2").await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let waited = !query.is_finished();
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .unwrap_or_else(|_| {
            panic!("{user}@{db}: the second client was not served after the first left")
        });
    assert_eq!(answer.unwrap().unwrap(), "2");
    waited
}

#[tokio::test]
async fn per_user_and_per_database_pool_mode_override_the_global_one() {
    let _guard = harness::shared();
    let body = "host = \"127.0.0.1\"\nport = {PGPORT}\ndbname = \"app\"";
    let pgmux = pgmux()
        .setting("pool_mode", "\"transaction\"")
        .setting("default_pool_size", "1")
        .database("sessdb", &format!("{body}\npool_mode = \"session\""))
        .database("plaindb", body)
        .user(
            "other",
            "password = \"othersecret\"\npool_mode = \"session\"",
        )
        .start()
        .await;
    assert!(
        !second_client_waits_for_the_first(&pgmux, "app", "secret", "plaindb").await,
        "global transaction mode: an idle client must not keep its server"
    );
    assert!(
        second_client_waits_for_the_first(&pgmux, "app", "secret", "sessdb").await,
        "the database's pool_mode = session was ignored"
    );
    assert!(
        second_client_waits_for_the_first(&pgmux, "other", "othersecret", "plaindb").await,
        "the user's pool_mode = session was ignored"
    );

    // And the other way round: a transaction-mode database under a global session mode.
    let pgmux = harness::pgmux()
        .setting("pool_mode", "\"session\"")
        .setting("default_pool_size", "1")
        .database("txdb", &format!("{body}\npool_mode = \"transaction\""))
        .start()
        .await;
    assert!(
        second_client_waits_for_the_first(&pgmux, "app", "secret", "app").await,
        "global session mode: a connected client keeps its server"
    );
    assert!(
        !second_client_waits_for_the_first(&pgmux, "app", "secret", "txdb").await,
        "the database's pool_mode = transaction was ignored"
    );
}
