//! From the first byte to ReadyForQuery: startup packet, protocol negotiation, limits,
//! authentication, and the welcome (ParameterStatus, BackendKeyData).

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod auth;
mod conn_log;
mod hba;

pub use conn_log::ClientLog;

use crate::client::session::Session;
use crate::client::Refusal;
use crate::config::{ConsoleRole, Settings};
use crate::context::{ClientSlot, PoolLookup, Shared};
use crate::net::Stream;
use crate::params::{canonical_name, Params, TRACKED};
use crate::pool::{CheckoutError, Pool};
use crate::protocol::builders;
use crate::protocol::startup::{read_startup, StartupMessage, StartupPacket, PROTOCOL_MINOR};

/// A client that logged in to the admin console, for the console to serve.
pub struct ConsoleLogin {
    pub stream: Stream,
    pub role: ConsoleRole,
    pub user: String,
    pub log: ClientLog,
}

/// Where a logged-in connection goes next.
pub enum Entered {
    /// Boxed: the client's task then carries a pointer, not the session.
    Pool(Box<Session>),
    Console(ConsoleLogin),
}

/// Runs the login phase under `client_login_timeout`. `None`: the connection ended
/// before a session (a CancelRequest, a refused login, or a client that just went
/// away), and its closing line is logged.
pub async fn accept(
    shared: &Arc<Shared>,
    mut stream: Stream,
    peer: &str,
    mut log: ClientLog,
) -> Option<Entered> {
    let settings = shared.settings();
    let login = log_in(shared, &settings, &mut stream, peer, &mut log);
    let outcome = if settings.client_login_timeout.is_zero() {
        login.await
    } else {
        tokio::time::timeout(settings.client_login_timeout, login)
            .await
            .unwrap_or_else(|_| Err(Refusal::LoginTimeout))
    };
    match outcome {
        Ok(Some(Admitted::Console(role, user))) => Some(Entered::Console(ConsoleLogin {
            stream,
            role,
            user,
            log,
        })),
        Ok(Some(Admitted::Pool(login))) => Some(Entered::Pool(Box::new(Session::new(
            Arc::clone(shared),
            stream,
            login,
            log,
        )))),
        Ok(None) => None,
        // Logged before the client is told, as PgBouncer does.
        Err(refusal) => {
            refusal.log(&shared.settings(), &log);
            refusal.send(&mut stream).await;
            None
        }
    }
}

/// Where a logged-in client goes: a pool's session, or the admin console.
enum Admitted {
    Pool(Login),
    Console(ConsoleRole, String),
}

/// What a successful login hands to the session.
pub struct Login {
    pub database: String,
    pub user: String,
    pub pool: Arc<Pool>,
    pub params: Params,
    pub leftover: BytesMut,
    /// The client's place under `max_client_conn`, held for the session's life.
    pub slot: ClientSlot,
}

async fn log_in(
    shared: &Arc<Shared>,
    settings: &Settings,
    stream: &mut Stream,
    peer: &str,
    log: &mut ClientLog,
) -> Result<Option<Admitted>, Refusal> {
    let mut buf = BytesMut::with_capacity(512);
    let mut channel_binding = None;
    let Some(startup) =
        read_startup_message(shared, stream, &mut buf, &mut channel_binding).await?
    else {
        return Ok(None);
    };
    refuse_plaintext(shared, stream)?;
    if startup.minor_version > PROTOCOL_MINOR || !startup.protocol_options.is_empty() {
        let mut out = BytesMut::new();
        builders::negotiate_protocol_version(&mut out, PROTOCOL_MINOR, &startup.protocol_options);
        stream
            .write_all(&out)
            .await
            .map_err(|_| Refusal::ClientGone)?;
    }
    let user = startup
        .param("user")
        .filter(|u| !u.is_empty())
        .ok_or(Refusal::NoUsername)?
        .to_owned();
    let database = startup
        .param("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user)
        .to_owned();
    let console = crate::config::is_console(&database);

    // A drain closes the listener as it begins, so a login now comes from a connection
    // accepted just before: on SIGTERM (a rollout, an online restart) its first
    // transaction is served (see shutdown::FIRST_REQUEST_GRACE). The console's SHUTDOWN
    // refuses it at once: the operator asked for no new clients.
    if shared.control.shutdown_requested().is_some() {
        return Err(Refusal::ShuttingDown);
    }
    // As PgBouncer, the console is exempt from max_client_conn: an operator can always
    // get in to see why the pooler is full. PgBouncer's text, with PostgreSQL's 53300
    // (too_many_connections) rather than PgBouncer's 08P01: see the README's error table.
    let slot = if console {
        None
    } else {
        let slot = shared.take_client_slot(settings.max_client_conn);
        Some(slot.ok_or(Refusal::MaxClientConn)?)
    };
    let known_database = console || settings.database(&database).is_some();
    log.identify(known_database.then_some(database.as_str()), &user);
    // The OS user running pgmux, over the unix socket as `pgbouncer`: PgBouncer lets it
    // into the console before any other check.
    if console && is_own_peer(stream, &user) {
        log.console_peer_access(settings);
        log_attempt(log, settings, stream, &database, &user);
        return Ok(Some(Admitted::Console(ConsoleRole::Admin, user)));
    }
    // Before anything about the database or the user is revealed, as in PostgreSQL.
    let method = hba::method_for(settings, stream, peer, &database, &user)?;
    log_attempt(log, settings, stream, &database, &user);
    // Admin console (issue 3): normal auth, then admin_users/stats_users decide.
    if console {
        auth::authenticate(
            shared,
            stream,
            &mut buf,
            settings,
            auth::Claim {
                user: &user,
                method,
                looked_up: None,
            },
            channel_binding.as_deref(),
        )
        .await?;
        let role = settings
            .console_role(&user)
            .ok_or(Refusal::ConsoleNotAllowed)?;
        return Ok(Some(Admitted::Console(role, user)));
    }
    let slot = slot.expect("pool logins hold a max_client_conn place");
    // DISABLE db (issue 3): new logins are refused until ENABLE.
    if shared.control.is_disabled(&database) {
        return Err(Refusal::DatabaseDisabled(database));
    }
    let requested = requested_params(&startup, settings, peer)?;
    let looked_up = auth::look_up(shared, settings, &database, &user, peer).await?;
    auth::authenticate(
        shared,
        stream,
        &mut buf,
        settings,
        auth::Claim {
            user: &user,
            method,
            looked_up: looked_up.as_deref(),
        },
        channel_binding.as_deref(),
    )
    .await?;
    // Only now, as PgBouncer does: a client that cannot log in learns nothing about which
    // databases exist.
    if !known_database {
        log.login_failed(settings, &database, &user);
        return Err(Refusal::NoSuchDatabase(database));
    }
    let pool = shared
        .pool_for(&database, &user)
        .map_err(|PoolLookup::NoSuchDatabase| Refusal::NoSuchDatabase(database.clone()))?;
    if let Some(secret) = &looked_up {
        pool.set_looked_up_secret(secret);
    }
    let server_params = server_params(&pool).await?;
    let params = pool.intern_params(session_params(&server_params, &requested, settings));
    welcome(stream, &server_params, &params).await?;
    Ok(Some(Admitted::Pool(Login {
        database,
        user,
        pool,
        params,
        leftover: buf,
        slot,
    })))
}

/// Reads until a StartupMessage, serving a CancelRequest. An SSLRequest on TCP gets 'S'
/// and a TLS handshake when `client_tls_sslmode` is not `disable` (`channel_binding`
/// then holds our certificate's `tls-server-end-point` data for SCRAM-SHA-256-PLUS),
/// else 'N'; GSSENCRequest always gets 'N'.
async fn read_startup_message(
    shared: &Shared,
    stream: &mut Stream,
    buf: &mut BytesMut,
    channel_binding: &mut Option<Vec<u8>>,
) -> Result<Option<StartupMessage>, Refusal> {
    loop {
        match read_startup(buf) {
            Ok(Some(packet @ (StartupPacket::SslRequest | StartupPacket::GssEncRequest))) => {
                if !buf.is_empty() {
                    // Bytes sent before our answer could be injected by a man in the middle.
                    return Err(Refusal::Protocol(
                        "received unencrypted data after SSL request".into(),
                    ));
                }
                if stream.is_tls() {
                    return Err(Refusal::Protocol(
                        "encryption requested on an encrypted connection".into(),
                    ));
                }
                let tls = shared.tls.client();
                match tls {
                    Some(tls)
                        if matches!(packet, StartupPacket::SslRequest)
                            && matches!(stream, Stream::Tcp(_)) =>
                    {
                        stream
                            .write_all(b"S")
                            .await
                            .map_err(|_| Refusal::ClientGone)?;
                        let Stream::Tcp(socket) = stream.take() else {
                            unreachable!("checked above")
                        };
                        let accepted = tls.acceptor.accept(socket).await.map_err(|error| {
                            tracing::info!("TLS handshake with a client failed: {error}");
                            Refusal::ClientGone
                        })?;
                        *stream = Stream::Tls(Box::new(accepted.into()));
                        *channel_binding = Some(tls.end_point.clone());
                    }
                    _ => stream
                        .write_all(b"N")
                        .await
                        .map_err(|_| Refusal::ClientGone)?,
                }
            }
            Ok(Some(StartupPacket::Cancel { process_id, secret })) => {
                shared.cancels.cancel(process_id, &secret).await;
                return Ok(None);
            }
            Ok(Some(StartupPacket::Startup(message))) => return Ok(Some(message)),
            Ok(None) => {
                buf.reserve(1024);
                match stream.read_buf(buf).await {
                    Ok(0) | Err(_) => return Ok(None),
                    Ok(_) => {}
                }
            }
            Err(error) => return Err(Refusal::Protocol(error.to_string())),
        }
    }
}

/// PgBouncer's "login attempt" line (`log_connections`).
fn log_attempt(log: &ClientLog, settings: &Settings, stream: &Stream, database: &str, user: &str) {
    let tls = stream.tls_description();
    log.login_attempt(settings, database, user, tls.as_deref());
}

/// PgBouncer's rule for the console without a password: over the unix socket, the OS
/// user running the pooler, logging in as `pgbouncer`.
fn is_own_peer(stream: &Stream, user: &str) -> bool {
    user == "pgbouncer"
        && matches!(stream, Stream::Unix(_))
        && crate::net::peer_os_user(stream)
            .is_some_and(|peer| Some(peer) == crate::net::own_os_user())
}

/// `client_tls_sslmode` require and stronger: a StartupMessage over plain TCP is refused,
/// with PgBouncer's text. Unix sockets are local and exempt, as in PgBouncer.
fn refuse_plaintext(shared: &Shared, stream: &Stream) -> Result<(), Refusal> {
    match shared.tls.client() {
        Some(tls) if tls.mode.requires_tls() && matches!(stream, Stream::Tcp(_)) => {
            Err(Refusal::SslRequired)
        }
        _ => Ok(()),
    }
}

/// The tracked parameters the client asked for in its startup packet. Anything else must
/// be listed in `ignore_startup_parameters`, as in PgBouncer.
fn requested_params(
    startup: &StartupMessage,
    settings: &Settings,
    peer: &str,
) -> Result<Params, Refusal> {
    let mut params = Params::default();
    for (name, value) in &startup.params {
        if name == "user" || name == "database" {
            continue;
        }
        // An explicit ignore wins over tracking, as the operator asked for it.
        let ignored = settings
            .ignore_startup_parameters
            .iter()
            .any(|i| i.eq_ignore_ascii_case(name));
        if ignored {
            continue;
        }
        if let Some(canonical) = canonical_name(name, &settings.track_extra_parameters) {
            params.set(canonical, value);
        } else {
            return Err(Refusal::Protocol(format!(
                "unsupported startup parameter: {name}"
            )));
        }
    }
    if settings.application_name_add_host {
        let name = params.get("application_name").unwrap_or("").to_owned();
        params.set("application_name", &format!("{name} - {peer}"));
    }
    Ok(params)
}

/// The ParameterStatus set a server of this pool reports at login; when no server has
/// logged in yet, one is opened (and returned) to learn it.
async fn server_params(pool: &Arc<Pool>) -> Result<Params, Refusal> {
    if let Some(params) = pool.server_params() {
        return Ok(params);
    }
    match pool.checkout().await {
        Ok(server) => {
            let params = server.params.clone();
            server.release();
            Ok(params)
        }
        Err(CheckoutError::Server { code, message }) => Err(Refusal::Server { code, message }),
        Err(other) => Err(Refusal::Protocol(other.to_string())),
    }
}

/// What this client's transactions must see: the server's defaults for every tracked
/// parameter, overridden by what the client asked for.
fn session_params(server: &Params, requested: &Params, settings: &Settings) -> Params {
    let mut params = Params::default();
    let tracked = TRACKED
        .iter()
        .copied()
        .chain(settings.track_extra_parameters.iter().map(String::as_str));
    for name in tracked {
        if let Some(value) = requested.get(name).or_else(|| server.get(name)) {
            params.set(name, value);
        }
    }
    params
}

async fn welcome(stream: &mut Stream, server: &Params, session: &Params) -> Result<(), Refusal> {
    let mut out = BytesMut::with_capacity(512);
    builders::authentication_ok(&mut out);
    for (name, value) in server.iter() {
        builders::parameter_status(&mut out, name, session.get(name).unwrap_or(value));
    }
    for (name, value) in session.iter() {
        if server.get(name).is_none() {
            builders::parameter_status(&mut out, name, value);
        }
    }
    stream
        .write_all(&out)
        .await
        .map_err(|_| Refusal::ClientGone)
}
