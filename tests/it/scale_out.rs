//! Several pgmux instances behind one address: sharing a port (`so_reuseport`), online
//! restart (a new process binds the port, the old one drains) under a running pgbench,
//! and cancel requests forwarded between peers.

use std::net::TcpListener;
use std::time::Duration;

use crate::harness::{self, pgmux, postgres, toml_path, PgmuxBuilder};
use crate::support::{sqlstate, ScratchDb};

const PGMUX_BIN: &str = env!("CARGO_BIN_EXE_pgmux");

/// A port free right now: the harness's `listen_port = 0` gives every instance its own
/// port, and these tests need several instances on one, or ports known in advance.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

fn logins(logs: &str) -> usize {
    logs.lines().filter(|l| l.contains("login attempt")).count()
}

fn on_shared_port(db: &ScratchDb, port: u16) -> PgmuxBuilder {
    pgmux()
        .setting("listen_port", &port.to_string())
        .setting("so_reuseport", "true")
        .setting("auth_type", "\"md5\"")
        .database(&db.name, &db.entry())
}

#[tokio::test]
async fn two_instances_share_one_port_with_so_reuseport() {
    let _guard = harness::shared();
    let db = ScratchDb::create("reuseport").await;
    let port = free_port();
    let first = on_shared_port(&db, port).start().await;
    let second = on_shared_port(&db, port).start().await;
    assert_eq!(first.port(), second.port());
    // The kernel spreads connections by their source port: 40 of them all landing on
    // one instance would take odds of 1 in 2^39.
    for _ in 0..40 {
        let client = first.connect("app", "secret", &db.name).await;
        client.simple_query("select 1").await.unwrap();
    }
    // Log lines are read asynchronously: wait for all 40.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (a, b) = loop {
        let (a, b) = (logins(&first.logs()), logins(&second.logs()));
        if a + b >= 40 || std::time::Instant::now() > deadline {
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(a + b, 40);
    assert!(a > 0 && b > 0, "first served {a}, second {b}");

    // Without the setting, the port is taken.
    let builder = pgmux()
        .setting("listen_port", &port.to_string())
        .without_setting("unix_socket_dir")
        .database(&db.name, &db.entry());
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), builder.toml()).unwrap();
    let mut cmd = std::process::Command::new(PGMUX_BIN);
    cmd.arg("--config").arg(config.path());
    let out = harness::run_tool(&mut cmd, Duration::from_secs(10));
    assert!(
        !out.success(),
        "a third instance bound the port without so_reuseport"
    );
    assert!(out.stderr.contains("could not listen"), "{}", out.stderr);
    drop((first, second));
    db.drop_db().await;
}

const SHORT_TRANSACTION: &str = "BEGIN;
SELECT pg_sleep(0.005);
SELECT count(*) FROM pg_class;
COMMIT;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_restart_under_pgbench_fails_no_transaction() {
    let _guard = harness::shared();
    let db = ScratchDb::create("restart").await;
    let port = free_port();
    let mut old = on_shared_port(&db, port).start().await;
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), SHORT_TRANSACTION).unwrap();
    // -C: a new connection per transaction, so connections keep arriving on the port
    // throughout, on whichever instance is listening.
    let mut cmd = old.tool_command(&postgres().bin("pgbench"), "app", "secret", &db.name);
    cmd.args(["-n", "-C", "-c", "4", "-j", "2", "-T", "8", "-f"])
        .arg(script.path());
    let bench =
        tokio::task::spawn_blocking(move || harness::run_tool(&mut cmd, Duration::from_secs(40)));

    tokio::time::sleep(Duration::from_secs(2)).await;
    // The new process binds the same port and the same unix socket path.
    let new = on_shared_port(&db, port)
        .setting("unix_socket_dir", &toml_path(old.socket_dir()))
        .start()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    old.signal("TERM");
    let status = old.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "old instance did not drain: {status:?}\n{}",
        old.logs()
    );
    let new_before_exit = logins(&new.logs());
    let out = bench.await.unwrap();

    out.assert_success();
    assert!(
        out.stdout.contains("number of failed transactions: 0 "),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
    let old_served = logins(&old.logs());
    let new_served = logins(&new.logs());
    assert!(
        old_served > 0 && new_before_exit > 0 && new_served > new_before_exit,
        "old served {old_served}; new {new_before_exit} while both ran, {new_served} in all"
    );
    // The old process left the new one's unix socket in place.
    let url = format!(
        "host={} port={port} user=app password=secret dbname={}",
        new.socket_dir().display(),
        db.name
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("unix socket of the new instance: {e:?}"));
    tokio::spawn(connection);
    client.simple_query("select 1").await.unwrap();
    drop(client);
    drop(new);
    db.drop_db().await;
}

#[tokio::test]
async fn a_cancel_landing_on_another_peer_is_forwarded_to_the_owner() {
    let _guard = harness::shared();
    let ports = [free_port(), free_port(), free_port()];
    // One peer list for all three, as a shared ConfigMap would carry it (listing
    // oneself is fine); only peer_id differs. Peers come from the environment here.
    let instance = |id: usize| {
        let mut builder = pgmux()
            .setting("listen_port", &ports[id - 1].to_string())
            .setting("peer_id", &id.to_string())
            .env("RUST_LOG", "info,pgmux::cancel=debug");
        for (peer, port) in ports.iter().enumerate() {
            let peer = peer + 1;
            builder = builder
                .env(&format!("PGMUX_PEERS__{peer}__HOST"), "127.0.0.1")
                .env(&format!("PGMUX_PEERS__{peer}__PORT"), &port.to_string());
        }
        builder.start()
    };
    let a = instance(1).await;
    let _b = instance(2).await;
    let c = instance(3).await;

    let client = a.app().await;
    let token = client.cancel_token();
    let marker = harness::unique_name("peer_cancel");
    let sleeper = {
        let sql = format!("select pg_sleep(30) as {marker}");
        tokio::spawn(async move { client.simple_query(&sql).await })
    };
    // Wait until the query runs on a server.
    let su = postgres().superuser().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let running: i64 = su
            .query_one(
                "select count(*) from pg_stat_activity where state = 'active' and query like $1",
                &[&format!("%{marker}%")],
            )
            .await
            .unwrap()
            .get(0);
        if running > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pg_sleep never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The client's CancelRequest lands on instance C, which does not hold it.
    let socket = tokio::net::TcpStream::connect(("127.0.0.1", ports[2]))
        .await
        .unwrap();
    token
        .cancel_query_raw(socket, tokio_postgres::NoTls)
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), sleeper)
        .await
        .expect("the query was not cancelled within 5 s")
        .unwrap();
    let error = result.expect_err("pg_sleep(30) was cancelled");
    assert_eq!(sqlstate(&error), "57014", "{error:?}");
    // It went through C, which forwarded it to A (the log is read asynchronously).
    assert!(
        c.wait_for_log("forwarding cancel request peer=1", Duration::from_secs(5))
            .await,
        "{}",
        c.logs()
    );
}
