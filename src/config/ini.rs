//! PgBouncer's `pgbouncer.ini`, read natively: the file (with its `%include`s) is
//! translated into the equivalent `pooler.toml` text, which then goes through the same
//! parsing, environment overrides and validation as a native file. `pgmux convert`
//! prints that same text, so a converted file behaves exactly as the ini did.
//!
//! `reader` reads the file, the `Translator` here maps each key, and `toml_writer`
//! writes the result.

mod connstr;
mod keys;
mod peers;
mod reader;
mod toml_writer;

use std::path::Path;

use super::error::ConfigError;
use crate::config::quoting::toml_string;
#[cfg(test)]
use reader::sections;
use reader::{read, read_text};
use toml_writer::toml_value;

/// The `pooler.toml` equivalent of an ini file, and one warning per setting that pgmux
/// accepts but does not implement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub toml: String,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What the warning is about (`so_reuseport`, `databases.client_encoding`), so that a
    /// reload does not repeat it.
    pub subject: String,
    pub message: String,
}

/// `.ini` files are ini; `.toml` files are TOML; anything else is ini if it has a
/// `[pgbouncer]` section (a table pooler.toml never has).
pub fn looks_like_ini(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some(extension) if extension.eq_ignore_ascii_case("ini") => true,
        Some(extension) if extension.eq_ignore_ascii_case("toml") => false,
        _ => text.lines().any(|line| line.trim() == "[pgbouncer]"),
    }
}

/// Reads and translates `path` (already read as `text`).
pub fn translate(path: &Path, text: &str) -> Result<Translation, ConfigError> {
    let mut entries = Vec::new();
    let mut section = None;
    read(path, text, 0, &mut section, &mut entries)?;
    Translator::default().run(path, entries)
}

/// Reads `path` from disk and translates it.
pub fn translate_file(path: &Path) -> Result<Translation, ConfigError> {
    let text = read_text(path)?;
    translate(path, &text)
}

/// One `key = value` line and where it was.
#[derive(Debug, Clone)]
struct Entry {
    section: String,
    key: String,
    value: String,
    at: String,
}

fn syntax_error(at: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Other {
        origin: at,
        message: message.into(),
    }
}

/// Builds the TOML text, remembering the last value of each key (later lines override
/// earlier ones, as in PgBouncer) in first-seen order.
#[derive(Default)]
struct Translator {
    settings: Vec<(String, String)>,
    ignored: Vec<String>,
    databases: Vec<(String, Vec<(String, String)>)>,
    users: Vec<(String, Vec<(String, String)>)>,
    /// `[peers]`: each id with its `host`/`port`.
    peers: Vec<(String, Vec<(String, String)>)>,
    warnings: Vec<Warning>,
}

fn upsert<T>(entries: &mut Vec<(String, T)>, key: &str, value: T) {
    match entries.iter_mut().find(|(existing, _)| existing == key) {
        Some(entry) => entry.1 = value,
        None => entries.push((key.to_owned(), value)),
    }
}

impl Translator {
    fn warn(&mut self, subject: String, message: String) {
        if !self.warnings.iter().any(|w| w.subject == subject) {
            self.warnings.push(Warning { subject, message });
        }
    }

    fn run(mut self, path: &Path, entries: Vec<Entry>) -> Result<Translation, ConfigError> {
        let mut pgbouncer: Vec<(String, (String, String))> = Vec::new();
        for entry in &entries {
            if entry.section == "pgbouncer" {
                upsert(
                    &mut pgbouncer,
                    &entry.key,
                    (entry.value.clone(), entry.at.clone()),
                );
            }
        }
        for (key, (value, at)) in &pgbouncer {
            self.setting(key, value, at)?;
        }
        let unix_socket_dir = pgbouncer
            .iter()
            .find(|(key, _)| key == "unix_socket_dir")
            .map_or("/tmp".to_owned(), |(_, (value, _))| value.clone());
        for entry in entries {
            match entry.section.as_str() {
                "databases" => self.database(&entry, &unix_socket_dir)?,
                "users" => self.user(&entry)?,
                "peers" => self.peer(&entry)?,
                _ => {}
            }
        }
        Ok(Translation {
            toml: self.toml(path),
            warnings: self.warnings,
        })
    }

    fn setting(&mut self, key: &str, value: &str, at: &str) -> Result<(), ConfigError> {
        if let Some(default) = keys::ignored_default(key) {
            self.ignored.push(format!("{key} = {value}"));
            if value != default {
                self.warn(
                    key.to_owned(),
                    format!("{at}: setting {key} is not supported by pgmux and is ignored"),
                );
            }
            return Ok(());
        }
        let Some(kind) = keys::supported(keys::SUPPORTED, key) else {
            return Err(ConfigError::UnknownKey {
                origin: at.to_owned(),
                key: format!("[pgbouncer] {key}"),
                env_var: None,
                suggestion: super::load::closest(key, keys::all_keys()),
            });
        };
        let value = match key {
            "listen_addr" => {
                let mut addresses = value.split(',').map(str::trim).filter(|a| !a.is_empty());
                let first = addresses.next().unwrap_or("").to_owned();
                if addresses.next().is_some() {
                    self.warn(
                        key.to_owned(),
                        format!("{at}: listen_addr: pgmux listens on one address; using {first} and ignoring the others"),
                    );
                }
                first
            }
            "auth_type"
                if matches!(value.to_ascii_lowercase().as_str(), "cert" | "ldap" | "pam") =>
            {
                self.warn(
                    key.to_owned(),
                    format!(
                        "{at}: setting auth_type = {value} is not supported by pgmux; using md5"
                    ),
                );
                "md5".to_owned()
            }
            // PgBouncer's "<empty>" asks for an empty query as the check; pgmux's default
            // check query does the same job.
            "server_check_query" if value == "<empty>" => return Ok(()),
            "unix_socket_dir" if value.starts_with('@') => {
                self.warn(
                    key.to_owned(),
                    format!("{at}: unix_socket_dir: abstract unix sockets are not supported by pgmux; no unix socket is opened"),
                );
                String::new()
            }
            _ => value.to_owned(),
        };
        upsert(&mut self.settings, key, toml_value(kind, &value));
        Ok(())
    }

    fn database(&mut self, entry: &Entry, unix_socket_dir: &str) -> Result<(), ConfigError> {
        let name = &entry.key;
        if name == "pgbouncer" {
            return Err(syntax_error(
                entry.at.clone(),
                "database name \"pgbouncer\" is reserved",
            ));
        }
        let pairs = connstr::parse(&entry.value).map_err(|problem| ConfigError::Invalid {
            origin: entry.at.clone(),
            key: format!("[databases] {name}"),
            env_var: None,
            problem,
        })?;
        let mut body: Vec<(String, String)> = Vec::new();
        for (key, value) in pairs {
            let key = if key == "reserve_pool" {
                "reserve_pool_size".to_owned()
            } else {
                key
            };
            if keys::DATABASE_IGNORED.contains(&key.as_str()) {
                self.warn(
                    format!("databases.{key}"),
                    format!("{}: connection parameter {key} (database {name}) is not supported by pgmux and is ignored", entry.at),
                );
                continue;
            }
            let Some(kind) = keys::supported(keys::DATABASE_SUPPORTED, &key) else {
                return Err(ConfigError::Invalid {
                    origin: entry.at.clone(),
                    key: format!("[databases] {name}"),
                    env_var: None,
                    problem: format!("unrecognized connection parameter: {key}"),
                });
            };
            let value = if key == "host" && value.contains(',') {
                let first = value
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                self.warn(
                    "databases.host".to_owned(),
                    format!("{}: database {name}: pgmux connects to one host; using {first} and ignoring the rest of the list", entry.at),
                );
                first
            } else {
                value
            };
            upsert(&mut body, &key, toml_value(kind, &value));
        }
        // No host: PgBouncer connects through the unix socket directory.
        if !body.iter().any(|(key, _)| key == "host")
            && !unix_socket_dir.trim().is_empty()
            && !unix_socket_dir.starts_with('@')
        {
            body.insert(0, ("host".to_owned(), toml_string(unix_socket_dir)));
        }
        upsert(&mut self.databases, name, body);
        Ok(())
    }

    fn user(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let name = &entry.key;
        let pairs = connstr::parse(&entry.value).map_err(|problem| ConfigError::Invalid {
            origin: entry.at.clone(),
            key: format!("[users] {name}"),
            env_var: None,
            problem: problem.replace("connection string", "user settings"),
        })?;
        let mut body = Vec::new();
        for (key, value) in pairs {
            if keys::USER_IGNORED.contains(&key.as_str()) {
                self.warn(
                    format!("users.{key}"),
                    format!("{}: user setting {key} (user {name}) is not supported by pgmux and is ignored", entry.at),
                );
                continue;
            }
            let Some(kind) = keys::supported(keys::USER_SUPPORTED, &key) else {
                return Err(ConfigError::Invalid {
                    origin: entry.at.clone(),
                    key: format!("[users] {name}"),
                    env_var: None,
                    problem: format!("unrecognized user parameter: {key}"),
                });
            };
            upsert(&mut body, &key, toml_value(kind, &value));
        }
        upsert(&mut self.users, name, body);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
