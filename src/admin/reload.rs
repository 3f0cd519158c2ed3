//! Re-reading the settings file (SIGHUP and RELOAD): a bad file changes nothing and is
//! reported; settings that only take effect at start are named in the log. Either way
//! `logfile` is reopened, which is how PgBouncer's log rotation works (move the file,
//! then SIGHUP or RELOAD).

use crate::context::Shared;

/// Settings read only at start; a reload that changes them says so.
pub const RESTART_ONLY: [&str; 8] = [
    "listen_addr",
    "listen_port",
    "unix_socket_dir",
    "workers",
    "so_reuseport",
    "peer_id",
    "metrics_listen",
    "log_format",
];

pub fn reload(shared: &Shared) -> Result<(), String> {
    let outcome = reread(shared);
    let settings = shared.settings();
    crate::logging::reopen(settings.logfile.as_deref());
    crate::logging::set_syslog(&settings);
    outcome
}

fn reread(shared: &Shared) -> Result<(), String> {
    let current = shared.settings();
    let Some(path) = current.source.clone() else {
        tracing::warn!("reload requested but the settings did not come from a file");
        return Err("the settings did not come from a file".into());
    };
    match crate::config::load(&path) {
        Ok(new) => {
            let changed = [
                new.listen_addr != current.listen_addr,
                new.listen_port != current.listen_port,
                new.unix_socket_dir != current.unix_socket_dir,
                new.workers != current.workers,
                new.so_reuseport != current.so_reuseport,
                new.peer_id != current.peer_id,
                new.metrics_listen != current.metrics_listen,
                new.log_format != current.log_format,
            ];
            for (name, changed) in RESTART_ONLY.iter().zip(changed) {
                if changed {
                    tracing::warn!(
                        "{name} changed in {}: takes effect after a restart",
                        path.display()
                    );
                }
            }
            shared.reload(new);
            tracing::info!("reloaded {}", path.display());
            Ok(())
        }
        Err(error) => {
            tracing::error!("reload failed, keeping the old settings: {error}");
            Err(error.to_string())
        }
    }
}
