//! TLS settings, on both sides, with PgBouncer's names and defaults
//! (`client_tls_sslmode = "disable"`, `server_tls_sslmode = "prefer"`).

use std::path::PathBuf;

/// libpq's `sslmode` values, used by PgBouncer for both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// TLS is mandatory: a plaintext connection is refused.
    pub fn requires_tls(self) -> bool {
        self >= SslMode::Require
    }

    /// The peer's certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        self >= SslMode::VerifyCa
    }
}

impl std::str::FromStr for SslMode {
    type Err = super::UnknownVariant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SslMode::ALL
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or(super::UnknownVariant)
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Both sides' TLS settings. Files are PEM; they are read when the settings are loaded
/// and again on every reload, so renewed certificates take effect on SIGHUP/RELOAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Towards clients: pgmux is the TLS server.
    pub client_tls_sslmode: SslMode,
    pub client_tls_key_file: Option<PathBuf>,
    pub client_tls_cert_file: Option<PathBuf>,
    /// CA that client certificates must chain to (verify-ca / verify-full).
    pub client_tls_ca_file: Option<PathBuf>,
    /// Towards PostgreSQL: pgmux is the TLS client.
    pub server_tls_sslmode: SslMode,
    /// CA that the server's certificate must chain to (verify-ca / verify-full).
    pub server_tls_ca_file: Option<PathBuf>,
    /// Client certificate pgmux presents to PostgreSQL, if any.
    pub server_tls_cert_file: Option<PathBuf>,
    pub server_tls_key_file: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            client_tls_sslmode: SslMode::Disable,
            client_tls_key_file: None,
            client_tls_cert_file: None,
            client_tls_ca_file: None,
            server_tls_sslmode: SslMode::Prefer,
            server_tls_ca_file: None,
            server_tls_cert_file: None,
            server_tls_key_file: None,
        }
    }
}
