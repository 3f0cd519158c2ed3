//! The settings that take one value out of a fixed set (`pool_mode`, `auth_type`,
//! `log_format`, `sigterm_shutdown`), with the names they are written as in
//! `pooler.toml` and shown as by the admin console.

/// When a server connection goes back to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// Released when the client disconnects (after `server_reset_query`).
    Session,
    /// Released at ReadyForQuery 'I' with nothing outstanding.
    Transaction,
    /// Released after every statement; transaction blocks are refused.
    Statement,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

impl std::str::FromStr for PoolMode {
    type Err = UnknownVariant;

    /// Case-insensitive, so `PGMUX_POOL_MODE=Transaction` works as PgBouncer's ini does.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            PoolMode::Session,
            PoolMode::Transaction,
            PoolMode::Statement,
        ]
        .into_iter()
        .find(|mode| mode.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or(UnknownVariant)
    }
}

impl std::fmt::Display for PoolMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How clients prove who they are to pgmux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum AuthType {
    /// PgBouncer's `any`: no password, and the user name is not checked either (every
    /// database should force its server user).
    #[serde(rename = "any")]
    Any,
    #[serde(rename = "trust")]
    Trust,
    /// PgBouncer's `plain`: the client sends its password in clear text.
    #[serde(rename = "plain")]
    Plain,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// PgBouncer's `hba`: per-connection rules from `auth_hba_file` (pg_hba.conf syntax)
    /// choose the method, or refuse the login.
    #[serde(rename = "hba")]
    Hba,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Any => "any",
            AuthType::Trust => "trust",
            AuthType::Plain => "plain",
            AuthType::Md5 => "md5",
            AuthType::ScramSha256 => "scram-sha-256",
            AuthType::Hba => "hba",
        }
    }
}

impl std::str::FromStr for AuthType {
    type Err = UnknownVariant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            AuthType::Any,
            AuthType::Trust,
            AuthType::Plain,
            AuthType::Md5,
            AuthType::ScramSha256,
            AuthType::Hba,
        ]
        .into_iter()
        .find(|auth| auth.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or(UnknownVariant)
    }
}

impl std::fmt::Display for AuthType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How log lines are written: PgBouncer-like text, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// What SIGTERM does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigtermShutdown {
    /// The drain Kubernetes expects (pgmux's default): stop accepting, let running
    /// transactions finish, close each idle client at a transaction boundary (SIGINT's
    /// behaviour, PgBouncer's "safe shutdown").
    WaitForServers,
    /// PgBouncer's "super safe shutdown": stop accepting and keep serving the clients
    /// there are until each has left (the default for a pgbouncer.ini).
    WaitForClients,
}

impl SigtermShutdown {
    pub fn as_str(self) -> &'static str {
        match self {
            SigtermShutdown::WaitForServers => "wait_for_servers",
            SigtermShutdown::WaitForClients => "wait_for_clients",
        }
    }
}

impl std::str::FromStr for SigtermShutdown {
    type Err = UnknownVariant;

    /// Case-insensitive, as the other choices (and the console's SHUTDOWN argument).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            SigtermShutdown::WaitForServers,
            SigtermShutdown::WaitForClients,
        ]
        .into_iter()
        .find(|mode| mode.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or(UnknownVariant)
    }
}

/// A `pool_mode` or `auth_type` string that names no known variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownVariant;
