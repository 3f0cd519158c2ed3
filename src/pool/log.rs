//! A pool's server connections in PgBouncer's log format:
//!
//! ```text
//! S-0x200000003: app/alice@127.0.0.1:5432 new connection to server (from 127.0.0.1:40312)
//! S-0x200000003: app/alice@127.0.0.1:5432 closing because: server idle timeout (age=600s)
//! ```
//! A failed login adds PgBouncer's unprefixed warning, `server login failed: FATAL …`,
//! before its closing line.

use std::time::Instant;

use super::Pool;
use crate::logfmt::{self, reason, Conn, ConnKind};
use crate::net::Stream;
use crate::server::{ServerConn, ServerError};

impl Pool {
    fn server_conn<'a>(&'a self, id: u64, addr: &'a str) -> Conn<'a> {
        Conn {
            kind: ConnKind::Server,
            id,
            database: &self.key.database,
            user: &self.key.user,
            addr,
        }
    }

    /// The server's address as PgBouncer prints it: the resolved IP and port, or
    /// `unix:PORT` for a unix socket (and the configured host until connected).
    fn server_addr(&self, stream: Option<&Stream>) -> String {
        if self.target.host.starts_with('/') {
            return logfmt::unix_peer(None, self.target.port);
        }
        match stream.and_then(|s| s.tcp_socket()?.peer_addr().ok()) {
            Some(addr) => logfmt::peer(addr),
            None => format!("{}:{}", self.target.host, self.target.port),
        }
    }

    /// The socket is connected: PgBouncer's "new connection to server" (`log_connections`).
    pub(super) fn log_new_server(&self, id: u64, stream: &Stream) {
        if !self.lock().limits.log_connections {
            return;
        }
        let addr = self.server_addr(Some(stream));
        let local = stream
            .tcp_socket()
            .and_then(|s| s.local_addr().ok())
            .map(logfmt::peer);
        let line = logfmt::new_server_connection(&self.server_conn(id, &addr), local.as_deref());
        tracing::info!("{line}");
    }

    /// A server leaves for `why` (`log_disconnections`).
    pub(super) fn log_server_closing(&self, conn: &ServerConn, why: &str) {
        if !self.lock().limits.log_disconnections {
            return;
        }
        let addr = self.server_addr(Some(&conn.stream));
        let line = logfmt::closing(
            &self.server_conn(conn.id, &addr),
            why,
            conn.created_at.elapsed(),
        );
        tracing::info!("{line}");
    }

    /// A server that never logged in: PostgreSQL's refusal as PgBouncer's warning, then
    /// the closing line with the reason PgBouncer gives.
    pub(super) fn log_login_failure(&self, id: u64, error: &ServerError, started: Instant) {
        let why = match error {
            ServerError::Refused { message, .. } => {
                tracing::warn!("{}", logfmt::server_login_failed(message));
                message.clone()
            }
            ServerError::Connect(_) => reason::CONNECT_FAILED.to_owned(),
            ServerError::Timeout => reason::CONNECT_TIMEOUT.to_owned(),
            ServerError::Io(_) | ServerError::Closed => reason::SERVER_CONN_CRASHED.to_owned(),
            other => other.to_string(),
        };
        if self.lock().limits.log_disconnections {
            let addr = self.server_addr(None);
            let line = logfmt::closing(&self.server_conn(id, &addr), &why, started.elapsed());
            tracing::info!("{line}");
        }
    }
}
