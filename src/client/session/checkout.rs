//! Taking a server for the next transaction and bringing it in line with this client:
//! checkout from the pool, then the parameter sync — the `SET`s that give the server the
//! client's startup parameters and SQL-changed settings — and, after a transaction that
//! changed settings, reading them back so they follow the client to its next server.

use std::sync::Arc;
use std::time::Instant;

use super::Session;
use crate::cancel::ServerKey;
use crate::client::Refusal;
use crate::logfmt::reason;
use crate::params::{Params, SyncPlan};
use crate::pool::{CheckoutError, PooledServer};
use crate::stats::PoolStats;

impl Session {
    /// A server for the next transaction, with this client's parameters applied.
    pub(super) async fn checkout(&mut self) -> Result<PooledServer, Refusal> {
        let asked = Instant::now();
        // Issue 3: the registry shows the client waiting; PAUSE/SUSPEND hold it here.
        self.client.info.set_waiting();
        self.shared.control.wait_released(&self.database).await;
        let mut server = self.pool.checkout().await.map_err(|error| match error {
            CheckoutError::QueryWaitTimeout => Refusal::QueryWaitTimeout,
            CheckoutError::Server { code, message } => Refusal::Server { code, message },
            CheckoutError::Closed => Refusal::DatabaseRemoved,
        })?;
        let extras = &self.config.track_extra_parameters;
        let mut plan = SyncPlan::default();
        plan.add(&self.params, &server.params, |name| {
            extras.iter().any(|e| e.eq_ignore_ascii_case(name))
        });
        plan.add(&self.settings.values, &server.session, |_| true);
        if let Some(sql) = plan.sql() {
            let applied = apply_params(
                &mut server,
                &self.params,
                &self.settings.values,
                extras,
                &sql,
            )
            .await;
            if let Err(message) = applied {
                server.close(reason::VAR_CHANGE_FAILED);
                return Err(Refusal::ParamsFailed(message));
            }
            // Keep the server's canonical spelling ("ISO, MDY" for "iso") so the next
            // comparison matches without another SET.
            for (name, value) in server.params.iter() {
                if self.params.get(name).is_some() {
                    self.params.set(name, value);
                }
            }
        }
        let stats = &self.pool.stats;
        PoolStats::add(&stats.server_assignments, 1);
        let waited_us = asked.elapsed().as_micros() as u64;
        PoolStats::add(&stats.wait_time_us, waited_us);
        // Issue 3: wait histogram, and the client/server link SHOW CLIENTS/SERVERS print.
        stats.observe_wait(waited_us);
        self.client
            .info
            .set_active(server.id, self.params.get("application_name"));
        if let Some(info) = self.pool.servers.get(server.id) {
            info.set_link(self.client.info.id);
        }
        self.cancel.attach(ServerKey {
            target: Arc::clone(&self.pool.target),
            process_id: server.process_id,
            secret_key: server.secret_key,
        });
        Ok(server)
    }

    /// Reads back the settings the client's last transaction changed: they now belong to
    /// this client, and this server is known to carry them.
    pub(super) async fn capture_settings(
        &mut self,
        server: &mut PooledServer,
    ) -> Result<(), Refusal> {
        let sql = self.settings.capture_sql();
        let rows = match server.query_internal(&sql).await {
            Ok((b'I', rows)) => rows,
            _ => return Err(Refusal::ReadBackFailed),
        };
        let extras = &self.config.track_extra_parameters;
        self.settings.apply_capture(&rows, &mut self.params, extras);
        server.session = self.settings.values.clone();
        for name in extras {
            match self.params.get(name) {
                Some(value) => server.params.set(name, value),
                None => server.params.remove(name),
            }
        }
        Ok(())
    }
}

/// Runs the parameter-sync `SET`s on a freshly checked-out server.
async fn apply_params(
    server: &mut PooledServer,
    wanted: &Params,
    session: &Params,
    extras: &[String],
    sql: &str,
) -> Result<(), String> {
    server.session = session.clone();
    // Parameters the server does not report (search_path, …) are recorded as set, or as
    // back at their default when reset.
    for name in extras {
        if wanted.get(name).is_none() {
            server.params.remove(name);
        }
    }
    for (name, value) in wanted.iter() {
        server.params.set(name, value);
    }
    match server.run_internal(sql).await {
        Ok(b'I') => Ok(()),
        Ok(_) => Err("server left a transaction open".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}
