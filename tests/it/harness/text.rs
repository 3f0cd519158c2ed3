//! Small encoders and parsers: TOML literals, URL percent-encoding, log lines.

use std::net::SocketAddr;
use std::path::Path;

/// The rest of `line` after the first `marker`.
pub fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// The first whitespace-separated word, without quotes a Debug format would add.
pub fn first_token(text: &str) -> Option<&str> {
    text.split_whitespace()
        .next()
        .map(|word| word.trim_matches(['"', '\'']))
}

/// Accepts the address even if the log format adds trailing punctuation or quotes.
pub fn parse_socket_addr(token: &str) -> Option<SocketAddr> {
    let trimmed =
        token.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '[' || c == ']'));
    trimmed.parse().ok()
}

/// A TOML basic string literal.
pub fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A file or directory path as a TOML string literal (a setting's value).
pub fn toml_path(path: &Path) -> String {
    toml_string(&path.display().to_string())
}

/// Table names with characters beyond bare-key ones must be quoted.
pub fn toml_key(name: &str) -> String {
    let bare = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare && !name.is_empty() {
        name.to_string()
    } else {
        toml_string(name)
    }
}

/// Enough URL encoding for user names, passwords and database names in a URL.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
