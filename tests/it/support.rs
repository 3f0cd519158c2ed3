//! Helpers shared by the resilience and lifecycle tests: a dedicated PostgreSQL database
//! per test (so counting its backends only counts this test's pgmux), direct superuser
//! access to it, and SQLSTATE extraction.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use crate::harness::{self, postgres};

/// A database of its own on the shared cluster, owned by `app`.
pub struct ScratchDb {
    pub name: String,
}

impl ScratchDb {
    pub async fn create(prefix: &str) -> ScratchDb {
        let name = harness::unique_name(prefix);
        let su = postgres().superuser().await;
        su.batch_execute(&format!("create database {name} owner app"))
            .await
            .unwrap();
        ScratchDb { name }
    }

    /// The body of a `[databases.NAME]` entry pointing at this database.
    pub fn entry(&self) -> String {
        format!(
            "host = \"127.0.0.1\"\nport = {{PGPORT}}\ndbname = \"{}\"",
            self.name
        )
    }

    /// A superuser connection straight to this database (not through pgmux).
    pub async fn direct(&self) -> tokio_postgres::Client {
        direct(&self.name).await
    }

    /// Client backends connected to this database, optionally only those in `state`.
    pub async fn backends(&self, state: Option<&str>) -> i64 {
        let su = postgres().superuser().await;
        let row = su
            .query_one(
                "select count(*) from pg_stat_activity
                 where datname = $1 and backend_type = 'client backend'
                   and ($2::text is null or state = $2)",
                &[&self.name, &state],
            )
            .await
            .unwrap();
        row.get(0)
    }

    /// Polls until `backends(state) == 0`; false if some remain after `timeout`.
    pub async fn no_backends_within(&self, state: Option<&str>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.backends(state).await == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Terminates every backend of this database; returns how many there were.
    pub async fn terminate_all(&self) -> i64 {
        let su = postgres().superuser().await;
        let row = su
            .query_one(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity
                 where datname = $1 and backend_type = 'client backend'",
                &[&self.name],
            )
            .await
            .unwrap();
        row.get(0)
    }

    pub async fn drop_db(self) {
        let su = postgres().superuser().await;
        let _ = su
            .batch_execute(&format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .await;
    }
}

pub async fn direct(db: &str) -> tokio_postgres::Client {
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", postgres().port());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The role PostgreSQL sees the client as (after any forced user or auth_query lookup).
pub async fn current_user(client: &tokio_postgres::Client) -> String {
    client
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0)
}

pub fn sqlstate(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| format!("no SQLSTATE: {error}"))
}

pub fn message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| error.to_string())
}

/// A connection whose connection task the test owns: aborting it drops the socket with
/// no Terminate (a killed client), and awaiting it shows the FATAL that ended it.
pub struct OwnedConn {
    pub client: tokio_postgres::Client,
    pub task: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

pub async fn owned_connect(url: &str) -> OwnedConn {
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    )
    .await
    .expect("login through pgmux hung")
    .expect("login through pgmux");
    OwnedConn {
        client,
        task: tokio::spawn(connection),
    }
}

impl OwnedConn {
    /// How the connection ended (the error pgmux's FATAL became); panics if it is still
    /// open after `timeout`.
    pub async fn ended_within(
        self,
        timeout: Duration,
    ) -> (tokio_postgres::Client, Result<(), tokio_postgres::Error>) {
        let result = tokio::time::timeout(timeout, self.task)
            .await
            .unwrap_or_else(|_| panic!("connection still open after {timeout:?}"))
            .expect("connection task");
        (self.client, result)
    }
}

/// The first column of the first row of a simple-protocol query. Load tests use the
/// simple protocol so that they test what they name, not named prepared statements
/// (covered on their own by `resilience::prepared_statements_survive_landing_on_another_server`).
pub async fn simple_value(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<String, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row"))
}

/// `f` with a deadline; None means it is still waiting (for a server, say).
pub async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, f).await.ok()
}
