//! Layering with the `config` crate: the TOML file first, `PGMUX_*` variables on top,
//! then the merged tree through the raw mirror and validation.

use std::ffi::OsString;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};

use super::error::ConfigError;
use super::provenance::{Provenance, ENV_KEY_SEPARATOR, ENV_PREFIX, ENV_PREFIX_SEPARATOR};
use super::raw::RawConfig;
use super::settings::Settings;
use super::validate;

/// Reads `path` and applies the process's `PGMUX_*` variables over it.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let env = process_env(&path.display().to_string())?;
    load_with_env(path, &env)
}

/// [`load`] with an explicit environment, so tests never touch the process's.
///
/// The file is read here rather than by `config::File` so that a missing or unreadable
/// file reports the operating system's reason; the `config` crate parses and layers it.
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    // Windows editors may save a byte-order mark, which TOML does not allow.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut settings = if super::ini::looks_like_ini(path, text) {
        // pgbouncer.ini: translated to the equivalent TOML, then read as any pooler.toml.
        let translation = super::ini::translate(path, text)?;
        for warning in &translation.warnings {
            warn_once(warning);
        }
        parse_str(&translation.toml, &origin, env)?
    } else {
        parse_str(text, &origin, env)?
    };
    super::auth_file::apply(&mut settings)?;
    super::hba::apply(&mut settings, &origin)?;
    // Certificates and keys are read now so that a bad file stops the start, or a
    // reload (which then keeps the old settings), with one clear line.
    crate::tls::check(&settings.tls).map_err(|error| ConfigError::Invalid {
        origin: origin.clone(),
        key: error.key.to_owned(),
        env_var: None,
        problem: error.problem,
    })?;
    settings.source = Some(path.to_path_buf());
    Ok(settings)
}

/// Each unsupported setting is named once per process, not again on every reload.
fn warn_once(warning: &super::ini::Warning) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static WARNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned
        .get_or_insert_with(HashSet::new)
        .insert(warning.subject.clone())
    {
        tracing::warn!("{}", warning.message);
    }
}

/// The known key closest to `key`, if close enough to be a typo.
pub(crate) fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    known
        .map(|candidate| (edit_distance(&key.to_lowercase(), candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate.to_owned())
}

/// Parses TOML text with `env` as overrides; `origin` names the text in errors.
pub fn parse_str(
    toml_text: &str,
    origin: &str,
    env: &[(String, String)],
) -> Result<Settings, ConfigError> {
    let provenance = Provenance::new(origin, env);
    let environment = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator(ENV_PREFIX_SEPARATOR)
        .separator(ENV_KEY_SEPARATOR)
        .source(Some(env.iter().cloned().collect()));
    let raw: RawConfig = Config::builder()
        .add_source(File::from_str(toml_text, FileFormat::Toml))
        .add_source(environment)
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|error| from_config_error(error, &provenance))?;
    validate::settings(raw, &provenance)
}

/// Non-Unicode variables outside the `PGMUX_` namespace are none of pgmux's business.
fn process_env(origin: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = format!("{ENV_PREFIX}{ENV_PREFIX_SEPARATOR}").to_lowercase();
    let mut env = Vec::new();
    for (variable, value) in std::env::vars_os() {
        let Ok(variable) = variable.into_string() else {
            continue;
        };
        if !variable.to_lowercase().starts_with(&prefix) {
            continue;
        }
        match OsString::into_string(value) {
            Ok(value) => env.push((variable, value)),
            Err(_) => {
                return Err(ConfigError::NonUnicodeEnv {
                    origin: origin.to_owned(),
                    variable,
                })
            }
        }
    }
    Ok(env)
}

/// Flattens the `config` crate's nested errors into one line naming the key.
fn from_config_error(error: config::ConfigError, at: &Provenance) -> ConfigError {
    let origin = at.origin().to_owned();
    match error {
        config::ConfigError::FileParse { cause, .. } => ConfigError::Syntax {
            origin,
            message: one_line_toml_error(&cause.to_string()),
        },
        config::ConfigError::At { error, key, .. } => {
            let key = key.unwrap_or_default();
            match *error {
                config::ConfigError::Message(message) => match unknown_field(&message) {
                    Some((field, suggestion)) => {
                        at.unknown_key(format!("{key}.{field}"), suggestion)
                    }
                    None => at.invalid(&key, without_strings(&message)),
                },
                other => at.invalid(&key, without_strings(&other.to_string())),
            }
        }
        config::ConfigError::Message(message) => match unknown_field(&message) {
            Some((field, suggestion)) => at.unknown_key(field, suggestion),
            None => ConfigError::Other { origin, message },
        },
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => at.invalid(
            &key.unwrap_or_default(),
            without_strings(&format!("invalid type: {unexpected}, expected {expected}")),
        ),
        other => ConfigError::Other {
            origin,
            message: other.to_string(),
        },
    }
}

/// serde quotes a misplaced string (`invalid type: string "…"`); it may be a
/// PgBouncer-style connection string with a password, so only its kind is kept.
fn without_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let Some(start) = message.find(QUOTED) else {
        return message.to_owned();
    };
    let body = &message[start + QUOTED.len()..];
    let mut escaped = false;
    let end = body.char_indices().find_map(|(index, c)| {
        let closes = c == '"' && !escaped;
        escaped = c == '\\' && !escaped;
        closes.then_some(index)
    });
    match end {
        Some(end) => format!(
            "{}a string{}",
            &message[..start],
            without_strings(&body[end + 1..])
        ),
        None => format!("{}a string", &message[..start]),
    }
}

/// serde's `deny_unknown_fields` message: "unknown field `x`, expected one of `a`, `b`"
/// (or "expected `a`", or "there are no fields"). Returns the field and the closest
/// known field, if one is close enough to be a typo.
fn unknown_field(message: &str) -> Option<(String, Option<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let suggestion = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|known| (edit_distance(&field.to_lowercase(), known), known))
        .filter(|(distance, known)| *distance <= 2.max(known.len() / 4))
        .min()
        .map(|(_, known)| known.to_owned());
    Some((field.to_owned(), suggestion))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The toml crate's errors span several lines (a caret under the source line); keep
/// the position and the explanation.
fn one_line_toml_error(message: &str) -> String {
    let mut lines = message
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty());
    let position = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("TOML parse error ");
    let explanation: Vec<&str> = lines
        .filter(|line| !line.trim_start().starts_with('|') && !is_source_excerpt(line))
        .map(str::trim)
        .collect();
    if explanation.is_empty() {
        position.to_owned()
    } else {
        format!("{position}: {}", explanation.join("; "))
    }
}

/// `12 | key = value`: a numbered source line in a toml error.
fn is_source_excerpt(line: &str) -> bool {
    line.split_once('|')
        .is_some_and(|(number, _)| number.trim().chars().all(|c| c.is_ascii_digit()))
}
