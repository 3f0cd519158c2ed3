//! The wire side of client authentication: which exchange to run for `auth_type` and
//! the user's stored secret, with the checks themselves in `crate::auth`.
//! An unknown user goes through the same exchange as a known one and fails the same
//! way, so a client cannot probe which users exist.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::Refusal;
use std::sync::Arc;

use crate::auth::{verify_cleartext, verify_md5, ScramSecret, ScramServer, Secret};
use crate::auth_query::Lookup;
use crate::config::{AuthType, Settings};
use crate::context::Shared;
use crate::net::Stream;
use crate::protocol::builders;
use crate::protocol::frame::{peek_whole, take_cstr};

/// Password and SASL messages are small; PostgreSQL caps them the same way.
const MAX_AUTH_MESSAGE: usize = 10_000;

/// The exchange one connection runs: `auth_type`'s, or with `hba` the matching rule's
/// (see `super::hba`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Any,
    Trust,
    Plain,
    Md5,
    ScramSha256,
    /// Unix socket: the peer's OS user must be the requested user.
    Peer,
    /// TLS: the verified client certificate's common name must be the requested user.
    Cert,
}

/// Who a client claims to be, and how it must prove it.
pub struct Claim<'a> {
    pub user: &'a str,
    pub method: Method,
    /// The secret auth_query found for a user with no configured password.
    pub looked_up: Option<&'a str>,
}

/// Runs the exchange `claim.method` calls for. `Ok` means the client proved who it is.
/// `channel_binding`: our certificate's `tls-server-end-point` data on a TLS connection,
/// which makes SCRAM offer SCRAM-SHA-256-PLUS too.
pub async fn authenticate(
    shared: &Shared,
    stream: &mut Stream,
    buf: &mut BytesMut,
    settings: &Settings,
    claim: Claim<'_>,
    channel_binding: Option<&[u8]>,
) -> Result<(), Refusal> {
    let Claim {
        user,
        method,
        looked_up,
    } = claim;
    let stored = settings
        .users
        .get(user)
        .and_then(|u| u.password.as_deref())
        .or(looked_up);
    let secret = match stored.map(Secret::parse) {
        Some(Ok(secret)) => Some(secret),
        Some(Err(error)) => {
            tracing::warn!(user, "stored password is unusable: {error}");
            None
        }
        None => None,
    };
    match method {
        // PgBouncer's `any`: the name is not checked either.
        Method::Any => Ok(()),
        Method::Plain => cleartext(stream, buf, secret.as_ref(), user).await,
        Method::Peer => peer_is(stream, user).and_then(|()| known(settings, user, looked_up)),
        Method::Cert => {
            certificate_names(stream, user).and_then(|()| known(settings, user, looked_up))
        }
        // PgBouncer's words for a trusted name it does not know.
        Method::Trust if known(settings, user, looked_up).is_ok() => Ok(()),
        Method::Trust => Err(Refusal::TrustFailed),
        Method::Md5 => match secret {
            // md5 cannot be answered from a SCRAM secret; PostgreSQL switches to SCRAM.
            Some(Secret::Scram(_)) => {
                scram(stream, buf, secret.as_ref(), user, channel_binding).await
            }
            _ => md5(stream, buf, secret.as_ref(), user).await,
        },
        Method::ScramSha256 => {
            let secret = secret.map(|secret| scram_form(shared, user, secret));
            scram(stream, buf, secret.as_ref(), user, channel_binding).await
        }
    }
}

/// Trust, peer and cert need no password, but the user must be configured (or found by
/// auth_query).
fn known(settings: &Settings, user: &str, looked_up: Option<&str>) -> Result<(), Refusal> {
    if settings.users.contains_key(user) || looked_up.is_some() {
        Ok(())
    } else {
        Err(Refusal::NotAuthorized(format!(
            "role \"{user}\" does not exist"
        )))
    }
}

/// pg_hba `peer`: the kernel's word for who is at the other end of the unix socket.
fn peer_is(stream: &Stream, user: &str) -> Result<(), Refusal> {
    match crate::net::peer_os_user(stream) {
        Some(os_user) if os_user == user => Ok(()),
        os_user => {
            tracing::info!(user, os_user, "peer authentication: OS user does not match");
            Err(Refusal::NotAuthorized(format!(
                "Peer authentication failed for user \"{user}\""
            )))
        }
    }
}

/// pg_hba `cert`: the client certificate (verified by the TLS handshake, which
/// `client_tls_sslmode` verify-ca/verify-full requires) must name the user as its CN.
fn certificate_names(stream: &Stream, user: &str) -> Result<(), Refusal> {
    let Some(certificate) = stream.peer_certificate() else {
        return Err(Refusal::NotAuthorized(
            "connection requires a valid client certificate".into(),
        ));
    };
    match crate::tls::common_name(certificate) {
        Some(name) if name == user => Ok(()),
        name => {
            tracing::info!(
                user,
                common_name = name.as_deref().unwrap_or("(none)"),
                "certificate authentication: the common name is not the user name"
            );
            Err(Refusal::NotAuthorized(format!(
                "certificate authentication failed for user \"{user}\""
            )))
        }
    }
}

/// The secret auth_query finds for `user`, when it has no configured password and an
/// auth_user applies to `database`. None: go by the configured users (and an unknown
/// name fails like a wrong password). A failed lookup refuses the client, which is told
/// only that; the cause goes to the log with the peer.
pub async fn look_up(
    shared: &Shared,
    settings: &Settings,
    database: &str,
    user: &str,
    peer: &str,
) -> Result<Option<String>, Refusal> {
    let configured = settings.users.get(user).and_then(|u| u.password.as_ref());
    if configured.is_some() || settings.auth_type == AuthType::Any {
        return Ok(None);
    }
    let Some(db) = settings.database(database) else {
        return Ok(None);
    };
    match shared
        .auth_queries
        .lookup(settings, &db, user, shared.tls.server())
        .await
    {
        Ok(Lookup::Found(secret)) => Ok(Some(secret)),
        Ok(Lookup::Unknown | Lookup::NotConfigured) => Ok(None),
        Err(error) => {
            tracing::warn!(peer, db = %database, user, "auth_query lookup failed: {error}");
            Err(Refusal::AuthLookupFailed)
        }
    }
}

/// A plain-text password answers SCRAM through a secret derived once and kept.
fn scram_form(shared: &Shared, user: &str, secret: Secret) -> Secret {
    let Secret::Plain(password) = secret else {
        return secret;
    };
    let derived = shared
        .derived_secrets
        .entry((user.to_owned(), password.clone()))
        .or_insert_with(|| Arc::new(ScramSecret::generate(&password)))
        .clone();
    Secret::Scram((*derived).clone())
}

async fn md5(
    stream: &mut Stream,
    buf: &mut BytesMut,
    secret: Option<&Secret>,
    user: &str,
) -> Result<(), Refusal> {
    let salt: [u8; 4] = rand::random();
    let mut out = BytesMut::new();
    builders::authentication_md5(&mut out, salt);
    write(stream, &out).await?;
    let body = read_password_message(stream, buf).await?;
    let (response, _) = take_cstr(&body).ok_or_else(|| malformed("password packet"))?;
    match secret {
        Some(secret) if verify_md5(secret, user, salt, response) => Ok(()),
        _ => Err(Refusal::PasswordFailed),
    }
}

/// PgBouncer's `plain`: AuthenticationCleartextPassword, checked against any stored form.
async fn cleartext(
    stream: &mut Stream,
    buf: &mut BytesMut,
    secret: Option<&Secret>,
    user: &str,
) -> Result<(), Refusal> {
    let mut out = BytesMut::new();
    builders::authentication_cleartext(&mut out);
    write(stream, &out).await?;
    let body = read_password_message(stream, buf).await?;
    let (password, _) = take_cstr(&body).ok_or_else(|| malformed("password packet"))?;
    match secret {
        Some(secret) if verify_cleartext(secret, user, password) => Ok(()),
        _ => Err(Refusal::PasswordFailed),
    }
}

async fn scram(
    stream: &mut Stream,
    buf: &mut BytesMut,
    secret: Option<&Secret>,
    user: &str,
    channel_binding: Option<&[u8]>,
) -> Result<(), Refusal> {
    let mut server = match secret.map(ScramServer::new) {
        Some(Ok(server)) => server,
        _ => ScramServer::for_unknown_user(user),
    };
    // PostgreSQL's order: -PLUS first, offered only on TLS connections.
    let mechanisms: &[&str] = match channel_binding {
        Some(_) => &[ScramServer::MECHANISM_PLUS, ScramServer::MECHANISM],
        None => &[ScramServer::MECHANISM],
    };
    let mut out = BytesMut::new();
    builders::authentication_sasl(&mut out, mechanisms);
    write(stream, &out).await?;

    let body = read_password_message(stream, buf).await?;
    let (mechanism, mut rest) =
        take_cstr(&body).ok_or_else(|| malformed("SASL initial response"))?;
    if !mechanisms.contains(&mechanism) {
        return Err(Refusal::Protocol(
            "client selected an invalid SASL authentication mechanism".into(),
        ));
    }
    server.bind_channel(
        channel_binding.map(<[u8]>::to_vec),
        mechanism == ScramServer::MECHANISM_PLUS,
    );
    if rest.len() < 4 {
        return Err(malformed("SASL initial response"));
    }
    let length = rest.get_i32();
    if length < 0 || length as usize != rest.len() {
        return Err(malformed("SASL initial response"));
    }
    let server_first = server.client_first(rest).map_err(auth_error)?;
    out.clear();
    builders::authentication_sasl_continue(&mut out, &server_first);
    write(stream, &out).await?;

    let body = read_password_message(stream, buf).await?;
    let server_final = server.client_final(&body).map_err(auth_error)?;
    out.clear();
    builders::authentication_sasl_final(&mut out, &server_final);
    // The proven ClientKey lets pgmux log in to PostgreSQL as this user when only the
    // SCRAM secret is configured (no plaintext password anywhere).
    if let (Some(Secret::Scram(secret)), Some(client_key)) = (secret, server.client_key()) {
        crate::auth::remember_client_key(secret, client_key);
    }
    write(stream, &out).await
}

fn auth_error(error: crate::auth::AuthError) -> Refusal {
    match error {
        crate::auth::AuthError::Failed => Refusal::SaslFailed,
        other => Refusal::Authentication {
            code: other.sqlstate(),
            message: other.to_string(),
        },
    }
}

fn malformed(what: &str) -> Refusal {
    Refusal::Protocol(format!("malformed {what}"))
}

async fn write(stream: &mut Stream, bytes: &[u8]) -> Result<(), Refusal> {
    stream
        .write_all(bytes)
        .await
        .map_err(|_| Refusal::ClientGone)
}

/// Reads the client's next message, which must be a PasswordMessage-family 'p'.
async fn read_password_message(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<BytesMut, Refusal> {
    loop {
        match peek_whole(buf, MAX_AUTH_MESSAGE) {
            Ok(Some((b'p', _, total))) => {
                let mut frame = buf.split_to(total);
                frame.advance(5);
                return Ok(frame);
            }
            Ok(Some((tag, _, _))) => {
                return Err(Refusal::Protocol(format!(
                    "expected password response, got message type {}",
                    tag as char
                )));
            }
            Ok(None) => {}
            Err(error) => return Err(Refusal::Protocol(error.to_string())),
        }
        buf.reserve(1024);
        if stream
            .read_buf(buf)
            .await
            .map_err(|_| Refusal::ClientGone)?
            == 0
        {
            return Err(Refusal::ClientGone);
        }
    }
}
