//! `pgmux convert pgbouncer.ini`: prints the equivalent `pooler.toml`, the same text pgmux
//! itself reads the ini as, so the converted file behaves exactly like the original.

use std::path::Path;

use crate::config::{self, ini, ConfigError};

/// The TOML text for `path`, checked to load as it will when read back (`auth_file`
/// aside, which is read at load time and may not exist on this machine).
pub fn convert(path: &Path) -> Result<(String, Vec<ini::Warning>), ConfigError> {
    let translation = ini::translate_file(path)?;
    config::parse_str(&translation.toml, &path.display().to_string(), &[])?;
    Ok((translation.toml, translation.warnings))
}
