//! The drain signal: set once on SIGTERM/SIGINT; sessions watch it between transactions.

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Drain {
    receiver: watch::Receiver<bool>,
}

#[derive(Debug)]
pub struct DrainTrigger {
    sender: watch::Sender<bool>,
}

pub fn channel() -> (DrainTrigger, Drain) {
    let (sender, receiver) = watch::channel(false);
    (DrainTrigger { sender }, Drain { receiver })
}

impl DrainTrigger {
    pub fn start(&self) {
        self.sender.send_replace(true);
    }

    pub fn subscribe(&self) -> Drain {
        Drain {
            receiver: self.sender.subscribe(),
        }
    }
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once draining has begun (at once if it already has).
    pub async fn started(&mut self) {
        let _ = self.receiver.wait_for(|draining| *draining).await;
    }
}
