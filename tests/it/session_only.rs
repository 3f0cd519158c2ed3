//! Features that cannot work when pooling by transaction fail loudly with 0A000 and a
//! hint naming session mode; their transaction-scoped forms, and session mode, work.

use crate::harness::{self, pgmux};

fn expect_refused(error: tokio_postgres::Error, what: &str) {
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{what}: not a server error: {error}"));
    assert_eq!(db.code().code(), "0A000", "{what}: {}", db.message());
    assert!(
        db.message()
            .contains("cannot be used in transaction pooling mode"),
        "{what}: {}",
        db.message()
    );
    assert!(
        db.hint().unwrap_or("").contains("session"),
        "{what}: hint {:?}",
        db.hint()
    );
}

#[tokio::test]
async fn session_only_features_are_refused_in_transaction_mode() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let client = pgmux.app().await;
    for sql in [
        "LISTEN job_queue",
        "select pg_advisory_lock(4242)",
        "create temp table scratch (x int)",
        "begin; declare c cursor with hold for select 1; commit",
    ] {
        expect_refused(client.batch_execute(sql).await.unwrap_err(), sql);
        // The connection goes on, and the server was not left in a transaction.
        assert_eq!(
            client
                .query_one("select 1", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            1
        );
    }
    // Through the extended protocol too: the error comes on the Parse and the rest of
    // that request is skipped up to its Sync, as PostgreSQL does after an error.
    let error = client
        .query("select pg_try_advisory_lock($1::bigint)", &[&7i64])
        .await
        .unwrap_err();
    expect_refused(error, "extended pg_try_advisory_lock");
    assert_eq!(
        client
            .query_one("select $1::int", &[&5i32])
            .await
            .unwrap()
            .get::<_, i32>(0),
        5
    );
    // Nothing of it reached PostgreSQL (only the keys this test tried: others hold their own).
    let superuser = harness::postgres().superuser().await;
    let locks = superuser
        .query_one(
            "select count(*) from pg_locks where locktype = 'advisory' and objid in (4242, 7)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(locks.get::<_, i64>(0), 0);
}

#[tokio::test]
async fn transaction_scoped_forms_work_in_transaction_mode() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let client = pgmux.app().await;
    let rows = client
        .simple_query(
            "begin; select pg_advisory_xact_lock(99); \
             create temp table t_scoped (x int) on commit drop; insert into t_scoped values (1), (2); \
             select count(*) from t_scoped; \
             select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid(); commit",
        )
        .await
        .unwrap();
    let values: Vec<&str> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
            _ => None,
        })
        .collect();
    // The lock row, then the temp table's two rows, then the lock held inside the transaction.
    assert_eq!(values, ["", "2", "1"]);
    // Both ended with the transaction: the next one (on the same, only server) sees neither.
    let after = client
        .query_one(
            "select to_regclass('pg_temp.t_scoped') is null, \
             (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())",
            &[],
        )
        .await
        .unwrap();
    assert!(after.get::<_, bool>(0), "the ON COMMIT DROP table is gone");
    assert_eq!(
        after.get::<_, i64>(1),
        0,
        "the xact lock was released at commit"
    );
    client.batch_execute("unlisten *").await.unwrap();
}

#[tokio::test]
async fn session_mode_allows_them() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("pool_mode", "\"session\"").start().await;
    let client = pgmux.app().await;
    client
        .batch_execute(
            "listen job_queue; select pg_advisory_lock(4243); \
             create temp table t_session (x int); insert into t_session values (1)",
        )
        .await
        .unwrap();
    // Still there in the client's next transactions: session mode keeps its server.
    let row = client
        .query_one(
            "select (select count(*) from t_session), \
             (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()), \
             (select count(*) from pg_listening_channels() c where c = 'job_queue')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (1, 1, 1)
    );
}
