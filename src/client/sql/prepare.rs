//! Recognises single-statement `PREPARE`, `EXECUTE` and `DEALLOCATE` in a simple Query,
//! so SQL-level prepared statements can follow their client between servers like
//! protocol-level ones. Anything else — several statements in one Query, `EXPLAIN
//! EXECUTE` — is left alone.

#[derive(Debug, PartialEq, Eq)]
pub enum SqlCommand<'a> {
    /// `PREPARE name <rest>`, `rest` being `[ ( types ) ] AS statement`.
    Prepare { name: String, rest: &'a str },
    /// `EXECUTE name <rest>`, `rest` being `[ ( arguments ) ]`.
    Execute { name: String, rest: &'a str },
    /// `DEALLOCATE [ PREPARE ] name`.
    Deallocate { name: String },
}

/// The command in a Query body (NUL-terminated text), if it is one of the three alone.
pub fn parse(query: &[u8]) -> Option<SqlCommand<'_>> {
    let text = std::str::from_utf8(query).ok()?.trim_end_matches('\0');
    let text = text.trim().trim_end_matches(';').trim_end();
    let (keyword, rest) = word(text)?;
    // Every simple Query passes here: no lower-cased copy of its first word.
    let keyword = ["prepare", "execute", "deallocate"]
        .into_iter()
        .find(|k| keyword.eq_ignore_ascii_case(k))?;
    if text.contains(';') {
        return None; // several statements, or one we cannot safely split
    }
    match keyword {
        "prepare" => {
            let (name, rest) = identifier(rest)?;
            let lowered = rest.trim_start().to_ascii_lowercase();
            (lowered.starts_with('(') || lowered.starts_with("as "))
                .then_some(SqlCommand::Prepare { name, rest })
        }
        "execute" => {
            let (name, rest) = identifier(rest)?;
            let trimmed = rest.trim();
            (trimmed.is_empty() || trimmed.starts_with('('))
                .then_some(SqlCommand::Execute { name, rest })
        }
        "deallocate" => {
            let rest = rest.trim_start();
            let rest = match word(rest) {
                Some((w, after)) if w.eq_ignore_ascii_case("prepare") => after,
                _ => rest,
            };
            let (name, after) = identifier(rest)?;
            let is_all = name == "all";
            (!is_all && after.trim().is_empty()).then_some(SqlCommand::Deallocate { name })
        }
        _ => None,
    }
}

/// The first statement name starting with `prefix` that a `PREPARE`, `EXECUTE` or
/// `DEALLOCATE` anywhere in `query` names (statements split at `;`, a heuristic that
/// errs towards finding one). Clients must not reach pgmux's own statements.
pub fn names_with_prefix(query: &[u8], prefix: &str) -> Option<String> {
    let mentions = query
        .windows(prefix.len())
        .any(|w| w.eq_ignore_ascii_case(prefix.as_bytes()));
    if !mentions {
        return None;
    }
    let text = String::from_utf8_lossy(query);
    text.split(';').find_map(|statement| {
        let (keyword, rest) = word(statement)?;
        let rest = match keyword.to_ascii_lowercase().as_str() {
            "prepare" | "execute" => rest,
            "deallocate" => match word(rest) {
                Some((w, after)) if w.eq_ignore_ascii_case("prepare") => after,
                _ => rest,
            },
            _ => return None,
        };
        let (name, _) = identifier(rest)?;
        name.starts_with(prefix).then_some(name)
    })
}

fn word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    (end > 0).then(|| (&text[..end], &text[end..]))
}

/// An SQL identifier: unquoted (folded to lower case) or double-quoted (exact).
fn identifier(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if quoted[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &quoted[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        return None;
    }
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(text.len());
    (end > 0).then(|| (text[..end].to_lowercase(), &text[end..]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_to_reserved_names_are_found_in_any_statement() {
        use super::names_with_prefix;
        let find = |q: &[u8]| names_with_prefix(q, "pgmux_");
        assert_eq!(
            find(b"select 1; DEALLOCATE pgmux_5"),
            Some("pgmux_5".into())
        );
        assert_eq!(find(b"EXECUTE PGMUX_2(1)"), Some("pgmux_2".into()));
        assert_eq!(find(b"deallocate prepare pgmux_1;"), Some("pgmux_1".into()));
        assert_eq!(find(b"select * from pgmux_log"), None);
        assert_eq!(find(b"select 1"), None);
    }

    use super::*;

    #[test]
    fn the_three_commands_are_recognised() {
        assert_eq!(
            parse(b"PREPARE Add(int, int) AS select $1 + $2;\0"),
            Some(SqlCommand::Prepare {
                name: "add".into(),
                rest: "(int, int) AS select $1 + $2"
            })
        );
        assert_eq!(
            parse(b"execute add (1, 2)\0"),
            Some(SqlCommand::Execute {
                name: "add".into(),
                rest: " (1, 2)"
            })
        );
        assert_eq!(
            parse(b"EXECUTE \"Mixed\"\0"),
            Some(SqlCommand::Execute {
                name: "Mixed".into(),
                rest: ""
            })
        );
        assert_eq!(
            parse(b"deallocate prepare add\0"),
            Some(SqlCommand::Deallocate { name: "add".into() })
        );
        assert_eq!(
            parse(b"DEALLOCATE add\0"),
            Some(SqlCommand::Deallocate { name: "add".into() })
        );
    }

    #[test]
    fn everything_else_is_left_alone() {
        assert_eq!(parse(b"DEALLOCATE ALL\0"), None);
        assert_eq!(parse(b"prepare a as select 1; execute a\0"), None);
        assert_eq!(parse(b"explain execute a\0"), None);
        assert_eq!(parse(b"select 1\0"), None);
        assert_eq!(parse(b"prepared_thing\0"), None);
    }
}
