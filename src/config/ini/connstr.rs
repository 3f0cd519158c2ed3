//! PgBouncer's connection strings (`[databases]`, `[users]`, `[peers]` values):
//! `key=value` pairs separated by spaces; a value may be single-quoted, with `''` for a
//! literal quote inside. Empty values are refused, as PgBouncer refuses them.

use crate::config::quoting::unquote_doubled;

/// The pairs in order, or what is wrong with the string (never quoting a value: it may
/// be a password).
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        let Some(after_equals) = rest.strip_prefix('=') else {
            return Err(if key.is_empty() {
                "syntax error in connection string: a parameter name is missing".to_owned()
            } else {
                format!("syntax error in connection string: no `=` after `{key}`")
            });
        };
        if key.is_empty() {
            return Err("syntax error in connection string: a parameter name is missing".into());
        }
        rest = after_equals.trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('\'') {
            let (unquoted, after) = unquote_doubled(quoted, '\'').ok_or_else(|| {
                format!("syntax error in connection string: unterminated quote in `{key}`")
            })?;
            value = unquoted;
            rest = after;
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = rest[..end].to_owned();
            rest = &rest[end..];
        }
        if value.is_empty() {
            return Err(format!(
                "syntax error in connection string: empty value for `{key}`"
            ));
        }
        pairs.push((key.to_owned(), value));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    #[test]
    fn plain_and_quoted_values() {
        assert_eq!(
            pairs("host=db port=5433  dbname=app connect_query='SELECT 1' password='it''s'"),
            [
                ("host", "db"),
                ("port", "5433"),
                ("dbname", "app"),
                ("connect_query", "SELECT 1"),
                ("password", "it's"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(pairs("  user = bob "), [("user".into(), "bob".into())]);
        assert!(pairs("").is_empty());
    }

    #[test]
    fn broken_strings_are_refused_without_echoing_values() {
        for bad in ["host", "=x", "password='hunter2", "user=", "password=''"] {
            let problem = parse(bad).unwrap_err();
            assert!(problem.starts_with("syntax error"), "{bad}: {problem}");
            assert!(!problem.contains("hunter2"), "{problem}");
        }
    }
}
