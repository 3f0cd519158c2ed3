//! The console's grammar, as PgBouncer's (`src/admin.c`): `WORD [WORD][;]` and
//! `SET key = value` / `SET key TO 'value'`, case-insensitive, where a word is a run of
//! `[0-9a-z_]` or a double-quoted name. Unlike PgBouncer, one query string may carry
//! several commands separated by `;`.

use crate::config::quoting::unquote_doubled;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `NAME [ARG]`, the name lowercased, the argument as written (unquoted).
    Plain {
        name: String,
        arg: String,
    },
    Set {
        key: String,
        value: String,
    },
}

/// Splits a query string into statements at `;` outside quotes; blank ones are dropped.
pub fn statements(query: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (at, c) in query.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ';') => {
                out.push(&query[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    out.push(&query[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses one statement (without its `;`). None: a syntax error.
pub fn command(statement: &str) -> Option<Command> {
    let mut tokens = Tokens { rest: statement };
    let first = tokens.word()?;
    if first.eq_ignore_ascii_case("set") {
        let key = tokens.word()?;
        let equals = tokens.rest.trim_start();
        let after = if let Some(rest) = equals.strip_prefix('=') {
            rest
        } else if equals.len() >= 2 && equals[..2].eq_ignore_ascii_case("to") {
            &equals[2..]
        } else {
            return None;
        };
        tokens.rest = after;
        let value = tokens.string().or_else(|| tokens.word())?;
        return tokens.at_end().then_some(Command::Set { key, value });
    }
    let arg = if tokens.at_end() {
        String::new()
    } else {
        tokens.word()?
    };
    tokens.at_end().then(|| Command::Plain {
        name: first.to_ascii_lowercase(),
        arg,
    })
}

struct Tokens<'a> {
    rest: &'a str,
}

impl Tokens<'_> {
    fn at_end(&self) -> bool {
        self.rest.trim().is_empty()
    }

    /// `[0-9A-Za-z_.]+` or `"quoted ""name"""`.
    fn word(&mut self) -> Option<String> {
        let text = self.rest.trim_start();
        if let Some(body) = text.strip_prefix('"') {
            let (value, rest) = unquote_doubled(body, '"')?;
            self.rest = rest;
            return (!value.is_empty()).then_some(value);
        }
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(text.len());
        if end == 0 {
            return None;
        }
        self.rest = &text[end..];
        Some(text[..end].to_owned())
    }

    /// `'single quoted'` with `''` for a quote.
    fn string(&mut self) -> Option<String> {
        let text = self.rest.trim_start();
        let body = text.strip_prefix('\'')?;
        let (value, rest) = unquote_doubled(body, '\'')?;
        self.rest = rest;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(name: &str, arg: &str) -> Option<Command> {
        Some(Command::Plain {
            name: name.into(),
            arg: arg.into(),
        })
    }

    #[test]
    fn commands_and_arguments() {
        assert_eq!(command("SHOW pools"), plain("show", "pools"));
        assert_eq!(command("  pause   app "), plain("pause", "app"));
        assert_eq!(command("RESUME"), plain("resume", ""));
        assert_eq!(command("kill \"My Db\""), plain("kill", "My Db"));
        assert_eq!(command("show pools extra"), None);
        assert_eq!(command("show 'x'"), None);
    }

    #[test]
    fn set_takes_words_and_strings() {
        let set = |k: &str, v: &str| {
            Some(Command::Set {
                key: k.into(),
                value: v.into(),
            })
        };
        assert_eq!(
            command("SET default_pool_size = 7"),
            set("default_pool_size", "7")
        );
        assert_eq!(
            command("set query_timeout to '5s'"),
            set("query_timeout", "5s")
        );
        assert_eq!(command("set x = 'it''s'"), set("x", "it's"));
        assert_eq!(command("set x 5"), None);
    }

    #[test]
    fn statements_split_outside_quotes() {
        assert_eq!(
            statements("show pools; show stats;"),
            vec!["show pools", "show stats"]
        );
        assert_eq!(
            statements("set a = 'x;y'; show a"),
            vec!["set a = 'x;y'", "show a"]
        );
        assert!(statements(" ; ").is_empty());
    }
}
