//! Features whose state outlives a transaction on the server connection, and so cannot
//! work when the next transaction may run on another server (transaction and statement
//! mode). pgmux refuses them loudly (0A000, with a hint naming session mode) rather than
//! let them fail silently — a LISTEN whose notifications go to whoever gets the server
//! next, an advisory lock held by nobody, a temp table another client can see:
//!
//! - `LISTEN`
//! - session-level advisory locks (`pg_advisory_lock`, `pg_try_advisory_lock` and their
//!   `_shared` forms; the `_xact_` forms end with the transaction and are fine)
//! - `DECLARE … WITH HOLD` cursors
//! - `CREATE TEMP[ORARY] TABLE` without `ON COMMIT DROP`
//!
//! The check reads statement starts (each `;`-separated part) and is a heuristic: it does
//! not parse string literals, and ignores statements that define functions.

/// Only the start of a long statement is examined.
const SCAN_LIMIT: usize = 8 * 1024;

pub const HINT: &str =
    "use pool_mode = \"session\" for clients that need this (per database or per user)";

/// The name of the session-only feature `sql` uses, if any.
pub fn session_only_feature(sql: &[u8]) -> Option<&'static str> {
    let sql = &sql[..sql.len().min(SCAN_LIMIT)];
    let mentions = |word: &[u8]| {
        sql.windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    // "advisory_lock", not "lock": clock_timestamp() and LOCK TABLE are common and fine.
    if ![&b"listen"[..], b"advisory_lock", b"hold", b"temp"]
        .into_iter()
        .any(mentions)
    {
        return None;
    }
    let lower = String::from_utf8_lossy(sql).to_ascii_lowercase();
    lower
        .split(';')
        .find_map(|statement| feature_of(skip_comments(statement)))
}

fn feature_of(statement: &str) -> Option<&'static str> {
    let words: Vec<&str> = statement.split_whitespace().take(4).collect();
    match words.as_slice() {
        ["listen", ..] => return Some("LISTEN"),
        ["declare", ..] if statement.contains("with hold") => return Some("WITH HOLD cursors"),
        ["create", "temp" | "temporary", "table", ..]
        | ["create", "local" | "global", "temp" | "temporary", ..]
            if !statement.contains("on commit drop") =>
        {
            return Some("temporary tables that outlive their transaction")
        }
        ["create", ..] => return None, // a function body may mention anything
        _ => {}
    }
    let session_lock = [
        "pg_advisory_lock(",
        "pg_try_advisory_lock(",
        "pg_advisory_lock_shared(",
        "pg_try_advisory_lock_shared(",
    ]
    .iter()
    .any(|call| statement.contains(call));
    session_lock.then_some("session-level advisory locks")
}

fn skip_comments(mut statement: &str) -> &str {
    loop {
        statement = statement.trim_start();
        if let Some(rest) = statement.strip_prefix("--") {
            statement = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = statement.strip_prefix("/*") {
            statement = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return statement;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_only_features_are_recognised() {
        assert_eq!(session_only_feature(b"LISTEN jobs"), Some("LISTEN"));
        assert_eq!(
            session_only_feature(b"begin; listen jobs; commit"),
            Some("LISTEN")
        );
        assert!(session_only_feature(b"select pg_advisory_lock(42)").is_some());
        assert!(session_only_feature(b"SELECT pg_try_advisory_lock_shared(1, 2)").is_some());
        assert!(session_only_feature(b"declare c cursor with hold for select 1").is_some());
        assert!(session_only_feature(b"/* x */ CREATE TEMP TABLE t (x int)").is_some());
        assert!(session_only_feature(b"create local temporary table t (x int)").is_some());
    }

    #[test]
    fn transaction_scoped_forms_pass() {
        assert_eq!(
            session_only_feature(b"select pg_advisory_xact_lock(42)"),
            None
        );
        assert_eq!(
            session_only_feature(b"create temp table t (x int) on commit drop"),
            None
        );
        assert_eq!(session_only_feature(b"declare c cursor for select 1"), None);
        assert_eq!(session_only_feature(b"select 'listen' as word"), None);
        assert_eq!(session_only_feature(b"unlisten *"), None);
        assert_eq!(
            session_only_feature(b"create function f() returns void as $$ select pg_advisory_lock(1) $$ language sql"),
            None
        );
        assert_eq!(
            session_only_feature(b"SELECT abalance FROM pgbench_accounts WHERE aid = $1"),
            None
        );
    }
}
