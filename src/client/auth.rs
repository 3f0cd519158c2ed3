//! The wire side of client authentication: which exchange to run for `auth_type` and
//! the user's stored secret, with the checks themselves in `crate::auth`.
//! An unknown user goes through the same exchange as a known one and fails the same
//! way, so a client cannot probe which users exist.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Refusal;
use std::sync::Arc;

use crate::auth::{verify_cleartext, verify_md5, ScramSecret, ScramServer, Secret};
use crate::config::{AuthType, Settings};
use crate::context::Shared;
use crate::logfmt::reason;
use crate::net::Stream;
use crate::protocol::builders;
use crate::protocol::frame::{peek_whole, take_cstr};
use crate::protocol::sqlstate::PROTOCOL_VIOLATION;

/// Password and SASL messages are small; PostgreSQL caps them the same way.
const MAX_AUTH_MESSAGE: usize = 10_000;

/// Runs the exchange `auth_type` calls for. `Ok` means the client proved who it is.
/// `channel_binding`: our certificate's `tls-server-end-point` data on a TLS connection,
/// which makes SCRAM offer SCRAM-SHA-256-PLUS too.
pub async fn authenticate(
    shared: &Shared,
    stream: &mut Stream,
    buf: &mut BytesMut,
    settings: &Settings,
    user: &str,
    channel_binding: Option<&[u8]>,
) -> Result<(), Refusal> {
    let stored = settings.users.get(user).and_then(|u| u.password.as_deref());
    let secret = match stored.map(Secret::parse) {
        Some(Ok(secret)) => Some(secret),
        Some(Err(error)) => {
            tracing::warn!(user, "stored password is unusable: {error}");
            None
        }
        None => None,
    };
    match settings.auth_type {
        // PgBouncer's `any`: the name is not checked either.
        AuthType::Any => Ok(()),
        AuthType::Plain => cleartext(stream, buf, secret.as_ref(), user).await,
        AuthType::Trust if settings.users.contains_key(user) => Ok(()),
        AuthType::Trust => Err(Refusal::new(PROTOCOL_VIOLATION, reason::TRUST_FAILED)),
        // `hba` rules are not read yet (the file's path is stored): a password is required.
        AuthType::Md5 | AuthType::Hba => match secret {
            // md5 cannot be answered from a SCRAM secret; PostgreSQL switches to SCRAM.
            Some(Secret::Scram(_)) => {
                scram(stream, buf, secret.as_ref(), user, channel_binding).await
            }
            _ => md5(stream, buf, secret.as_ref(), user).await,
        },
        AuthType::ScramSha256 => {
            let secret = secret.map(|secret| scram_form(shared, user, secret));
            scram(stream, buf, secret.as_ref(), user, channel_binding).await
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

/// PgBouncer's words and code for a failed password (md5/plain) or SCRAM exchange:
/// 08P01, and no user name, unlike PostgreSQL's 28P01.
fn failed(exchange: &'static str) -> Refusal {
    Refusal::new(PROTOCOL_VIOLATION, exchange)
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
        _ => Err(failed(reason::PASSWORD_FAILED)),
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
        _ => Err(failed(reason::PASSWORD_FAILED)),
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
        return Err(Refusal::new(
            PROTOCOL_VIOLATION,
            "client selected an invalid SASL authentication mechanism",
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
        crate::auth::AuthError::Failed => failed(reason::SASL_FAILED),
        other => Refusal::new(other.sqlstate(), other.to_string()),
    }
}

fn malformed(what: &str) -> Refusal {
    Refusal::new(PROTOCOL_VIOLATION, format!("malformed {what}"))
}

async fn write(stream: &mut Stream, bytes: &[u8]) -> Result<(), Refusal> {
    stream.write_all(bytes).await.map_err(|_| Refusal::gone())
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
                return Err(Refusal::new(
                    PROTOCOL_VIOLATION,
                    format!(
                        "expected password response, got message type {}",
                        tag as char
                    ),
                ))
            }
            Ok(None) => {}
            Err(error) => return Err(Refusal::new(PROTOCOL_VIOLATION, error.to_string())),
        }
        buf.reserve(1024);
        if stream.read_buf(buf).await.map_err(|_| Refusal::gone())? == 0 {
            return Err(Refusal::gone());
        }
    }
}
