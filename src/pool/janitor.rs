//! The one timer of a pool: retires idle and old servers, shrinks after a reload, grants
//! the reserve pool to clients that waited `reserve_pool_timeout`, retries waiters that
//! were blocked by database/user limits, and keeps `min_pool_size` servers warm.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::state::Grant;
use super::{Pool, Slot};
use crate::logfmt::reason;
use crate::server::ServerConn;

const TICK: Duration = Duration::from_millis(250);

pub(super) fn spawn(pool: &Arc<Pool>) {
    let weak = Arc::downgrade(pool);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(run(weak));
    }
}

async fn run(pool: Weak<Pool>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.lock().closed {
            return;
        }
        let retired = retire(&pool);
        for (conn, why) in retired {
            pool.forget(conn, why);
        }
        grant_waiters(&pool);
        top_up(&pool);
    }
}

/// Idle servers past `server_idle_timeout` (down to `min_pool_size`), past
/// `server_lifetime`, or beyond a pool size lowered by reload, each with its log reason.
fn retire(pool: &Pool) -> Vec<(ServerConn, &'static str)> {
    let mut state = pool.lock();
    let now = Instant::now();
    let limits = state.limits.clone();
    let mut retired = Vec::new();
    let mut index = 0;
    while index < state.idle.len() {
        let conn = &state.idle[index];
        let remaining = state.total - retired.len();
        let idle_for = now.duration_since(conn.last_used);
        let too_old = !limits.server_lifetime.is_zero()
            && now.duration_since(conn.created_at) >= limits.server_lifetime;
        let too_idle = !limits.server_idle_timeout.is_zero()
            && idle_for >= limits.server_idle_timeout
            && remaining > limits.min_pool_size;
        let surplus = remaining > limits.pool_size + limits.reserve_pool_size
            || (remaining > limits.pool_size && state.waiters.is_empty());
        // PgBouncer's order of checks, and so its reason when several apply.
        let why = if too_idle {
            reason::SERVER_IDLE_TIMEOUT
        } else if too_old {
            reason::SERVER_LIFETIME
        } else if surplus {
            reason::TOO_MANY_SERVERS
        } else {
            index += 1;
            continue;
        };
        retired.push((state.idle.remove(index), why));
    }
    retired
}

/// Gives room to the first waiters when limits allow it now: the reserve pool after
/// `reserve_pool_timeout`, or capacity freed in another pool of the same database/user.
fn grant_waiters(pool: &Arc<Pool>) {
    let has_waiters = pool.lock().has_live_waiters();
    if has_waiters {
        pool.make_room_elsewhere();
    }
    let mut state = pool.lock();
    while state.has_live_waiters() {
        let waited = state
            .waiters
            .front()
            .map(|w| w.since.elapsed())
            .unwrap_or_default();
        let reserve_allowed =
            state.limits.reserve_pool_size > 0 && waited >= state.limits.reserve_pool_timeout;
        if state.recent_login_failure().is_some() || !pool.reserve_slot(&mut state, reserve_allowed)
        {
            return;
        }
        if reserve_allowed && state.total > state.limits.pool_size {
            tracing::info!(db = %pool.key.database, user = %pool.key.user, "taking connection from reserve_pool");
        }
        let waiter = state
            .waiters
            .pop_front()
            .expect("a live waiter is at the front");
        if let Err(Grant::Slot(slot)) = waiter.grant.send(Grant::Slot(Slot::new(pool))) {
            // Went away meanwhile: the slot frees its place when dropped, outside the lock.
            drop(state);
            drop(slot);
            state = pool.lock();
        }
    }
}

/// Opens servers in the background until `min_pool_size` exist.
fn top_up(pool: &Arc<Pool>) {
    let mut slots = Vec::new();
    {
        if pool.paused() {
            return;
        }
        let mut state = pool.lock();
        if state.recent_login_failure().is_some() {
            return;
        }
        while state.total < state.limits.min_pool_size && pool.reserve_slot(&mut state, false) {
            slots.push(Slot::new(pool));
        }
    }
    for slot in slots {
        let pool = Arc::clone(pool);
        tokio::spawn(async move {
            if let Ok(server) = pool.open(slot).await {
                server.release();
            }
        });
    }
}
