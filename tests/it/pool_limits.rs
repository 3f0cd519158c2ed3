//! The pool's own life: servers kept warm (min_pool_size), retired when idle or old
//! (server_idle_timeout, server_lifetime), extra ones for long waiters
//! (reserve_pool_size), and one ceiling over every pool of a database
//! (max_db_connections).

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::harness::{self, pgmux, postgres};
use crate::pooling::{
    backend_pid, backends, database_entry, dedicated_database, scalar, wait_for_backends,
    BackendSampler,
};

#[tokio::test]
async fn min_pool_size_opens_servers_without_any_query() {
    let _guard = harness::shared();
    let db = dedicated_database("minpool").await;
    let pgmux = pgmux()
        .setting("min_pool_size", "3")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let _client = pgmux.connect("app", "secret", &db).await;
    let su = postgres().superuser().await;
    let seen = wait_for_backends(&su, &db, 3, Duration::from_secs(5)).await;
    assert_eq!(
        seen, 3,
        "min_pool_size = 3 but {seen} backends after a login"
    );
    // Warm servers are topped up to the minimum, not beyond.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(backends(&su, &db, "%").await, 3);
}

/// PAUSE closes the idle servers and, as in PgBouncer, opens none to keep
/// `min_pool_size` until RESUME.
#[tokio::test]
async fn pause_holds_min_pool_size_top_ups_until_resume() {
    let _guard = harness::shared();
    let db = dedicated_database("pausemin").await;
    let pgmux = pgmux()
        .setting("min_pool_size", "2")
        .setting("admin_users", "[\"app\"]")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let _client = pgmux.connect("app", "secret", &db).await;
    let su = postgres().superuser().await;
    assert_eq!(
        wait_for_backends(&su, &db, 2, Duration::from_secs(5)).await,
        2
    );

    let console = pgmux.connect("app", "secret", "pgbouncer").await;
    console.simple_query("PAUSE").await.unwrap();
    assert_eq!(
        wait_for_backends(&su, &db, 0, Duration::from_secs(5)).await,
        0
    );
    // Several janitor ticks: still nothing reopened.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(backends(&su, &db, "%").await, 0, "top-ups ran during PAUSE");

    console.simple_query("RESUME").await.unwrap();
    assert_eq!(
        wait_for_backends(&su, &db, 2, Duration::from_secs(5)).await,
        2
    );
}

#[tokio::test]
async fn idle_servers_close_after_server_idle_timeout() {
    let _guard = harness::shared();
    let db = dedicated_database("idlepool").await;
    let pgmux = pgmux()
        .setting("server_idle_timeout", "1")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(pgmux.connect("app", "secret", &db).await);
    }
    let burst = clients
        .iter()
        .map(|c| scalar(c, "select pg_sleep(0.3)::text"));
    assert!(join_all(burst).await.iter().all(Result::is_ok));
    let su = postgres().superuser().await;
    let after_burst = backends(&su, &db, "%").await;
    assert!(
        after_burst >= 2,
        "the burst should have opened several servers, saw {after_burst}"
    );
    // Clients stay connected; their servers are idle and must go.
    let left = wait_for_backends(&su, &db, 0, Duration::from_secs(6)).await;
    assert_eq!(left, 0, "idle servers survived server_idle_timeout = 1");
    assert_eq!(
        scalar(&clients[0], "select 'back'").await.unwrap(),
        "back",
        "a new server opens on demand"
    );
}

#[tokio::test]
async fn servers_are_replaced_after_server_lifetime() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("default_pool_size", "1")
        .setting("server_lifetime", "1")
        .start()
        .await;
    let client = pgmux.app().await;
    let first = backend_pid(&client).await;
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut latest = first;
    while latest == first && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        latest = backend_pid(&client).await;
    }
    assert_ne!(
        latest, first,
        "the same server after more than server_lifetime = 1 s"
    );
    // The old server is closed, not just set aside.
    let su = postgres().superuser().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let alive = loop {
        let row = su
            .query_one(
                "select count(*) from pg_stat_activity where pid = $1",
                &[&first],
            )
            .await
            .unwrap();
        let alive: i64 = row.get(0);
        if alive == 0 || Instant::now() >= deadline {
            break alive;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alive, 0, "the retired backend {first} is still connected");
}

#[tokio::test]
async fn a_long_waiter_gets_a_reserve_server_after_reserve_pool_timeout() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("default_pool_size", "1")
        .setting("reserve_pool_size", "1")
        .setting("reserve_pool_timeout", "1")
        .start()
        .await;
    let holder = pgmux.app().await;
    holder.batch_execute("begin; select 1").await.unwrap();
    let holder_pid = backend_pid(&holder).await;

    let waiter = pgmux.app().await;
    let started = Instant::now();
    let query = tokio::spawn(async move { (backend_pid(&waiter).await, started.elapsed()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !query.is_finished(),
        "served before reserve_pool_timeout with the only server busy"
    );
    let (pid, waited) = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .expect("the waiter never got a reserve server")
        .unwrap();
    assert_ne!(pid, holder_pid);
    assert!(
        waited >= Duration::from_millis(900),
        "reserve server handed out after {waited:?}"
    );
    assert!(
        pgmux
            .wait_for_log(
                "taking connection from reserve_pool",
                Duration::from_secs(2)
            )
            .await,
        "no reserve_pool log line\n{}",
        pgmux.logs()
    );
    // The holder's transaction was never disturbed.
    assert_eq!(backend_pid(&holder).await, holder_pid);
    holder.batch_execute("commit").await.unwrap();
}

/// A pgmux with pools for users `app` and `other` on one dedicated database, 5 servers
/// per pool but at most 2 for the database, and a table both users may write.
async fn two_users_on_one_capped_database() -> (harness::Pgmux, String, String) {
    let db = dedicated_database("maxdb").await;
    let pgmux = pgmux()
        .setting("default_pool_size", "5")
        .setting("max_db_connections", "2")
        .database(&db, &database_entry(&db))
        .start()
        .await;
    let table = harness::unique_name("maxdb");
    let setup = pgmux.connect("app", "secret", &db).await;
    setup
        .batch_execute(&format!(
            "create table {table} (who text); grant all on {table} to other"
        ))
        .await
        .unwrap();
    (pgmux, db, table)
}

#[tokio::test]
async fn max_db_connections_caps_backends_over_all_users_and_waiters_proceed() {
    let _guard = harness::shared();
    let (pgmux, db, table) = two_users_on_one_capped_database().await;
    let su = postgres().superuser().await;
    let sampler = BackendSampler::start(&db).await;

    let a = pgmux.connect("app", "secret", &db).await;
    let b = pgmux.connect("other", "othersecret", &db).await;
    a.batch_execute(&format!("begin; insert into {table} values ('a')"))
        .await
        .unwrap();
    b.batch_execute(&format!("begin; insert into {table} values ('b')"))
        .await
        .unwrap();
    let mut waiting = Vec::new();
    for (user, password, who) in [("app", "secret", "c"), ("other", "othersecret", "d")] {
        let client = pgmux.connect(user, password, &db).await;
        let insert = format!("insert into {table} values ('{who}')");
        waiting.push(tokio::spawn(
            async move { client.batch_execute(&insert).await },
        ));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        waiting.iter().all(|t| !t.is_finished()),
        "a third server was opened for the database"
    );
    assert_eq!(backends(&su, &db, "%").await, 2);

    a.batch_execute("commit").await.unwrap();
    b.batch_execute("commit").await.unwrap();
    for task in waiting {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("waiter never served")
            .unwrap()
            .unwrap();
    }
    let max = sampler.finish().await;
    assert!(
        max <= 2,
        "{max} backends for {db} with max_db_connections = 2"
    );
    assert_eq!(
        scalar(
            &a,
            &format!("select string_agg(who, '' order by who) from {table}")
        )
        .await
        .unwrap(),
        "abcd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_max_db_connections_an_idle_server_of_another_user_makes_room() {
    let _guard = harness::shared();
    let (pgmux, db, table) = two_users_on_one_capped_database().await;
    let su = postgres().superuser().await;
    // `app` ends up with two idle servers, the database's whole allowance. `other` then
    // needs two servers at once, which fit only if pgmux closes idle `app` servers
    // (PgBouncer evicts an idle server of another pool of the database in this case).
    let app_clients = [
        pgmux.connect("app", "secret", &db).await,
        pgmux.connect("app", "secret", &db).await,
    ];
    let both = app_clients
        .iter()
        .map(|c| scalar(c, "select pg_sleep(0.2)::text"));
    assert!(join_all(both).await.iter().all(Result::is_ok));
    // Even logging in needs a server for a new pool (its parameters greet the client).
    let mut others = Vec::new();
    for _ in 0..2 {
        let login = tokio::time::timeout(
            Duration::from_secs(5),
            pgmux.try_connect("other", "othersecret", &db),
        )
        .await;
        match login {
            Ok(Ok(client)) => others.push(client),
            outcome => panic!(
                "`other` could not log in while idle `app` servers held the database's slots: {outcome:?}\n{}",
                pgmux.logs()
            ),
        }
    }
    let (e, f) = (&others[0], &others[1]);
    for (client, who) in [
        (e, "begin; insert into {table} values ('e')"),
        (f, "insert into {table} values ('f')"),
    ] {
        let sql = who.replace("{table}", &table);
        let served = tokio::time::timeout(Duration::from_secs(5), client.batch_execute(&sql)).await;
        assert!(
            matches!(served, Ok(Ok(()))),
            "`other` waited while idle `app` servers held the database's slots ({sql}): {served:?}\n{}",
            pgmux.logs()
        );
    }
    e.batch_execute("commit").await.unwrap();
    assert!(backends(&su, &db, "%").await <= 2);

    // Under load from both users every transaction completes and the cap holds.
    let sampler = BackendSampler::start(&db).await;
    let mut clients = Vec::new();
    for i in 0..8 {
        let (user, password) = if i % 2 == 0 {
            ("app", "secret")
        } else {
            ("other", "othersecret")
        };
        clients.push(pgmux.connect(user, password, &db).await);
    }
    let work = clients.iter().map(|client| {
        let sql =
            format!("begin; insert into {table} values ('load'); select pg_sleep(0.02); commit");
        async move {
            for _ in 0..5 {
                client.batch_execute(&sql).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(30), join_all(work))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "two users' load on a capped database stalled\n{}",
                pgmux.logs()
            )
        });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let max = sampler.finish().await;
    assert!(
        max <= 2,
        "{max} backends for {db} with max_db_connections = 2"
    );
    let count = scalar(
        e,
        &format!("select count(*) from {table} where who = 'load'"),
    )
    .await
    .unwrap();
    assert_eq!(count, "40");
}
