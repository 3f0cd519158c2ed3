//! Pool checkout and release, alone and under contention (many tasks, few servers), against
//! a throwaway PostgreSQL this benchmark starts: `Pool` hands out real, logged-in servers,
//! and checkout probes each idle one with a non-blocking read, as in production.

#[allow(dead_code)]
#[path = "e2e/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "e2e/process.rs"]
mod process;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use pgmux::pool::{Pool, PoolKey, PoolLimits};
use pgmux::server::ServerTarget;

fn limits(pool_size: usize) -> PoolLimits {
    PoolLimits {
        pool_size,
        min_pool_size: 0,
        reserve_pool_size: 0,
        reserve_pool_timeout: Duration::from_secs(5),
        max_db_connections: 0,
        max_user_connections: 0,
        server_lifetime: Duration::from_secs(3600),
        server_idle_timeout: Duration::from_secs(600),
        server_connect_timeout: Duration::from_secs(15),
        server_login_retry: Duration::from_secs(15),
        server_check_delay: Duration::from_secs(30),
        server_check_query: "select 1".to_owned(),
        query_wait_timeout: Duration::from_secs(120),
        log_connections: false,
        log_disconnections: false,
    }
}

fn pool(port: u16, pool_size: usize) -> Arc<Pool> {
    let target = ServerTarget {
        host: "127.0.0.1".to_owned(),
        port,
        dbname: cluster::DATABASE.to_owned(),
        user: cluster::USER.to_owned(),
        password: None,
        tls: pgmux::tls::ServerTls::disabled(),
    };
    let key = PoolKey {
        database: cluster::DATABASE.to_owned(),
        user: cluster::USER.to_owned(),
    };
    Pool::new(
        key,
        target,
        limits(pool_size),
        Arc::default(),
        Arc::default(),
        Arc::new(AtomicU64::new(0)),
    )
}

/// Opens every server of the pool up front, so the benchmark measures reuse, not logins.
async fn fill(pool: &Arc<Pool>, size: usize) {
    let mut held = Vec::new();
    for _ in 0..size {
        held.push(
            pool.checkout()
                .await
                .expect("checkout while filling the pool"),
        );
    }
    held.into_iter().for_each(|server| server.release());
}

/// `tasks` tasks share `iters` checkout/release cycles; each holds its server across one
/// yield, so with more tasks than servers the others queue and are handed servers FIFO.
async fn contended(pool: &Arc<Pool>, tasks: u64, iters: u64) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let pool = Arc::clone(pool);
            let cycles = iters / tasks + u64::from(t < iters % tasks);
            tokio::spawn(async move {
                for _ in 0..cycles {
                    let server = pool.checkout().await.expect("checkout");
                    tokio::task::yield_now().await;
                    server.release();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    started.elapsed()
}

fn benches(c: &mut Criterion, port: u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("pool_checkout_release");
    for (tasks, size) in [(1u64, 25usize), (64, 25), (64, 4), (1000, 25)] {
        let pool = runtime.block_on(async {
            let pool = pool(port, size);
            fill(&pool, size).await;
            pool
        });
        group.bench_function(format!("{tasks}_tasks_{size}_servers"), |b| {
            b.to_async(&runtime)
                .iter_custom(|iters| contended(&pool, tasks, iters))
        });
        runtime.block_on(async { pool.close("benchmark over") });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let as_service_user = process::running_as_root();
    if as_service_user {
        if let Err(e) = process::service_ids(process::SERVICE_USER) {
            eprintln!("pool bench: {e}; skipping");
            return;
        }
    }
    let root = tempfile::Builder::new()
        .prefix("pgmux-pool-bench-")
        .tempdir()
        .expect("temp dir");
    let mut pg = cluster::Cluster::new(
        root.path(),
        process::postgres_bin_dir(),
        process::free_port(),
        as_service_user,
    );
    let pids = root.path().join("pids");
    let started = cluster::hand_over(root.path(), as_service_user)
        .and_then(|()| process::spawn_watchdog(root.path(), &pids, &pg.stop_command()))
        .and_then(|()| pg.start());
    if let Err(e) = started {
        eprintln!("pool bench: no PostgreSQL to benchmark against, skipping: {e}");
        return;
    }
    benches(&mut criterion, pg.port);
    criterion.final_summary();
}
