//! Malformed and unusual input before and after login, answered the way PostgreSQL does
//! (an ErrorResponse, then close), without disturbing well-behaved clients.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{self, pgmux, postgres, Pgmux};
use crate::support::simple_value;
use crate::wire;

async fn bad_input_pgmux() -> Pgmux {
    pgmux()
        .setting("auth_type", "\"trust\"")
        .setting("client_login_timeout", "1")
        .start()
        .await
}

async fn garbage_gets_an_error_and_a_close(pgmux: &Pgmux) {
    let mut socket = wire::connect(pgmux.addr()).await;
    wire::send(&mut socket, b"GET / HTTP/1.1\r\n\r\n").await;
    let (code, _) = wire::expect_error_and_close(&mut socket, "HTTP request").await;
    assert_eq!(code, "08P01");
}

async fn a_huge_startup_length_is_refused_at_once(pgmux: &Pgmux) {
    let mut socket = wire::connect(pgmux.addr()).await;
    let mut packet = 100_000_000u32.to_be_bytes().to_vec();
    packet.extend(wire::PROTOCOL_3_0.to_be_bytes());
    wire::send(&mut socket, &packet).await;
    let (code, message) = wire::expect_error_and_close(&mut socket, "100 MB startup packet").await;
    assert_eq!(code, "08P01", "{message}");
}

async fn protocol_2_is_refused(pgmux: &Pgmux) {
    let mut socket = wire::connect(pgmux.addr()).await;
    wire::send(
        &mut socket,
        &wire::startup_packet(wire::PROTOCOL_2_0, &[("user", "app")]),
    )
    .await;
    let (_, message) = wire::expect_error_and_close(&mut socket, "protocol 2.0").await;
    assert!(
        message.contains("unsupported frontend protocol"),
        "{message}"
    );
}

async fn protocol_3_2_options_are_negotiated_down(pgmux: &Pgmux) {
    let mut socket = wire::connect(pgmux.addr()).await;
    let params = [("user", "app"), ("database", "app"), ("_pq_.foo", "bar")];
    wire::send(
        &mut socket,
        &wire::startup_packet(wire::PROTOCOL_3_2, &params),
    )
    .await;
    let (tag, body) = wire::read_message(&mut socket)
        .await
        .expect("a reply to the 3.2 startup");
    assert_eq!(tag as char, 'v', "NegotiateProtocolVersion comes first");
    assert_eq!(&body[..4], &0u32.to_be_bytes(), "pgmux speaks 3.0");
    assert_eq!(&body[4..8], &1u32.to_be_bytes(), "one unsupported option");
    assert_eq!(&body[8..], b"_pq_.foo\0");
    let (tag, _) = wire::read_message(&mut socket)
        .await
        .expect("login goes on");
    assert_eq!(tag as char, 'R', "then the authentication exchange");
}

async fn ssl_and_gssenc_requests_get_n_then_plain_startup_works(pgmux: &Pgmux) {
    for (request, name) in [
        (wire::ssl_request(), "SSLRequest"),
        (wire::gssenc_request(), "GSSENCRequest"),
    ] {
        let mut socket = wire::connect(pgmux.addr()).await;
        wire::send(&mut socket, &request).await;
        assert_eq!(wire::read_byte(&mut socket).await, b'N', "{name}");
        let startup =
            wire::startup_packet(wire::PROTOCOL_3_0, &[("user", "app"), ("database", "app")]);
        wire::send(&mut socket, &startup).await;
        let (tag, body) = wire::read_message(&mut socket)
            .await
            .expect("login after 'N'");
        assert_eq!(
            (tag as char, &body[..]),
            ('R', &[0u8, 0, 0, 0][..]),
            "AuthenticationOk after {name}"
        );
    }
}

async fn a_silent_socket_is_closed_by_client_login_timeout(pgmux: &Pgmux) {
    let mut socket = wire::connect(pgmux.addr()).await;
    assert!(
        wire::closed_within(&mut socket, Duration::from_secs(4)).await,
        "a socket that never sent a startup packet stayed open past client_login_timeout = 1"
    );
}

async fn a_bogus_message_length_after_login_is_a_protocol_violation(pgmux: &Pgmux) {
    let mut socket = wire::connect(pgmux.addr()).await;
    wire::send(
        &mut socket,
        &wire::startup_packet(wire::PROTOCOL_3_0, &[("user", "app"), ("database", "app")]),
    )
    .await;
    loop {
        let (tag, _) = wire::read_message(&mut socket)
            .await
            .expect("login completes");
        if tag == b'Z' {
            break;
        }
    }
    wire::send(&mut socket, &[b'Q', 0, 0, 0, 2]).await;
    let (code, message) = wire::expect_error_and_close(&mut socket, "message length 2").await;
    assert_eq!(code, "08P01", "{message}");
}

/// One test per malformed input, each against its own pgmux, so a failure names its case.
macro_rules! bad_input_test {
    ($($test:ident => $case:ident,)*) => {$(
        #[tokio::test]
        async fn $test() {
            let _guard = harness::shared();
            $case(&bad_input_pgmux().await).await;
        }
    )*};
}

bad_input_test! {
    garbage_bytes_get_an_error_and_a_close => garbage_gets_an_error_and_a_close,
    an_absurd_startup_length_is_refused => a_huge_startup_length_is_refused_at_once,
    frontend_protocol_2_is_refused => protocol_2_is_refused,
    protocol_3_2_with_pq_options_gets_negotiate_protocol_version => protocol_3_2_options_are_negotiated_down,
    a_silent_client_is_closed_after_client_login_timeout => a_silent_socket_is_closed_by_client_login_timeout,
    a_message_length_below_4_after_login_is_08p01 => a_bogus_message_length_after_login_is_a_protocol_violation,
}

#[tokio::test]
async fn ssl_and_gssenc_requests_are_declined_and_login_continues() {
    let _guard = harness::shared();
    let pgmux = bad_input_pgmux().await;
    ssl_and_gssenc_requests_get_n_then_plain_startup_works(&pgmux).await;
    // psql really sends an SSLRequest with sslmode=prefer, and must refuse with require.
    let psql = postgres().bin("psql");
    let run = |mode: &str| {
        let mut cmd = pgmux.tool_command(&psql, "app", "secret", "app");
        cmd.env("PGSSLMODE", mode)
            .args(["-X", "-A", "-t", "-c", "select 'over plain text'"]);
        tokio::task::spawn_blocking(move || harness::run_tool(&mut cmd, Duration::from_secs(20)))
    };
    let prefer = run("prefer").await.unwrap();
    prefer.assert_success();
    assert_eq!(prefer.stdout.trim(), "over plain text");
    let require = run("require").await.unwrap();
    assert!(
        !require.success(),
        "sslmode=require must fail without TLS: {}",
        require.stdout
    );
    assert!(
        require.stderr.contains("SSL"),
        "the failure says why: {}",
        require.stderr
    );
}

#[tokio::test]
async fn a_good_client_is_undisturbed_by_concurrent_bad_input() {
    let _guard = harness::shared();
    let pgmux = bad_input_pgmux().await;
    let good = pgmux.app().await;
    let stop = AtomicBool::new(false);
    let good_loop = async {
        let mut queries = 0;
        while !stop.load(Ordering::Relaxed) {
            let value = simple_value(&good, &format!("select {queries}")).await;
            let value = value
                .unwrap_or_else(|e| panic!("good client failed after {queries} queries: {e:?}"));
            assert_eq!(value, queries.to_string());
            queries += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        queries
    };
    let bad_inputs = async {
        tokio::join!(
            garbage_gets_an_error_and_a_close(&pgmux),
            a_huge_startup_length_is_refused_at_once(&pgmux),
            protocol_2_is_refused(&pgmux),
            protocol_3_2_options_are_negotiated_down(&pgmux),
            ssl_and_gssenc_requests_get_n_then_plain_startup_works(&pgmux),
            a_silent_socket_is_closed_by_client_login_timeout(&pgmux),
            a_bogus_message_length_after_login_is_a_protocol_violation(&pgmux),
        );
        stop.store(true, Ordering::Relaxed);
    };
    let (queries, ()) = tokio::join!(good_loop, bad_inputs);
    assert!(
        queries > 10,
        "the good client kept querying ({queries} queries)"
    );
}
