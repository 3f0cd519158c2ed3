//! sqlx through pgmux in transaction mode. sqlx prepares every query as a named
//! statement (`sqlx_s_N`) and caches it per connection (capacity 100 by default), so
//! after the first use a query is only Bound: the statement must follow the connection
//! to whichever server runs its next transaction.

use std::collections::HashSet;

use futures_util::future::join_all;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use super::POOL_SIZE;
use crate::harness::{self, pgmux, Pgmux, PgmuxBuilder};

const SQLX_CONNECTIONS: u32 = 10;

/// sqlx sends `extra_float_digits=2` at startup, which pgmux (like PgBouncer) refuses
/// unless configured: tracking it makes every server apply it for sqlx's connections.
fn sqlx_pgmux() -> PgmuxBuilder {
    pgmux()
        .setting("default_pool_size", &POOL_SIZE.to_string())
        .setting("track_extra_parameters", r#"["extra_float_digits"]"#)
}

async fn sqlx_pool(pgmux: &Pgmux, statement_cache: usize) -> PgPool {
    let options: PgConnectOptions = pgmux.url("app", "secret", "app").parse().unwrap();
    PgPoolOptions::new()
        .min_connections(SQLX_CONNECTIONS)
        .max_connections(SQLX_CONNECTIONS)
        .connect_with(options.statement_cache_capacity(statement_cache))
        .await
        .unwrap_or_else(|e| panic!("sqlx pool through pgmux: {e}"))
}

const TEXT_PID: &str = "select $1::text || '-' || $2::text as s, pg_backend_pid() as pid, \
     current_setting('extra_float_digits') as efd";

/// One task: holds one sqlx connection for a batch of cached statements and returns the
/// servers it saw. Every value is checked against what the arguments imply.
async fn task(pool: &PgPool, t: i32, rounds: i32) -> HashSet<i32> {
    let mut conn = pool.acquire().await.unwrap();
    let mut backends = HashSet::new();
    for n in 0..rounds {
        let sum: i32 = sqlx::query_scalar("select $1::int + $2::int")
            .bind(n)
            .bind(t)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(sum, n + t);
        let row = sqlx::query(TEXT_PID)
            .bind(format!("t{t}"))
            .bind(n.to_string())
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("s"), format!("t{t}-{n}"));
        // sqlx's startup parameter, restored on every server (PostgreSQL's default is 1).
        assert_eq!(row.get::<String, _>("efd"), "2");
        backends.insert(row.get::<i32, _>("pid"));
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("select g::bigint, g::bigint * $1::bigint from generate_series(1, 3) g")
                .bind(i64::from(n))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let n = i64::from(n);
        assert_eq!(rows, vec![(1, n), (2, 2 * n), (3, 3 * n)]);
    }
    backends
}

async fn run_tasks(pool: &PgPool, tasks: i32, rounds: i32) -> Vec<HashSet<i32>> {
    join_all((0..tasks).map(|t| task(pool, t, rounds))).await
}

/// Under concurrency sqlx connections change servers on their own, but how often depends
/// on timing; here one moves for certain. While tokio-postgres blocker 1 holds one of the
/// two servers in an open transaction, sqlx's statement can only run on the other;
/// blocker 2 then takes that one (waiting for it if need be) and blocker 1 lets go, so
/// sqlx's next execution of its cached statement, only a Bind, must run on the server it
/// did not use just before.
async fn assert_pooled_and_moved(pool: &PgPool, pgmux: &Pgmux, seen: &[HashSet<i32>]) {
    let all: HashSet<i32> = seen.iter().flatten().copied().collect();
    assert!(
        all.len() <= POOL_SIZE,
        "{SQLX_CONNECTIONS} sqlx connections must share {POOL_SIZE} servers, saw {}",
        all.len()
    );
    let blockers = [pgmux.app().await, pgmux.app().await];
    let mut conn = pool.acquire().await.unwrap();
    let mut backends = HashSet::new();
    for n in 0..4 {
        let (holder, other) = (&blockers[n % 2], &blockers[(n + 1) % 2]);
        holder.batch_execute("begin").await.unwrap();
        let held: i32 = holder
            .query_one("select pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            // The other blocker's transaction ends only now: its server is the free one.
            other.batch_execute("commit").await.unwrap();
        }
        let row = sqlx::query(TEXT_PID)
            .bind("m")
            .bind(n.to_string())
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("s"), format!("m-{n}"));
        let pid = row.get::<i32, _>("pid");
        assert_ne!(pid, held, "ran on the server another transaction holds");
        backends.insert(pid);
    }
    assert_eq!(
        backends.len(),
        POOL_SIZE,
        "sqlx's statement ran on both servers"
    );
}

#[tokio::test]
async fn sqlx_pool_with_its_statement_cache_on_two_servers() {
    let _guard = harness::shared();
    let pgmux = sqlx_pgmux().start().await;
    let pool = sqlx_pool(&pgmux, 100).await;
    // 40 tasks over 10 sqlx connections over 2 servers.
    let seen = run_tasks(&pool, 40, 10).await;
    assert_pooled_and_moved(&pool, &pgmux, &seen).await;

    // A transaction through the pool: its statements stay on one server until COMMIT,
    // and its insert is visible afterwards from any connection.
    let table = harness::unique_name("sqlx");
    sqlx::query(&format!("create table {table} (n int)"))
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let mut pids = HashSet::new();
    for n in 1..=10 {
        sqlx::query(&format!("insert into {table} values ($1)"))
            .bind(n)
            .execute(&mut *tx)
            .await
            .unwrap();
        let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        pids.insert(pid);
    }
    tx.commit().await.unwrap();
    assert_eq!(pids.len(), 1, "a transaction stays on one server");
    let total: i64 = sqlx::query_scalar(&format!("select sum(n) from {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 55);
    sqlx::query(&format!("drop table {table}"))
        .execute(&pool)
        .await
        .unwrap();

    // The server holds pgmux's names for sqlx's statements, never sqlx's own.
    let names: Vec<String> = sqlx::query_scalar("select name from pg_prepared_statements")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("pgmux_")),
        "{names:?}"
    );
    pool.close().await;
}

/// sqlx's cache of 2 for 3 statements per task makes sqlx Close and re-Parse statements
/// all the time, and pgmux's cache of 2 per server evicts on the servers too: results
/// stay right through both churns.
#[tokio::test]
async fn sqlx_with_tiny_statement_caches_on_both_sides() {
    let _guard = harness::shared();
    let pgmux = sqlx_pgmux()
        .setting("max_prepared_statements", "2")
        .start()
        .await;
    let pool = sqlx_pool(&pgmux, 2).await;
    let seen = run_tasks(&pool, 20, 8).await;
    assert_pooled_and_moved(&pool, &pgmux, &seen).await;
    let count: i64 = sqlx::query_scalar("select count(*) from pg_prepared_statements")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        count <= 2,
        "pgmux's per-server cache bound exceeded: {count}"
    );
    pool.close().await;
}
