//! SIGTERM as PgBouncer's "super safe shutdown" for a pgbouncer.ini (and the console's
//! `SHUTDOWN WAIT_FOR_CLIENTS` anywhere): the listener closes, but the clients there are
//! keep being served, transaction after transaction, until each leaves; then pgmux exits.
//! (pooler.toml's SIGTERM is the Kubernetes drain instead: see drain.rs.)

use std::time::Duration;

use crate::harness::ini::{IniFiles, LISTEN};
use crate::harness::{self, pgmux, Pgmux};

/// Past the one-second grace a freshly logged-in client gets in a drain: a drain would
/// have closed an idle client by then.
const PAST_ANY_GRACE: Duration = Duration::from_millis(1_500);

/// The client keeps working after the shutdown began, nobody new gets in, and pgmux
/// exits once the client has gone.
async fn serves_until_the_client_leaves(pgmux: &mut Pgmux, client: tokio_postgres::Client) {
    tokio::time::sleep(PAST_ANY_GRACE).await;
    for round in 0..3 {
        let n: i32 = client
            .query_one("select $1::int", &[&round])
            .await
            .unwrap_or_else(|e| panic!("client cut off while waiting for clients: {e:?}"))
            .get(0);
        assert_eq!(n, round);
    }
    assert!(
        pgmux.try_connect("app", "secret", "app").await.is_err(),
        "a new client got in after the shutdown began"
    );
    assert!(
        pgmux.wait_exit(Duration::from_millis(500)).await.is_none(),
        "pgmux exited with a client still connected\n{}",
        pgmux.logs()
    );
    drop(client);
    let status = pgmux.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{}", pgmux.logs());
}

#[tokio::test]
async fn sigterm_on_a_pgbouncer_ini_waits_for_clients_to_leave() {
    let _guard = harness::shared();
    let files = IniFiles::new();
    files.write("userlist.txt", "\"app\" \"secret\"\n");
    files.write(
        "pgbouncer.ini",
        &format!(
            "[databases]\napp = host=127.0.0.1 port={{PGPORT}} dbname=app\n\n[pgbouncer]\n{LISTEN}auth_type = scram-sha-256\nauth_file = {{DIR}}/userlist.txt\npool_mode = transaction\n"
        ),
    );
    let ini = files.path("pgbouncer.ini").display().to_string();
    let mut pgmux = files.start(&[&ini]).await;
    let client = pgmux.connect("app", "secret", "app").await;
    pgmux.signal("TERM");
    assert!(
        pgmux
            .wait_for_log(
                "got SIGTERM, shutting down, waiting for all clients disconnect",
                Duration::from_secs(5)
            )
            .await,
        "{}",
        pgmux.logs()
    );
    serves_until_the_client_leaves(&mut pgmux, client).await;
}

#[tokio::test]
async fn console_shutdown_wait_for_clients_waits_for_clients_to_leave() {
    let _guard = harness::shared();
    let mut pgmux = pgmux().setting("admin_users", "[\"app\"]").start().await;
    let client = pgmux.connect("app", "secret", "app").await;
    let console = pgmux.connect("app", "secret", "pgbouncer").await;
    console
        .simple_query("SHUTDOWN WAIT_FOR_CLIENTS")
        .await
        .unwrap();
    drop(console);
    serves_until_the_client_leaves(&mut pgmux, client).await;
}
