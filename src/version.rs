//! The one version string: `pgmux --version` prints it first, and the admin console's
//! `SHOW VERSION` returns it, as PgBouncer's do.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `pgmux 0.1.0`.
pub const VERSION_LINE: &str = concat!("pgmux ", env!("CARGO_PKG_VERSION"));
