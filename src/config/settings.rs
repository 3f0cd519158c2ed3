//! Validated, typed settings: what the rest of pgmux reads. Built by `load` from
//! `pooler.toml` plus `PGMUX_*` environment overrides; never constructed half-valid.

mod choices;
mod defaults;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use choices::*;
pub use defaults::DEFAULT_AUTH_QUERY;

/// PgBouncer's `syslog_ident` and `syslog_facility`, and the daemon's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    pub ident: String,
    /// syslog(3)'s facility code (`daemon` = 3, `local0` = 16 …).
    pub facility: u8,
    pub socket: PathBuf,
}

/// Where a server lives: TCP host or a unix socket directory (host starting with '/').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// The name clients connect to (the key of `[databases.NAME]`).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The database name on the server (defaults to `name`).
    pub dbname: String,
    /// Forced server login user; every client of this database shares its pool.
    pub user: Option<String>,
    pub password: Option<String>,
    pub pool_size: Option<usize>,
    pub min_pool_size: Option<usize>,
    pub reserve_pool_size: Option<usize>,
    pub pool_mode: Option<PoolMode>,
    /// 0 = unlimited.
    pub max_db_connections: Option<usize>,
    /// PgBouncer's per-database `auth_user`/`auth_dbname`/`auth_query` overrides of the
    /// global ones (see `crate::auth_query`).
    pub auth_user: Option<String>,
    pub auth_dbname: Option<String>,
    pub auth_query: Option<String>,
}

impl DatabaseSettings {
    /// libpq's rule: a host that is an absolute path names the directory holding
    /// the server's `.s.PGSQL.<port>` socket.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSettings {
    pub name: String,
    /// Plain text, an `md5<32 hex>` hash, or a `SCRAM-SHA-256$…` secret.
    pub password: Option<String>,
    pub pool_mode: Option<PoolMode>,
    /// 0 = unlimited.
    pub max_user_connections: Option<usize>,
}

/// Every setting pgmux knows, with PgBouncer's names. A zero duration means "disabled"
/// for timeouts, as in PgBouncer.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file these settings came from (for reload and error messages).
    pub source: Option<PathBuf>,
    pub listen_addr: String,
    pub listen_port: u16,
    /// Directory for the `.s.PGSQL.<port>` socket; None = no unix socket.
    pub unix_socket_dir: Option<PathBuf>,
    pub pool_mode: PoolMode,
    pub max_client_conn: usize,
    pub default_pool_size: usize,
    pub min_pool_size: usize,
    pub reserve_pool_size: usize,
    pub reserve_pool_timeout: Duration,
    /// 0 = unlimited.
    pub max_db_connections: usize,
    /// 0 = unlimited.
    pub max_user_connections: usize,
    pub server_idle_timeout: Duration,
    pub server_lifetime: Duration,
    pub server_connect_timeout: Duration,
    pub server_login_retry: Duration,
    pub query_wait_timeout: Duration,
    pub query_timeout: Duration,
    pub client_login_timeout: Duration,
    pub client_idle_timeout: Duration,
    pub idle_transaction_timeout: Duration,
    pub server_reset_query: String,
    pub server_reset_query_always: bool,
    pub server_check_query: String,
    pub server_check_delay: Duration,
    pub auth_type: AuthType,
    pub admin_users: Vec<String>,
    pub stats_users: Vec<String>,
    pub ignore_startup_parameters: Vec<String>,
    pub track_extra_parameters: Vec<String>,
    pub application_name_add_host: bool,
    /// Named prepared statements kept per server connection (least recently used are
    /// closed beyond it); 0 passes named statements through untouched, as PgBouncer does.
    pub max_prepared_statements: usize,
    /// Largest message a client may send after login, as in PgBouncer.
    pub max_packet_size: usize,
    /// How long a shutdown waits (for running transactions, or for clients to leave)
    /// before closing what is left; 0 waits as long as it takes.
    pub shutdown_timeout: Duration,
    /// What SIGTERM does (SIGINT always waits for servers).
    pub sigterm_shutdown: SigtermShutdown,
    /// Tokio worker threads; 0 = one per core.
    pub workers: usize,
    /// TLS towards clients and towards PostgreSQL.
    pub tls: super::TlsSettings,
    /// Bind the listening port with SO_REUSEPORT, so several pgmux processes share it
    /// (scale-out on one host, and online restart: a new process binds, the old drains).
    pub so_reuseport: bool,
    /// This instance's id among its peers, encoded in every cancel key it hands out;
    /// 0 = peering disabled. At most [`MAX_PEER_ID`].
    pub peer_id: u16,
    /// Seconds between the stats log lines and between SHOW STATS averages.
    pub stats_period: Duration,
    /// `host:port` for the Prometheus endpoint; None = off.
    pub metrics_listen: Option<String>,
    pub log_connections: bool,
    pub log_disconnections: bool,
    pub log_pooler_errors: bool,
    pub log_stats: bool,
    pub log_format: LogFormat,
    pub databases: BTreeMap<String, DatabaseSettings>,
    pub users: BTreeMap<String, UserSettings>,
    /// PgBouncer's userlist.txt: its passwords fill `users` (a `[users]` password wins).
    pub auth_file: Option<PathBuf>,
    /// The pg_hba.conf-style rules `auth_type = "hba"` applies; read into `hba`.
    pub auth_hba_file: Option<PathBuf>,
    /// `auth_hba_file`'s rules, loaded with the settings when `auth_type = "hba"`.
    pub hba: Option<std::sync::Arc<super::hba::HbaRules>>,
    /// Users with no configured password are looked up with `auth_query` (`$1` = the
    /// user name), logged in as `auth_user`, on the `[databases]` entry `auth_dbname`
    /// (default: the client's own database); see `crate::auth_query`.
    pub auth_user: Option<String>,
    pub auth_query: String,
    pub auth_dbname: Option<String>,
    /// Log to this file as well as stderr (`-q`/`-d` silence stderr).
    pub logfile: Option<PathBuf>,
    /// Also log to syslog (PgBouncer's `syslog = 1`), tagged and sent as this says.
    pub syslog: Option<SyslogSettings>,
    /// Written with the process id at startup when daemonizing (`-d`).
    pub pidfile: Option<PathBuf>,
    /// The OS user to switch to after binding (PgBouncer's `user`; `-u` on the command line).
    pub user: Option<String>,
    /// Other instances by peer id, where cancel requests for their clients are forwarded.
    pub peers: BTreeMap<u16, PeerSettings>,
}

/// The largest `peer_id`: it takes 14 bits of the cancel key, as in PgBouncer.
pub const MAX_PEER_ID: u16 = 16383;

/// `[peers.ID]`: where the pgmux instance with that `peer_id` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSettings {
    pub id: u16,
    /// A TCP host, or a unix socket directory (starting with '/').
    pub host: String,
    pub port: u16,
}

/// PgBouncer's fallback database: `*` serves any database name not listed, connecting
/// to the database of the same name on the server.
pub const WILDCARD_DATABASE: &str = "*";

impl Settings {
    /// Defaults with an ephemeral TCP port and no unix socket, so parallel tests never collide.
    pub fn for_tests() -> Settings {
        Settings {
            listen_addr: "127.0.0.1".to_owned(),
            listen_port: 0,
            unix_socket_dir: None,
            ..Settings::default()
        }
    }

    /// The entry serving clients of `name`: its own, else the `*` fallback with `dbname`
    /// set to `name` (unless the fallback names a dbname itself), as in PgBouncer.
    pub fn database(&self, name: &str) -> Option<std::borrow::Cow<'_, DatabaseSettings>> {
        use std::borrow::Cow;
        if let Some(db) = self.databases.get(name) {
            return Some(Cow::Borrowed(db));
        }
        let wildcard = self.databases.get(WILDCARD_DATABASE)?;
        let mut db = wildcard.clone();
        db.name = name.to_owned();
        if db.dbname == WILDCARD_DATABASE {
            db.dbname = name.to_owned();
        }
        Some(Cow::Owned(db))
    }

    /// The most specific `pool_mode`: the user's, then the database's, then the global one.
    pub fn pool_mode_for(&self, database: &str, user: &str) -> PoolMode {
        self.users
            .get(user)
            .and_then(|user| user.pool_mode)
            .or_else(|| self.database(database).and_then(|db| db.pool_mode))
            .unwrap_or(self.pool_mode)
    }

    /// Server connections per (database, user) pool.
    pub fn pool_size_for(&self, database: &str) -> usize {
        self.database_override(database, |db| db.pool_size)
            .unwrap_or(self.default_pool_size)
    }

    /// Server connections kept open per pool even when idle.
    pub fn min_pool_size_for(&self, database: &str) -> usize {
        self.database_override(database, |db| db.min_pool_size)
            .unwrap_or(self.min_pool_size)
    }

    /// Extra connections a pool may open once a client has waited `reserve_pool_timeout`.
    pub fn reserve_pool_size_for(&self, database: &str) -> usize {
        self.database_override(database, |db| db.reserve_pool_size)
            .unwrap_or(self.reserve_pool_size)
    }

    /// Server connections across all pools of a database; 0 = unlimited.
    pub fn max_db_connections_for(&self, database: &str) -> usize {
        self.database_override(database, |db| db.max_db_connections)
            .unwrap_or(self.max_db_connections)
    }

    /// Server connections across all pools of a user; 0 = unlimited.
    pub fn max_user_connections_for(&self, user: &str) -> usize {
        self.users
            .get(user)
            .and_then(|user| user.max_user_connections)
            .unwrap_or(self.max_user_connections)
    }

    fn database_override(
        &self,
        database: &str,
        field: impl Fn(&DatabaseSettings) -> Option<usize>,
    ) -> Option<usize> {
        self.database(database).and_then(|db| field(&db))
    }
}
