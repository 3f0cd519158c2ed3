//! `[peers]`: the other instances of a pgmux/PgBouncer group (`peer_id`), to which
//! cancel requests for their clients are forwarded. Checked as PgBouncer checks the
//! section, then translated to `[peers.ID]` tables.

use super::{connstr, toml_string, upsert, Entry, Translator};
use crate::config::ConfigError;

impl Translator {
    pub(super) fn peer(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let invalid = |problem: String| ConfigError::Invalid {
            origin: entry.at.clone(),
            key: format!("[peers] {}", entry.key),
            env_var: None,
            problem,
        };
        if !entry
            .key
            .parse::<u32>()
            .is_ok_and(|id| (1..=65535).contains(&id))
        {
            return Err(invalid(
                "ids of peers must be a number larger than 0 and at most 65535".to_owned(),
            ));
        }
        let pairs = connstr::parse(&entry.value).map_err(invalid)?;
        if let Some((key, _)) = pairs
            .iter()
            .find(|(key, _)| !matches!(key.as_str(), "host" | "port" | "pool_size"))
        {
            return Err(invalid(format!("unrecognized connection parameter: {key}")));
        }
        if !pairs.iter().any(|(key, _)| key == "host") {
            return Err(invalid(format!(
                "host was not provided for peer {}",
                entry.key
            )));
        }
        let mut body = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "host" => upsert(&mut body, "host", toml_string(&value)),
                "port" => {
                    let port = value
                        .trim()
                        .parse::<u16>()
                        .map_or_else(|_| toml_string(&value), |p| p.to_string());
                    upsert(&mut body, "port", port);
                }
                // A cancel request is forwarded on a connection of its own.
                _ => self.warn(
                    "peers.pool_size".to_owned(),
                    format!(
                        "{}: peer setting pool_size is not supported by pgmux and is ignored",
                        entry.at
                    ),
                ),
            }
        }
        upsert(&mut self.peers, &entry.key, body);
        Ok(())
    }
}
