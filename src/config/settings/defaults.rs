//! PgBouncer 1.25's defaults: what a setting is when neither the file nor the
//! environment says otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{AuthType, LogFormat, PoolMode, Settings, SigtermShutdown};

impl Default for Settings {
    /// PgBouncer 1.25's defaults, except `listen_addr` (loopback only until asked otherwise).
    fn default() -> Self {
        Settings {
            source: None,
            listen_addr: "127.0.0.1".to_owned(),
            listen_port: 6432,
            unix_socket_dir: Some(PathBuf::from("/tmp")),
            pool_mode: PoolMode::Session,
            max_client_conn: 100,
            default_pool_size: 20,
            min_pool_size: 0,
            reserve_pool_size: 0,
            reserve_pool_timeout: Duration::from_secs(5),
            max_db_connections: 0,
            max_user_connections: 0,
            server_idle_timeout: Duration::from_secs(600),
            server_lifetime: Duration::from_secs(3600),
            server_connect_timeout: Duration::from_secs(15),
            server_login_retry: Duration::from_secs(15),
            query_wait_timeout: Duration::from_secs(120),
            query_timeout: Duration::ZERO,
            client_login_timeout: Duration::from_secs(60),
            client_idle_timeout: Duration::ZERO,
            idle_transaction_timeout: Duration::ZERO,
            server_reset_query: "DISCARD ALL".to_owned(),
            server_reset_query_always: false,
            server_check_query: "select 1".to_owned(),
            server_check_delay: Duration::from_secs(30),
            auth_type: AuthType::Md5,
            admin_users: Vec::new(),
            stats_users: Vec::new(),
            ignore_startup_parameters: Vec::new(),
            // PgBouncer tracks IntervalStyle; pgmux also tracks extra_float_digits, which JDBC
            // and sqlx send at startup, so they connect unchanged.
            track_extra_parameters: vec![
                "IntervalStyle".to_owned(),
                "extra_float_digits".to_owned(),
            ],
            application_name_add_host: false,
            max_prepared_statements: 200,
            max_packet_size: 2_147_483_647,
            shutdown_timeout: Duration::from_secs(30),
            sigterm_shutdown: SigtermShutdown::WaitForServers,
            workers: 0,
            tls: crate::config::TlsSettings::default(),
            so_reuseport: false,
            peer_id: 0,
            stats_period: Duration::from_secs(60),
            metrics_listen: None,
            log_connections: true,
            log_disconnections: true,
            log_pooler_errors: true,
            log_stats: true,
            log_format: LogFormat::Text,
            databases: BTreeMap::new(),
            users: BTreeMap::new(),
            peers: BTreeMap::new(),
            auth_file: None,
            auth_hba_file: None,
            hba: None,
            auth_user: None,
            auth_query: DEFAULT_AUTH_QUERY.to_owned(),
            auth_dbname: None,
            logfile: None,
            syslog: None,
            pidfile: None,
            user: None,
        }
    }
}

/// PgBouncer 1.25's default `auth_query`.
pub const DEFAULT_AUTH_QUERY: &str = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin";
