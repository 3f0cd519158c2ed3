//! Configuration: `pooler.toml` + `PGMUX_*` environment overrides → validated [`Settings`].
//!
//! Setting names, meanings and defaults follow PgBouncer 1.25, written as TOML.
//! Durations are seconds (PgBouncer style) or humantime strings ("5s", "500ms").
//! Overrides: `PGMUX_DEFAULT_POOL_SIZE=50`, `PGMUX_DATABASES__APP__HOST=db` (`__` nests;
//! names are lowercased), lists as `PGMUX_ADMIN_USERS=alice,bob`.

mod auth_file;
pub mod console;
mod database_url;
mod error;
pub mod hba;
pub mod ini;
mod load;
mod provenance;
pub(crate) mod quoting;
mod raw;
mod settings;
mod tls;
mod validate;
mod values;

#[cfg(test)]
mod tests;

pub use console::{is_console, ConsoleRole};
pub use error::ConfigError;
pub use hba::{ClientOrigin, HbaMethod, HbaRules};
pub use load::{load, load_with_env, parse_str};
pub use settings::*;
pub use tls::{SslMode, TlsSettings};
