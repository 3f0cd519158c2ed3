//! Conversions from a raw [`Scalar`] to a typed setting. Each returns, on failure, what
//! it expected, so the caller can name the key and the variable in the error.
//! Strings are accepted wherever numbers or booleans are, because every `PGMUX_*`
//! variable is a string.

use std::time::Duration;

use super::raw::Scalar;
use super::settings::{AuthType, LogFormat, PoolMode};

/// What a value should have looked like, for `invalid value …: expected {Expected}`.
pub(crate) type Expected = &'static str;

pub(crate) const DURATION: Expected =
    "a duration: seconds as a number, or a string like \"5s\", \"500ms\", \"2m\", \"1h\"";

pub(crate) fn text(value: &Scalar) -> Result<String, Expected> {
    match value {
        Scalar::Text(text) => Ok(text.clone()),
        _ => Err("a string"),
    }
}

pub(crate) fn non_empty_text(value: &Scalar) -> Result<String, Expected> {
    const EXPECTED: Expected = "a non-empty string";
    match text(value) {
        Ok(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(EXPECTED),
    }
}

/// PgBouncer's `listen_addr = *` means every IPv4 address; empty means no TCP listener
/// (unix socket only), PgBouncer's default.
pub(crate) fn listen_addr(value: &Scalar) -> Result<String, Expected> {
    const EXPECTED: Expected =
        "one IP address or host name, \"*\" for all addresses, or \"\" for none";
    let addr = text(value).map_err(|_| EXPECTED)?;
    let addr = addr.trim();
    if addr.contains(',') || addr.contains(char::is_whitespace) {
        return Err(EXPECTED);
    }
    Ok(if addr == "*" { "0.0.0.0" } else { addr }.to_owned())
}

fn whole_number(value: &Scalar) -> Option<u64> {
    match value {
        Scalar::Integer(number) => u64::try_from(*number).ok(),
        Scalar::Text(text) => text.trim().parse().ok(),
        Scalar::Bool(_) | Scalar::Float(_) => None,
    }
}

/// A server port: 0 is meaningless for a connection target.
pub(crate) fn port(value: &Scalar) -> Result<u16, Expected> {
    match whole_number(value).and_then(|number| u16::try_from(number).ok()) {
        Some(port) if port != 0 => Ok(port),
        _ => Err("a port number (1-65535)"),
    }
}

/// A port to listen on: 0 asks the kernel for a free one (tests rely on it).
pub(crate) fn listen_port(value: &Scalar) -> Result<u16, Expected> {
    whole_number(value)
        .and_then(|number| u16::try_from(number).ok())
        .ok_or("a port number (0-65535)")
}

pub(crate) fn count(value: &Scalar) -> Result<usize, Expected> {
    whole_number(value)
        .and_then(|number| usize::try_from(number).ok())
        .ok_or("a whole number, 0 or more")
}

/// Pool and client limits where 0 would admit nobody.
pub(crate) fn positive_count(value: &Scalar) -> Result<usize, Expected> {
    match count(value) {
        Ok(number) if number > 0 => Ok(number),
        _ => Err("a whole number, 1 or more"),
    }
}

/// Seconds as a number (PgBouncer style) or a humantime string; 0 disables a timeout.
pub(crate) fn duration(value: &Scalar) -> Result<Duration, Expected> {
    let seconds = |seconds: f64| Duration::try_from_secs_f64(seconds).map_err(|_| DURATION);
    match value {
        Scalar::Integer(number) => u64::try_from(*number)
            .map(Duration::from_secs)
            .map_err(|_| DURATION),
        Scalar::Float(number) => seconds(*number),
        Scalar::Text(text) => {
            let text = text.trim();
            if let Ok(whole) = text.parse::<u64>() {
                Ok(Duration::from_secs(whole))
            } else if let Ok(fractional) = text.parse::<f64>() {
                seconds(fractional)
            } else {
                humantime::parse_duration(text).map_err(|_| DURATION)
            }
        }
        Scalar::Bool(_) => Err(DURATION),
    }
}

/// PostgreSQL's boolean spellings, as PgBouncer's ini accepts them.
pub(crate) fn flag(value: &Scalar) -> Result<bool, Expected> {
    const EXPECTED: Expected = "true or false";
    match value {
        Scalar::Bool(flag) => Ok(*flag),
        Scalar::Integer(0) => Ok(false),
        Scalar::Integer(1) => Ok(true),
        Scalar::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(EXPECTED),
        },
        Scalar::Integer(_) | Scalar::Float(_) => Err(EXPECTED),
    }
}

/// One of a fixed set of names, as the type's `FromStr` reads them.
fn choice<T: std::str::FromStr>(value: &Scalar, expected: Expected) -> Result<T, Expected> {
    text(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(expected)
}

pub(crate) fn pool_mode(value: &Scalar) -> Result<PoolMode, Expected> {
    choice(value, "one of \"session\", \"transaction\", \"statement\"")
}

pub(crate) fn auth_type(value: &Scalar) -> Result<AuthType, Expected> {
    choice(
        value,
        "one of \"any\", \"trust\", \"plain\", \"md5\", \"scram-sha-256\", \"hba\"",
    )
}

pub(crate) fn ssl_mode(value: &Scalar) -> Result<super::SslMode, Expected> {
    choice(
        value,
        "one of \"disable\", \"allow\", \"prefer\", \"require\", \"verify-ca\", \"verify-full\"",
    )
}

pub(crate) fn sigterm_shutdown(value: &Scalar) -> Result<super::SigtermShutdown, Expected> {
    choice(value, "one of \"wait_for_servers\", \"wait_for_clients\"")
}

/// `peer_id`: 0 (peering off) up to the 14 bits the cancel key has room for.
pub(crate) fn peer_id(value: &Scalar) -> Result<u16, Expected> {
    whole_number(value)
        .and_then(|number| u16::try_from(number).ok())
        .filter(|id| *id <= super::settings::MAX_PEER_ID)
        .ok_or("a whole number from 0 (peering disabled) to 16383")
}

pub(crate) fn log_format(value: &Scalar) -> Result<LogFormat, Expected> {
    const EXPECTED: Expected = "\"text\" or \"json\"";
    match text(value)
        .map_err(|_| EXPECTED)?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(EXPECTED),
    }
}
