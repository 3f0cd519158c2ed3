//! Quoting shared by the file formats pgmux reads and writes: values quoted with a
//! doubled quote for a literal one (userlist.txt's `"`, connection strings' and the
//! admin console's `'`), and TOML basic strings for what pgmux writes.

use std::fmt::Write as _;

/// After an opening `quote`: the text up to its closing `quote` (a doubled `quote` is
/// one literal `quote`), and what follows the closing quote; `None` if it never closes.
pub(crate) fn unquote_doubled(text: &str, quote: char) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        if c != quote {
            value.push(c);
        } else if chars.next_if(|(_, next)| *next == quote).is_some() {
            value.push(quote);
        } else {
            return Some((value, &text[index + c.len_utf8()..]));
        }
    }
    None
}

/// `value` as a TOML basic string, quoted and escaped.
pub(crate) fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::unquote_doubled;

    #[test]
    fn doubled_quotes_are_literal_and_the_rest_follows() {
        assert_eq!(
            unquote_doubled("it''s' tail", '\''),
            Some(("it's".to_owned(), " tail"))
        );
        assert_eq!(
            unquote_doubled("a\"\"b\"", '"'),
            Some(("a\"b".to_owned(), ""))
        );
        assert_eq!(unquote_doubled("' x", '\''), Some((String::new(), " x")));
        // A doubled quote at the end is a literal quote, not the closing one.
        assert_eq!(unquote_doubled("ab''", '\''), None);
    }
}
