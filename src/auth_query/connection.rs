//! The dedicated connection auth_query runs on: one per auth source, logged in as
//! `auth_user` with pgmux's own server login (TLS and SCRAM as for any pool), kept
//! between lookups and replaced when it breaks.

use std::time::Duration;

use tokio::sync::Mutex;

use crate::server::{self, Row, ServerConn, ServerError, ServerTarget};

/// How long the connection may live and idle, from the settings it was made under
/// (`server_connect_timeout`, `server_idle_timeout`, `server_lifetime`; 0 = no limit).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub lifetime: Duration,
}

pub struct AuthConnection {
    target: ServerTarget,
    limits: Limits,
    /// Lookups take turns on the connection: each is one round trip, and the cache in
    /// front answers repeated names, so one backend is enough for any login rate.
    /// The connection is taken out while in use: a lookup abandoned mid-query (its
    /// client gave up) drops it rather than leaving unread replies for the next one.
    idle: Mutex<Option<ServerConn>>,
}

impl AuthConnection {
    pub fn new(target: ServerTarget, limits: Limits) -> Self {
        AuthConnection {
            target,
            limits,
            idle: Mutex::new(None),
        }
    }

    pub fn target(&self) -> &ServerTarget {
        &self.target
    }

    /// Runs `sql` with `param` as `$1`. A kept connection that turns out to be broken
    /// (the server restarted, an admin terminated it) is replaced once.
    pub async fn query(&self, sql: &str, param: &str) -> Result<Vec<Row>, ServerError> {
        let mut slot = self.idle.lock().await;
        let mut kept = slot.take().and_then(|mut conn| {
            if self.reusable(&mut conn) {
                return Some(conn);
            }
            tokio::spawn(conn.terminate());
            None
        });
        loop {
            let retry_allowed = kept.is_some();
            let mut conn = match kept.take() {
                Some(conn) => conn,
                None => {
                    server::connect(&self.target, 0, self.limits.connect_timeout, &|_| {}).await?
                }
            };
            match self.run(&mut conn, sql, param).await {
                Ok(rows) => {
                    conn.last_used = std::time::Instant::now();
                    *slot = Some(conn);
                    return Ok(rows);
                }
                // The statement failed but the connection is fine (ReadyForQuery came).
                Err(error @ ServerError::Query(_)) => {
                    *slot = Some(conn);
                    return Err(error);
                }
                Err(_) if retry_allowed => continue,
                Err(error) => return Err(error),
            }
        }
    }

    async fn run(
        &self,
        conn: &mut ServerConn,
        sql: &str,
        param: &str,
    ) -> Result<Vec<Row>, ServerError> {
        let params = [param];
        let query = conn.query_with_params(sql, &params);
        if self.limits.connect_timeout.is_zero() {
            return query.await;
        }
        // The connect timeout bounds the query too: a lookup that hangs would hold up
        // every login behind it.
        tokio::time::timeout(self.limits.connect_timeout, query)
            .await
            .map_err(|_| ServerError::Timeout)?
    }

    fn reusable(&self, conn: &mut ServerConn) -> bool {
        let young =
            self.limits.lifetime.is_zero() || conn.created_at.elapsed() < self.limits.lifetime;
        young && conn.is_idle_and_alive()
    }

    /// Closes the kept connection if it has idled past `server_idle_timeout` (and is
    /// not in use).
    pub async fn close_if_idle(&self) {
        let Ok(mut slot) = self.idle.try_lock() else {
            return;
        };
        let idle_too_long = slot
            .as_ref()
            .is_some_and(|conn| conn.last_used.elapsed() >= self.limits.idle_timeout);
        if idle_too_long {
            if let Some(conn) = slot.take() {
                drop(slot);
                conn.terminate().await;
            }
        }
    }

    /// Closes the kept connection, if any and not in use (settings reloaded).
    pub async fn close(&self) {
        let conn = match self.idle.try_lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        if let Some(conn) = conn {
            conn.terminate().await;
        }
    }
}
