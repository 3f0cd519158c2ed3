//! PgBouncer's `auth_query`: a client whose user has no password configured (not in
//! `[users]` or `auth_file`) is looked up in PostgreSQL when an `auth_user` applies to
//! its database.
//!
//! ```text
//! login of an unlisted user ─▶ source: auth_user (database's, else global) on the
//!    auth_dbname entry (else the client's database), with auth_query
//!  ─▶ cache (CACHE_TTL, one fetch in flight per name) ─▶ dedicated connection:
//!     Parse/Bind/Execute auth_query with $1 = the user name
//!  ─▶ (name, secret): the client's password is checked against the secret, and the
//!     user's pool logs in to PostgreSQL with it (an md5 hash answers md5, a SCRAM
//!     secret uses the keys the client just proved)
//! ```
//! No row, a NULL name or a NULL/empty secret all mean "cannot log in": the client then
//! fails exactly as an unknown user does, so nothing tells it whether the role exists.

mod connection;
mod flight;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::config::{DatabaseSettings, Settings};
use crate::server::{Row, ServerTarget};
use crate::tls::ServerTls;
use connection::{AuthConnection, Limits};
use flight::FlightCache;

/// How long a looked-up secret (or a "no such login") is reused. A password changed
/// with ALTER ROLE takes effect for new logins within this time; it also bounds a login
/// storm to one auth_query per user per period. PgBouncer queries on every login; a
/// few seconds of reuse cost little staleness and spare PostgreSQL the bursts.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// Distinct sources kept at once. Clients choose database names, and with a `*` entry
/// every name is a source of its own: the oldest are dropped beyond this.
const MAX_SOURCES: usize = 64;

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No auth_user applies to this database: the configured users are all there is.
    NotConfigured,
    /// No login with a usable password by that name.
    Unknown,
    /// The stored secret: `md5…`, `SCRAM-SHA-256$…`, or a plain-text password.
    Found(String),
}

/// Why a lookup could not be made (the auth connection or the query failed, or the
/// configuration names an auth database that does not exist). For the log only: the
/// client is told just that the lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(String);

/// Where and how auth_query runs for clients of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSource {
    /// The auth database's server, logged in to as `auth_user`.
    pub target: ServerTarget,
    pub query: String,
}

impl AuthSource {
    /// The source for clients of `db`; None when no auth_user applies to it.
    pub fn for_database(
        settings: &Settings,
        db: &DatabaseSettings,
        tls: ServerTls,
    ) -> Result<Option<AuthSource>, LookupError> {
        let Some(auth_user) = db.auth_user.as_ref().or(settings.auth_user.as_ref()) else {
            return Ok(None);
        };
        let auth_db = match db.auth_dbname.as_ref().or(settings.auth_dbname.as_ref()) {
            // PgBouncer's rule: auth_dbname names an entry of [databases], not a server
            // database, so its host, port and dbname apply.
            Some(name) => settings.database(name).ok_or_else(|| {
                LookupError(format!(
                    "authentication database \"{name}\" is not configured"
                ))
            })?,
            None => std::borrow::Cow::Borrowed(db),
        };
        let password = settings
            .users
            .get(auth_user)
            .and_then(|user| user.password.clone());
        Ok(Some(AuthSource {
            target: ServerTarget {
                host: auth_db.host.clone(),
                port: auth_db.port,
                dbname: auth_db.dbname.clone(),
                user: auth_user.clone(),
                password,
                tls,
            },
            query: db
                .auth_query
                .clone()
                .unwrap_or_else(|| settings.auth_query.clone()),
        }))
    }
}

/// Every source's cache and connection. A reload drops them all: settings are part of
/// what a source is, so nothing looked up under the old ones survives.
#[derive(Default)]
pub struct AuthQueries {
    sources: Mutex<Vec<Arc<Source>>>,
}

struct Source {
    spec: AuthSource,
    cache: FlightCache<Result<Option<String>, LookupError>>,
    connection: AuthConnection,
}

impl AuthQueries {
    /// Looks up `user` for a client of `db`.
    pub async fn lookup(
        &self,
        settings: &Settings,
        db: &DatabaseSettings,
        user: &str,
        tls: ServerTls,
    ) -> Result<Lookup, LookupError> {
        let Some(spec) = AuthSource::for_database(settings, db, tls)? else {
            return Ok(Lookup::NotConfigured);
        };
        let limits = Limits {
            connect_timeout: settings.server_connect_timeout,
            idle_timeout: settings.server_idle_timeout,
            lifetime: settings.server_lifetime,
        };
        let source = self.source(spec, limits);
        let secret = source
            .cache
            .get_or_fetch(user, Result::is_ok, || source.fetch(user))
            .await?;
        Ok(secret.map_or(Lookup::Unknown, Lookup::Found))
    }

    /// Forgets every source (settings reloaded), closing their idle connections.
    pub fn clear(&self) {
        let dropped = std::mem::take(&mut *self.lock());
        close_in_background(dropped);
    }

    fn source(&self, spec: AuthSource, limits: Limits) -> Arc<Source> {
        let mut sources = self.lock();
        if let Some(source) = sources.iter().find(|source| source.spec == spec) {
            return Arc::clone(source);
        }
        let source = Arc::new(Source {
            connection: AuthConnection::new(spec.target.clone(), limits),
            spec,
            cache: FlightCache::new(CACHE_TTL),
        });
        sources.push(Arc::clone(&source));
        let excess = sources.len().saturating_sub(MAX_SOURCES);
        let evicted: Vec<_> = sources.drain(..excess).collect();
        drop(sources);
        close_in_background(evicted);
        watch_idle(Arc::downgrade(&source), limits.idle_timeout);
        source
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Source>>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Source {
    async fn fetch(&self, user: &str) -> Result<Option<String>, LookupError> {
        let target = self.connection.target();
        let rows = self
            .connection
            .query(&self.spec.query, user)
            .await
            .map_err(|error| {
                LookupError(format!(
                    "auth_query as \"{}\" on {}/{} failed: {error}",
                    target.user,
                    target.address(),
                    target.dbname
                ))
            })?;
        secret_from_rows(&rows)
    }
}

/// The secret in auth_query's first row, which must have two columns (name, secret),
/// as in PgBouncer. A NULL name is how lookup functions written with OUT parameters
/// answer for a role that does not exist; a NULL secret is PgBouncer's "no login"
/// (expired, or no password set); an empty one can never be proved.
fn secret_from_rows(rows: &[Row]) -> Result<Option<String>, LookupError> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    if row.len() != 2 {
        return Err(LookupError(format!(
            "auth_query must return 2 columns (name, password), not {}",
            row.len()
        )));
    }
    match (&row[0], &row[1]) {
        (Some(_), Some(secret)) if !secret.is_empty() => Ok(Some(secret.clone())),
        _ => Ok(None),
    }
}

/// Closes a source's connection once it has idled past `server_idle_timeout`, for as
/// long as the source is in use; 0 keeps it open, as for pooled servers.
fn watch_idle(source: Weak<Source>, idle_timeout: Duration) {
    if idle_timeout.is_zero() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(idle_timeout).await;
            let Some(source) = source.upgrade() else {
                return;
            };
            source.connection.close_if_idle().await;
        }
    });
}

fn close_in_background(sources: Vec<Arc<Source>>) {
    if sources.is_empty() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        for source in sources {
            source.connection.close().await;
        }
    });
}

#[cfg(test)]
mod tests;
