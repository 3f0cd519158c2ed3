//! Opening a server connection: TCP or unix socket, TLS as `server_tls_sslmode` says,
//! StartupMessage, and the client side of cleartext, md5 and SCRAM-SHA-256 authentication
//! (SCRAM from `postgres-protocol`, with `tls-server-end-point` channel binding over TLS).

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use md5::{Digest, Md5};
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::{error_field, error_message, ServerConn, ServerError};
use crate::auth::{proven_client_key, ScramKeyClient, ScramSecret, Secret};
use crate::config::SslMode;
use crate::net::Stream;
use crate::params::Params;
use crate::tls::ServerTls;

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
    /// TLS towards this server (`server_tls_sslmode`); unix sockets never use it.
    pub tls: ServerTls,
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

/// Called once the socket is open (and TLS established), before the login: where
/// PgBouncer logs "new connection to server".
pub type OnConnected<'a> = &'a (dyn Fn(&Stream) + Sync);

/// Connects and logs in, all within `timeout`.
pub async fn connect(
    target: &ServerTarget,
    id: u64,
    timeout: Duration,
    connected: OnConnected<'_>,
) -> Result<ServerConn, ServerError> {
    let attempt = async {
        // allow: plain first, TLS only when the server refuses plain text (libpq's rule).
        match open(target, id, target.tls.mode >= SslMode::Prefer, connected).await {
            Err(ServerError::Refused { code, .. })
                if target.tls.mode == SslMode::Allow && code == "28000" =>
            {
                open(target, id, true, connected).await
            }
            outcome => outcome,
        }
    };
    if timeout.is_zero() {
        return attempt.await;
    }
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ServerError::Timeout)?
}

async fn open(
    target: &ServerTarget,
    id: u64,
    try_tls: bool,
    connected: OnConnected<'_>,
) -> Result<ServerConn, ServerError> {
    {
        let stream = open_socket(target, try_tls).await?;
        connected(&stream);
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
    }
}

async fn open_socket(target: &ServerTarget, try_tls: bool) -> Result<Stream, ServerError> {
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
    if !try_tls {
        return Ok(Stream::Tcp(socket));
    }
    start_tls(socket, target).await
}

/// SSLRequest; on 'S' the TLS handshake (verifying as the mode says), on 'N' plain text
/// unless the mode requires TLS.
async fn start_tls(mut socket: TcpStream, target: &ServerTarget) -> Result<Stream, ServerError> {
    let mode = target.tls.mode;
    let connector = target.tls.connector().ok_or_else(|| {
        ServerError::Login(format!(
            "server_tls_sslmode is \"{mode}\" but no TLS configuration is loaded"
        ))
    })?;
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    socket.write_all(&request).await?;
    match socket.read_u8().await? {
        b'S' => {}
        b'N' if !mode.requires_tls() => return Ok(Stream::Tcp(socket)),
        b'N' => {
            return Err(ServerError::Login(format!(
                "server does not support TLS, but server_tls_sslmode is \"{mode}\""
            )))
        }
        other => {
            return Err(ServerError::Protocol(format!(
                "unexpected answer to SSLRequest: {other:#04x}"
            )))
        }
    }
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|_| ServerError::Login(format!("invalid server name for TLS: {}", target.host)))?;
    let tls = connector.connect(name, socket).await.map_err(|error| {
        ServerError::Login(format!(
            "TLS handshake failed (server_tls_sslmode = \"{mode}\"): {error}"
        ))
    })?;
    Ok(Stream::Tls(Box::new(tls.into())))
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
    let mut scram: Option<ScramClient> = None;
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
                        let offered: Vec<&str> = sasl_mechanisms(&body).collect();
                        // Over TLS, bind the exchange to the server's certificate when the
                        // server offers it: a man in the middle then cannot relay it.
                        let end_point = conn
                            .stream
                            .peer_certificate()
                            .map(crate::tls::end_point_hash);
                        let plus = end_point.is_some() && offered.contains(&SCRAM_SHA_256_PLUS);
                        let mut mechanism = if plus {
                            SCRAM_SHA_256_PLUS
                        } else {
                            SCRAM_SHA_256
                        };
                        if !offered.contains(&mechanism) {
                            return Err(ServerError::Login(
                                "server offers no SCRAM-SHA-256".into(),
                            ));
                        }
                        let client = match scram_secret(target)? {
                            // Keys proven by a client: no channel binding on this path.
                            Some(secret) => {
                                mechanism = SCRAM_SHA_256;
                                let key = proven_client_key(&secret).ok_or_else(|| {
                                    ServerError::Login(format!(
                                        "only a SCRAM secret is configured for \"{}\": \
                                         a client must log in with its password first",
                                        target.user
                                    ))
                                })?;
                                ScramClient::Keys(ScramKeyClient::new(key, secret))
                            }
                            None => {
                                let binding = match end_point {
                                    Some(hash) if plus => {
                                        ChannelBinding::tls_server_end_point(hash)
                                    }
                                    Some(_) => ChannelBinding::unrequested(),
                                    None => ChannelBinding::unsupported(),
                                };
                                let password = password(target)?;
                                ScramClient::Password(ScramSha256::new(
                                    password.as_bytes(),
                                    binding,
                                ))
                            }
                        };
                        frontend::sasl_initial_response(mechanism, &client.first(), &mut out)?;
                        scram = Some(client);
                    }
                    11 => {
                        let client = scram.as_mut().ok_or_else(|| {
                            ServerError::Protocol("unexpected SASL continue".into())
                        })?;
                        let response = client.update(&body)?;
                        frontend::sasl_response(&response, &mut out)?;
                    }
                    12 => {
                        let client = scram
                            .take()
                            .ok_or_else(|| ServerError::Protocol("unexpected SASL final".into()))?;
                        client.finish(&body)?;
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
                    code: error_field(&body, b'C').unwrap_or_default().to_owned(),
                    message: error_message(&body),
                })
            }
            b'Z' => return Ok(()),
            // NoticeResponse, NegotiateProtocolVersion: nothing to act on.
            _ => {}
        }
    }
}

/// SCRAM towards the server: with the password, or with the keys a client proved.
enum ScramClient {
    Password(ScramSha256),
    Keys(ScramKeyClient),
}

impl ScramClient {
    fn first(&self) -> Vec<u8> {
        match self {
            ScramClient::Password(client) => client.message().to_vec(),
            ScramClient::Keys(client) => client.message().to_vec(),
        }
    }

    fn update(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ServerError> {
        match self {
            ScramClient::Password(client) => {
                client
                    .update(server_first)
                    .map_err(|e| ServerError::Login(e.to_string()))?;
                Ok(client.message().to_vec())
            }
            ScramClient::Keys(client) => {
                client
                    .update(server_first)
                    .map_err(|e| ServerError::Login(e.to_string()))?;
                Ok(client.message().to_vec())
            }
        }
    }

    fn finish(self, server_final: &[u8]) -> Result<(), ServerError> {
        match self {
            ScramClient::Password(mut client) => client
                .finish(server_final)
                .map_err(|e| ServerError::Login(e.to_string())),
            ScramClient::Keys(client) => client
                .finish(server_final)
                .map_err(|e| ServerError::Login(e.to_string())),
        }
    }
}

/// The configured password when it is a `SCRAM-SHA-256$…` secret.
fn scram_secret(target: &ServerTarget) -> Result<Option<ScramSecret>, ServerError> {
    match target.password.as_deref() {
        Some(stored) if stored.starts_with("SCRAM-SHA-256$") => match Secret::parse(stored) {
            Ok(Secret::Scram(secret)) => Ok(Some(secret)),
            _ => Err(ServerError::Login(format!(
                "the SCRAM secret configured for \"{}\" is invalid",
                target.user
            ))),
        },
        _ => Ok(None),
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
