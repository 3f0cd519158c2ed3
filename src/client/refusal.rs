//! Why pgmux refuses a login or ends a client connection: one variant per cause, and
//! one table (`Refusal::sqlstate`, `message`, `hint`, `server_close_reason`) that gives
//! each its SQLSTATE, the text the client is told (PgBouncer's where it has one, since
//! log alerts grep for them) and the line the connection's end is logged with.
//!
//! Drivers classify by SQLSTATE and people by text: PgBouncer's texts stay, and the
//! README's error table lists where the codes differ from PgBouncer's.

use std::borrow::Cow;

use crate::config::Settings;
use crate::logfmt::reason;
use crate::net::Stream;
use crate::protocol::sqlstate::{
    ADMIN_SHUTDOWN, INVALID_AUTHORIZATION, PROTOCOL_VIOLATION, TOO_MANY_CONNECTIONS,
};

use super::ClientLog;

#[derive(Debug)]
pub enum Refusal {
    /// The client went away (or its socket failed): nobody to tell.
    ClientGone,
    /// The server's FATAL (`pg_terminate_backend`, a crash) already reached the client,
    /// and then its socket closed: the client is not told twice.
    ServerFatalRelayed,

    // Login.
    LoginTimeout,
    NoUsername,
    ShuttingDown,
    MaxClientConn,
    /// A console login by a user in neither `admin_users` nor `stats_users`.
    ConsoleNotAllowed,
    DatabaseDisabled(String),
    NoSuchDatabase(String),
    SslRequired,
    /// `auth_type = trust` and the user is not in the user list.
    TrustFailed,
    /// A wrong password (md5, plain) or an unknown user.
    PasswordFailed,
    /// A failed SCRAM exchange (wrong password or unknown user).
    SaslFailed,
    /// auth_query could not be run: not a verdict on the client's password.
    AuthLookupFailed,
    /// hba, peer and cert refusals and unknown roles: PostgreSQL's words and 28000.
    NotAuthorized(String),
    /// An authentication exchange pgmux cannot go on with, with PostgreSQL's code.
    Authentication {
        code: &'static str,
        message: String,
    },
    /// Malformed or unexpected client input, with what was wrong (08P01).
    Protocol(String),
    /// PostgreSQL refused pgmux's login for this client, passed on with its own code.
    Server {
        code: String,
        message: String,
    },

    // A session.
    QueryWaitTimeout,
    ClientIdleTimeout,
    QueryTimeout,
    IdleTransactionTimeout,
    DatabaseRemoved,
    /// KILL / KILL_CLIENT / SHUTDOWN on the console, with the console's reason.
    Killed(String),
    /// The server's socket closed under a transaction.
    ServerConnCrashed,
    /// The server sent something the relay cannot frame.
    ServerProtocol(String),
    /// The parameter sync (`SET`s for this client's settings) failed on a server.
    ParamsFailed(String),
    /// The settings a transaction changed could not be read back.
    ReadBackFailed,
    /// A transaction block began in statement pooling mode.
    StatementModeTransaction,
}

impl Refusal {
    /// The SQLSTATE the client is told. PgBouncer's 08P01 for its own errors, except
    /// where the README's error table says otherwise.
    pub fn sqlstate(&self) -> &str {
        use Refusal::*;
        match self {
            ShuttingDown | Killed(_) => ADMIN_SHUTDOWN,
            // PostgreSQL's too_many_connections rather than PgBouncer's 08P01.
            MaxClientConn => TOO_MANY_CONNECTIONS,
            NotAuthorized(_) => INVALID_AUTHORIZATION,
            Authentication { code, .. } => code,
            Server { code, .. } => code,
            ClientGone
            | ServerFatalRelayed
            | LoginTimeout
            | NoUsername
            | ConsoleNotAllowed
            | DatabaseDisabled(_)
            | NoSuchDatabase(_)
            | SslRequired
            | TrustFailed
            | PasswordFailed
            | SaslFailed
            | AuthLookupFailed
            | Protocol(_)
            | QueryWaitTimeout
            | ClientIdleTimeout
            | QueryTimeout
            | IdleTransactionTimeout
            | DatabaseRemoved
            | ServerConnCrashed
            | ServerProtocol(_)
            | ParamsFailed(_)
            | ReadBackFailed
            | StatementModeTransaction => PROTOCOL_VIOLATION,
        }
    }

    /// What the client is told, which is also the reason its connection's end is
    /// logged with (`closing because: …`).
    pub fn message(&self) -> Cow<'_, str> {
        use Refusal::*;
        let text = match self {
            ClientGone => reason::CLIENT_UNEXPECTED_EOF,
            ServerFatalRelayed | ServerConnCrashed => reason::SERVER_CONN_CRASHED,
            LoginTimeout => reason::CLIENT_LOGIN_TIMEOUT,
            NoUsername => reason::NO_USERNAME,
            ShuttingDown => reason::SHUTTING_DOWN,
            MaxClientConn => reason::MAX_CLIENT_CONN,
            ConsoleNotAllowed => reason::NOT_ALLOWED,
            DatabaseDisabled(name) => return reason::database_disabled(name).into(),
            NoSuchDatabase(name) => return reason::no_such_database(name).into(),
            SslRequired => reason::SSL_REQUIRED,
            TrustFailed => reason::TRUST_FAILED,
            PasswordFailed => reason::PASSWORD_FAILED,
            SaslFailed => reason::SASL_FAILED,
            AuthLookupFailed => reason::AUTH_LOOKUP_FAILED,
            QueryWaitTimeout => reason::QUERY_WAIT_TIMEOUT,
            ClientIdleTimeout => reason::CLIENT_IDLE_TIMEOUT,
            QueryTimeout => reason::QUERY_TIMEOUT,
            IdleTransactionTimeout => reason::IDLE_TRANSACTION_TIMEOUT,
            DatabaseRemoved => reason::DATABASE_REMOVED,
            StatementModeTransaction => reason::STATEMENT_MODE_TRANSACTION,
            ReadBackFailed => "could not read back session settings",
            NotAuthorized(text) | Killed(text) | Protocol(text) => text,
            Authentication { message, .. } | Server { message, .. } => message,
            ServerProtocol(what) => return format!("server protocol error: {what}").into(),
            ParamsFailed(what) => {
                return format!("could not apply session parameters: {what}").into()
            }
        };
        Cow::Borrowed(text)
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Refusal::SslRequired => Some(
                "pgmux accepts only TLS connections over TCP (client_tls_sslmode); \
                 connect with sslmode=require or stronger",
            ),
            Refusal::StatementModeTransaction => {
                Some("use transaction or session pool_mode for this database")
            }
            _ => None,
        }
    }

    /// Whether the client is told at all: not when it is gone, nor when the server's
    /// own FATAL already told it.
    fn told(&self) -> bool {
        !matches!(self, Refusal::ClientGone | Refusal::ServerFatalRelayed)
    }

    /// The reason the server a session held is closed with when the session ends in
    /// this refusal: the refusal's own when the server caused it (a timeout, a crash),
    /// else PgBouncer's line for a client leaving mid-transaction.
    pub(crate) fn server_close_reason(&self) -> &'static str {
        use Refusal::*;
        match self {
            QueryTimeout => reason::QUERY_TIMEOUT,
            IdleTransactionTimeout => reason::IDLE_TRANSACTION_TIMEOUT,
            ServerConnCrashed | ServerFatalRelayed => reason::SERVER_CONN_CRASHED,
            StatementModeTransaction => reason::STATEMENT_MODE_TRANSACTION,
            ServerProtocol(_) | ParamsFailed(_) | ReadBackFailed => reason::UNCLEAN_SERVER,
            _ => reason::CLIENT_DISCONNECT_NOT_READY,
        }
    }

    /// Tells the client (when it is still there) and closes nothing itself.
    pub(crate) async fn send(&self, stream: &mut Stream) {
        if self.told() {
            let message = self.message();
            crate::net::send_fatal(stream, self.sqlstate(), &message, self.hint()).await;
        }
    }

    /// The connection's last lines: why it closed and, when the client was told, the
    /// pooler error.
    pub(crate) fn log(&self, settings: &Settings, log: &ClientLog) {
        log.closing(settings, &self.message(), self.told());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbouncer_texts_and_codes() {
        let cases = [
            (Refusal::QueryWaitTimeout, "08P01", "query_wait_timeout"),
            (
                Refusal::MaxClientConn,
                "53300",
                "no more connections allowed (max_client_conn)",
            ),
            (Refusal::ShuttingDown, "57P01", "pooler is shutting down"),
            (
                Refusal::NoSuchDatabase("x".into()),
                "08P01",
                "no such database: x",
            ),
        ];
        for (refusal, code, text) in cases {
            assert_eq!((refusal.sqlstate(), &*refusal.message()), (code, text));
        }
    }

    #[test]
    fn a_client_already_gone_or_told_by_the_server_is_not_told_again() {
        assert!(!Refusal::ClientGone.told());
        assert!(!Refusal::ServerFatalRelayed.told());
        assert_eq!(
            Refusal::ServerFatalRelayed.server_close_reason(),
            reason::SERVER_CONN_CRASHED
        );
        assert_eq!(
            Refusal::ClientGone.server_close_reason(),
            reason::CLIENT_DISCONNECT_NOT_READY
        );
    }
}
