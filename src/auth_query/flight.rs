//! A short-lived cache of lookups by key, where concurrent lookups of the same key share
//! one fetch: a burst of logins of one user costs PostgreSQL one auth_query, not one
//! per client.
//!
//! ```text
//! lookup(key) ─▶ entry fresh or still in flight? ─yes─▶ wait for / reuse its outcome
//!                  │no (absent, expired, or a failure)
//!                  └─▶ new entry ─▶ fetch ─▶ outcome stamped with the time it arrived
//! ```
//! Failures are shared by the clients that waited for them but never reused after: the
//! next login tries again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Expired entries are swept when a new one is added and the map has grown past this,
/// so logins with ever-new names (typos, a scan) cannot grow it without bound.
const SWEEP_ABOVE: usize = 256;

pub struct FlightCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, Arc<Flight<V>>>>,
}

/// One fetch: empty while in flight. A fetch whose future is dropped (its client gave
/// up) leaves the cell empty, and the next waiter runs the fetch itself.
struct Flight<V> {
    outcome: OnceCell<(Instant, V)>,
}

impl<V: Clone> FlightCache<V> {
    pub fn new(ttl: Duration) -> Self {
        FlightCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached outcome for `key`, or the one `fetch` produces. `reusable` says which
    /// outcomes later lookups may take within the TTL (not failures).
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: &str,
        reusable: impl Fn(&V) -> bool,
        fetch: F,
    ) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let flight = self.flight(key, &reusable);
        let (_, outcome) = flight
            .outcome
            .get_or_init(|| async { (Instant::now(), fetch().await) })
            .await;
        outcome.clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn flight(&self, key: &str, reusable: &impl Fn(&V) -> bool) -> Arc<Flight<V>> {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(flight) = entries.get(key) {
            if flight.usable(now, self.ttl, reusable) {
                return Arc::clone(flight);
            }
        }
        if entries.len() >= SWEEP_ABOVE {
            entries.retain(|_, flight| flight.usable(now, self.ttl, reusable));
        }
        let flight = Arc::new(Flight {
            outcome: OnceCell::new(),
        });
        entries.insert(key.to_owned(), Arc::clone(&flight));
        flight
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight<V>>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<V> Flight<V> {
    /// In flight (join it), or arrived less than `ttl` ago and reusable.
    fn usable(&self, now: Instant, ttl: Duration, reusable: &impl Fn(&V) -> bool) -> bool {
        match self.outcome.get() {
            None => true,
            Some((arrived, outcome)) => reusable(outcome) && now < *arrived + ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const TTL: Duration = Duration::from_secs(5);

    fn always(_: &Result<u32, String>) -> bool {
        true
    }

    fn only_ok(outcome: &Result<u32, String>) -> bool {
        outcome.is_ok()
    }

    async fn fetch_counting(
        cache: &FlightCache<Result<u32, String>>,
        key: &str,
        fetches: &AtomicUsize,
        value: Result<u32, String>,
    ) -> Result<u32, String> {
        cache
            .get_or_fetch(key, only_ok, || async {
                fetches.fetch_add(1, Ordering::SeqCst);
                value
            })
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_are_reused_until_the_ttl_then_fetched_again() {
        let cache = FlightCache::new(TTL);
        let fetches = AtomicUsize::new(0);
        assert_eq!(fetch_counting(&cache, "u", &fetches, Ok(1)).await, Ok(1));
        tokio::time::advance(TTL - Duration::from_millis(1)).await;
        assert_eq!(fetch_counting(&cache, "u", &fetches, Ok(2)).await, Ok(1));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(fetch_counting(&cache, "u", &fetches, Ok(2)).await, Ok(2));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_reused() {
        let cache = FlightCache::new(TTL);
        let fetches = AtomicUsize::new(0);
        let failed = Err("down".to_owned());
        assert_eq!(
            fetch_counting(&cache, "u", &fetches, failed.clone()).await,
            failed
        );
        assert_eq!(fetch_counting(&cache, "u", &fetches, Ok(3)).await, Ok(3));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_cached_apart() {
        let cache = FlightCache::new(TTL);
        let fetches = AtomicUsize::new(0);
        assert_eq!(fetch_counting(&cache, "a", &fetches, Ok(1)).await, Ok(1));
        assert_eq!(fetch_counting(&cache, "b", &fetches, Ok(2)).await, Ok(2));
        assert_eq!(fetch_counting(&cache, "a", &fetches, Ok(9)).await, Ok(1));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_of_one_key_share_one_fetch() {
        let cache = Arc::new(FlightCache::new(TTL));
        let fetches = Arc::new(AtomicUsize::new(0));
        let lookups: Vec<_> = (0..10)
            .map(|_| {
                let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
                tokio::spawn(async move {
                    cache
                        .get_or_fetch("u", always, || async {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            Ok(7)
                        })
                        .await
                })
            })
            .collect();
        for lookup in lookups {
            assert_eq!(lookup.await.unwrap(), Ok(7));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_fetch_is_taken_over_by_the_next_lookup() {
        let cache = FlightCache::new(TTL);
        let abandoned = cache.get_or_fetch("u", always, std::future::pending);
        assert!(tokio::time::timeout(Duration::from_secs(1), abandoned)
            .await
            .is_err());
        let outcome = cache.get_or_fetch("u", always, || async { Ok(4) }).await;
        assert_eq!(outcome, Ok(4));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_swept_as_new_names_arrive() {
        let cache = FlightCache::new(TTL);
        for n in 0..SWEEP_ABOVE {
            let key = format!("user{n}");
            let _ = cache.get_or_fetch(&key, always, || async { Ok(0) }).await;
        }
        tokio::time::advance(TTL).await;
        let _ = cache.get_or_fetch("late", always, || async { Ok(0) }).await;
        assert_eq!(cache.len(), 1);
    }
}
