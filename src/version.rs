//! The one version string: `pgmux --version` prints it first, and the admin console's
//! `SHOW VERSION` returns it, as PgBouncer's do. It names the PgBouncer release whose
//! behaviour pgmux follows first, so tools that parse it pick that release's columns.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The PgBouncer release pgmux is compatible with.
pub const PGBOUNCER_VERSION: &str = "1.25.0";

/// `PgBouncer 1.25.0 (pgmux 0.1.0)`.
pub const VERSION_LINE: &str = concat!("PgBouncer 1.25.0 (pgmux ", env!("CARGO_PKG_VERSION"), ")");
