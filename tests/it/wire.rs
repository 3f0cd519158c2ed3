//! Raw protocol bytes for tests that must send what no client library would: startup
//! packets by hand, and reading one backend message at a time.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PROTOCOL_3_0: u32 = 3 << 16;
pub const PROTOCOL_3_2: u32 = (3 << 16) | 2;
pub const PROTOCOL_2_0: u32 = 2 << 16;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// How long a test waits for a byte that must come; longer means pgmux hangs.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// `length, code, (name NUL value NUL)*, NUL`.
pub fn startup_packet(code: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    for (name, value) in params {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    with_length(body)
}

pub fn ssl_request() -> Vec<u8> {
    with_length(SSL_REQUEST.to_be_bytes().to_vec())
}

pub fn gssenc_request() -> Vec<u8> {
    with_length(GSSENC_REQUEST.to_be_bytes().to_vec())
}

fn with_length(body: Vec<u8>) -> Vec<u8> {
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect to pgmux")
}

pub async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write to pgmux");
}

/// One byte (the answer to SSLRequest/GSSENCRequest); panics if none comes in time.
pub async fn read_byte(stream: &mut TcpStream) -> u8 {
    tokio::time::timeout(READ_TIMEOUT, stream.read_u8())
        .await
        .expect("pgmux answered within the timeout")
        .expect("pgmux answered before closing")
}

/// One backend message: `(tag, body)`; None when the socket closed first.
/// Panics if nothing arrives within [`READ_TIMEOUT`].
pub async fn read_message(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let tag = stream.read_u8().await.ok()?;
        let length = stream.read_u32().await.ok()?;
        assert!(
            length >= 4,
            "backend message {} with length {length}",
            tag as char
        );
        let mut body = vec![0; length as usize - 4];
        stream.read_exact(&mut body).await.ok()?;
        Some((tag, body))
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .expect("a message from pgmux within the timeout")
}

/// Reads (and discards) until pgmux closes the socket; false if it is still open after
/// `timeout`. A reset counts as closed.
pub async fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let drain = async {
        let mut scratch = [0u8; 1024];
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(timeout, drain).await.is_ok()
}

/// The SQLSTATE ('C') and message ('M') fields of an ErrorResponse body.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let mut fields = crate::raw_wire::error_fields(body);
    (
        fields.remove(&'C').unwrap_or_default(),
        fields.remove(&'M').unwrap_or_default(),
    )
}

/// Expects an ErrorResponse and then the socket closing; returns `(sqlstate, message)`.
pub async fn expect_error_and_close(stream: &mut TcpStream, what: &str) -> (String, String) {
    let (tag, body) = read_message(stream)
        .await
        .unwrap_or_else(|| panic!("{what}: pgmux closed without an ErrorResponse"));
    assert_eq!(tag as char, 'E', "{what}: first reply is an ErrorResponse");
    let fields = error_fields(&body);
    assert!(
        closed_within(stream, READ_TIMEOUT).await,
        "{what}: pgmux kept the socket open after the error {fields:?}"
    );
    fields
}
