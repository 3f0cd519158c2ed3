//! The client-compatibility suite: real drivers, unchanged, through pgmux in transaction
//! mode with a pool much smaller than the number of client connections, so every named
//! statement a driver prepared must follow its connection from server to server.
//!
//! Python and Node drivers run the scripts next to this file (installed by
//! `harness::drivers` on first use). Each script checks every result itself, exits
//! non-zero on the first mismatch, and ends with one `ok key=value ...` line, which the
//! test checks: how many checked queries ran, how many distinct servers the clients saw
//! (never more than the pool), that a statement provably ran on both servers (a forced
//! phase: other connections hold one server, then the other, in open transactions, so
//! the driver's cached statement must run on each in turn), and which prepared statements the last server holds (pgmux's own names only: the
//! driver's names were rewritten, so named statements really went through pgmux).

mod sqlx;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{self, drivers, pgmux, run_tool, Pgmux};

/// Servers per pool in every test here: far fewer than client connections.
const POOL_SIZE: usize = 2;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/clients")
        .join(name)
}

async fn small_pool() -> Pgmux {
    pgmux()
        .setting("default_pool_size", &POOL_SIZE.to_string())
        .start()
        .await
}

/// The `key=value` pairs of a script's final `ok ...` line.
struct Summary(HashMap<String, String>);

impl Summary {
    fn number(&self, key: &str) -> usize {
        self.0
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("summary lacks a numeric {key}: {:?}", self.0))
    }

    /// Checks what every driver test proves beyond the script's own result checks.
    fn assert_pooled(&self, connections: usize, queries: usize) {
        assert_eq!(
            self.number("connections"),
            connections,
            "connections that finished"
        );
        assert_eq!(self.number("queries"), queries, "checked queries");
        let backends = self.number("backends");
        assert!(
            (1..=POOL_SIZE).contains(&backends),
            "{connections} connections must share the pool of {POOL_SIZE} servers, saw {backends}"
        );
        // Under concurrency connections move on their own (`moved` counts them, for
        // information: it depends on timing); the forced phase moves one for certain.
        assert_eq!(
            self.number("forced_move_backends"),
            POOL_SIZE,
            "the forced-move phase must have run the driver's statement on both servers"
        );
        let names = self
            .0
            .get("server_statements")
            .map(String::as_str)
            .unwrap_or("");
        assert!(
            !names.is_empty() && names.split(',').all(|n| n.starts_with("pgmux_")),
            "the server must hold only pgmux's renamed statements: {names:?}"
        );
    }
}

/// Runs a driver script against `pgmux` and returns its summary; panics with the
/// script's output if it failed (pgmux's log follows from its Drop).
async fn run_script(mut cmd: Command, pgmux: &Pgmux, env: &[(&str, String)]) -> Summary {
    cmd.env("PGMUX_URL", pgmux.url("app", "secret", "app"));
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || run_tool(&mut cmd, Duration::from_secs(90)))
        .await
        .unwrap();
    output.assert_success();
    eprintln!("{}", output.stdout.trim_end());
    let line = output
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("ok "))
        .unwrap_or_else(|| panic!("no `ok` summary line:\n{}", output.stdout));
    Summary(
        line.split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// Installs (once) outside the cluster guard, so a slow download holds no lock.
async fn python(script_name: &'static str) -> Command {
    tokio::task::spawn_blocking(move || drivers::python_command(&script(script_name)))
        .await
        .unwrap()
}

#[tokio::test]
async fn asyncpg_statement_cache_prepare_and_executemany_on_two_servers() {
    let cmd = python("asyncpg_clients.py").await;
    let _guard = harness::shared();
    let pgmux = small_pool().await;
    let (connections, iterations) = (20, 15);
    let summary = run_script(
        cmd,
        &pgmux,
        &[
            ("CONNECTIONS", connections.to_string()),
            ("ITERATIONS", iterations.to_string()),
            ("TABLE", harness::unique_name("asyncpg")),
        ],
    )
    .await;
    // Per connection: 3 cached + 1 prepared per iteration, 10 in a transaction, 1
    // executemany read-back, 2 around an error; then 2 per task of the asyncpg pool
    // (4 tasks per pooled connection, each pool connection reset between uses); 4 in
    // the forced-move phase.
    summary.assert_pooled(
        connections,
        connections * (4 * iterations + 13) + connections * 8 + 4,
    );
}

#[tokio::test]
async fn psycopg_prepare_threshold_zero_from_threads_on_two_servers() {
    let cmd = python("psycopg_clients.py").await;
    let _guard = harness::shared();
    let pgmux = small_pool().await;
    let (connections, iterations) = (12, 15);
    let summary = run_script(
        cmd,
        &pgmux,
        &[
            ("CONNECTIONS", connections.to_string()),
            ("ITERATIONS", iterations.to_string()),
            ("TABLE", harness::unique_name("psycopg")),
        ],
    )
    .await;
    // Per connection: 4 prepared per iteration, executemany read-back, a server-side
    // cursor, and 2 around an error.
    summary.assert_pooled(connections, connections * (4 * iterations + 4));
}

#[tokio::test]
async fn node_postgres_named_queries_from_concurrent_clients_on_two_servers() {
    let script = script("node_pg_clients.js");
    let cmd = tokio::task::spawn_blocking(move || drivers::node_command(&script))
        .await
        .unwrap();
    let _guard = harness::shared();
    let pgmux = small_pool().await;
    let (connections, iterations) = (16, 20);
    let summary = run_script(
        cmd,
        &pgmux,
        &[
            ("CONNECTIONS", connections.to_string()),
            ("ITERATIONS", iterations.to_string()),
        ],
    )
    .await;
    // Per connection: 2 named per iteration, 5 queued at once, 7 in a transaction
    // block, 2 around an error.
    summary.assert_pooled(connections, connections * (2 * iterations + 14));
}
