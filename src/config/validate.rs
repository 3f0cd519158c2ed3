//! Raw values → [`Settings`]: defaults for what is absent, typed checks for what is
//! present, and the cross-key rules (a `url` excludes the discrete connection keys).

use std::path::PathBuf;

use super::database_url::{self, ConnectionParts};
use super::error::ConfigError;
use super::provenance::Provenance;
use super::raw::{RawConfig, RawDatabase, RawPeer, RawUser, Scalar, StringList};
use super::settings::{DatabaseSettings, PeerSettings, Settings, SyslogSettings, UserSettings};
use super::values;
use super::TlsSettings;

pub(crate) fn settings(raw: RawConfig, at: &Provenance) -> Result<Settings, ConfigError> {
    let defaults = Settings::default();
    let tls = tls(&raw, at)?;
    let syslog = syslog(&raw, at)?;
    let list =
        |value: Option<StringList>, default: Vec<String>| value.map_or(default, |list| list.0);
    macro_rules! setting {
        ($key:ident, $conversion:path) => {
            at.convert(stringify!($key), raw.$key.as_ref(), $conversion)?
                .unwrap_or(defaults.$key)
        };
    }

    Ok(Settings {
        source: None,
        listen_addr: setting!(listen_addr, values::listen_addr),
        listen_port: setting!(listen_port, values::listen_port),
        // PgBouncer: an empty unix_socket_dir disables the unix socket.
        unix_socket_dir: match at.convert(
            "unix_socket_dir",
            raw.unix_socket_dir.as_ref(),
            values::text,
        )? {
            Some(dir) if dir.trim().is_empty() => None,
            Some(dir) => Some(PathBuf::from(dir)),
            None => defaults.unix_socket_dir,
        },
        pool_mode: setting!(pool_mode, values::pool_mode),
        max_client_conn: setting!(max_client_conn, values::positive_count),
        default_pool_size: setting!(default_pool_size, values::positive_count),
        min_pool_size: setting!(min_pool_size, values::count),
        reserve_pool_size: setting!(reserve_pool_size, values::count),
        reserve_pool_timeout: setting!(reserve_pool_timeout, values::duration),
        max_db_connections: setting!(max_db_connections, values::count),
        max_user_connections: setting!(max_user_connections, values::count),
        server_idle_timeout: setting!(server_idle_timeout, values::duration),
        server_lifetime: setting!(server_lifetime, values::duration),
        server_connect_timeout: setting!(server_connect_timeout, values::duration),
        server_login_retry: setting!(server_login_retry, values::duration),
        query_wait_timeout: setting!(query_wait_timeout, values::duration),
        query_timeout: setting!(query_timeout, values::duration),
        client_login_timeout: setting!(client_login_timeout, values::duration),
        client_idle_timeout: setting!(client_idle_timeout, values::duration),
        idle_transaction_timeout: setting!(idle_transaction_timeout, values::duration),
        // Empty disables the reset / the health check, as in PgBouncer.
        server_reset_query: setting!(server_reset_query, values::text),
        server_reset_query_always: setting!(server_reset_query_always, values::flag),
        server_check_query: setting!(server_check_query, values::text),
        server_check_delay: setting!(server_check_delay, values::duration),
        auth_type: setting!(auth_type, values::auth_type),
        admin_users: list(raw.admin_users, defaults.admin_users),
        stats_users: list(raw.stats_users, defaults.stats_users),
        ignore_startup_parameters: list(
            raw.ignore_startup_parameters,
            defaults.ignore_startup_parameters,
        ),
        track_extra_parameters: list(raw.track_extra_parameters, defaults.track_extra_parameters),
        application_name_add_host: setting!(application_name_add_host, values::flag),
        max_prepared_statements: setting!(max_prepared_statements, values::count),
        max_packet_size: setting!(max_packet_size, values::positive_count),
        shutdown_timeout: setting!(shutdown_timeout, values::duration),
        sigterm_shutdown: setting!(sigterm_shutdown, values::sigterm_shutdown),
        workers: setting!(workers, values::count),
        tls,
        so_reuseport: setting!(so_reuseport, values::flag),
        peer_id: setting!(peer_id, values::peer_id),
        stats_period: match setting!(stats_period, values::duration) {
            period if period.is_zero() => {
                return Err(at.invalid("stats_period", "must be at least 1 second"))
            }
            period => period,
        },
        // An empty metrics_listen keeps the endpoint off.
        metrics_listen: at
            .convert("metrics_listen", raw.metrics_listen.as_ref(), values::text)?
            .filter(|addr| !addr.trim().is_empty()),
        log_connections: setting!(log_connections, values::flag),
        log_disconnections: setting!(log_disconnections, values::flag),
        log_pooler_errors: setting!(log_pooler_errors, values::flag),
        log_stats: setting!(log_stats, values::flag),
        log_format: setting!(log_format, values::log_format),
        databases: raw
            .databases
            .into_iter()
            .map(|(name, database)| Ok((name.clone(), self::database(name, database, at)?)))
            .collect::<Result<_, ConfigError>>()?,
        users: raw
            .users
            .into_iter()
            .map(|(name, user)| Ok((name.clone(), self::user(name, user, at)?)))
            .collect::<Result<_, ConfigError>>()?,
        peers: raw
            .peers
            .into_iter()
            .map(|(id, peer)| {
                let peer = self::peer(&id, peer, at)?;
                Ok((peer.id, peer))
            })
            .collect::<Result<_, ConfigError>>()?,
        auth_file: optional_path(at, "auth_file", raw.auth_file.as_ref())?,
        auth_hba_file: optional_path(at, "auth_hba_file", raw.auth_hba_file.as_ref())?,
        hba: None,
        auth_user: at.convert("auth_user", raw.auth_user.as_ref(), values::non_empty_text)?,
        auth_query: setting!(auth_query, values::text),
        auth_dbname: at.convert(
            "auth_dbname",
            raw.auth_dbname.as_ref(),
            values::non_empty_text,
        )?,
        logfile: optional_path(at, "logfile", raw.logfile.as_ref())?,
        syslog,
        pidfile: optional_path(at, "pidfile", raw.pidfile.as_ref())?,
        user: at.convert("user", raw.user.as_ref(), values::non_empty_text)?,
    })
}

/// A file setting; empty means unset, as in PgBouncer.
fn optional_path(
    at: &Provenance,
    key: &str,
    value: Option<&super::raw::Scalar>,
) -> Result<Option<PathBuf>, ConfigError> {
    Ok(at
        .convert(key, value, values::text)?
        .filter(|path| !path.trim().is_empty())
        .map(PathBuf::from))
}

const DEFAULT_SERVER_HOST: &str = "127.0.0.1";
const DEFAULT_SERVER_PORT: u16 = 5432;

fn database(
    name: String,
    raw: RawDatabase,
    at: &Provenance,
) -> Result<DatabaseSettings, ConfigError> {
    if name.trim().is_empty() {
        return Err(at.invalid("databases", "a database name must not be empty"));
    }
    let key = |field: &str| format!("databases.{name}.{field}");

    let ConnectionParts {
        host,
        port,
        dbname,
        user,
        password,
    } = match &raw.url {
        Some(url) => {
            let discrete = [
                ("host", &raw.host),
                ("port", &raw.port),
                ("dbname", &raw.dbname),
                ("user", &raw.user),
                ("password", &raw.password),
            ];
            if let Some((field, _)) = discrete.iter().find(|(_, value)| value.is_some()) {
                return Err(at.invalid(
                    &key(field),
                    format!("cannot be combined with `url`; put the {field} in the URL instead"),
                ));
            }
            let url = values::text(url)
                .map_err(|expected| at.invalid_value(&key("url"), url, expected))?;
            database_url::parse(&url).map_err(|problem| at.invalid(&key("url"), problem))?
        }
        None => ConnectionParts {
            host: at.convert(&key("host"), raw.host.as_ref(), values::non_empty_text)?,
            port: at.convert(&key("port"), raw.port.as_ref(), values::port)?,
            dbname: at.convert(&key("dbname"), raw.dbname.as_ref(), values::non_empty_text)?,
            user: at.convert(&key("user"), raw.user.as_ref(), values::non_empty_text)?,
            password: at.convert(&key("password"), raw.password.as_ref(), values::text)?,
        },
    };

    Ok(DatabaseSettings {
        host: host.unwrap_or_else(|| DEFAULT_SERVER_HOST.to_owned()),
        port: port.unwrap_or(DEFAULT_SERVER_PORT),
        dbname: dbname.unwrap_or_else(|| name.clone()),
        user,
        password,
        pool_size: at.convert(
            &key("pool_size"),
            raw.pool_size.as_ref(),
            values::positive_count,
        )?,
        min_pool_size: at.convert(
            &key("min_pool_size"),
            raw.min_pool_size.as_ref(),
            values::count,
        )?,
        reserve_pool_size: at.convert(
            &key("reserve_pool_size"),
            raw.reserve_pool_size.as_ref(),
            values::count,
        )?,
        pool_mode: at.convert(&key("pool_mode"), raw.pool_mode.as_ref(), values::pool_mode)?,
        max_db_connections: at.convert(
            &key("max_db_connections"),
            raw.max_db_connections.as_ref(),
            values::count,
        )?,
        auth_user: at.convert(
            &key("auth_user"),
            raw.auth_user.as_ref(),
            values::non_empty_text,
        )?,
        auth_dbname: at.convert(
            &key("auth_dbname"),
            raw.auth_dbname.as_ref(),
            values::non_empty_text,
        )?,
        auth_query: at.convert(&key("auth_query"), raw.auth_query.as_ref(), values::text)?,
        name,
    })
}

fn peer(id: &str, raw: RawPeer, at: &Provenance) -> Result<PeerSettings, ConfigError> {
    let key = |field: &str| format!("peers.{id}.{field}");
    let id = values::peer_id(&Scalar::Text(id.to_owned()))
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| at.invalid(&format!("peers.{id}"), PEER_KEY))?;
    let host = at
        .convert(&key("host"), raw.host.as_ref(), values::non_empty_text)?
        .ok_or_else(|| at.invalid(&key("host"), "is required"))?;
    Ok(PeerSettings {
        id,
        host,
        port: at
            .convert(&key("port"), raw.port.as_ref(), values::port)?
            .unwrap_or(DEFAULT_LISTEN_PORT),
    })
}

const PEER_KEY: &str = "must be [peers.ID] with ID a peer_id from 1 to 16383";
const DEFAULT_LISTEN_PORT: u16 = 6432;

fn user(name: String, raw: RawUser, at: &Provenance) -> Result<UserSettings, ConfigError> {
    if name.trim().is_empty() {
        return Err(at.invalid("users", "a user name must not be empty"));
    }
    let key = |field: &str| format!("users.{name}.{field}");
    Ok(UserSettings {
        password: at.convert(&key("password"), raw.password.as_ref(), values::text)?,
        pool_mode: at.convert(&key("pool_mode"), raw.pool_mode.as_ref(), values::pool_mode)?,
        max_user_connections: at.convert(
            &key("max_user_connections"),
            raw.max_user_connections.as_ref(),
            values::count,
        )?,
        name,
    })
}

/// TLS settings, with the cross-key rules: TLS towards clients needs a key and a
/// certificate, and verifying a peer needs a CA file (pgmux ships no system roots).
fn tls(raw: &RawConfig, at: &Provenance) -> Result<TlsSettings, ConfigError> {
    let defaults = TlsSettings::default();
    let path = |key: &str, value: Option<&super::raw::Scalar>| {
        Ok::<_, ConfigError>(
            at.convert(key, value, values::text)?
                .filter(|path| !path.trim().is_empty())
                .map(PathBuf::from),
        )
    };
    let tls = TlsSettings {
        client_tls_sslmode: at
            .convert(
                "client_tls_sslmode",
                raw.client_tls_sslmode.as_ref(),
                values::ssl_mode,
            )?
            .unwrap_or(defaults.client_tls_sslmode),
        client_tls_key_file: path("client_tls_key_file", raw.client_tls_key_file.as_ref())?,
        client_tls_cert_file: path("client_tls_cert_file", raw.client_tls_cert_file.as_ref())?,
        client_tls_ca_file: path("client_tls_ca_file", raw.client_tls_ca_file.as_ref())?,
        server_tls_sslmode: at
            .convert(
                "server_tls_sslmode",
                raw.server_tls_sslmode.as_ref(),
                values::ssl_mode,
            )?
            .unwrap_or(defaults.server_tls_sslmode),
        server_tls_ca_file: path("server_tls_ca_file", raw.server_tls_ca_file.as_ref())?,
        server_tls_cert_file: path("server_tls_cert_file", raw.server_tls_cert_file.as_ref())?,
        server_tls_key_file: path("server_tls_key_file", raw.server_tls_key_file.as_ref())?,
    };
    let client_mode = tls.client_tls_sslmode;
    if client_mode != super::SslMode::Disable {
        for (key, file) in [
            ("client_tls_key_file", &tls.client_tls_key_file),
            ("client_tls_cert_file", &tls.client_tls_cert_file),
        ] {
            if file.is_none() {
                return Err(at.invalid(
                    key,
                    format!("required when client_tls_sslmode is \"{client_mode}\""),
                ));
            }
        }
    }
    if client_mode.verifies() && tls.client_tls_ca_file.is_none() {
        return Err(at.invalid(
            "client_tls_ca_file",
            format!("required when client_tls_sslmode is \"{client_mode}\""),
        ));
    }
    let server_mode = tls.server_tls_sslmode;
    if server_mode.verifies() && tls.server_tls_ca_file.is_none() {
        return Err(at.invalid(
            "server_tls_ca_file",
            format!("required when server_tls_sslmode is \"{server_mode}\""),
        ));
    }
    if tls.server_tls_cert_file.is_some() != tls.server_tls_key_file.is_some() {
        return Err(at.invalid(
            "server_tls_cert_file",
            "server_tls_cert_file and server_tls_key_file go together",
        ));
    }
    Ok(tls)
}

/// PgBouncer's `syslog`, `syslog_ident` (default `pgmux`; a translated pgbouncer.ini
/// keeps PgBouncer's `pgbouncer`) and `syslog_facility` (default `daemon`), and
/// `syslog_socket`, the daemon's socket (default `/dev/log`).
fn syslog(raw: &RawConfig, at: &Provenance) -> Result<Option<SyslogSettings>, ConfigError> {
    let facility_name = at
        .convert(
            "syslog_facility",
            raw.syslog_facility.as_ref(),
            values::text,
        )?
        .unwrap_or_else(|| "daemon".to_owned());
    let facility = crate::syslog::facility_code(&facility_name).ok_or_else(|| {
        at.invalid(
            "syslog_facility",
            "must be one of auth, authpriv, daemon, user, local0 … local7 (or another syslog facility)",
        )
    })?;
    let wanted = at
        .convert("syslog", raw.syslog.as_ref(), values::flag)?
        .unwrap_or(false);
    if !wanted {
        return Ok(None);
    }
    Ok(Some(SyslogSettings {
        ident: at
            .convert(
                "syslog_ident",
                raw.syslog_ident.as_ref(),
                values::non_empty_text,
            )?
            .unwrap_or_else(|| "pgmux".to_owned()),
        facility,
        socket: optional_path(at, "syslog_socket", raw.syslog_socket.as_ref())?
            .unwrap_or_else(|| PathBuf::from("/dev/log")),
    }))
}
