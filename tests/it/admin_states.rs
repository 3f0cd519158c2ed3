//! SHOW POOLS / CLIENTS / SERVERS / STATS under known load: the counts come from the
//! connections' real states (clients active, idle and waiting; servers active, idle and
//! used), and servers are the very backends PostgreSQL lists.

use std::time::Duration;

use crate::admin_support::{admin, admin_pgmux, show, show_until};
use crate::harness;
use crate::support::ScratchDb;

#[tokio::test]
async fn pools_clients_and_servers_show_active_waiting_idle_and_used() {
    let _guard = harness::shared();
    let db = ScratchDb::create("adm_states").await;
    let pgmux = admin_pgmux()
        .database(&db.name, &db.entry())
        .setting("default_pool_size", "2")
        .setting("server_check_delay", "1")
        .start()
        .await;
    let console = admin(&pgmux).await;
    let a = pgmux.connect("app", "secret", &db.name).await;
    let b = pgmux.connect("app", "secret", &db.name).await;
    let c = pgmux.connect("app", "secret", &db.name).await;
    let _idle = pgmux.connect("app", "secret", &db.name).await;
    // a and b hold both servers in open transactions; c queues for one.
    a.batch_execute("begin; select 1").await.unwrap();
    b.batch_execute("begin; select 1").await.unwrap();
    let waiting = tokio::spawn(async move {
        c.simple_query("select 42").await.unwrap();
        c
    });
    let pools = show_until(&console, "SHOW POOLS", Duration::from_secs(10), |s| {
        s.get("database", &db.name, "cl_waiting").as_deref() == Some("1")
    })
    .await;
    assert_eq!(pools.num("database", &db.name, "cl_waiting"), 1);
    assert_eq!(
        pools.num("database", &db.name, "cl_active"),
        3,
        "a, b and the idle client"
    );
    assert_eq!(pools.num("database", &db.name, "sv_active"), 2);
    assert_eq!(pools.num("database", &db.name, "sv_idle"), 0);
    assert_eq!(
        pools.get("database", &db.name, "pool_mode").as_deref(),
        Some("transaction")
    );
    assert_eq!(
        pools.num("database", "pgbouncer", "cl_active"),
        1,
        "this console"
    );

    let clients = show(&console, "SHOW CLIENTS").await;
    let mine = clients.rows_where("database", &db.name);
    let count = |state: &str| {
        mine.iter()
            .filter(|r| r["state"].as_deref() == Some(state))
            .count()
    };
    assert_eq!(
        (count("active"), count("waiting"), count("idle")),
        (2, 1, 1)
    );
    let servers = show(&console, "SHOW SERVERS").await;
    let servers = servers.rows_where("database", &db.name);
    assert_eq!(servers.len(), 2);
    // Each active server links to an active client's ptr, and its remote_pid is a real
    // backend of this database.
    let active_ptrs: Vec<_> = mine
        .iter()
        .filter(|r| r["state"].as_deref() == Some("active"))
        .map(|r| r["ptr"].clone().unwrap())
        .collect();
    let direct = db.direct().await;
    for server in &servers {
        assert_eq!(server["state"].as_deref(), Some("active"));
        assert!(
            active_ptrs.contains(server["link"].as_ref().unwrap()),
            "{server:?}"
        );
        let pid: i32 = server["remote_pid"].as_deref().unwrap().parse().unwrap();
        let found = direct
            .query_one(
                "select count(*) from pg_stat_activity where pid = $1 and datname = $2",
                &[&pid, &db.name],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(found, 1, "remote_pid {pid} is a backend of {}", db.name);
    }

    a.batch_execute("commit").await.unwrap();
    b.batch_execute("commit").await.unwrap();
    let _c = waiting.await.unwrap();
    let pools = show_until(&console, "SHOW POOLS", Duration::from_secs(10), |s| {
        s.get("database", &db.name, "sv_idle").as_deref() == Some("2")
    })
    .await;
    assert_eq!(
        (
            pools.num("database", &db.name, "sv_idle"),
            pools.num("database", &db.name, "cl_waiting")
        ),
        (2, 0)
    );
    // Idle longer than server_check_delay: the servers need a check before reuse.
    let pools = show_until(&console, "SHOW POOLS", Duration::from_secs(5), |s| {
        s.get("database", &db.name, "sv_used").as_deref() == Some("2")
    })
    .await;
    assert_eq!(pools.num("database", &db.name, "sv_used"), 2);
    let stats = show(&console, "SHOW STATS").await;
    // a's and b's transactions and c's query.
    assert!(
        stats.num("database", &db.name, "total_xact_count") >= 3,
        "{:?}",
        stats.rows
    );
    assert!(stats.num("database", &db.name, "total_query_count") >= 5);
    assert!(
        stats.num("database", &db.name, "total_wait_time") > 0,
        "c waited"
    );
    let totals = show(&console, "SHOW STATS_TOTALS").await;
    assert_eq!(
        totals.num("database", &db.name, "xact_count"),
        stats.num("database", &db.name, "total_xact_count")
    );
    drop(pgmux);
    db.drop_db().await;
}

#[tokio::test]
async fn stats_averages_are_per_second_over_the_stats_period() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux().setting("stats_period", "1").start().await;
    let console = admin(&pgmux).await;
    let app = pgmux.app().await;
    // The window is the previous tick to now; queries in it make a non-zero rate.
    assert!(pgmux.wait_for_log("stats: ", Duration::from_secs(5)).await);
    for _ in 0..20 {
        app.simple_query("select 1").await.unwrap();
    }
    let averages = show(&console, "SHOW STATS_AVERAGES").await;
    let rate = averages.num("database", "app", "query_count");
    assert!(
        (1..=40).contains(&rate),
        "20 queries within about a second: {rate}/s"
    );
    assert!(
        averages.num("database", "app", "query_time") > 0,
        "µs per query"
    );
    let totals = show(&console, "SHOW TOTALS").await;
    assert!(totals.num("name", "total_query_count", "value") >= 20);
    assert!(totals.get("name", "avg_query_count", "value").is_some());
    // PgBouncer's periodic line, word for word.
    let logs = pgmux.logs();
    let line = logs.lines().find(|l| l.contains("stats: ")).unwrap();
    assert!(
        line.contains(" xacts/s, ")
            && line.contains(" queries/s, ")
            && line.contains(" B/s, out ")
            && line.contains(" us, wait "),
        "{line}"
    );
}
