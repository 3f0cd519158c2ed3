//! Opening new servers: connecting and logging in as the pool's user (with the secret
//! auth_query found, when the settings give no password), and the bookkeeping of the
//! outcome — the first server's parameters on success; on failure, failing the waiting
//! clients and, for `server_login_retry`, new ones at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::error::checkout_error;
use super::state::Grant;
use super::{CheckoutError, Pool, PooledServer, Slot};
use crate::registry::Endpoints;
use crate::server::{self, ServerConn, ServerTarget};

impl Pool {
    /// Records the secret auth_query found for this pool's user at a client's login. A
    /// changed password applies to servers opened from now on; those already logged in
    /// stay, as PostgreSQL keeps sessions open across ALTER ROLE … PASSWORD.
    pub fn set_looked_up_secret(&self, secret: &str) {
        let current = self.looked_up_secret.load();
        if current.as_deref().map(String::as_str) != Some(secret) {
            self.looked_up_secret
                .store(Some(Arc::new(secret.to_owned())));
        }
    }

    /// Whom new servers log in as: the target, with the looked-up secret when the
    /// settings give no password.
    fn login_target(&self) -> std::borrow::Cow<'_, ServerTarget> {
        match self.looked_up_secret.load_full() {
            Some(secret) if self.target.password.is_none() => {
                std::borrow::Cow::Owned(ServerTarget {
                    password: Some((*secret).clone()),
                    ..(*self.target).clone()
                })
            }
            _ => std::borrow::Cow::Borrowed(&*self.target),
        }
    }

    pub(super) async fn open(self: &Arc<Self>, slot: Slot) -> Result<PooledServer, CheckoutError> {
        let id = self.server_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let timeout = self.lock().limits.server_connect_timeout;
        let target_end = Endpoints {
            addr: self.target.host.as_str().into(),
            port: self.target.port,
            ..Endpoints::default()
        };
        self.servers.opening(id, target_end);
        let started = Instant::now();
        let connected = |stream: &crate::net::Stream| self.log_new_server(id, stream);
        match server::connect(&self.login_target(), id, timeout, &connected).await {
            Ok(conn) => {
                slot.disarm();
                let ends = Endpoints::of(&conn.stream, self.target.port);
                self.servers.logged_in(id, conn.process_id, ends);
                self.note_login(&conn);
                Ok(self.guard(conn))
            }
            Err(error) => {
                self.log_login_failure(id, &error, started);
                let error = checkout_error(&error);
                self.note_login_failure(&error);
                self.servers.remove(id);
                drop(slot);
                Err(error)
            }
        }
    }

    fn note_login(&self, conn: &ServerConn) {
        let mut state = self.lock();
        state.last_login_failure = None;
        if state.server_params.is_none() {
            state.server_params = Some(conn.params.clone());
        }
    }

    /// A failed login fails everyone waiting (they would only time out) and, for
    /// `server_login_retry`, fails new clients at once instead of hammering the server.
    fn note_login_failure(&self, error: &CheckoutError) {
        let mut state = self.lock();
        state.last_login_failure = Some((Instant::now(), error.clone_for_waiter()));
        for waiter in state.waiters.drain(..) {
            let _ = waiter.grant.send(Grant::Failed(error.clone_for_waiter()));
        }
    }
}
