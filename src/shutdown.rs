//! The drain signal: set once on SIGTERM/SIGINT; sessions watch it between transactions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A client that logged in this recently when the drain begins gets until then to send
/// its first request. The listener closes as the drain begins, so the last clients
/// accepted are ones that connected an instant earlier to run a transaction; closing them
/// before it would fail that transaction (think `pgbench -C` across an online restart).
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// A flag and a Notify rather than a watch channel: every idle client waits on this,
/// and a Notify's waiter is the smallest future that can.
#[derive(Debug, Default)]
struct DrainState {
    started: AtomicBool,
    notify: Notify,
}

#[derive(Debug, Clone)]
pub struct Drain {
    state: Arc<DrainState>,
    /// When this session subscribed, i.e. logged in.
    since: Instant,
}

#[derive(Debug)]
pub struct DrainTrigger {
    state: Arc<DrainState>,
}

pub fn channel() -> (DrainTrigger, Drain) {
    let state = Arc::new(DrainState::default());
    (
        DrainTrigger {
            state: Arc::clone(&state),
        },
        Drain {
            state,
            since: Instant::now(),
        },
    )
}

impl DrainTrigger {
    pub fn start(&self) {
        self.state.started.store(true, Ordering::Release);
        self.state.notify.notify_waiters();
    }

    pub fn subscribe(&self) -> Drain {
        Drain {
            state: Arc::clone(&self.state),
            since: Instant::now(),
        }
    }
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.state.started.load(Ordering::Acquire)
    }

    /// Resolves once draining has begun (at once if it already has) and the subscriber
    /// is past its [`FIRST_REQUEST_GRACE`]: time to close an idle client.
    pub async fn started(&mut self) {
        while !self.is_draining() {
            let notified = self.state.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the flag is read again, so a start in between is seen.
            notified.as_mut().enable();
            if self.is_draining() {
                break;
            }
            notified.await;
        }
        let grace_over = self.since + FIRST_REQUEST_GRACE;
        if Instant::now() < grace_over {
            // Boxed: only a draining client needs the timer, and every idle client's
            // task would otherwise carry its 112 bytes.
            Box::pin(tokio::time::sleep_until(grace_over)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_waiting_subscriber_wakes_only_once_the_drain_starts() {
        let (trigger, _) = channel();
        let mut drain = trigger.subscribe();
        let waiter = tokio::spawn(async move { drain.started().await });
        // Well past the grace, and still no drain: still waiting.
        tokio::time::sleep(FIRST_REQUEST_GRACE * 3).await;
        assert!(!waiter.is_finished());
        trigger.start();
        tokio::time::timeout(Duration::from_millis(1), waiter)
            .await
            .expect("woken at once: its grace is long over")
            .unwrap();
        assert!(trigger.subscribe().is_draining());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_subscriber_gets_its_grace() {
        let (trigger, _) = channel();
        trigger.start();
        let mut fresh = trigger.subscribe();
        let begun = Instant::now();
        fresh.started().await;
        assert!(Instant::now() >= begun + FIRST_REQUEST_GRACE);
    }
}
