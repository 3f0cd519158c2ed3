//! Opening a server connection: TCP or unix socket, StartupMessage, and the client side
//! of cleartext, md5 and SCRAM-SHA-256 authentication (SCRAM from `postgres-protocol`).

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use md5::{Digest, Md5};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use super::{error_field, error_message, ServerConn, ServerError};
use crate::net::Stream;
use crate::params::Params;

/// Where and as whom to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTarget {
    /// A host name or address, or a unix socket directory when it starts with '/'.
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// Plain text, or an `md5…` hash (enough for md5 authentication, as in PgBouncer).
    pub password: Option<String>,
}

impl ServerTarget {
    pub fn address(&self) -> String {
        if self.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Connects and logs in, all within `timeout`.
pub async fn connect(
    target: &ServerTarget,
    id: u64,
    timeout: Duration,
) -> Result<ServerConn, ServerError> {
    let attempt = async {
        let stream = open_socket(target).await?;
        let now = Instant::now();
        let mut conn = ServerConn {
            id,
            stream,
            read_buf: BytesMut::with_capacity(8192),
            params: Params::default(),
            process_id: 0,
            secret_key: 0,
            created_at: now,
            last_used: now,
            statements: Default::default(),
            session: Params::default(),
        };
        log_in(&mut conn, target).await?;
        Ok(conn)
    };
    if timeout.is_zero() {
        return attempt.await;
    }
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ServerError::Timeout)?
}

async fn open_socket(target: &ServerTarget) -> Result<Stream, ServerError> {
    if target.host.starts_with('/') {
        let socket = UnixStream::connect(target.address())
            .await
            .map_err(ServerError::Connect)?;
        return Ok(Stream::Unix(socket));
    }
    let socket = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(ServerError::Connect)?;
    socket.set_nodelay(true).map_err(ServerError::Connect)?;
    Ok(Stream::Tcp(socket))
}

async fn log_in(conn: &mut ServerConn, target: &ServerTarget) -> Result<(), ServerError> {
    let mut out = BytesMut::new();
    let params = [
        ("user", target.user.as_str()),
        ("database", target.dbname.as_str()),
    ];
    frontend::startup_message(params, &mut out)
        .map_err(|e| ServerError::Protocol(e.to_string()))?;
    conn.stream.write_all(&out).await?;
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (tag, mut body) = conn.read_message().await?;
        out.clear();
        match tag {
            b'R' => {
                let request = body.get_i32();
                match request {
                    0 => {}
                    3 => {
                        let password = password(target)?;
                        frontend::password_message(password.as_bytes(), &mut out)?;
                    }
                    5 => {
                        let salt: [u8; 4] = body[..4]
                            .try_into()
                            .map_err(|_| ServerError::Protocol("short md5 salt".into()))?;
                        frontend::password_message(
                            md5_response(target, salt)?.as_bytes(),
                            &mut out,
                        )?;
                    }
                    10 => {
                        let password = password(target)?;
                        if !sasl_mechanisms(&body).any(|m| m == SCRAM_SHA_256) {
                            return Err(ServerError::Login(
                                "server offers no SCRAM-SHA-256".into(),
                            ));
                        }
                        let client =
                            ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                        frontend::sasl_initial_response(SCRAM_SHA_256, client.message(), &mut out)?;
                        scram = Some(client);
                    }
                    11 => {
                        let client = scram.as_mut().ok_or_else(|| {
                            ServerError::Protocol("unexpected SASL continue".into())
                        })?;
                        client
                            .update(&body)
                            .map_err(|e| ServerError::Login(e.to_string()))?;
                        frontend::sasl_response(client.message(), &mut out)?;
                    }
                    12 => {
                        let mut client = scram
                            .take()
                            .ok_or_else(|| ServerError::Protocol("unexpected SASL final".into()))?;
                        client
                            .finish(&body)
                            .map_err(|e| ServerError::Login(e.to_string()))?;
                    }
                    other => {
                        return Err(ServerError::Login(format!(
                            "unsupported authentication request {other}"
                        )))
                    }
                }
                if !out.is_empty() {
                    conn.stream.write_all(&out).await?;
                }
            }
            b'S' => conn.note_parameter(&body),
            b'K' if body.len() >= 8 => {
                conn.process_id = body.get_i32();
                conn.secret_key = body.get_i32();
            }
            b'E' => {
                return Err(ServerError::Refused {
                    code: error_field(&body, b'C').unwrap_or_default(),
                    message: error_message(&body),
                })
            }
            b'Z' => return Ok(()),
            // NoticeResponse, NegotiateProtocolVersion: nothing to act on.
            _ => {}
        }
    }
}

fn password(target: &ServerTarget) -> Result<&str, ServerError> {
    match target.password.as_deref() {
        Some(p) if !is_md5_hash(p) && !p.starts_with("SCRAM-SHA-256$") => Ok(p),
        Some(_) => Err(ServerError::Login(format!(
            "the server wants a password for \"{}\" but only a hash is configured",
            target.user
        ))),
        None => Err(ServerError::Login(format!(
            "no password configured for user \"{}\"",
            target.user
        ))),
    }
}

fn is_md5_hash(secret: &str) -> bool {
    secret.len() == 35
        && secret.starts_with("md5")
        && secret[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// md5 authentication needs only `md5(password + user)`, so a stored md5 hash logs in
/// as well as the password does.
fn md5_response(target: &ServerTarget, salt: [u8; 4]) -> Result<String, ServerError> {
    match target.password.as_deref() {
        Some(hash) if is_md5_hash(hash) => {
            let mut digest = Md5::new();
            digest.update(&hash.as_bytes()[3..]);
            digest.update(salt);
            let hex: String = digest
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok(format!("md5{hex}"))
        }
        _ => Ok(postgres_protocol::authentication::md5_hash(
            target.user.as_bytes(),
            password(target)?.as_bytes(),
            salt,
        )),
    }
}

fn sasl_mechanisms(body: &[u8]) -> impl Iterator<Item = &str> {
    body.split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .filter_map(|m| std::str::from_utf8(m).ok())
}
