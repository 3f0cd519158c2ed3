//! PgBouncer's `pgbouncer.ini`, read natively: the file (with its `%include`s) is
//! translated into the equivalent `pooler.toml` text, which then goes through the same
//! parsing, environment overrides and validation as a native file. `pgmux convert`
//! prints that same text, so a converted file behaves exactly as the ini did.
//!
//! Syntax, as PgBouncer's (libusual) parser reads it: `[section]` lines; `key = value`
//! lines where the key is `[A-Za-z0-9_.*-]+` or a double-quoted name (`""` for a quote)
//! and the value runs to the end of the line, trimmed; lines starting with `;` or `#`
//! are comments (those characters are not special later in a line); `%include FILE`
//! reads another file in place (relative to the working directory, as PgBouncer does,
//! falling back to the including file's directory).

mod connstr;
mod keys;
mod peers;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use keys::Kind;

/// Nested `%include`s deeper than this are taken for a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

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

fn read_text(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: path.display().to_string(),
        source,
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
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

fn read(
    path: &Path,
    text: &str,
    depth: usize,
    section: &mut Option<String>,
    out: &mut Vec<Entry>,
) -> Result<(), ConfigError> {
    for (index, raw_line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), index + 1);
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(target) = line.strip_prefix("%include") {
            let target = target.trim();
            if target.is_empty()
                || !raw_line.trim_start()["%include".len()..].starts_with(char::is_whitespace)
            {
                return Err(syntax_error(at, "syntax error: %include needs a file name"));
            }
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(syntax_error(at, "%include nested too deeply (a loop?)"));
            }
            let included = include_path(path, target);
            let text = read_text(&included)?;
            read(&included, &text, depth + 1, section, out)?;
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let Some(name) = name.strip_suffix(']') else {
                return Err(syntax_error(
                    at,
                    "syntax error in configuration: unclosed [section",
                ));
            };
            let name = name.trim();
            if !matches!(name, "pgbouncer" | "databases" | "users" | "peers") {
                return Err(syntax_error(at, format!("unknown section [{name}]")));
            }
            *section = Some(name.to_owned());
            continue;
        }
        let (key, rest) = split_key(line).ok_or_else(|| {
            syntax_error(
                at.clone(),
                "syntax error in configuration: expected `key = value`",
            )
        })?;
        let Some(current) = section.clone() else {
            return Err(syntax_error(
                at,
                format!("`{key}` is outside of any [section]"),
            ));
        };
        out.push(Entry {
            section: current,
            key,
            value: rest.trim().to_owned(),
            at,
        });
    }
    Ok(())
}

/// PgBouncer resolves `%include` against the working directory; a file that is not
/// there is looked for next to the including file.
fn include_path(including: &Path, target: &str) -> PathBuf {
    let target = PathBuf::from(target);
    if target.is_absolute() || target.exists() {
        return target;
    }
    match including.parent() {
        Some(dir) => dir.join(&target),
        None => target,
    }
}

/// `key = value` → (key, text after `=`). Keys are bare or double-quoted.
fn split_key(line: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(quoted) = line.strip_prefix('"') {
        let mut key = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((index, c)) = chars.next() {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    chars.next();
                    key.push('"');
                } else {
                    end = Some(index + 1);
                    break;
                }
            } else {
                key.push(c);
            }
        }
        (key, &quoted[end?..])
    } else {
        let end = line
            .find(|c: char| !(c.is_alphanumeric() || "_.-*".contains(c)))
            .unwrap_or(line.len());
        (line[..end].to_owned(), &line[end..])
    };
    if key.is_empty() {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('=')?;
    Some((key, rest))
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

    fn toml(&self, path: &Path) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# pooler.toml translated from {} by pgmux.",
            path.display()
        );
        if !self.settings.iter().any(|(key, _)| key == "listen_addr") {
            out.push_str("# PgBouncer's default: no TCP listener, unix socket only.\n");
            out.push_str("listen_addr = \"\"\n");
        }
        // PgBouncer's behaviour where pgmux's own defaults differ.
        let pgbouncer_defaults = [
            (
                "sigterm_shutdown",
                "# PgBouncer's SIGTERM: stop accepting, serve the clients there are until they\n\
                 # leave (pooler.toml's default closes idle clients at transaction boundaries).\n\
                 sigterm_shutdown = \"wait_for_clients\"\n",
            ),
            (
                "shutdown_timeout",
                "# PgBouncer waits for as long as that takes.\nshutdown_timeout = 0\n",
            ),
            (
                "syslog_ident",
                "# PgBouncer's syslog tag.\nsyslog_ident = \"pgbouncer\"\n",
            ),
        ];
        for (key, text) in pgbouncer_defaults {
            if !self.settings.iter().any(|(set, _)| set == key) {
                out.push_str(text);
            }
        }
        for (key, value) in &self.settings {
            let _ = writeln!(out, "{key} = {value}");
        }
        if !self.ignored.is_empty() {
            out.push_str(
                "\n# PgBouncer settings pgmux accepts but does not implement (ignored):\n",
            );
            for line in &self.ignored {
                let _ = writeln!(out, "# {line}");
            }
        }
        for (kind, entries) in [
            ("databases", &self.databases),
            ("users", &self.users),
            ("peers", &self.peers),
        ] {
            for (name, body) in entries {
                let _ = writeln!(out, "\n[{kind}.{}]", toml_key(name));
                for (key, value) in body {
                    let _ = writeln!(out, "{key} = {value}");
                }
            }
        }
        out
    }
}

/// An ini value as TOML. Numbers PgBouncer would parse become TOML numbers; anything
/// else stays a string, so validation names the key and says what was expected.
fn toml_value(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Text => toml_string(value),
        Kind::Integer => c_integer(value).map_or_else(|| toml_string(value), |n| n.to_string()),
        Kind::Seconds => match value.trim().parse::<f64>() {
            Ok(seconds)
                if seconds.is_finite() && seconds.fract() == 0.0 && seconds.abs() < 1e15 =>
            {
                format!("{}", seconds as i64)
            }
            Ok(seconds) if seconds.is_finite() => format!("{seconds:?}"),
            _ => toml_string(value),
        },
        Kind::Flag => match c_integer(value) {
            Some(number) => (number != 0).to_string(),
            None => toml_string(value),
        },
        Kind::List => {
            let items: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(toml_string)
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// `strtol(value, 0)`: decimal, `0x` hexadecimal or leading-zero octal.
fn c_integer(value: &str) -> Option<i64> {
    let value = value.trim();
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

pub(crate) fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        toml_string(name)
    }
}

/// The parsed sections, for tests: key → value per section, last value winning.
#[cfg(test)]
fn sections(
    path: &Path,
    text: &str,
) -> Result<
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    ConfigError,
> {
    use std::collections::BTreeMap;
    let mut entries = Vec::new();
    read(path, text, 0, &mut None, &mut entries)?;
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in entries {
        out.entry(entry.section)
            .or_default()
            .insert(entry.key, entry.value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
