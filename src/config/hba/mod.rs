//! `auth_type = "hba"`: the rules of `auth_hba_file`, in pg_hba.conf syntax, deciding per
//! connection which authentication method applies — or that the login is refused.
//!
//! ```text
//! auth_hba_file ──parse──▶ HbaRules (in Settings, swapped whole on reload)
//! login: (local | TCP address + TLS?, database, user) ──first_match──▶ rule.method | none
//! ```
//!
//! The subset PgBouncer supports: `local`, `host`, `hostssl`, `hostnossl`; database and
//! user lists with `all`, `sameuser`, `replication`, quoted names and `@file`; addresses
//! as `all`, CIDR or address + netmask; methods trust, reject, md5, password,
//! scram-sha-256, peer and cert. Anything else is refused with the file and line, never
//! skipped: a skipped `reject` line would silently let clients in.

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ConfigError;
use super::settings::{AuthType, Settings};

/// pg_hba.conf's first column: which connections a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    /// Unix-domain socket.
    Local,
    /// TCP, with or without TLS.
    Host,
    HostSsl,
    HostNoSsl,
}

/// What a matching rule asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HbaMethod {
    Trust,
    Reject,
    Md5,
    /// Cleartext password (PgBouncer's `plain`).
    Password,
    ScramSha256,
    /// The unix socket's peer OS user must be the requested user.
    Peer,
    /// The verified TLS client certificate's common name must be the requested user.
    Cert,
}

impl HbaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HbaMethod::Trust => "trust",
            HbaMethod::Reject => "reject",
            HbaMethod::Md5 => "md5",
            HbaMethod::Password => "password",
            HbaMethod::ScramSha256 => "scram-sha-256",
            HbaMethod::Peer => "peer",
            HbaMethod::Cert => "cert",
        }
    }
}

/// The client addresses a `host*` rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    All,
    /// `base & mask`, both of one family.
    Net {
        base: IpAddr,
        mask: IpAddr,
    },
}

impl Address {
    fn contains(&self, client: IpAddr) -> bool {
        match self {
            Address::All => true,
            Address::Net { base, mask } => match (bits(*base), bits(*mask), bits(client)) {
                ((v4, base), (_, mask), (client_v4, client)) if v4 == client_v4 => {
                    client & mask == base & mask
                }
                _ => false,
            },
        }
    }
}

/// (is IPv4, the address as an integer).
fn bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(v4) => (true, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (false, u128::from(v6)),
    }
}

/// A database or user column: keywords and names, any of which may match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Names {
    all: bool,
    /// Database column: the database named like the user.
    same_user: bool,
    /// Database column: replication connections, which pgmux does not serve, so it
    /// never matches.
    replication: bool,
    names: BTreeSet<String>,
}

impl Names {
    fn matches(&self, name: &str, user: &str) -> bool {
        self.all || (self.same_user && name == user) || self.names.contains(name)
    }
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRule {
    /// 1-based; the first line of a record continued with backslashes.
    pub line: usize,
    pub kind: ConnectionKind,
    databases: Names,
    users: Names,
    /// None for `local`.
    address: Option<Address>,
    pub method: HbaMethod,
}

/// Where a connecting client is, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOrigin {
    Local,
    Tcp { address: IpAddr, tls: bool },
}

/// The parsed `auth_hba_file`, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRules {
    pub path: PathBuf,
    rules: Vec<HbaRule>,
}

impl HbaRules {
    /// Reads and parses `path`; `@file` names are relative to its directory.
    pub fn load(path: &Path) -> Result<HbaRules, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: format!("auth_hba_file {}", path.display()),
            source,
        })?;
        HbaRules::parse(&text, path).map_err(ConfigError::from)
    }

    /// Parses the text of the file at `path` (which locates `@file` includes).
    pub fn parse(text: &str, path: &Path) -> Result<HbaRules, HbaError> {
        let rules = parse::rules(text, path)?;
        if rules.is_empty() {
            // PostgreSQL refuses an empty pg_hba.conf the same way: every login would fail.
            return Err(HbaError {
                path: path.to_owned(),
                line: 0,
                message: "the file has no rules, so every login would be refused".into(),
            });
        }
        Ok(HbaRules {
            path: path.to_owned(),
            rules,
        })
    }

    /// PostgreSQL's rule: the first line whose connection type, address, database and
    /// user all match decides; None means no line matches, and the login is refused.
    pub fn first_match(
        &self,
        origin: ClientOrigin,
        database: &str,
        user: &str,
    ) -> Option<&HbaRule> {
        self.rules.iter().find(|rule| {
            rule.covers(origin)
                && rule.databases.matches(database, user)
                && rule.users.matches(user, user)
        })
    }

    /// Whether any rule uses `cert`, which needs verified client certificates.
    fn uses_cert(&self) -> bool {
        self.rules.iter().any(|rule| rule.method == HbaMethod::Cert)
    }
}

impl HbaRule {
    fn covers(&self, origin: ClientOrigin) -> bool {
        let (address, tls) = match origin {
            ClientOrigin::Local => return self.kind == ConnectionKind::Local,
            ClientOrigin::Tcp { address, tls } => (address, tls),
        };
        let kind_fits = match self.kind {
            ConnectionKind::Local => false,
            ConnectionKind::Host => true,
            ConnectionKind::HostSsl => tls,
            ConnectionKind::HostNoSsl => !tls,
        };
        // An IPv4 client on an IPv6 socket shows as ::ffff:a.b.c.d; IPv4 rules apply.
        kind_fits
            && self
                .address
                .as_ref()
                .is_some_and(|range| range.contains(address.to_canonical()))
    }
}

/// What is wrong with the file, and where (an `@file` error names the included file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct HbaError {
    pub path: PathBuf,
    /// 0 when the problem is the file as a whole.
    pub line: usize,
    pub message: String,
}

impl From<HbaError> for ConfigError {
    fn from(error: HbaError) -> ConfigError {
        let origin = match error.line {
            0 => error.path.display().to_string(),
            line => format!("{}:{line}", error.path.display()),
        };
        ConfigError::Other {
            origin,
            message: error.message,
        }
    }
}

/// With `auth_type = "hba"`, reads `auth_hba_file` into `settings.hba`. `origin` names
/// the settings file, for the errors about its keys.
pub(crate) fn apply(settings: &mut Settings, origin: &str) -> Result<(), ConfigError> {
    if settings.auth_type != AuthType::Hba {
        return Ok(());
    }
    let invalid = |problem: &str| ConfigError::Invalid {
        origin: origin.to_owned(),
        key: "auth_hba_file".to_owned(),
        env_var: None,
        problem: problem.to_owned(),
    };
    let path = settings
        .auth_hba_file
        .clone()
        .ok_or_else(|| invalid("required when auth_type = \"hba\""))?;
    let rules = HbaRules::load(&path)?;
    // PostgreSQL refuses `cert` lines without a CA to check certificates against.
    if rules.uses_cert() && !settings.tls.client_tls_sslmode.verifies() {
        return Err(invalid(
            "a `cert` rule needs client_tls_sslmode = \"verify-ca\" or \"verify-full\" \
             (with client_tls_ca_file), so that clients present verified certificates",
        ));
    }
    settings.hba = Some(Arc::new(rules));
    Ok(())
}
