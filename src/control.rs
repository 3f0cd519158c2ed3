//! The operator's switches, set from the admin console and signals, read by sessions and
//! the process loop: PAUSE/SUSPEND (hold new transactions), per-database pause and
//! disable, and a requested shutdown. Every change wakes whoever waits on one.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::watch;

/// PgBouncer's global pause mode (`cf_pause_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PauseMode {
    #[default]
    None,
    Pause,
    Suspend,
}

/// How SHUTDOWN asked the process to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Plain SHUTDOWN: close everything now.
    Immediate,
    /// Stop accepting; exit once every client has gone (SIGTERM's behaviour).
    WaitForClients,
    /// Stop accepting; exit once running transactions are done (SIGINT's behaviour).
    WaitForServers,
}

#[derive(Debug, Default, Clone)]
struct Switches {
    mode: PauseMode,
    paused: BTreeSet<String>,
    disabled: BTreeSet<String>,
    shutdown: Option<ShutdownMode>,
}

#[derive(Debug)]
pub struct Control {
    switches: Mutex<Switches>,
    changed: watch::Sender<u64>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            switches: Mutex::new(Switches::default()),
            changed: watch::channel(0).0,
        }
    }
}

impl Control {
    fn update<T>(&self, change: impl FnOnce(&mut Switches) -> T) -> T {
        let result = change(&mut self.switches.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.send_modify(|n| *n += 1);
        result
    }

    fn read<T>(&self, look: impl FnOnce(&Switches) -> T) -> T {
        look(&self.switches.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn mode(&self) -> PauseMode {
        self.read(|s| s.mode)
    }

    /// Sets the global mode; false (unchanged) when it was not `None` and `mode` is not.
    pub fn set_mode(&self, mode: PauseMode) -> bool {
        self.update(|s| {
            if mode != PauseMode::None && s.mode != PauseMode::None {
                return false;
            }
            s.mode = mode;
            true
        })
    }

    pub fn is_db_paused(&self, db: &str) -> bool {
        self.read(|s| s.paused.contains(db))
    }

    pub fn paused_count(&self) -> usize {
        self.read(|s| s.paused.len())
    }

    pub fn set_db_paused(&self, db: &str, paused: bool) {
        self.update(|s| {
            if paused {
                s.paused.insert(db.to_owned());
            } else {
                s.paused.remove(db);
            }
        });
    }

    pub fn is_disabled(&self, db: &str) -> bool {
        self.read(|s| s.disabled.contains(db))
    }

    pub fn set_disabled(&self, db: &str, disabled: bool) {
        self.update(|s| {
            if disabled {
                s.disabled.insert(db.to_owned());
            } else {
                s.disabled.remove(db);
            }
        });
    }

    /// True while new transactions on `db` must wait (global PAUSE/SUSPEND or PAUSE db).
    pub fn is_held(&self, db: &str) -> bool {
        self.read(|s| s.mode != PauseMode::None || s.paused.contains(db))
    }

    /// Waits until transactions on `db` may start.
    pub async fn wait_released(&self, db: &str) {
        let mut changes = self.changed.subscribe();
        while self.is_held(db) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn request_shutdown(&self, mode: ShutdownMode) {
        self.update(|s| s.shutdown = Some(mode));
    }

    pub fn shutdown_requested(&self) -> Option<ShutdownMode> {
        self.read(|s| s.shutdown)
    }

    /// Resolves when SHUTDOWN is issued.
    pub async fn shutdown(&self) -> ShutdownMode {
        let mut changes = self.changed.subscribe();
        loop {
            if let Some(mode) = self.shutdown_requested() {
                return mode;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paused_database_holds_until_resumed() {
        let control = std::sync::Arc::new(Control::default());
        control.set_db_paused("app", true);
        assert!(control.is_held("app") && !control.is_held("other"));
        let waiter = tokio::spawn({
            let control = std::sync::Arc::clone(&control);
            async move { control.wait_released("app").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        control.set_db_paused("app", false);
        waiter.await.unwrap();
    }

    #[test]
    fn a_second_pause_is_refused() {
        let control = Control::default();
        assert!(control.set_mode(PauseMode::Pause));
        assert!(!control.set_mode(PauseMode::Suspend));
        assert!(control.set_mode(PauseMode::None));
    }
}
