//! Reading `pgbouncer.ini` into the flat list of `Entry`s, in file order, for the
//! translator.
//!
//! Syntax, as PgBouncer's (libusual) parser reads it: `[section]` lines; `key = value`
//! lines where the key is `[A-Za-z0-9_.*-]+` or a double-quoted name (`""` for a quote)
//! and the value runs to the end of the line, trimmed; lines starting with `;` or `#`
//! are comments (those characters are not special later in a line); `%include FILE`
//! reads another file in place (relative to the working directory, as PgBouncer does,
//! falling back to the including file's directory).

use std::path::{Path, PathBuf};

use super::{syntax_error, Entry};
use crate::config::ConfigError;

/// Nested `%include`s deeper than this are taken for a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: path.display().to_string(),
        source,
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
}

pub(super) fn read(
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

/// The parsed sections, for tests: key → value per section, last value winning.
#[cfg(test)]
pub(super) fn sections(
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
