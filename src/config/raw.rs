//! A serde mirror of `pooler.toml`: every key pgmux knows and nothing else
//! (`deny_unknown_fields`), with values kept as written so that validation can say
//! precisely what is wrong with one. Environment overrides arrive here as strings.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table of settings")]
pub(crate) struct RawConfig {
    pub listen_addr: Option<Scalar>,
    pub listen_port: Option<Scalar>,
    pub unix_socket_dir: Option<Scalar>,
    pub pool_mode: Option<Scalar>,
    pub max_client_conn: Option<Scalar>,
    pub default_pool_size: Option<Scalar>,
    pub min_pool_size: Option<Scalar>,
    pub reserve_pool_size: Option<Scalar>,
    pub reserve_pool_timeout: Option<Scalar>,
    pub max_db_connections: Option<Scalar>,
    pub max_user_connections: Option<Scalar>,
    pub server_idle_timeout: Option<Scalar>,
    pub server_lifetime: Option<Scalar>,
    pub server_connect_timeout: Option<Scalar>,
    pub server_login_retry: Option<Scalar>,
    pub query_wait_timeout: Option<Scalar>,
    pub query_timeout: Option<Scalar>,
    pub client_login_timeout: Option<Scalar>,
    pub client_idle_timeout: Option<Scalar>,
    pub idle_transaction_timeout: Option<Scalar>,
    pub server_reset_query: Option<Scalar>,
    pub server_reset_query_always: Option<Scalar>,
    pub server_check_query: Option<Scalar>,
    pub server_check_delay: Option<Scalar>,
    pub auth_type: Option<Scalar>,
    pub admin_users: Option<StringList>,
    pub stats_users: Option<StringList>,
    pub ignore_startup_parameters: Option<StringList>,
    pub track_extra_parameters: Option<StringList>,
    pub application_name_add_host: Option<Scalar>,
    pub max_prepared_statements: Option<Scalar>,
    pub max_packet_size: Option<Scalar>,
    pub shutdown_timeout: Option<Scalar>,
    pub sigterm_shutdown: Option<Scalar>,
    pub workers: Option<Scalar>,
    // TLS (see config/tls.rs)
    pub client_tls_sslmode: Option<Scalar>,
    pub client_tls_key_file: Option<Scalar>,
    pub client_tls_cert_file: Option<Scalar>,
    pub client_tls_ca_file: Option<Scalar>,
    pub server_tls_sslmode: Option<Scalar>,
    pub server_tls_ca_file: Option<Scalar>,
    pub server_tls_cert_file: Option<Scalar>,
    pub server_tls_key_file: Option<Scalar>,
    pub so_reuseport: Option<Scalar>,
    pub peer_id: Option<Scalar>,
    pub auth_file: Option<Scalar>,
    pub auth_hba_file: Option<Scalar>,
    pub auth_user: Option<Scalar>,
    pub auth_query: Option<Scalar>,
    pub auth_dbname: Option<Scalar>,
    pub logfile: Option<Scalar>,
    pub syslog: Option<Scalar>,
    pub syslog_ident: Option<Scalar>,
    pub syslog_facility: Option<Scalar>,
    pub syslog_socket: Option<Scalar>,
    pub pidfile: Option<Scalar>,
    pub user: Option<Scalar>,
    // Admin console, statistics, metrics and logging (issue 3).
    pub stats_period: Option<Scalar>,
    pub metrics_listen: Option<Scalar>,
    pub log_connections: Option<Scalar>,
    pub log_disconnections: Option<Scalar>,
    pub log_pooler_errors: Option<Scalar>,
    pub log_stats: Option<Scalar>,
    pub log_format: Option<Scalar>,
    pub databases: BTreeMap<String, RawDatabase>,
    pub users: BTreeMap<String, RawUser>,
    pub peers: BTreeMap<String, RawPeer>,
}

/// `[databases.NAME]`: either discrete connection keys or one `url`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a [databases.NAME] table of host, port, dbname… or url"
)]
pub(crate) struct RawDatabase {
    pub url: Option<Scalar>,
    pub host: Option<Scalar>,
    pub port: Option<Scalar>,
    pub dbname: Option<Scalar>,
    pub user: Option<Scalar>,
    pub password: Option<Scalar>,
    pub pool_size: Option<Scalar>,
    pub min_pool_size: Option<Scalar>,
    pub reserve_pool_size: Option<Scalar>,
    pub pool_mode: Option<Scalar>,
    pub max_db_connections: Option<Scalar>,
    pub auth_user: Option<Scalar>,
    pub auth_dbname: Option<Scalar>,
    pub auth_query: Option<Scalar>,
}

/// `[users.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a [users.NAME] table of password, pool_mode, max_user_connections"
)]
pub(crate) struct RawUser {
    pub password: Option<Scalar>,
    pub pool_mode: Option<Scalar>,
    pub max_user_connections: Option<Scalar>,
}

/// `[peers.ID]`: another pgmux instance that forwards cancel requests to this one's
/// clients (PgBouncer's `[peers]`).
#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a [peers.ID] table of host and port"
)]
pub(crate) struct RawPeer {
    pub host: Option<Scalar>,
    pub port: Option<Scalar>,
}

/// One TOML scalar, or the text of an environment variable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    /// As it would be written in TOML, so error messages quote strings but not numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(value) => write!(f, "{value}"),
            Scalar::Integer(value) => write!(f, "{value}"),
            Scalar::Float(value) => write!(f, "{value:?}"),
            Scalar::Text(value) => write!(f, "{value:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (string, number or boolean)")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
        Ok(Scalar::Integer(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
        Ok(i64::try_from(value).map_or_else(|_| Scalar::Text(value.to_string()), Scalar::Integer))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(value))
    }
}

/// A list of names: a TOML array in the file, a comma-separated string in
/// `PGMUX_*` variables (PgBouncer's ini syntax, also accepted in the file).
/// Items are trimmed and empty items dropped, so `""` is the empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringListVisitor)
    }
}

struct StringListVisitor;

impl StringListVisitor {
    fn items<'a>(parts: impl Iterator<Item = &'a str>) -> StringList {
        StringList(
            parts
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl<'de> Visitor<'de> for StringListVisitor {
    type Value = StringList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings or a comma-separated string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<StringList, E> {
        Ok(Self::items(value.split(',')))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(Self::items(items.iter().map(String::as_str)))
    }
}
