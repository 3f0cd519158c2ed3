//! Connection counts shared by every pool of one database or one user.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::Pool;

/// Connection counters shared by every pool of one database or one user, for
/// `max_db_connections` / `max_user_connections`, and the pools that share them.
#[derive(Debug, Default)]
pub struct SharedCount {
    count: AtomicUsize,
    members: Mutex<Vec<Weak<Pool>>>,
}

impl SharedCount {
    pub(super) fn join(&self, pool: &Arc<Pool>) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.retain(|member| member.strong_count() > 0);
        members.push(Arc::downgrade(pool));
    }

    /// Closes the longest-idle server of another pool under this limit, so a pool that
    /// is starved by it can open one (PgBouncer's `evict_connection`). True if one closed.
    pub(super) fn evict_idle_elsewhere(&self, starved: &Pool) -> bool {
        let members: Vec<Arc<Pool>> = {
            let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
            members.iter().filter_map(Weak::upgrade).collect()
        };
        members
            .iter()
            .filter(|member| !std::ptr::eq(member.as_ref(), starved))
            .any(|member| member.close_one_idle())
    }

    pub(super) fn try_acquire(&self, limit: usize) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (limit == 0 || n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    pub(super) fn release(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}
