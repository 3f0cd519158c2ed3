//! Hostile input costs its sender, not other clients: unknown message types and
//! oversized messages end that client with 08P01, half-open connections and floods of
//! failed logins do not keep a good client out, and a wrong cancel key does nothing.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;

use crate::harness::{self, pgmux};
use crate::raw_wire::{message, RawConn};
use crate::support::within;

fn trust_login(user: &str) -> [(&str, &str); 2] {
    [("user", user), ("database", "app")]
}

#[tokio::test]
async fn unknown_message_types_and_oversized_messages_end_only_that_client() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("auth_type", "\"trust\"")
        .setting("max_packet_size", "10000")
        .start()
        .await;
    let good = pgmux.app().await;

    let mut bogus = RawConn::login(pgmux.addr(), &trust_login("app"))
        .await
        .unwrap();
    bogus.send(&message(b'!', b"whatever")).await;
    let error = bogus.read_until_ready().await.expect_err("refused");
    assert_eq!(error.code, "08P01", "{error:?}");
    assert!(
        error.message.contains("invalid frontend message type"),
        "{error:?}"
    );

    let mut oversized = RawConn::login(pgmux.addr(), &trust_login("app"))
        .await
        .unwrap();
    let mut query = b"select '".to_vec();
    query.extend(std::iter::repeat_n(b'x', 20_000));
    query.extend_from_slice(b"'\0");
    oversized.send(&message(b'Q', &query)).await;
    let error = oversized.read_until_ready().await.expect_err("refused");
    assert_eq!(error.code, "08P01", "{error:?}");
    assert!(error.message.contains("max_packet_size"), "{error:?}");

    assert_eq!(
        good.query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    // A message that fits goes through.
    let mut fine = RawConn::login(pgmux.addr(), &trust_login("app"))
        .await
        .unwrap();
    assert_eq!(
        fine.query_value("select length(repeat('x', 5000))").await,
        "5000"
    );
}

#[tokio::test]
async fn thousands_of_half_open_connections_do_not_lock_out_a_real_client() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("max_client_conn", "50")
        .setting("client_login_timeout", "30")
        .start()
        .await;
    // Slowloris: connect and send nothing, or only part of a startup packet.
    let mut idle_sockets = Vec::new();
    for i in 0..2000 {
        let Ok(mut socket) = tokio::net::TcpStream::connect(pgmux.addr()).await else {
            break;
        };
        if i % 2 == 0 {
            let _ = socket.write_all(&[0, 0, 0, 80, 0, 3]).await;
        }
        idle_sockets.push(socket);
    }
    assert!(idle_sockets.len() >= 1000, "opened {}", idle_sockets.len());
    let started = Instant::now();
    let answered = within(Duration::from_secs(5), async {
        let client = pgmux.app().await;
        client
            .query_one("select 42", &[])
            .await
            .unwrap()
            .get::<_, i32>(0)
    })
    .await;
    assert_eq!(
        answered,
        Some(42),
        "a real client was kept out ({:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_flood_of_failed_logins_does_not_stop_good_ones_and_is_logged_with_the_peer() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("max_client_conn", "1000").start().await;
    let attacker = async {
        for _ in 0..5 {
            let attempts = (0..40).map(|i| {
                pgmux.try_connect(if i % 2 == 0 { "app" } else { "nobody" }, "wrong", "app")
            });
            for attempt in join_all(attempts).await {
                let error = attempt.expect_err("a wrong password is refused");
                assert_eq!(error.code().map(|c| c.code()), Some("08P01"));
            }
        }
    };
    let good = async {
        for n in 0..10 {
            let client = pgmux.app().await;
            assert_eq!(
                client
                    .query_one("select $1::int", &[&n])
                    .await
                    .unwrap()
                    .get::<_, i32>(0),
                n
            );
        }
    };
    tokio::join!(attacker, good);
    // PgBouncer's line: `C-0x…: app/nobody@127.0.0.1:PORT pooler error: …`.
    let failure = pgmux
        .wait_for_line(
            &["/nobody@", "pooler error: SASL authentication failed"],
            Duration::from_secs(5),
        )
        .await
        .expect("failed logins are logged");
    assert!(
        failure.contains("/nobody@127.0.0.1:"),
        "the peer address is logged: {failure}"
    );
}

#[tokio::test]
async fn a_cancel_request_with_a_wrong_key_does_nothing() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let client = pgmux.app().await;
    let running = tokio::spawn(async move {
        client
            .query_one("select pg_sleep(1)::text", &[])
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..20 {
        let mut socket = tokio::net::TcpStream::connect(pgmux.addr()).await.unwrap();
        let mut packet = vec![0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
        packet.extend_from_slice(&rand_key());
        socket.write_all(&packet).await.unwrap();
    }
    let finished = running.await.unwrap();
    assert!(
        finished.is_ok(),
        "the query was canceled by a guessed key: {finished:?}"
    );
}

fn rand_key() -> [u8; 8] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&nanos.to_be_bytes());
    key[4..].copy_from_slice(&nanos.rotate_left(13).to_be_bytes());
    key
}
