//! Log lines in PgBouncer's words, so log-based alerts and scripts keep matching:
//!
//! ```text
//! C-0x100000007: app/alice@127.0.0.1:5555 login attempt: db=app user=alice tls=no replication=no
//! C-0x100000007: app/alice@127.0.0.1:5555 closing because: client close request (age=12s)
//! C-0x100000008: app/alice@127.0.0.1:5556 pooler error: password authentication failed
//! S-0x200000003: app/alice@127.0.0.1:5432 new connection to server (from 127.0.0.1:40312)
//! S-0x200000003: app/alice@127.0.0.1:5432 closing because: server idle timeout (age=600s)
//! stats: 12 xacts/s, 40 queries/s, 0 client parses/s, 0 server parses/s, 0 binds/s, in 2048 B/s, out 9000 B/s, xact 812 us, query 190 us, wait 3 us
//! ```
//!
//! PgBouncer prefixes each line with its own timestamp, `[pid]` and level (LOG/WARNING);
//! pgmux's logger adds its own prefix, and these functions build the message after it.
//! Where PgBouncer prints a pointer, pgmux prints the `ptr` that SHOW CLIENTS / SHOW
//! SERVERS list for the same connection, so a log line leads to its console row.

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
    /// A wrong password with md5 or plain authentication.
    pub const PASSWORD_FAILED: &str = "password authentication failed";
    /// A failed SCRAM exchange (wrong password or unknown user).
    pub const SASL_FAILED: &str = "SASL authentication failed";
    /// `auth_type = trust` and the user is not in the user list.
    pub const TRUST_FAILED: &str = "\"trust\" authentication failed";
    pub const NO_USERNAME: &str = "no username supplied";
    pub const SSL_REQUIRED: &str = "SSL required";
    /// A console login by a user in neither `admin_users` nor `stats_users`.
    pub const NOT_ALLOWED: &str = "not allowed";
    pub const DATABASE_REMOVED: &str = "database removed";
    pub const ADMIN_FORCED_DISCONNECT: &str = "admin forced disconnect";
    /// auth_query could not be run: a pooler-side failure, not a verdict on the password.
    pub const AUTH_LOOKUP_FAILED: &str =
        "authentication lookup failed (auth_query); see the pooler log";

    // Server connections.
    pub const SERVER_IDLE_TIMEOUT: &str = "server idle timeout";
    pub const SERVER_LIFETIME: &str = "server lifetime over";
    pub const DATABASE_CONFIGURATION_CHANGED: &str = "database configuration changed";
    pub const CLOSE_NEEDED: &str = "close_needed";
    pub const TOO_MANY_SERVERS: &str = "too many servers in the pool";
    pub const EVICTED: &str = "evicted";
    pub const PAUSE_MODE: &str = "pause mode";
    pub const CLIENT_DISCONNECT_NOT_READY: &str = "client disconnect while server was not ready";
    pub const CONNECT_FAILED: &str = "connect failed";
    pub const CONNECT_TIMEOUT: &str = "connect timeout";
    pub const VAR_CHANGE_FAILED: &str = "var change failed";
    pub const RESET_QUERY_FAILED: &str = "reset query failed";
    pub const TEST_QUERY_FAILED: &str = "test query failed";
    pub const UNCLEAN_SERVER: &str = "unclean server";
    pub const STATEMENT_MODE_TRANSACTION: &str =
        "transaction blocks not allowed in statement pooling mode";

    /// `no such database: NAME`.
    pub fn no_such_database(name: &str) -> String {
        format!("no such database: {name}")
    }

    /// `database "NAME" is disabled` (after DISABLE on the console).
    pub fn database_disabled(name: &str) -> String {
        format!("database \"{name}\" is disabled")
    }

    /// What a client is told while `server_login_retry` holds back new server logins.
    pub fn login_failing(cached: &str) -> String {
        format!("server login has been failing, cached error: {cached} (server_login_retry)")
    }
}

/// Who a line is about: `C-0x…` for a client, `S-0x…` for a server connection.
#[derive(Debug, Clone, Copy)]
pub struct Conn<'a> {
    pub kind: ConnKind,
    /// The registry id of a client, or the id of a server connection.
    pub id: u64,
    pub database: &'a str,
    pub user: &'a str,
    /// From [`peer`] or [`unix_peer`]: `127.0.0.1:5555`, `[::1]:5555`, `unix(PID):PORT`.
    pub addr: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    Client,
    Server,
}

/// The `ptr` SHOW CLIENTS prints for client `id`; clients and servers have separate id
/// spaces, so their pointers are kept apart by a high bit each.
pub fn client_ptr(id: u64) -> String {
    format!("{:#x}", 0x1_0000_0000u64 | id)
}

/// The `ptr` SHOW SERVERS prints for server `id`.
pub fn server_ptr(id: u64) -> String {
    format!("{:#x}", 0x2_0000_0000u64 | id)
}

impl fmt::Display for Conn<'_> {
    /// `C-0x100000007: app/alice@127.0.0.1:5555`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, ptr) = match self.kind {
            ConnKind::Client => ('C', client_ptr(self.id)),
            ConnKind::Server => ('S', server_ptr(self.id)),
        };
        write!(
            f,
            "{kind}-{ptr}: {}/{}@{}",
            self.database, self.user, self.addr
        )
    }
}

/// A TCP peer as PgBouncer prints it: `[::1]:5555` for IPv6.
pub fn peer(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", v6.port()),
            None => format!("[{}]:{}", v6.ip(), v6.port()),
        },
    }
}

/// A unix-socket peer: `unix(PID):PORT` when the peer's pid is known, else `unix:PORT`
/// (for a server, PORT is the server's port).
pub fn unix_peer(pid: Option<u32>, port: u16) -> String {
    match pid {
        Some(pid) => format!("unix({pid}):{port}"),
        None => format!("unix:{port}"),
    }
}

/// What PgBouncer prints for a database or user not known (yet): `(nodb)/(nouser)@…`.
pub const NO_DATABASE: &str = "(nodb)";
pub const NO_USER: &str = "(nouser)";

/// After the startup packet (`log_connections`). `tls` is e.g. `TLSv1.3/TLS_AES_256_GCM_SHA384`.
pub fn login_attempt(client: &Conn, database: &str, user: &str, tls: Option<&str>) -> String {
    format!(
        "{client} login attempt: db={database} user={user} tls={} replication=no",
        tls.unwrap_or("no")
    )
}

/// A login refused for an unknown database (before `closing because: no such database`).
pub fn login_failed(client: &Conn, database: &str, user: &str) -> String {
    format!("{client} login failed: db={database} user={user}")
}

/// The OS user running pgmux logged in to the console over the unix socket.
pub fn console_peer_access(client: &Conn) -> String {
    format!("{client} pgbouncer access from unix socket")
}

/// When a connection ends (`log_disconnections`), with one of [`reason`]'s texts.
pub fn closing(conn: &Conn, reason: &str, age: Duration) -> String {
    format!("{conn} closing because: {reason} (age={}s)", age.as_secs())
}

/// An error pgmux itself sent a client (`log_pooler_errors`), e.g. a failed login.
pub fn pooler_error(client: &Conn, message: &str) -> String {
    format!("{client} pooler error: {message}")
}

/// A new server connection (`log_connections`), with pgmux's local address for it;
/// `None` over a unix socket, where PgBouncer prints no address.
pub fn new_server_connection(server: &Conn, local: Option<&str>) -> String {
    match local {
        Some(local) => format!("{server} new connection to server (from {local})"),
        None => format!("{server} new connection to server"),
    }
}

/// PostgreSQL refused a server login (a WARNING, without a connection prefix).
pub fn server_login_failed(message: &str) -> String {
    format!("server login failed: FATAL {message}")
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

    fn client(addr: &str) -> Conn<'_> {
        Conn {
            kind: ConnKind::Client,
            id: 7,
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
            login_attempt(&c, "app", "alice", None),
            "C-0x100000007: app/alice@127.0.0.1:5555 login attempt: db=app user=alice tls=no replication=no"
        );
        assert_eq!(
            closing(
                &c,
                reason::CLIENT_CLOSE_REQUEST,
                Duration::from_millis(12_900)
            ),
            "C-0x100000007: app/alice@127.0.0.1:5555 closing because: client close request (age=12s)"
        );
        assert_eq!(
            pooler_error(&c, reason::PASSWORD_FAILED),
            "C-0x100000007: app/alice@127.0.0.1:5555 pooler error: password authentication failed"
        );
        assert_eq!(
            login_failed(&c, "nosuch", "alice"),
            "C-0x100000007: app/alice@127.0.0.1:5555 login failed: db=nosuch user=alice"
        );
        assert_eq!(unix_peer(Some(42), 6432), "unix(42):6432");
        assert_eq!(unix_peer(None, 5432), "unix:5432");
        assert_eq!(peer("[::1]:7".parse().unwrap()), "[::1]:7");
        assert_eq!(peer("[::ffff:10.0.0.1]:7".parse().unwrap()), "10.0.0.1:7");
    }

    #[test]
    fn server_and_stats_lines() {
        let server = Conn {
            kind: ConnKind::Server,
            id: 3,
            database: "app",
            user: "alice",
            addr: "127.0.0.1:5432",
        };
        assert_eq!(
            new_server_connection(&server, Some("127.0.0.1:40312")),
            "S-0x200000003: app/alice@127.0.0.1:5432 new connection to server (from 127.0.0.1:40312)"
        );
        assert_eq!(
            new_server_connection(&server, None),
            "S-0x200000003: app/alice@127.0.0.1:5432 new connection to server"
        );
        assert_eq!(
            stats(&Averages { xacts_per_sec: 12, queries_per_sec: 40, ..Default::default() }),
            "stats: 12 xacts/s, 40 queries/s, 0 client parses/s, 0 server parses/s, 0 binds/s, in 0 B/s, out 0 B/s, xact 0 us, query 0 us, wait 0 us"
        );
    }
}
