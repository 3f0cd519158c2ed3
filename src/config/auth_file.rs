//! PgBouncer's `auth_file` (userlist.txt): one user per line, `"name" "secret"`, where
//! the secret is a plain-text password, an `md5…` hash or a `SCRAM-SHA-256$…` secret.
//! Fields are double-quoted with `""` for a literal quote; anything after the second
//! field is ignored; lines starting with `;` (or `#`) are comments.

use std::path::Path;

use super::quoting::unquote_doubled;

use super::error::ConfigError;
use super::settings::{Settings, UserSettings};

/// Loads `settings.auth_file`, if set, into `settings.users`: a user listed there gains
/// its password unless `[users]` already gives one.
pub(crate) fn apply(settings: &mut Settings) -> Result<(), ConfigError> {
    let Some(path) = settings.auth_file.clone() else {
        return Ok(());
    };
    for (name, password) in load(&path)? {
        let user = settings
            .users
            .entry(name.clone())
            .or_insert_with(|| UserSettings {
                name,
                password: None,
                pool_mode: None,
                max_user_connections: None,
            });
        if user.password.is_none() && !password.is_empty() {
            user.password = Some(password);
        }
    }
    Ok(())
}

/// The (user, secret) pairs of an auth file, in file order.
pub fn load(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: format!("auth_file {}", path.display()),
        source,
    })?;
    parse(&text).map_err(|(line, message)| ConfigError::Other {
        origin: format!("{}:{line}", path.display()),
        message,
    })
}

/// Parses the file's text; on error, the 1-based line and what is wrong (never the
/// secret itself).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut users = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let broken = |what: &str| (line_number, format!("broken auth file: {what}"));
        let Some(rest) = line.strip_prefix('"') else {
            return Err(broken("a line must start with a double-quoted user name"));
        };
        let (user, rest) =
            unquote_doubled(rest, '"').ok_or_else(|| broken("unterminated user name"))?;
        // As PgBouncer: whatever separates the two fields is skipped.
        let Some(start) = rest.find('"') else {
            return Err(broken("the password is missing"));
        };
        let (password, _) = unquote_doubled(&rest[start + 1..], '"')
            .ok_or_else(|| broken("unterminated password"))?;
        if user.is_empty() {
            return Err(broken("empty user name"));
        }
        users.push((user, password));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn userlist_lines() {
        let text = "; comment\n\n\"app\" \"secret\"\n  \"md5user\"  \"md5abc\" extra fields\n\"we\"\"ird\" \"pa\"\"ss\"\n\"scram\" \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                ("app", "secret"),
                ("md5user", "md5abc"),
                ("we\"ird", "pa\"ss"),
                ("scram", "SCRAM-SHA-256$4096:c2FsdA==$a:b"),
            ]
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
        );
    }

    #[test]
    fn broken_lines_name_the_line_not_the_secret() {
        for (text, line) in [
            ("\"a\" \"b\"\napp secret\n", 2),
            ("\"app\" \"hunter2\n", 1),
            ("\"app\"\n", 1),
            ("\"app\n", 1),
        ] {
            let (at, message) = parse(text).unwrap_err();
            assert_eq!(at, line, "{text:?}");
            assert!(message.starts_with("broken auth file"), "{message}");
            assert!(!message.contains("hunter2"));
        }
    }
}
