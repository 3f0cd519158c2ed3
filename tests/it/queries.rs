//! Simple and extended protocol, pipelining, and isolation between clients.

use futures_util::future::join_all;

use crate::harness::{self, pgmux};

#[tokio::test]
async fn simple_and_extended_queries_return_rows() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let client = pgmux.app().await;
    let rows = client
        .simple_query("select 1 as a; select 'two' as b")
        .await
        .unwrap();
    let values: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["1", "two"]);
    let row = client
        .query_one("select $1::int + $2::int", &[&40i32, &2i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let statement = client.prepare("select $1::text || '!'").await.unwrap();
    for word in ["a", "b", "c"] {
        let row = client.query_one(&statement, &[&word]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), format!("{word}!"));
    }
}

#[tokio::test]
async fn pipelined_queries_all_come_back_in_order() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "2").start().await;
    let client = pgmux.app().await;
    // tokio-postgres pipelines concurrent queries on one connection: Parse/Bind/Execute/Sync
    // for all of them go out before the first answer comes back.
    let queries = (0..50).map(|i| {
        let client = &client;
        async move {
            client
                .query_one("select $1::int * 2", &[&i])
                .await
                .unwrap()
                .get::<_, i32>(0)
        }
    });
    let results = join_all(queries).await;
    assert_eq!(results, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    let (a, b, c) = tokio::join!(
        client.query_one("select pg_sleep(0.05)::text, 1", &[]),
        client.query_one("select 2", &[]),
        client.query_one("select 3", &[]),
    );
    assert_eq!(a.unwrap().get::<_, i32>(1), 1);
    assert_eq!(b.unwrap().get::<_, i32>(0), 2);
    assert_eq!(c.unwrap().get::<_, i32>(0), 3);
}

#[tokio::test]
async fn transactions_of_two_clients_stay_apart_on_one_server() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let table = harness::unique_name("isolation");
    let writer = pgmux.app().await;
    let reader = pgmux.app().await;
    writer
        .batch_execute(&format!("create table {table} (x int)"))
        .await
        .unwrap();
    writer
        .batch_execute(&format!("begin; insert into {table} values (1)"))
        .await
        .unwrap();
    // The only server is the writer's until it commits: the reader waits, then sees the row.
    let read = tokio::spawn({
        let table = table.clone();
        async move {
            reader
                .query_one(&format!("select count(*) from {table}"), &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !read.is_finished(),
        "a server with an open transaction was handed to another client"
    );
    writer.batch_execute("commit").await.unwrap();
    assert_eq!(read.await.unwrap(), 1);
    writer
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_error_in_a_transaction_stays_with_that_client() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let client = pgmux.app().await;
    client.batch_execute("begin").await.unwrap();
    let error = client.batch_execute("select 1/0").await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "22012");
    let error = client.batch_execute("select 1").await.unwrap_err();
    assert_eq!(
        error.code().unwrap().code(),
        "25P02",
        "still in the failed transaction"
    );
    client.batch_execute("rollback").await.unwrap();
    let other = pgmux.app().await;
    assert_eq!(
        other
            .query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}
