//! Writing the translated `pooler.toml` text: the file the translator collected
//! (settings, ignored PgBouncer settings as comments, `[databases]`/`[users]`/`[peers]`
//! tables), and ini values turned into TOML values (numbers as PgBouncer's `strtol`
//! reads them, strings quoted and escaped, lists as arrays).

use std::fmt::Write as _;
use std::path::Path;

use super::keys::Kind;
use super::Translator;
use crate::config::quoting::toml_string;

impl Translator {
    pub(super) fn toml(&self, path: &Path) -> String {
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
pub(super) fn toml_value(kind: Kind, value: &str) -> String {
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
