//! Idle clients: N connections that log in (md5, like pgbench) and then sit there.
//! They come from 127.0.0.2–127.0.0.9 in turn, because one source address can open at
//! most ~28,000 connections to one port (the ephemeral port range).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use futures_util::stream::{self, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::cluster::{DATABASE, PASSWORD, USER};

/// Logins in flight at once: enough to be quick, few enough not to trip accept backlogs.
const CONCURRENT_LOGINS: usize = 128;
const SOURCE_ADDRESSES: u8 = 8;

pub struct IdleClients {
    pub streams: Vec<TcpStream>,
    pub failures: usize,
    pub first_error: Option<String>,
}

/// Opens `count` logged-in connections to 127.0.0.1:`port`.
pub async fn open(port: u16, count: usize) -> IdleClients {
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let results: Vec<Result<TcpStream, String>> = stream::iter(0..count)
        .map(|i| {
            let source = Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(SOURCE_ADDRESSES)) as u8);
            async move {
                tokio::time::timeout(Duration::from_secs(30), log_in(source, target))
                    .await
                    .unwrap_or_else(|_| Err("login timed out".to_owned()))
            }
        })
        .buffer_unordered(CONCURRENT_LOGINS)
        .collect()
        .await;
    let mut idle = IdleClients {
        streams: Vec::with_capacity(count),
        failures: 0,
        first_error: None,
    };
    for result in results {
        match result {
            Ok(stream) => idle.streams.push(stream),
            Err(e) => {
                idle.failures += 1;
                idle.first_error.get_or_insert(e);
            }
        }
    }
    idle
}

async fn log_in(source: Ipv4Addr, target: SocketAddr) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let mut stream = socket
        .connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut out = BytesMut::new();
    startup_message(&mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let (tag, mut body) = read_message(&mut stream, &mut buf).await?;
        match tag {
            b'R' => match body.get_i32() {
                0 => {}
                5 => {
                    let salt = [body[0], body[1], body[2], body[3]];
                    let hash = postgres_protocol::authentication::md5_hash(
                        USER.as_bytes(),
                        PASSWORD.as_bytes(),
                        salt,
                    );
                    out.clear();
                    password_message(&mut out, &hash);
                    stream.write_all(&out).await.map_err(|e| e.to_string())?;
                }
                3 => {
                    out.clear();
                    password_message(&mut out, PASSWORD);
                    stream.write_all(&out).await.map_err(|e| e.to_string())?;
                }
                other => return Err(format!("unsupported authentication request {other}")),
            },
            b'E' => return Err(format!("login refused: {}", String::from_utf8_lossy(&body))),
            b'Z' => return Ok(stream),
            _ => {}
        }
    }
}

fn startup_message(out: &mut BytesMut) {
    let mut body = BytesMut::new();
    body.put_i32(196_608);
    for (key, value) in [("user", USER), ("database", DATABASE)] {
        body.put_slice(key.as_bytes());
        body.put_u8(0);
        body.put_slice(value.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    out.put_i32(body.len() as i32 + 4);
    out.put_slice(&body);
}

fn password_message(out: &mut BytesMut, password: &str) {
    out.put_u8(b'p');
    out.put_i32(password.len() as i32 + 5);
    out.put_slice(password.as_bytes());
    out.put_u8(0);
}

async fn read_message(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<(u8, BytesMut), String> {
    loop {
        if buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() > len {
                let mut frame = buf.split_to(len + 1);
                let tag = frame[0];
                frame.advance(5);
                return Ok((tag, frame));
            }
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed during login".to_owned());
        }
    }
}
