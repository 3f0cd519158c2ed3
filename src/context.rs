//! `Shared`: the one handle every task gets — settings, pools, cancel keys, counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::cancel::CancelMap;
use crate::config::{DatabaseSettings, Settings};
use crate::logfmt::reason;
use crate::pool::{Pool, PoolKey, PoolLimits, SharedCount};
use crate::server::ServerTarget;
use crate::shutdown::{Drain, DrainTrigger};

pub struct Shared {
    settings: ArcSwap<Settings>,
    pools: DashMap<PoolKey, Arc<Pool>>,
    pub cancels: CancelMap,
    pub statements: crate::statements::StatementRegistry,
    /// SCRAM secrets derived from plain-text passwords in `[users]`, once per password:
    /// deriving one costs 4,096 HMAC rounds, too much to pay on every login.
    pub derived_secrets: DashMap<(String, String), Arc<crate::auth::ScramSecret>>,
    /// auth_query lookups of users with no configured password: cache and connections.
    pub auth_queries: crate::auth_query::AuthQueries,
    /// TLS towards clients and towards servers; certificates re-read on reload.
    pub tls: crate::tls::TlsState,
    /// Client connections open now, logging in or logged in: a drain waits for them.
    pub clients: AtomicUsize,
    /// Clients past their startup packet, counted against `max_client_conn`. Sockets
    /// that never send one (half-open, slowloris) do not count: they cannot lock real
    /// clients out, and `client_login_timeout` closes them.
    sessions: Arc<AtomicUsize>,
    db_counts: DashMap<String, Arc<SharedCount>>,
    user_counts: DashMap<String, Arc<SharedCount>>,
    server_ids: Arc<AtomicU64>,
    drain: DrainTrigger,
    /// A shutdown has begun: the listeners close and `/ready` says no.
    stopping: std::sync::atomic::AtomicBool,
    // Admin console, statistics and metrics (issue 3):
    /// Logged-in clients and their states.
    pub registry: Arc<crate::registry::Registry>,
    /// PAUSE/RESUME/DISABLE/SHUTDOWN switches.
    pub control: Arc<crate::control::Control>,
    /// The `stats_period` window that SHOW STATS averages are computed over.
    pub stats_clock: crate::stats::StatsClock,
    pub started: std::time::SystemTime,
}

/// Why a pool could not be found for a client.
#[derive(Debug, PartialEq, Eq)]
pub enum PoolLookup {
    NoSuchDatabase,
}

impl Shared {
    pub fn new(settings: Settings) -> Arc<Shared> {
        let (drain, _) = crate::shutdown::channel();
        let cancels = CancelMap::new(settings.peer_id);
        cancels.set_peers(&settings.peers);
        Arc::new(Shared {
            tls: crate::tls::TlsState::new(&settings.tls),
            settings: ArcSwap::from_pointee(settings),
            pools: DashMap::new(),
            cancels,
            statements: Default::default(),
            derived_secrets: DashMap::new(),
            auth_queries: Default::default(),
            clients: AtomicUsize::new(0),
            sessions: Arc::new(AtomicUsize::new(0)),
            db_counts: DashMap::new(),
            user_counts: DashMap::new(),
            server_ids: Arc::new(AtomicU64::new(0)),
            drain,
            stopping: Default::default(),
            registry: Default::default(),
            control: Default::default(),
            stats_clock: Default::default(),
            started: std::time::SystemTime::now(),
        })
    }

    /// The settings in force; read once per login or transaction, not per message.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// `cached` if it is still the settings in force, else the new ones. Comparing costs
    /// no reference count: sessions on every core check once per transaction without
    /// contending on one cache line.
    pub fn refresh_settings(&self, cached: &mut Arc<Settings>) {
        let current = self.settings.load();
        if !Arc::ptr_eq(cached, &current) {
            *cached = Arc::clone(&current);
        }
    }

    pub fn drain(&self) -> Drain {
        self.drain.subscribe()
    }

    pub fn start_drain(&self) {
        self.drain.start();
    }

    pub fn is_draining(&self) -> bool {
        self.drain.subscribe().is_draining()
    }

    /// A shutdown begins: no new clients (idle ones may still be served, see
    /// `start_drain`).
    pub fn stop_accepting(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether a shutdown has begun, drain or not: what `/ready` reports.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed) || self.is_draining()
    }

    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools
            .iter()
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }

    /// The pool for a client of `database` logged in as `user`. A database with a forced
    /// user has one pool that every client shares.
    pub fn pool_for(&self, database: &str, user: &str) -> Result<Arc<Pool>, PoolLookup> {
        let settings = self.settings();
        // `settings.database` also resolves PgBouncer's `*` fallback entry: an unlisted
        // name gets its own pool on the server database of the same name.
        let db = settings
            .database(database)
            .ok_or(PoolLookup::NoSuchDatabase)?;
        let target = server_target(&settings, &db, user, self.tls.server());
        let key = PoolKey {
            database: database.to_owned(),
            user: target.user.clone(),
        };
        if let Some(pool) = self.pools.get(&key) {
            return Ok(Arc::clone(pool.value()));
        }
        let pool = self.pools.entry(key.clone()).or_insert_with(|| {
            Pool::new(
                key.clone(),
                target,
                limits(&settings, database, &key.user),
                self.count(&self.db_counts, database),
                self.count(&self.user_counts, &key.user),
                Arc::clone(&self.server_ids),
            )
        });
        pool.follow_pauses(Arc::clone(&self.control));
        Ok(Arc::clone(pool.value()))
    }

    fn count(&self, counts: &DashMap<String, Arc<SharedCount>>, name: &str) -> Arc<SharedCount> {
        Arc::clone(counts.entry(name.to_owned()).or_default().value())
    }

    /// Swaps in reloaded settings. Pools whose server target is unchanged keep their
    /// servers and take the new limits; the others close (their busy servers when
    /// released) and are recreated on the next login.
    pub fn reload(&self, new: Settings) {
        if let Err(error) = self.tls.reload(&new.tls) {
            tracing::error!("TLS reload failed, keeping the old certificates: {error}");
        }
        self.cancels.set_peers(&new.peers);
        self.settings.store(Arc::new(new));
        // auth_user, auth_query and the auth database may have changed.
        self.auth_queries.clear();
        let settings = self.settings();
        self.pools.retain(|key, pool| {
            let still_same = settings
                .database(&key.database)
                .map(|db| {
                    server_target(&settings, &db, &key.user, self.tls.server()) == *pool.target
                })
                .unwrap_or(false);
            if still_same {
                pool.set_limits(limits(&settings, &key.database, &key.user));
            } else {
                pool.close(reason::DATABASE_CONFIGURATION_CHANGED);
            }
            still_same
        });
    }

    /// Takes the pools of `database` (all when None) out of service: they are closed and
    /// forgotten, and the next login opens fresh ones (KILL).
    pub fn remove_pools(&self, database: Option<&str>) -> Vec<Arc<Pool>> {
        let mut removed = Vec::new();
        self.pools.retain(|key, pool| {
            let hit = database.map_or(true, |db| db == key.database);
            if hit {
                removed.push(Arc::clone(pool));
            }
            !hit
        });
        for pool in &removed {
            pool.close(reason::DATABASE_REMOVED);
        }
        removed
    }

    /// Takes one of `max_client_conn` places, held until the guard drops.
    pub fn take_client_slot(&self, max_client_conn: usize) -> Option<ClientSlot> {
        self.sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_client_conn).then_some(n + 1)
            })
            .ok()
            .map(|_| ClientSlot(Arc::clone(&self.sessions)))
    }

    pub fn session_count(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    pub fn client_count(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
}

/// Who pgmux logs in as: the database's forced user, else the client's own name with the
/// password from `[users]`.
fn server_target(
    settings: &Settings,
    db: &DatabaseSettings,
    client_user: &str,
    tls: crate::tls::ServerTls,
) -> ServerTarget {
    let (user, password) = match &db.user {
        Some(forced) => (forced.clone(), db.password.clone()),
        None => (
            client_user.to_owned(),
            db.password.clone().or_else(|| {
                settings
                    .users
                    .get(client_user)
                    .and_then(|u| u.password.clone())
            }),
        ),
    };
    ServerTarget {
        host: db.host.clone(),
        port: db.port,
        dbname: db.dbname.clone(),
        user,
        password,
        tls,
    }
}

fn limits(settings: &Settings, database: &str, user: &str) -> PoolLimits {
    PoolLimits {
        pool_size: settings.pool_size_for(database),
        min_pool_size: settings.min_pool_size_for(database),
        reserve_pool_size: settings.reserve_pool_size_for(database),
        reserve_pool_timeout: settings.reserve_pool_timeout,
        max_db_connections: settings.max_db_connections_for(database),
        max_user_connections: settings.max_user_connections_for(user),
        server_lifetime: settings.server_lifetime,
        server_idle_timeout: settings.server_idle_timeout,
        server_connect_timeout: settings.server_connect_timeout,
        server_login_retry: settings.server_login_retry,
        server_check_delay: settings.server_check_delay,
        server_check_query: settings.server_check_query.clone(),
        query_wait_timeout: settings.query_wait_timeout,
        log_connections: settings.log_connections,
        log_disconnections: settings.log_disconnections,
    }
}

/// One place under `max_client_conn`.
#[derive(Debug)]
pub struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
