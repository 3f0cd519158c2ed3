//! Control commands, tested for their effect: PAUSE/RESUME (and the signals), KILL,
//! KILL_CLIENT, RECONNECT + WAIT_CLOSE, DISABLE/ENABLE, RELOAD, SET, SHUTDOWN.

use std::time::Duration;

use crate::admin_support::{admin, admin_error, admin_pgmux, held_query, paused, show, ADMIN};
use crate::harness;
use crate::support::{message, sqlstate, within, ScratchDb};

async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn pause_waits_for_running_transactions_then_holds_new_ones_until_resume() {
    let _guard = harness::shared();
    let db = ScratchDb::create("adm_pause").await;
    let pgmux = admin_pgmux().database(&db.name, &db.entry()).start().await;
    let console = admin(&pgmux).await;
    let a = pgmux.connect("app", "secret", &db.name).await;
    let b = pgmux.connect("app", "secret", &db.name).await;
    a.batch_execute("begin; select 1").await.unwrap();
    let pause = tokio::spawn(async move { console.simple_query("PAUSE").await.map(|_| console) });
    // PAUSE (all) does not return while a transaction runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pause.is_finished(),
        "PAUSE returned with a transaction open"
    );
    a.batch_execute("commit").await.unwrap();
    let console = within(Duration::from_secs(10), pause)
        .await
        .expect("PAUSE returns")
        .unwrap()
        .unwrap();
    // Paused: the servers are gone and a new transaction waits.
    assert!(db.no_backends_within(None, Duration::from_secs(5)).await);
    assert_eq!(paused(&console).await, "yes");
    let held = held_query(b).await;
    assert_eq!(
        admin_error(&console, "PAUSE").await.1,
        "already suspended/paused"
    );
    console.simple_query("RESUME").await.unwrap();
    held.runs_within(Duration::from_secs(10)).await;
    assert_eq!(
        admin_error(&console, "RESUME").await.1,
        "pooler is not paused/suspended"
    );
    assert_eq!(
        admin_error(&console, "PAUSE nosuch").await.1,
        "no such database: nosuch"
    );
    assert_eq!(
        admin_error(&console, "RESUME app").await.1,
        "database app is not paused"
    );
    drop(pgmux);
    db.drop_db().await;
}

#[tokio::test]
async fn sigusr1_pauses_and_sigusr2_resumes() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    let console = admin(&pgmux).await;
    let app = pgmux.app().await;
    pgmux.signal("USR1");
    assert!(
        pgmux
            .wait_for_log("got SIGUSR1", Duration::from_secs(5))
            .await
    );
    assert_eq!(paused(&console).await, "yes");
    let held = held_query(app).await;
    pgmux.signal("USR2");
    held.runs_within(Duration::from_secs(10)).await;
}

/// The next query of a client the console killed fails: with PgBouncer's FATAL if the
/// client reads it as that query's reply, as a closed connection if it read it before.
fn assert_killed(error: &tokio_postgres::Error, reason: &str) {
    assert!(
        error.is_closed() || (sqlstate(error), message(error)) == ("57P01".into(), reason.into()),
        "{error:?}"
    );
}

#[tokio::test]
async fn kill_client_ends_that_client_only_and_kill_db_drops_and_pauses_the_database() {
    let _guard = harness::shared();
    let db = ScratchDb::create("adm_kill").await;
    let pgmux = admin_pgmux().database(&db.name, &db.entry()).start().await;
    let console = admin(&pgmux).await;
    let victim = pgmux.connect("app", "secret", &db.name).await;
    victim
        .batch_execute("set application_name = 'victim'; select 1")
        .await
        .unwrap();
    let bystander = pgmux.connect("app", "secret", &db.name).await;
    bystander.simple_query("select 1").await.unwrap();
    // The console sees a client's new application_name once its server is released,
    // a moment after the client has its reply.
    let mut id = None;
    for _ in 0..50 {
        id = show(&console, "SHOW CLIENTS")
            .await
            .get("application_name", "victim", "id");
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("victim listed");
    console
        .simple_query(&format!("KILL_CLIENT {id}"))
        .await
        .unwrap();
    let error = victim.simple_query("select 1").await.expect_err("killed");
    assert_killed(&error, "admin forced disconnect");
    bystander
        .simple_query("select 1")
        .await
        .expect("others unaffected");
    assert_eq!(
        admin_error(&console, &format!("KILL_CLIENT {id}")).await.1,
        "client not found"
    );
    assert_eq!(
        admin_error(&console, "KILL_CLIENT x").await.1,
        "invalid client pointer supplied"
    );

    // KILL db: clients and servers go at once, even mid-transaction.
    bystander.batch_execute("begin; select 1").await.unwrap();
    console
        .simple_query(&format!("KILL {}", db.name))
        .await
        .unwrap();
    let error = bystander
        .simple_query("select 1")
        .await
        .expect_err("KILL closes the database's clients");
    assert_killed(&error, "database removed");
    assert!(db.no_backends_within(None, Duration::from_secs(5)).await);
    let databases = show(&console, "SHOW DATABASES").await;
    assert_eq!(databases.num("name", &db.name, "paused"), 1);
    // New clients of a killed database wait for RESUME.
    let late = pgmux.connect("app", "secret", &db.name).await;
    let held = held_query(late).await;
    console
        .simple_query(&format!("RESUME {}", db.name))
        .await
        .unwrap();
    held.runs_within(Duration::from_secs(10)).await;
    drop(pgmux);
    db.drop_db().await;
}

#[tokio::test]
async fn reconnect_replaces_servers_once_released_and_wait_close_waits_for_it() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux()
        .setting("default_pool_size", "1")
        .start()
        .await;
    let console = admin(&pgmux).await;
    let app = pgmux.app().await;
    let before = backend_pid(&app).await;
    app.batch_execute("begin").await.unwrap();
    console.simple_query("RECONNECT app").await.unwrap();
    let servers = show(&console, "SHOW SERVERS").await;
    assert_eq!(servers.num("database", "app", "close_needed"), 1);
    let waiter = pgmux.connect(ADMIN.0, ADMIN.1, "pgbouncer").await;
    let wait_close = tokio::spawn(async move { waiter.simple_query("WAIT_CLOSE app").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !wait_close.is_finished(),
        "WAIT_CLOSE returned while the old server is in use"
    );
    // The running transaction is not disturbed; the server closes once released.
    app.batch_execute("commit").await.unwrap();
    within(Duration::from_secs(10), wait_close)
        .await
        .expect("WAIT_CLOSE returns")
        .unwrap()
        .unwrap();
    assert_ne!(
        backend_pid(&app).await,
        before,
        "a new server after RECONNECT"
    );
}

#[tokio::test]
async fn disable_refuses_new_logins_and_enable_allows_them_again() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().start().await;
    let console = admin(&pgmux).await;
    let existing = pgmux.app().await;
    console.simple_query("DISABLE app").await.unwrap();
    let error = pgmux
        .try_connect("app", "secret", "app")
        .await
        .expect_err("DISABLE refuses new logins");
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "database \"app\" is disabled".into())
    );
    existing
        .simple_query("select 1")
        .await
        .expect("existing clients keep working");
    assert_eq!(
        show(&console, "SHOW DATABASES")
            .await
            .num("name", "app", "disabled"),
        1
    );
    console.simple_query("ENABLE app").await.unwrap();
    pgmux
        .try_connect("app", "secret", "app")
        .await
        .expect("enabled again");
    assert_eq!(
        admin_error(&console, "DISABLE").await.1,
        "a database is required"
    );
    assert_eq!(
        admin_error(&console, "DISABLE pgbouncer").await.1,
        "cannot disable admin db: pgbouncer"
    );
}

#[tokio::test]
async fn reload_reports_a_bad_file_and_applies_a_good_one_and_set_changes_only_changeable_settings()
{
    let _guard = harness::shared();
    let pgmux = admin_pgmux()
        .setting("default_pool_size", "5")
        .start()
        .await;
    let console = admin(&pgmux).await;
    let good = std::fs::read_to_string(pgmux.config_path()).unwrap();
    pgmux.rewrite_config(&format!("{good}\nnot_a_setting = 1\n"));
    // PgBouncer's answer, word for word; the reason is in DETAIL (and in the log).
    let error = console.simple_query("RELOAD").await.unwrap_err();
    let db = error.as_db_error().unwrap();
    assert_eq!(
        (db.code().code(), db.message()),
        ("F0000", "RELOAD failed, see logs for additional details")
    );
    assert!(
        db.detail().is_some_and(|d| d.contains("not_a_setting")),
        "{db:?}"
    );
    let value =
        |shown: &crate::admin_support::Shown| shown.get("key", "default_pool_size", "value");
    assert_eq!(
        value(&show(&console, "SHOW CONFIG").await).as_deref(),
        Some("5")
    );
    pgmux.rewrite_config(&good.replace("default_pool_size = 5", "default_pool_size = 9"));
    console.simple_query("RELOAD").await.unwrap();
    assert_eq!(
        value(&show(&console, "SHOW CONFIG").await).as_deref(),
        Some("9")
    );
    assert_eq!(
        show(&console, "SHOW DATABASES")
            .await
            .num("name", "app", "pool_size"),
        9
    );

    console
        .simple_query("SET default_pool_size = 3")
        .await
        .unwrap();
    assert_eq!(
        value(&show(&console, "SHOW CONFIG").await).as_deref(),
        Some("3")
    );
    console
        .simple_query("SET query_wait_timeout = '7s'")
        .await
        .unwrap();
    let config = show(&console, "SHOW CONFIG").await;
    assert_eq!(
        config.get("key", "query_wait_timeout", "value").as_deref(),
        Some("7")
    );
    assert_eq!(
        admin_error(&console, "SET listen_port = 1").await.1,
        "SET failed"
    );
    assert_eq!(
        admin_error(&console, "SET default_pool_size = many")
            .await
            .1,
        "SET failed"
    );
    assert_eq!(
        admin_error(&console, "SET nonsense = 1").await.1,
        "SET failed"
    );
}

#[tokio::test]
async fn shutdown_ends_the_process_and_wait_for_clients_waits_for_them() {
    let _guard = harness::shared();
    let mut pgmux = admin_pgmux().start().await;
    let console = admin(&pgmux).await;
    console
        .simple_query("SHUTDOWN")
        .await
        .expect_err("no answer: the process exits");
    assert!(
        pgmux.wait_exit(Duration::from_secs(10)).await.is_some(),
        "pgmux exited"
    );

    let mut pgmux = admin_pgmux().start().await;
    let console = admin(&pgmux).await;
    let app = pgmux.app().await;
    app.batch_execute("begin; select 1").await.unwrap();
    console
        .simple_query("SHUTDOWN WAIT_FOR_CLIENTS")
        .await
        .unwrap();
    let error = pgmux
        .try_connect("app", "secret", "app")
        .await
        .expect_err("no new clients");
    // Refused or reset by the closing listener, or, when the connection raced the close,
    // told "pooler is shutting down".
    let refused_at_connect = error.code().is_none()
        && std::error::Error::source(&error)
            .and_then(|cause| cause.downcast_ref::<std::io::Error>())
            .is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                )
            });
    assert!(
        refused_at_connect || sqlstate(&error) == "57P01",
        "{error:?}"
    );
    assert!(
        pgmux.wait_exit(Duration::from_millis(300)).await.is_none(),
        "waits for the transaction"
    );
    app.batch_execute("commit").await.unwrap();
    drop(app);
    drop(console);
    assert!(pgmux.wait_exit(Duration::from_secs(10)).await.is_some());
}
