//! Why a configuration was refused: always one line, naming the file, the key and, when
//! the value came from the environment, the `PGMUX_*` variable that set it.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read file: {source}")]
    Read { origin: String, source: io::Error },

    #[error("{origin}: invalid TOML: {message}")]
    Syntax { origin: String, message: String },

    #[error("{origin}: environment variable {variable} is not valid Unicode")]
    NonUnicodeEnv { origin: String, variable: String },

    #[error("{origin}: unknown key `{key}`{}{}", set_by(.env_var), did_you_mean(.suggestion))]
    UnknownKey {
        origin: String,
        key: String,
        env_var: Option<String>,
        suggestion: Option<String>,
    },

    #[error("{origin}: {key}{}: invalid value {value}: expected {expected}", set_by(.env_var))]
    InvalidValue {
        origin: String,
        key: String,
        env_var: Option<String>,
        /// Already quoted for display; `(hidden)` for passwords and URLs.
        value: String,
        expected: String,
    },

    #[error("{origin}: {key}{}: {problem}", set_by(.env_var))]
    Invalid {
        origin: String,
        key: String,
        env_var: Option<String>,
        problem: String,
    },

    /// Anything the `config` crate reports that is not about one key.
    #[error("{origin}: {message}")]
    Other { origin: String, message: String },
}

impl ConfigError {
    /// The dotted key at fault (`databases.app.port`), if the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::InvalidValue { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::NonUnicodeEnv { .. }
            | ConfigError::Other { .. } => None,
        }
    }

    /// The `PGMUX_*` variable that supplied the offending key, if any.
    pub fn env_var(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { env_var, .. }
            | ConfigError::InvalidValue { env_var, .. }
            | ConfigError::Invalid { env_var, .. } => env_var.as_deref(),
            ConfigError::NonUnicodeEnv { variable, .. } => Some(variable),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } | ConfigError::Other { .. } => {
                None
            }
        }
    }
}

fn set_by(env_var: &Option<String>) -> String {
    match env_var {
        Some(variable) => format!(" (set by environment variable {variable})"),
        None => String::new(),
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(known) => format!(" (did you mean `{known}`?)"),
        None => String::new(),
    }
}
