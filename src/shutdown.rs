//! The drain signal: set once on SIGTERM/SIGINT; sessions watch it between transactions.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// A client that logged in this recently when the drain begins gets until then to send
/// its first request. The listener closes as the drain begins, so the last clients
/// accepted are ones that connected an instant earlier to run a transaction; closing them
/// before it would fail that transaction (think `pgbench -C` across an online restart).
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Drain {
    receiver: watch::Receiver<bool>,
    /// When this session subscribed, i.e. logged in.
    since: Instant,
}

#[derive(Debug)]
pub struct DrainTrigger {
    sender: watch::Sender<bool>,
}

pub fn channel() -> (DrainTrigger, Drain) {
    let (sender, receiver) = watch::channel(false);
    (
        DrainTrigger { sender },
        Drain {
            receiver,
            since: Instant::now(),
        },
    )
}

impl DrainTrigger {
    pub fn start(&self) {
        self.sender.send_replace(true);
    }

    pub fn subscribe(&self) -> Drain {
        Drain {
            receiver: self.sender.subscribe(),
            since: Instant::now(),
        }
    }
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once draining has begun (at once if it already has) and the subscriber
    /// is past its [`FIRST_REQUEST_GRACE`]: time to close an idle client.
    pub async fn started(&mut self) {
        let _ = self.receiver.wait_for(|draining| *draining).await;
        // Boxed: only a draining client needs the timer, and every idle client's task
        // would otherwise carry its 112 bytes.
        Box::pin(tokio::time::sleep_until(self.since + FIRST_REQUEST_GRACE)).await;
    }
}
