//! Named prepared statements in transaction mode with a pool smaller than the number of
//! clients, so statements must follow clients from server to server.

use std::time::Duration;

use futures_util::future::join_all;

use crate::harness::{self, pgmux, run_tool};

#[tokio::test]
async fn statements_prepared_once_work_on_every_server() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "2").start().await;
    let clients = join_all((0..12).map(|_| pgmux.app())).await;
    let work = clients.iter().enumerate().map(|(i, client)| async move {
        let add = client
            .prepare(&format!("select $1::int + {i}"))
            .await
            .unwrap();
        for n in 0..25 {
            let row = client.query_one(&add, &[&n]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), n + i as i32);
        }
    });
    join_all(work).await;
}

#[tokio::test]
async fn a_statement_is_prepared_again_on_the_server_a_client_moves_to() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "2").start().await;
    let client = pgmux.app().await;
    let [first, second] = [pgmux.app().await, pgmux.app().await];
    let add = client.prepare("select $1::int + 100").await.unwrap();
    let mut backends = std::collections::HashSet::new();
    for n in 0..3 {
        // `first` holds one server, so the client runs on the other; then `second` takes
        // that one and `first` lets go, so the client's next Bind lands on the server it
        // has not used — whichever order the pool hands out idle servers in.
        first.batch_execute("begin; select 1").await.unwrap();
        backends.insert(run_on_one_server(&client, &add, n).await);
        second.batch_execute("begin; select 1").await.unwrap();
        first.batch_execute("commit").await.unwrap();
        backends.insert(run_on_one_server(&client, &add, n).await);
        second.batch_execute("commit").await.unwrap();
    }
    assert_eq!(
        backends.len(),
        2,
        "the client ran its statement on both servers"
    );
}

/// Runs the statement and reads the backend pid, both while another client holds the
/// pool's other server, so both run on the same (only free) server.
async fn run_on_one_server(
    client: &tokio_postgres::Client,
    add: &tokio_postgres::Statement,
    n: i32,
) -> i32 {
    let row = client.query_one(add, &[&n]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), n + 100);
    client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_small_statement_cache_evicts_and_re_prepares() {
    let _guard = harness::shared();
    let pgmux = crate::admin_support::admin_pgmux()
        .setting("default_pool_size", "1")
        .setting("max_prepared_statements", "3")
        .start()
        .await;
    let client = pgmux.app().await;
    let mut statements = Vec::new();
    for i in 0..10 {
        statements.push(
            client
                .prepare(&format!("select {i} + $1::int"))
                .await
                .unwrap(),
        );
    }
    for round in 0..3 {
        for (i, statement) in statements.iter().enumerate() {
            let row = client.query_one(statement, &[&round]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), i as i32 + round);
        }
    }
    // Only up to the cache size may live on the server at once.
    let count = client
        .query_one("select count(*) from pg_prepared_statements", &[])
        .await
        .unwrap();
    assert!(
        count.get::<_, i64>(0) <= 3,
        "cache bound exceeded: {}",
        count.get::<_, i64>(0)
    );
    // An operator sees the cache at work: re-prepares evicted others, Parses of statements
    // still prepared were answered from the cache.
    let console = crate::admin_support::admin(&pgmux).await;
    let shown = crate::admin_support::show(&console, "SHOW PREPARED_STATEMENTS").await;
    // Ten statements, plus the one tokio-postgres prepared for the count above.
    assert_eq!(shown.num("database", "app", "client_parses"), 11);
    assert!(
        shown.num("database", "app", "evictions") >= 7,
        "10 statements through a cache of 3"
    );
    assert!(shown.num("database", "app", "server_parses") >= 10);
    assert_eq!(shown.num("database", "app", "max_prepared_statements"), 3);
}

#[tokio::test]
async fn a_failing_prepare_reports_its_own_error_and_the_client_goes_on() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let client = pgmux.app().await;
    let error = client.prepare("selec 1").await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "42601");
    let ok = client.prepare("select 7").await.unwrap();
    assert_eq!(
        client.query_one(&ok, &[]).await.unwrap().get::<_, i32>(0),
        7
    );
    // The bad statement did not poison the server for another client.
    let other = pgmux.app().await;
    let statement = other.prepare("select 8").await.unwrap();
    assert_eq!(
        other
            .query_one(&statement, &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        8
    );
}

#[tokio::test]
async fn closed_statements_are_gone_for_the_client_and_discard_all_clears_them() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let client = pgmux.app().await;
    let statement = client.prepare("select 1").await.unwrap();
    client.query_one(&statement, &[]).await.unwrap();
    // DISCARD ALL drops the session's statements, as it would on a direct connection.
    client.batch_execute("discard all").await.unwrap();
    let error = client.query_one(&statement, &[]).await.unwrap_err();
    assert_eq!(
        error.code().unwrap().code(),
        "26000",
        "prepared statement does not exist"
    );
    // Statements prepared after that work again, also for other clients on that server.
    let again = client.prepare("select 2").await.unwrap();
    assert_eq!(
        client
            .query_one(&again, &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    drop(again); // tokio-postgres sends Close for a dropped statement
    let other = pgmux.app().await;
    let same_text = other.prepare("select 2").await.unwrap();
    assert_eq!(
        other
            .query_one(&same_text, &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn pgbench_prepared_with_200_clients_on_a_pool_of_5_has_no_failures() {
    let _guard = harness::shared();
    let database = harness::unique_name("bench_prepared");
    let superuser = harness::postgres().superuser().await;
    superuser
        .batch_execute(&format!("create database {database} owner app"))
        .await
        .unwrap();
    let pgmux = pgmux()
        .setting("default_pool_size", "5")
        .setting("max_client_conn", "500")
        .database(
            &database,
            &format!("host = \"127.0.0.1\"\nport = {{PGPORT}}\ndbname = \"{database}\""),
        )
        .start()
        .await;
    let pgbench = harness::postgres().bin("pgbench");
    let init = run_tool(
        pgmux
            .tool_command(&pgbench, "app", "secret", &database)
            .args(["-i", "-s", "1", "-q"]),
        Duration::from_secs(60),
    );
    init.assert_success();
    let run = run_tool(
        // -S: pgbench 15 prepares each statement with a blocking PQprepare on first use; in
        // the TPC-B script other clients of the same pgbench thread sit inside BEGIN…END
        // holding every pooled server meanwhile, so that script deadlocks pgbench itself
        // behind any transaction pooler whose pool is smaller than its clients per thread.
        pgmux
            .tool_command(&pgbench, "app", "secret", &database)
            .args(["-S", "-M", "prepared", "-c", "200", "-j", "2", "-T", "5"]),
        Duration::from_secs(90),
    );
    run.assert_success();
    assert!(
        run.stdout.contains("number of failed transactions: 0"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let processed = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|n| n.split('/').next()?.trim().parse::<u64>().ok())
        .expect("pgbench reports processed transactions");
    assert!(processed > 200, "{}", run.stdout);
}

#[tokio::test]
async fn many_clients_preparing_the_same_text_on_one_server_all_succeed() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    // Each tokio-postgres connection names its first statement "s0": the same client-side
    // name and text from every client, answered from the server's cache after the first.
    for round in 0..4 {
        let client = pgmux.app().await;
        let statement = client.prepare("select 40 + $1::int").await.unwrap();
        let row = client.query_one(&statement, &[&round]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 40 + round);
    }
}

async fn value(client: &tokio_postgres::Client, sql: &str) -> String {
    let messages = client.simple_query(sql).await.unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test]
async fn sql_prepare_execute_deallocate_act_on_each_clients_own_statements() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let adder = pgmux.app().await;
    let multiplier = pgmux.app().await;
    // The same name, different statements, one server between them.
    adder
        .batch_execute("PREPARE calc (int, int) AS select $1 + $2")
        .await
        .unwrap();
    multiplier
        .batch_execute("prepare calc(int, int) as select $1 * $2;")
        .await
        .unwrap();
    for round in 1..4 {
        assert_eq!(
            value(&adder, &format!("EXECUTE calc({round}, 10)")).await,
            (round + 10).to_string()
        );
        assert_eq!(
            value(&multiplier, &format!("execute calc ({round}, 10)")).await,
            (round * 10).to_string()
        );
    }
    adder.batch_execute("DEALLOCATE calc").await.unwrap();
    let error = adder.batch_execute("EXECUTE calc(1, 2)").await.unwrap_err();
    assert_eq!(
        error.code().unwrap().code(),
        "26000",
        "the adder's statement is gone"
    );
    assert_eq!(
        value(&multiplier, "EXECUTE calc(3, 3)").await,
        "9",
        "the other client keeps its own"
    );
    // DEALLOCATE ALL empties the server; the other client's statement comes back on demand.
    adder.batch_execute("DEALLOCATE ALL").await.unwrap();
    assert_eq!(value(&multiplier, "EXECUTE calc(4, 4)").await, "16");
    // A failing PREPARE leaves nothing behind.
    let error = adder
        .batch_execute("PREPARE broken AS selec 1")
        .await
        .unwrap_err();
    assert_eq!(error.code().unwrap().code(), "42601");
    let error = adder.batch_execute("EXECUTE broken").await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "26000");
}

#[tokio::test]
async fn sql_prepared_statements_follow_their_client_across_servers() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "2").start().await;
    let clients = join_all((0..6).map(|_| pgmux.app())).await;
    for (i, client) in clients.iter().enumerate() {
        client
            .batch_execute(&format!("PREPARE plus_me AS select $1::int + {i}"))
            .await
            .unwrap();
    }
    let work = clients.iter().enumerate().map(|(i, client)| async move {
        for n in 0..15 {
            assert_eq!(
                value(client, &format!("EXECUTE plus_me({n})")).await,
                (n + i).to_string()
            );
        }
    });
    join_all(work).await;
}

#[tokio::test]
async fn in_session_mode_statements_survive_the_reset_between_clients() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("pool_mode", "\"session\"")
        .setting("default_pool_size", "1")
        .start()
        .await;
    // Each client in turn gets the one server; DISCARD ALL between them drops every
    // statement on it, so pgmux must prepare again rather than trust its cache.
    for round in 0..3 {
        let client = pgmux.app().await;
        let statement = client.prepare("select 7 * $1::int").await.unwrap();
        let row = client.query_one(&statement, &[&round]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 7 * round);
        drop(statement);
        drop(client);
        // Let the session end (and the reset run) before the next client logs in.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
