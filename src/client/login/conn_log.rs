//! One client's lines in PgBouncer's log format, from accept to close:
//!
//! ```text
//! accept ─▶ (startup packet) ─▶ login attempt ─▶ [login failed] ─▶ … ─▶ closing because: REASON
//!                                                                     └▶ pooler error: REASON
//! ```
//! Each line honours the setting PgBouncer ties it to (`log_connections`,
//! `log_disconnections`, `log_pooler_errors`), read when the line is written so that a
//! RELOAD or `SET` on the console takes effect for connections already open.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::logfmt::{self, Conn, ConnKind, NO_DATABASE, NO_USER};
use crate::net::Stream;

/// Who the client is, as far as pgmux knows at each point of its life.
#[derive(Debug)]
pub struct ClientLog {
    /// The client's registry id: SHOW CLIENTS lists it, and its `ptr` is in every line.
    pub id: u64,
    addr: String,
    /// The database of the client's pool, once login found one.
    database: Option<Arc<str>>,
    user: Option<Arc<str>>,
    connected_at: Instant,
}

impl ClientLog {
    pub fn new(id: u64, stream: &Stream, listen_port: u16) -> ClientLog {
        let addr = match stream {
            Stream::Unix(socket) => {
                let pid = socket
                    .peer_cred()
                    .ok()
                    .and_then(|cred| cred.pid())
                    .and_then(|pid| u32::try_from(pid).ok());
                let port = stream.unix_port().unwrap_or(listen_port);
                logfmt::unix_peer(pid, port)
            }
            other => match other.tcp_socket().and_then(|s| s.peer_addr().ok()) {
                Some(addr) => logfmt::peer(addr),
                None => "?".to_owned(),
            },
        };
        ClientLog {
            id,
            addr,
            database: None,
            user: None,
            connected_at: Instant::now(),
        }
    }

    /// From the startup packet on, lines name the user; the database only when it exists
    /// (PgBouncer prints `(nodb)` for an unknown one).
    pub fn identify(&mut self, database: Option<&str>, user: &str) {
        self.database = database.map(Arc::from);
        self.user = Some(Arc::from(user));
    }

    /// Once logged in: the registry's shared copies of the names, not the client's own.
    pub fn share_names(&mut self, database: &Arc<str>, user: &Arc<str>) {
        self.database = Some(Arc::clone(database));
        self.user = Some(Arc::clone(user));
    }

    fn conn(&self) -> Conn<'_> {
        Conn {
            kind: ConnKind::Client,
            id: self.id,
            database: self.database.as_deref().unwrap_or(NO_DATABASE),
            user: self.user.as_deref().unwrap_or(NO_USER),
            addr: &self.addr,
        }
    }

    pub fn login_attempt(
        &self,
        settings: &Settings,
        database: &str,
        user: &str,
        tls: Option<&str>,
    ) {
        if settings.log_connections {
            tracing::info!(
                "{}",
                logfmt::login_attempt(&self.conn(), database, user, tls)
            );
        }
    }

    pub fn login_failed(&self, settings: &Settings, database: &str, user: &str) {
        if settings.log_connections {
            tracing::info!("{}", logfmt::login_failed(&self.conn(), database, user));
        }
    }

    pub fn console_peer_access(&self, settings: &Settings) {
        if settings.log_connections {
            tracing::info!("{}", logfmt::console_peer_access(&self.conn()));
        }
    }

    /// The connection ends for `reason`; `told` says whether the client was sent the
    /// reason as an error (PgBouncer then also logs it as a pooler error).
    pub fn closing(&self, settings: &Settings, reason: &str, told: bool) {
        let conn = self.conn();
        if settings.log_disconnections {
            let age = self.connected_at.elapsed();
            tracing::info!("{}", logfmt::closing(&conn, reason, age));
        }
        if told && settings.log_pooler_errors {
            tracing::warn!("{}", logfmt::pooler_error(&conn, reason));
        }
    }
}
