//! Which authentication exchange a login runs: `auth_type`, or with `auth_type = "hba"`
//! the method of the first `auth_hba_file` rule matching the connection, database and
//! user. No matching rule, or a `reject` rule, refuses the login before any password
//! is asked, with PostgreSQL's SQLSTATE and wording (which never depend on whether the
//! user exists).

use super::auth::Method;
use crate::client::Refusal;
use crate::config::{AuthType, ClientOrigin, HbaMethod, Settings};
use crate::net::Stream;

pub fn method_for(
    settings: &Settings,
    stream: &Stream,
    peer: &str,
    database: &str,
    user: &str,
) -> Result<Method, Refusal> {
    Ok(match settings.auth_type {
        AuthType::Any => Method::Any,
        AuthType::Trust => Method::Trust,
        AuthType::Plain => Method::Plain,
        AuthType::Md5 => Method::Md5,
        AuthType::ScramSha256 => Method::ScramSha256,
        AuthType::Hba => return hba_method(settings, stream, peer, database, user),
    })
}

fn hba_method(
    settings: &Settings,
    stream: &Stream,
    peer: &str,
    database: &str,
    user: &str,
) -> Result<Method, Refusal> {
    let origin = origin(stream);
    let rule = match (&settings.hba, origin) {
        (Some(rules), Some(origin)) => rules
            .first_match(origin, database, user)
            .map(|rule| (rule, &rules.path)),
        // Settings loaded from a file always carry the rules with `hba`; without them
        // nobody is let in, as in PgBouncer.
        _ => None,
    };
    let method = match rule {
        Some((rule, _)) if rule.method != HbaMethod::Reject => rule.method,
        Some((rule, path)) => {
            tracing::info!(
                peer,
                db = database,
                user,
                "login rejected by {}:{}",
                path.display(),
                rule.line
            );
            return Err(refusal(
                "auth_hba_file rejects connection",
                origin,
                database,
                user,
            ));
        }
        None => {
            tracing::info!(
                peer,
                db = database,
                user,
                "login refused: no auth_hba_file rule matches"
            );
            return Err(refusal("no auth_hba_file entry", origin, database, user));
        }
    };
    Ok(match method {
        HbaMethod::Trust => Method::Trust,
        HbaMethod::Md5 => Method::Md5,
        HbaMethod::Password => Method::Plain,
        HbaMethod::ScramSha256 => Method::ScramSha256,
        HbaMethod::Peer => Method::Peer,
        HbaMethod::Cert => Method::Cert,
        HbaMethod::Reject => unreachable!("refused above"),
    })
}

/// The connection as the rules see it; None when the socket no longer has a peer.
fn origin(stream: &Stream) -> Option<ClientOrigin> {
    match stream {
        Stream::Unix(_) => Some(ClientOrigin::Local),
        _ => {
            let address = stream.tcp_socket()?.peer_addr().ok()?.ip();
            Some(ClientOrigin::Tcp {
                address,
                tls: stream.is_tls(),
            })
        }
    }
}

/// PostgreSQL's text: `no pg_hba.conf entry for host "…", user "…", database "…", no
/// encryption`, naming pgmux's file instead.
fn refusal(what: &str, origin: Option<ClientOrigin>, database: &str, user: &str) -> Refusal {
    let (host, encryption) = match origin {
        Some(ClientOrigin::Tcp { address, tls }) => (
            address.to_canonical().to_string(),
            if tls {
                "SSL encryption"
            } else {
                "no encryption"
            },
        ),
        Some(ClientOrigin::Local) => ("[local]".to_owned(), "no encryption"),
        None => ("?".to_owned(), "no encryption"),
    };
    Refusal::NotAuthorized(format!(
        "{what} for host \"{host}\", user \"{user}\", database \"{database}\", {encryption}"
    ))
}
