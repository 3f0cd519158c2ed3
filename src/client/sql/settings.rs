//! Session settings a client makes with SQL — `SET`, `RESET`, `set_config(…, false)` —
//! outside the tracked startup parameters (DESIGN.md fact 4). In transaction mode they
//! must follow the client to whichever server runs its next transaction, and never reach
//! another client on the server it leaves.
//!
//! After a transaction that changed settings (CommandComplete `SET`/`RESET`/`DISCARD ALL`,
//! or a `set_config` call in the SQL) pgmux reads back the session's settings in one query
//! and keeps them; on checkout the difference to the server's recorded settings is
//! applied (`set_config` for values, `RESET` for names only the server has). Clients that
//! never change a setting pay nothing.

use crate::params::{Params, TRACKED};
use crate::protocol::builders::quote_literal;
use crate::server::Row;

/// Custom settings (`app.tenant`) are not listed by pg_settings: their names are learnt
/// from the client's SQL. A bound keeps a client from growing it without limit.
const MAX_CUSTOM_NAMES: usize = 64;
/// Only the start of a long statement is scanned for settings.
const SCAN_LIMIT: usize = 8 * 1024;

#[derive(Debug, Default)]
pub struct SessionSettings {
    /// What this client's session has set, as PostgreSQL reports it.
    pub values: Params,
    custom_names: Vec<String>,
    /// Something may have changed since the last read-back.
    pub changed: bool,
}

impl SessionSettings {
    /// Looks at (the start of) a Query or Parse text the client sent.
    pub fn note_sql(&mut self, text: &[u8]) {
        let text = &text[..text.len().min(SCAN_LIMIT)];
        if !contains_ignore_case(text, b"set") {
            return;
        }
        if contains_ignore_case(text, b"set_config") {
            self.changed = true;
        }
        for name in custom_names(text) {
            if self.custom_names.len() < MAX_CUSTOM_NAMES && !self.custom_names.contains(&name) {
                self.custom_names.push(name);
            }
        }
    }

    /// A CommandComplete tag the server sent for this client.
    pub fn note_command(&mut self, tag: &[u8]) {
        if matches!(tag, b"SET\0" | b"RESET\0" | b"DISCARD ALL\0") {
            self.changed = true;
        }
    }

    /// Reads back every setting the session changed: pg_settings' session-sourced ones,
    /// the role, and the custom names seen in the client's SQL.
    pub fn capture_sql(&self) -> String {
        let mut sql = String::from(
            "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session' \
             UNION ALL SELECT 'role', pg_catalog.current_setting('role') \
             WHERE pg_catalog.current_setting('role') <> 'none'",
        );
        if !self.custom_names.is_empty() {
            let names: Vec<String> = self.custom_names.iter().map(|n| quote_literal(n)).collect();
            sql.push_str(&format!(
                " UNION ALL SELECT n, pg_catalog.current_setting(n, true) \
                 FROM unnest(ARRAY[{}]::text[]) AS n \
                 WHERE coalesce(pg_catalog.current_setting(n, true), '') <> ''",
                names.join(", ")
            ));
        }
        sql
    }

    /// Takes a read-back. Tracked parameters are not session settings here: the reported
    /// ones follow ParameterStatus, and tracked extras (`search_path` on PostgreSQL < 18)
    /// go to `tracked` instead.
    pub fn apply_capture(&mut self, rows: &[Row], tracked: &mut Params, extras: &[String]) {
        let mut values = Params::default();
        for row in rows {
            let (Some(Some(name)), Some(Some(value))) = (row.first(), row.get(1)) else {
                continue;
            };
            if TRACKED.iter().any(|t| t.eq_ignore_ascii_case(name)) {
                continue;
            }
            if extras.iter().any(|e| e.eq_ignore_ascii_case(name)) {
                tracked.set(name, value);
                continue;
            }
            values.set(name, value);
        }
        self.values = values;
        self.changed = false;
    }
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    find_ignore_case(haystack, needle).is_some()
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Dotted names following `set [session|local]`, `reset`, or `set_config('` in SQL: the
/// custom settings (`app.tenant`) a client may have set, lower-cased. Matched without
/// copying the text: every `UPDATE … SET` passes the "set" pre-check.
fn custom_names(sql: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for keyword in [&b"set "[..], b"reset ", b"set_config("] {
        let mut from = 0;
        while let Some(found) = find_ignore_case(&sql[from..], keyword) {
            let at = from + found;
            from = at + keyword.len();
            let starts_word = at == 0 || !is_ident_char(sql[at - 1]);
            if !starts_word {
                continue;
            }
            let mut rest = sql[from..].trim_ascii_start();
            for modifier in [&b"session "[..], b"local "] {
                if rest.len() >= modifier.len()
                    && rest[..modifier.len()].eq_ignore_ascii_case(modifier)
                {
                    rest = &rest[modifier.len()..];
                }
                rest = rest.trim_ascii_start();
            }
            let quotes = rest
                .iter()
                .take_while(|&&b| matches!(b, b'\'' | b'"'))
                .count();
            let rest = &rest[quotes..];
            let len = rest
                .iter()
                .take_while(|&&b| is_ident_char(b) || b == b'.')
                .count();
            let name = &rest[..len];
            if name.contains(&b'.') && !name.starts_with(b".") && !name.ends_with(b".") {
                names.push(String::from_utf8_lossy(name).to_ascii_lowercase());
            }
        }
    }
    names
}

fn is_ident_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_names_are_learnt_from_set_reset_and_set_config() {
        let mut settings = SessionSettings::default();
        settings.note_sql(b"SET app.tenant = '42'");
        settings.note_sql(b"set session myapp.user_id to 7; RESET other.thing");
        settings.note_sql(b"select set_config('app.role', 'x', false)");
        settings.note_sql(b"select offset from t"); // no setting here
        assert_eq!(
            settings.custom_names,
            ["app.tenant", "myapp.user_id", "other.thing", "app.role"]
        );
        assert!(settings.changed, "set_config is only visible in the SQL");
        assert!(settings
            .capture_sql()
            .contains("'app.tenant', 'myapp.user_id'"));
    }

    #[test]
    fn custom_names_are_found_in_any_case_and_lower_cased() {
        let mut settings = SessionSettings::default();
        settings.note_sql(b"UPDATE t SET x = 1; SET LOCAL \"My.Setting\" = 1");
        settings.note_sql(b"SELECT SET_CONFIG('App.Role', 'x', false)");
        assert_eq!(settings.custom_names, ["my.setting", "app.role"]);
        assert!(settings.changed);
    }

    #[test]
    fn plain_queries_change_nothing() {
        let mut settings = SessionSettings::default();
        settings.note_sql(b"SELECT abalance FROM pgbench_accounts WHERE aid = $1");
        settings.note_command(b"SELECT 1\0");
        assert!(!settings.changed);
        settings.note_command(b"SET\0");
        assert!(settings.changed);
    }

    #[test]
    fn captured_rows_split_into_session_settings_and_tracked_extras() {
        let mut settings = SessionSettings {
            changed: true,
            ..Default::default()
        };
        let row = |n: &str, v: &str| vec![Some(n.to_owned()), Some(v.to_owned())];
        let rows = [
            row("work_mem", "3072"),
            row("application_name", "x"),
            row("search_path", "a, b"),
        ];
        let mut tracked = Params::default();
        settings.apply_capture(&rows, &mut tracked, &["search_path".to_owned()]);
        assert_eq!(settings.values.get("work_mem"), Some("3072"));
        assert_eq!(settings.values.get("application_name"), None);
        assert_eq!(tracked.get("search_path"), Some("a, b"));
        assert!(!settings.changed);
    }
}
