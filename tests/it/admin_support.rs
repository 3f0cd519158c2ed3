//! Helpers for the admin console tests: a pgmux with an admin and a stats user, and
//! SHOW results as rows of column name → text value (NULL as None).
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, Pgmux, PgmuxBuilder};

pub const ADMIN: (&str, &str) = ("admin", "adminpw");
pub const WATCHER: (&str, &str) = ("watcher", "watchpw");

/// The default test pgmux plus `admin` in admin_users and `watcher` in stats_users.
pub fn admin_pgmux() -> PgmuxBuilder {
    harness::pgmux()
        .setting("admin_users", "[\"admin\"]")
        .setting("stats_users", "[\"watcher\"]")
        .user("admin", "password = \"adminpw\"")
        .user("watcher", "password = \"watchpw\"")
}

pub async fn admin(pgmux: &Pgmux) -> Client {
    pgmux.connect(ADMIN.0, ADMIN.1, "pgbouncer").await
}

/// One SHOW result: column names in order, then rows.
pub struct Shown {
    pub columns: Vec<String>,
    pub rows: Vec<HashMap<String, Option<String>>>,
}

impl Shown {
    /// The value of `column` in the first row where `key` = `value`.
    pub fn get(&self, key: &str, value: &str, column: &str) -> Option<String> {
        self.rows
            .iter()
            .find(|row| row.get(key).cloned().flatten().as_deref() == Some(value))
            .and_then(|row| row.get(column).cloned().flatten())
    }

    /// `column` of the row where `key` = `value`, as a number (panics if absent).
    pub fn num(&self, key: &str, value: &str, column: &str) -> i64 {
        self.get(key, value, column)
            .unwrap_or_else(|| panic!("no {column} where {key} = {value}"))
            .parse()
            .unwrap_or_else(|_| panic!("{column} is not a number"))
    }

    pub fn rows_where(&self, key: &str, value: &str) -> Vec<&HashMap<String, Option<String>>> {
        self.rows
            .iter()
            .filter(|row| row.get(key).cloned().flatten().as_deref() == Some(value))
            .collect()
    }
}

pub async fn try_show(client: &Client, command: &str) -> Result<Shown, tokio_postgres::Error> {
    let messages = client.simple_query(command).await?;
    let mut shown = Shown {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                shown.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                let mut values = HashMap::new();
                for (index, column) in row.columns().iter().enumerate() {
                    values.insert(column.name().to_owned(), row.get(index).map(str::to_owned));
                }
                shown.rows.push(values);
            }
            _ => {}
        }
    }
    Ok(shown)
}

pub async fn show(client: &Client, command: &str) -> Shown {
    try_show(client, command)
        .await
        .unwrap_or_else(|e| panic!("{command}: {:?}", e.as_db_error()))
}

/// Polls `command` until `ready` holds (bounded); the last result either way.
pub async fn show_until(
    client: &Client,
    command: &str,
    timeout: Duration,
    ready: impl Fn(&Shown) -> bool,
) -> Shown {
    let deadline = Instant::now() + timeout;
    loop {
        let shown = show(client, command).await;
        if ready(&shown) || Instant::now() >= deadline {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SQLSTATE and message of a console error.
pub async fn admin_error(client: &Client, command: &str) -> (String, String) {
    let error = client
        .simple_query(command)
        .await
        .expect_err(&format!("{command} should fail"));
    let db = error.as_db_error().expect("a server error");
    (db.code().code().to_owned(), db.message().to_owned())
}

/// SHOW STATE's `paused` value: "yes" or "no".
pub async fn paused(console: &Client) -> String {
    show(console, "SHOW STATE")
        .await
        .get("key", "paused", "value")
        .expect("SHOW STATE has a paused row")
}

/// A `select 1` sent while its database is paused, already seen waiting for 300 ms.
pub struct HeldQuery(tokio::task::JoinHandle<Result<Client, tokio_postgres::Error>>);

pub async fn held_query(client: Client) -> HeldQuery {
    let task = tokio::spawn(async move { client.simple_query("select 1").await.map(|_| client) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "a query ran while paused");
    HeldQuery(task)
}

impl HeldQuery {
    /// Once resumed, the query runs; the client is handed back.
    pub async fn runs_within(self, timeout: Duration) -> Client {
        tokio::time::timeout(timeout, self.0)
            .await
            .unwrap_or_else(|_| panic!("the held query still waits after {timeout:?}"))
            .expect("query task")
            .expect("the held query runs")
    }
}
