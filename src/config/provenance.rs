//! Where a key's value came from — the file or a `PGMUX_*` variable — so every error
//! can point at the line or the variable to fix.

use std::collections::BTreeMap;

use super::error::ConfigError;
use super::raw::Scalar;
use super::values::Expected;

pub(crate) const ENV_PREFIX: &str = "PGMUX";
/// Between the prefix and the key: `PGMUX_POOL_MODE`.
pub(crate) const ENV_PREFIX_SEPARATOR: &str = "_";
/// Between nested keys: `PGMUX_DATABASES__APP__HOST` is `databases.app.host`.
pub(crate) const ENV_KEY_SEPARATOR: &str = "__";

pub(crate) struct Provenance {
    /// The file name as the user gave it, first in every message.
    origin: String,
    /// Dotted key → the variable that set it, computed exactly as the `config` crate
    /// maps variable names (lowercased, prefix stripped, `__` → `.`).
    env_keys: BTreeMap<String, String>,
}

impl Provenance {
    pub(crate) fn new(origin: &str, env: &[(String, String)]) -> Self {
        let prefix = format!("{ENV_PREFIX}{ENV_PREFIX_SEPARATOR}").to_lowercase();
        let env_keys = env
            .iter()
            .filter_map(|(variable, _)| {
                let lowered = variable.to_lowercase();
                let key = lowered.strip_prefix(&prefix)?;
                Some((key.replace(ENV_KEY_SEPARATOR, "."), variable.clone()))
            })
            .collect();
        Provenance {
            origin: origin.to_owned(),
            env_keys,
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The variable that set `key`, or set something inside it, or set a table it is in.
    /// The environment overrides the file, so any such variable is the one to blame.
    pub(crate) fn env_var_for(&self, key: &str) -> Option<String> {
        let inside = |outer: &str, inner: &str| {
            inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        self.env_keys
            .get(key)
            .or_else(|| {
                self.env_keys
                    .iter()
                    .find(|(env_key, _)| inside(key, env_key) || inside(env_key, key))
                    .map(|(_, variable)| variable)
            })
            .cloned()
    }

    pub(crate) fn unknown_key(&self, key: String, suggestion: Option<String>) -> ConfigError {
        ConfigError::UnknownKey {
            origin: self.origin.clone(),
            env_var: self.env_var_for(&key),
            key,
            suggestion,
        }
    }

    pub(crate) fn invalid_value(
        &self,
        key: &str,
        value: &Scalar,
        expected: Expected,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            origin: self.origin.clone(),
            key: key.to_owned(),
            env_var: self.env_var_for(key),
            value: displayed_value(key, value),
            expected: expected.to_owned(),
        }
    }

    pub(crate) fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.clone(),
            key: key.to_owned(),
            env_var: self.env_var_for(key),
            problem: problem.into(),
        }
    }

    /// Converts an optional raw value, naming `key` if it does not convert.
    pub(crate) fn convert<T>(
        &self,
        key: &str,
        value: Option<&Scalar>,
        conversion: fn(&Scalar) -> Result<T, Expected>,
    ) -> Result<Option<T>, ConfigError> {
        value
            .map(|value| {
                conversion(value).map_err(|expected| self.invalid_value(key, value, expected))
            })
            .transpose()
    }
}

/// Secrets never reach logs: a bad password or URL is named but not shown.
fn displayed_value(key: &str, value: &Scalar) -> String {
    let last_segment = key.rsplit('.').next().unwrap_or(key);
    if matches!(last_segment, "password" | "url") {
        "(hidden)".to_owned()
    } else {
        value.to_string()
    }
}
