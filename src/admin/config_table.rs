//! SHOW CONFIG (key, value, default, changeable) and `SET key = value`, from one table
//! of every setting, as PgBouncer keeps its settings in one table (`src/main.c`).

use std::path::PathBuf;
use std::time::Duration;

use super::reload::RESTART_ONLY;
use super::result::{ResultSet, Type};
use super::show::FAKE_PARAMETERS;
use super::{AdminError, Console, Reply};
use crate::config::{AuthType, LogFormat, PoolMode, Settings};

/// How a setting prints in SHOW CONFIG: PgBouncer's spelling (seconds, 0/1, lists
/// comma-separated).
trait Shown {
    fn shown(&self) -> String;
}

impl Shown for Duration {
    fn shown(&self) -> String {
        if self.subsec_nanos() == 0 {
            self.as_secs().to_string()
        } else {
            format!("{}", self.as_secs_f64())
        }
    }
}

impl Shown for bool {
    fn shown(&self) -> String {
        u8::from(*self).to_string()
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> String {
        self.join(",")
    }
}

impl Shown for Option<PathBuf> {
    fn shown(&self) -> String {
        self.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

impl Shown for Option<String> {
    fn shown(&self) -> String {
        self.clone().unwrap_or_default()
    }
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_by_display!(usize, u16, String, PoolMode, AuthType);

impl Shown for LogFormat {
    fn shown(&self) -> String {
        self.as_str().to_owned()
    }
}

macro_rules! settings_table {
    ($($field:ident),* $(,)?) => {
        /// (key, value, default) for every setting, in the order of pooler.toml.
        fn entries(now: &Settings, defaults: &Settings) -> Vec<(&'static str, String, String)> {
            vec![$((stringify!($field), now.$field.shown(), defaults.$field.shown())),*]
        }

        /// Copies one setting by name; false for an unknown name.
        fn copy_setting(key: &str, from: &Settings, to: &mut Settings) -> bool {
            match key {
                $(stringify!($field) => to.$field = from.$field.clone(),)*
                _ => return false,
            }
            true
        }
    };
}

settings_table!(
    listen_addr,
    listen_port,
    unix_socket_dir,
    pool_mode,
    max_client_conn,
    default_pool_size,
    min_pool_size,
    reserve_pool_size,
    reserve_pool_timeout,
    max_db_connections,
    max_user_connections,
    server_idle_timeout,
    server_lifetime,
    server_connect_timeout,
    server_login_retry,
    query_wait_timeout,
    query_timeout,
    client_login_timeout,
    client_idle_timeout,
    idle_transaction_timeout,
    server_reset_query,
    server_reset_query_always,
    server_check_query,
    server_check_delay,
    auth_type,
    admin_users,
    stats_users,
    ignore_startup_parameters,
    track_extra_parameters,
    application_name_add_host,
    max_prepared_statements,
    max_packet_size,
    shutdown_timeout,
    workers,
    so_reuseport,
    peer_id,
    stats_period,
    metrics_listen,
    log_connections,
    log_disconnections,
    log_pooler_errors,
    log_stats,
    log_format,
);

pub(super) fn show(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&[
        ("key", Type::Text),
        ("value", Type::Text),
        ("default", Type::Text),
        ("changeable", Type::Text),
    ]);
    let settings = console.shared.settings();
    for (key, value, default) in entries(&settings, &Settings::default()) {
        let changeable = if RESTART_ONLY.contains(&key) {
            "no"
        } else {
            "yes"
        };
        set.row(vec![
            key.into(),
            value.into(),
            default.into(),
            changeable.into(),
        ]);
    }
    set
}

/// `SET key = value`: parameters drivers set at connect time are acknowledged and
/// ignored (PgBouncer's `fake_set`); settings change in memory for admins, only those
/// that can change while running.
pub(super) fn set(console: &Console, key: &str, value: &str) -> Result<Reply, AdminError> {
    if FAKE_PARAMETERS
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(key))
    {
        return Ok(Reply::Notice {
            text: "SET ignored".into(),
            detail: None,
            tag: "SET".into(),
        });
    }
    console.require_admin()?;
    let key = key.to_ascii_lowercase();
    let current = console.shared.settings();
    if RESTART_ONLY.contains(&key.as_str())
        || !entries(&current, &current).iter().any(|e| e.0 == key)
    {
        tracing::warn!("SET {key}: unknown or not changeable while running");
        return Err(AdminError::new("SET failed"));
    }
    // Every value goes through the same validation as the file, as a string (which is
    // how PGMUX_* variables arrive too).
    let toml = toml_string(&key, value).ok_or_else(|| AdminError::new("SET failed"))?;
    let parsed = crate::config::parse_str(&toml, "SET", &[]).map_err(|error| {
        tracing::warn!("SET {key} failed: {error}");
        AdminError::new("SET failed")
    })?;
    let mut new = (*current).clone();
    copy_setting(&key, &parsed, &mut new);
    console.shared.reload(new);
    tracing::info!("SET {key} = {value}");
    Ok(Reply::Done(format!("SET {key}={value}")))
}

/// `key = "value"` as TOML; a control character makes the value unusable.
fn toml_string(key: &str, value: &str) -> Option<String> {
    if value.chars().any(char::is_control) {
        return None;
    }
    Some(format!(
        "{key} = {}",
        crate::config::quoting::toml_string(value)
    ))
}
