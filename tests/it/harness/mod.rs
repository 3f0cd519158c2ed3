//! Integration-test harness: a shared throwaway PostgreSQL cluster ([`postgres()`]),
//! one pgmux process per test ([`pgmux()`]), and helpers for client tools.
//!
//! Every test starts with `let _guard = harness::shared();` — or `exclusive()` if it
//! restarts PostgreSQL — because all tests of the binary share one cluster.

// Not every test file uses every helper or re-export; unused ones must not drown
// real warnings.
#![allow(dead_code, unused_imports)]

pub mod drivers;
pub mod ini;
pub mod pgmux;
pub mod postgres;
mod process;
mod text;
pub mod tls;

pub use self::pgmux::{pgmux, Pgmux, PgmuxBuilder};
pub use self::postgres::{exclusive, postgres, shared, ExclusiveGuard, Postgres, SharedGuard};
pub use self::process::{run_tool, ToolOutput};
pub use self::text::toml_path;

use std::sync::atomic::{AtomicUsize, Ordering};

/// A name no other test in this run (or a concurrent run on the same cluster) uses:
/// `prefix_<pid>_<counter>`, lowercase so it needs no quoting as an SQL identifier.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}_{}_{n}", prefix.to_lowercase(), std::process::id())
}
