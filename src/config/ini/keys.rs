//! Every key PgBouncer 1.25 accepts, and what pgmux does with it. A key pgmux does not
//! implement is accepted with one warning; a key PgBouncer does not know is an error.
//! When pgmux learns a setting, move it from `IGNORED` to `SUPPORTED`.

/// How an ini value becomes a TOML value in the translated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    /// A whole number (PgBouncer's `CF_INT`).
    Integer,
    /// Seconds, possibly fractional (PgBouncer's `CF_TIME_USEC`).
    Seconds,
    /// 0/1 (PgBouncer stores flags as integers).
    Flag,
    /// A comma-separated list.
    List,
}

/// `[pgbouncer]` keys pgmux applies, with the same meaning (and pgmux's own, at the end).
pub(crate) const SUPPORTED: &[(&str, Kind)] = &[
    ("admin_users", Kind::List),
    ("application_name_add_host", Kind::Flag),
    ("auth_dbname", Kind::Text),
    ("auth_file", Kind::Text),
    ("auth_hba_file", Kind::Text),
    ("auth_query", Kind::Text),
    ("auth_type", Kind::Text),
    ("auth_user", Kind::Text),
    ("client_idle_timeout", Kind::Seconds),
    ("client_login_timeout", Kind::Seconds),
    ("client_tls_ca_file", Kind::Text),
    ("client_tls_cert_file", Kind::Text),
    ("client_tls_key_file", Kind::Text),
    ("client_tls_sslmode", Kind::Text),
    ("default_pool_size", Kind::Integer),
    ("idle_transaction_timeout", Kind::Seconds),
    ("ignore_startup_parameters", Kind::List),
    ("listen_addr", Kind::Text),
    ("listen_port", Kind::Integer),
    ("log_connections", Kind::Flag),
    ("log_disconnections", Kind::Flag),
    ("log_pooler_errors", Kind::Flag),
    ("log_stats", Kind::Flag),
    ("logfile", Kind::Text),
    ("max_client_conn", Kind::Integer),
    ("max_db_connections", Kind::Integer),
    ("max_packet_size", Kind::Integer),
    ("max_prepared_statements", Kind::Integer),
    ("max_user_connections", Kind::Integer),
    ("min_pool_size", Kind::Integer),
    ("peer_id", Kind::Integer),
    ("pidfile", Kind::Text),
    ("pool_mode", Kind::Text),
    ("query_timeout", Kind::Seconds),
    ("query_wait_timeout", Kind::Seconds),
    ("reserve_pool_size", Kind::Integer),
    ("reserve_pool_timeout", Kind::Seconds),
    ("server_check_delay", Kind::Seconds),
    ("server_check_query", Kind::Text),
    ("server_connect_timeout", Kind::Seconds),
    ("server_idle_timeout", Kind::Seconds),
    ("server_lifetime", Kind::Seconds),
    ("server_login_retry", Kind::Seconds),
    ("server_reset_query", Kind::Text),
    ("server_reset_query_always", Kind::Flag),
    ("server_tls_ca_file", Kind::Text),
    ("server_tls_cert_file", Kind::Text),
    ("server_tls_key_file", Kind::Text),
    ("server_tls_sslmode", Kind::Text),
    ("so_reuseport", Kind::Flag),
    ("stats_period", Kind::Seconds),
    ("syslog", Kind::Flag),
    ("syslog_facility", Kind::Text),
    ("syslog_ident", Kind::Text),
    ("stats_users", Kind::List),
    ("track_extra_parameters", Kind::List),
    ("unix_socket_dir", Kind::Text),
    ("user", Kind::Text),
    // pgmux's own settings, also accepted in an ini file.
    ("log_format", Kind::Text),
    ("metrics_listen", Kind::Text),
    ("shutdown_timeout", Kind::Seconds),
    ("sigterm_shutdown", Kind::Text),
    ("syslog_socket", Kind::Text),
    ("workers", Kind::Integer),
];

/// `[pgbouncer]` keys pgmux accepts and ignores, with PgBouncer's default: a value equal
/// to the default changes nothing, so it draws no warning.
pub(crate) const IGNORED: &[(&str, &str)] = &[
    ("auth_ident_file", ""),
    ("auth_ldap_options", ""),
    ("autodb_idle_timeout", "3600"),
    ("cancel_wait_timeout", "10"),
    ("client_tls13_ciphers", ""),
    ("client_tls_ciphers", "default"),
    ("client_tls_dheparams", "auto"),
    ("client_tls_ecdhcurve", "auto"),
    ("client_tls_protocols", "secure"),
    ("conffile", ""),
    ("disable_pqexec", "0"),
    ("dns_max_ttl", "15"),
    ("dns_nxdomain_ttl", "15"),
    ("dns_zone_check_period", "0"),
    ("job_name", "pgbouncer"),
    ("listen_backlog", "128"),
    ("max_db_client_connections", "0"),
    ("max_user_client_connections", "0"),
    ("pkt_buf", "4096"),
    ("query_wait_notify", "5"),
    ("resolv_conf", ""),
    ("sbuf_loopcnt", "5"),
    ("scram_iterations", "4096"),
    ("server_fast_close", "0"),
    ("server_round_robin", "0"),
    ("server_tls13_ciphers", ""),
    ("server_tls_ciphers", "default"),
    ("server_tls_protocols", "secure"),
    ("service_name", ""),
    ("suspend_timeout", "10"),
    ("tcp_defer_accept", "1"),
    ("tcp_keepalive", "1"),
    ("tcp_keepcnt", "0"),
    ("tcp_keepidle", "0"),
    ("tcp_keepintvl", "0"),
    ("tcp_socket_buffer", "0"),
    ("tcp_user_timeout", "0"),
    ("transaction_timeout", "0"),
    ("unix_socket_group", ""),
    ("unix_socket_mode", "0777"),
    ("verbose", "0"),
];

/// `[databases]` connection parameters pgmux applies (`reserve_pool` is PgBouncer's
/// older spelling of `reserve_pool_size`).
pub(crate) const DATABASE_SUPPORTED: &[(&str, Kind)] = &[
    ("auth_dbname", Kind::Text),
    ("auth_query", Kind::Text),
    ("auth_user", Kind::Text),
    ("dbname", Kind::Text),
    ("host", Kind::Text),
    ("max_db_connections", Kind::Integer),
    ("min_pool_size", Kind::Integer),
    ("password", Kind::Text),
    ("pool_mode", Kind::Text),
    ("pool_size", Kind::Integer),
    ("port", Kind::Integer),
    ("reserve_pool_size", Kind::Integer),
    ("user", Kind::Text),
];

/// `[databases]` connection parameters accepted and ignored.
pub(crate) const DATABASE_IGNORED: &[&str] = &[
    "application_name",
    "client_encoding",
    "connect_query",
    "datestyle",
    "load_balance_hosts",
    "max_db_client_connections",
    "query_wait_timeout",
    "server_lifetime",
    "target_session_attrs",
    "timezone",
];

pub(crate) const USER_SUPPORTED: &[(&str, Kind)] = &[
    ("max_user_connections", Kind::Integer),
    ("pool_mode", Kind::Text),
];

pub(crate) const USER_IGNORED: &[&str] = &[
    "client_idle_timeout",
    "idle_transaction_timeout",
    "max_user_client_connections",
    "pool_size",
    "query_timeout",
    "query_wait_timeout",
    "reserve_pool_size",
    "transaction_timeout",
];

pub(crate) fn supported(table: &[(&str, Kind)], key: &str) -> Option<Kind> {
    table
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, kind)| *kind)
}

pub(crate) fn ignored_default(key: &str) -> Option<&'static str> {
    IGNORED
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, default)| *default)
}

/// Every `[pgbouncer]` key PgBouncer knows, for "did you mean" suggestions.
pub(crate) fn all_keys() -> impl Iterator<Item = &'static str> {
    SUPPORTED
        .iter()
        .map(|(name, _)| *name)
        .chain(IGNORED.iter().map(|(name, _)| *name))
}
