//! Log lines in PgBouncer's words, so log-based alerts and scripts keep matching:
//!
//! ```text
//! C-0x1a2b: app/alice@127.0.0.1:5555 login attempt: db=app user=alice tls=no replication=no
//! C-0x1a2b: app/alice@127.0.0.1:5555 closing because: client close request (age=12s)
//! C-0x1a2b: app/alice@127.0.0.1:5555 pooler error: password authentication failed
//! S-0x7: app/alice@127.0.0.1:5432 new connection to server (from 127.0.0.1:40312)
//! stats: 12 xacts/s, 40 queries/s, 0 client parses/s, 0 server parses/s, 0 binds/s, in 2048 B/s, out 9000 B/s, xact 812 us, query 190 us, wait 3 us
//! ```
//!
//! PgBouncer prefixes each line with its own timestamp, `[pid]` and level (LOG/WARNING);
//! pgmux's logger adds its own prefix, and these functions build the message after it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The reasons PgBouncer gives in `closing because: …` and `pooler error: …`.
pub mod reason {
    pub const CLIENT_CLOSE_REQUEST: &str = "client close request";
    pub const CLIENT_UNEXPECTED_EOF: &str = "client unexpected eof";
    pub const QUERY_WAIT_TIMEOUT: &str = "query_wait_timeout";
    pub const CLIENT_IDLE_TIMEOUT: &str = "client_idle_timeout";
    pub const CLIENT_LOGIN_TIMEOUT: &str = "client_login_timeout";
    pub const IDLE_TRANSACTION_TIMEOUT: &str = "idle transaction timeout";
    pub const QUERY_TIMEOUT: &str = "query timeout";
    pub const SERVER_CONN_CRASHED: &str = "server conn crashed?";
    pub const SHUTTING_DOWN: &str = "pooler is shutting down";
    pub const MAX_CLIENT_CONN: &str = "no more connections allowed (max_client_conn)";
    pub const PASSWORD_FAILED: &str = "password authentication failed";
    pub const SERVER_IDLE_TIMEOUT: &str = "server idle timeout";
    pub const SERVER_LIFETIME: &str = "server lifetime over";
    pub const DATABASE_CONFIGURATION_CHANGED: &str = "database configuration changed";

    /// `no such database: NAME`.
    pub fn no_such_database(name: &str) -> String {
        format!("no such database: {name}")
    }
}

/// Who a line is about: `C-0x…` for a client, `S-0x…` for a server connection.
#[derive(Debug, Clone, Copy)]
pub struct Conn<'a> {
    pub kind: ConnKind,
    /// Any number unique among live connections (PgBouncer prints a pointer).
    pub id: u64,
    pub database: &'a str,
    pub user: &'a str,
    /// From [`peer`]: `127.0.0.1:5555`, or `unix(PID):PORT` / `unix:PORT` for a socket.
    pub addr: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    Client,
    Server,
}

impl fmt::Display for Conn<'_> {
    /// `C-0x1a2b: app/alice@127.0.0.1:5555`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ConnKind::Client => 'C',
            ConnKind::Server => 'S',
        };
        write!(
            f,
            "{kind}-{:#x}: {}/{}@{}",
            self.id, self.database, self.user, self.addr
        )
    }
}

/// A TCP peer as PgBouncer prints it (`::1:5555` for IPv6: no brackets).
pub fn peer(addr: SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}

/// A unix-socket client: `unix(PID):PORT` when the peer's pid is known.
pub fn unix_peer(pid: Option<u32>, listen_port: u16) -> String {
    match pid {
        Some(pid) => format!("unix({pid}):{listen_port}"),
        None => format!("unix:{listen_port}"),
    }
}

/// After the startup packet (`log_connections`). `tls` is e.g. `TLSv1.3/TLS_AES_256_GCM_SHA384`.
pub fn login_attempt(client: &Conn, tls: Option<&str>) -> String {
    format!(
        "{client} login attempt: db={} user={} tls={} replication=no",
        client.database,
        client.user,
        tls.unwrap_or("no")
    )
}

/// What PgBouncer prints for a database or user not known (yet): `(nodb)/(nouser)@…`.
pub const NO_DATABASE: &str = "(nodb)";
pub const NO_USER: &str = "(nouser)";

/// A login refused for an unknown database (before `closing because: no such database`).
pub fn login_failed(client: &Conn) -> String {
    format!(
        "{client} login failed: db={} user={}",
        client.database, client.user
    )
}

/// When a connection ends (`log_disconnections`), with one of [`reason`]'s texts.
pub fn closing(conn: &Conn, reason: &str, age: Duration) -> String {
    format!("{conn} closing because: {reason} (age={}s)", age.as_secs())
}

/// An error pgmux itself sent a client (`log_pooler_errors`), e.g. a failed login.
pub fn pooler_error(client: &Conn, message: &str) -> String {
    format!("{client} pooler error: {message}")
}

/// A new server connection, with pgmux's local address for it.
pub fn new_server_connection(server: &Conn, local: &str) -> String {
    format!("{server} new connection to server (from {local})")
}

/// Averages over the last `stats_period`, as `SHOW STATS_AVERAGES` has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Averages {
    pub xacts_per_sec: u64,
    pub queries_per_sec: u64,
    pub client_parses_per_sec: u64,
    pub server_parses_per_sec: u64,
    pub binds_per_sec: u64,
    pub bytes_in_per_sec: u64,
    pub bytes_out_per_sec: u64,
    pub xact_us: u64,
    pub query_us: u64,
    pub wait_us: u64,
}

/// The periodic line (`log_stats`, every `stats_period`).
pub fn stats(averages: &Averages) -> String {
    let a = averages;
    format!(
        "stats: {} xacts/s, {} queries/s, {} client parses/s, {} server parses/s, {} binds/s, in {} B/s, out {} B/s, xact {} us, query {} us, wait {} us",
        a.xacts_per_sec,
        a.queries_per_sec,
        a.client_parses_per_sec,
        a.server_parses_per_sec,
        a.binds_per_sec,
        a.bytes_in_per_sec,
        a.bytes_out_per_sec,
        a.xact_us,
        a.query_us,
        a.wait_us
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client<'a>(addr: &'a str) -> Conn<'a> {
        Conn {
            kind: ConnKind::Client,
            id: 0x1a2b,
            database: "app",
            user: "alice",
            addr,
        }
    }

    #[test]
    fn client_lines_match_pgbouncer() {
        let addr = peer("127.0.0.1:5555".parse().unwrap());
        let c = client(&addr);
        assert_eq!(
            login_attempt(&c, None),
            "C-0x1a2b: app/alice@127.0.0.1:5555 login attempt: db=app user=alice tls=no replication=no"
        );
        assert_eq!(
            closing(
                &c,
                reason::CLIENT_CLOSE_REQUEST,
                Duration::from_millis(12_900)
            ),
            "C-0x1a2b: app/alice@127.0.0.1:5555 closing because: client close request (age=12s)"
        );
        assert_eq!(
            pooler_error(&c, reason::PASSWORD_FAILED),
            "C-0x1a2b: app/alice@127.0.0.1:5555 pooler error: password authentication failed"
        );
        assert_eq!(unix_peer(Some(42), 6432), "unix(42):6432");
        assert_eq!(peer("[::1]:7".parse().unwrap()), "::1:7");
    }

    #[test]
    fn server_and_stats_lines() {
        let server = Conn {
            kind: ConnKind::Server,
            id: 7,
            database: "app",
            user: "alice",
            addr: "127.0.0.1:5432",
        };
        assert_eq!(
            new_server_connection(&server, "127.0.0.1:40312"),
            "S-0x7: app/alice@127.0.0.1:5432 new connection to server (from 127.0.0.1:40312)"
        );
        assert_eq!(
            stats(&Averages { xacts_per_sec: 12, queries_per_sec: 40, ..Default::default() }),
            "stats: 12 xacts/s, 40 queries/s, 0 client parses/s, 0 server parses/s, 0 binds/s, in 0 B/s, out 0 B/s, xact 0 us, query 0 us, wait 0 us"
        );
    }
}
