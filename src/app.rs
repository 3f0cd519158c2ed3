//! Listeners, the accept loops, and the process lifecycle: SIGHUP reloads the settings
//! file, SIGTERM/SIGINT drain (stop accepting, let transactions finish, then exit).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, Settings};
use crate::context::Shared;
use crate::net::Stream;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("could not listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("could not install signal handler: {0}")]
    Signal(std::io::Error),
}

/// Runs pgmux until a drain completes.
pub async fn run(settings: Settings) -> Result<(), AppError> {
    // An empty listen_addr means no TCP listener (unix socket only), as in PgBouncer.
    let (tcp, local) = if settings.listen_addr.is_empty() {
        let local = SocketAddr::from(([127, 0, 0, 1], settings.listen_port));
        (None, local)
    } else {
        let tcp_address = format!(
            "{}:{}",
            tcp_host(&settings.listen_addr),
            settings.listen_port
        );
        let tcp = TcpListener::bind(&tcp_address)
            .await
            .map_err(|e| AppError::Listen(tcp_address.clone(), e))?;
        let local = tcp
            .local_addr()
            .map_err(|e| AppError::Listen(tcp_address, e))?;
        tracing::info!("listening on {local}");
        (Some(tcp), local)
    };
    let unix = match &settings.unix_socket_dir {
        Some(dir) => Some(bind_unix(dir, local.port())?),
        None => None,
    };

    let shared = Shared::new(settings);
    let accepting = tcp.map(|tcp| tokio::spawn(accept_tcp(Arc::clone(&shared), tcp)));
    let accepting_unix = unix.as_ref().map(|(listener, _)| listener.clone());
    let unix_task = unix.map(|(_, path)| {
        (
            tokio::spawn(accept_unix(
                Arc::clone(&shared),
                accepting_unix.expect("set with unix"),
            )),
            path,
        )
    });

    wait_for_shutdown(&shared).await?;

    if let Some(accepting) = accepting {
        accepting.abort();
    }
    if let Some((task, path)) = unix_task {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    drain(&shared, local).await;
    Ok(())
}

fn tcp_host(listen_addr: &str) -> &str {
    match listen_addr {
        "*" => "0.0.0.0",
        other => other,
    }
}

type SharedUnixListener = Arc<UnixListener>;

fn bind_unix(dir: &Path, port: u16) -> Result<(SharedUnixListener, PathBuf), AppError> {
    let path = dir.join(format!(".s.PGSQL.{port}"));
    // A socket file left by a previous run would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|e| AppError::Listen(path.display().to_string(), e))?;
    tracing::info!("listening on unix socket {}", path.display());
    Ok((Arc::new(listener), path))
}

async fn accept_tcp(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                let _ = socket.set_nodelay(true);
                tokio::spawn(crate::client::serve(
                    Arc::clone(&shared),
                    Stream::Tcp(socket),
                ));
            }
            Err(error) => back_off(error).await,
        }
    }
}

async fn accept_unix(shared: Arc<Shared>, listener: SharedUnixListener) {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                tokio::spawn(crate::client::serve(
                    Arc::clone(&shared),
                    Stream::Unix(socket),
                ));
            }
            Err(error) => back_off(error).await,
        }
    }
}

/// Out of file descriptors (or a similar transient failure): pause instead of spinning
/// on an accept that fails again at once.
async fn back_off(error: std::io::Error) {
    tracing::warn!("accept failed: {error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves SIGHUP reloads until SIGTERM or SIGINT arrives; SIGQUIT exits at once.
async fn wait_for_shutdown(shared: &Arc<Shared>) -> Result<(), AppError> {
    let mut quit = signal(SignalKind::quit()).map_err(AppError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(AppError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(shared),
            // PgBouncer's immediate shutdown: no drain, clients and servers just drop.
            _ = quit.recv() => {
                tracing::info!("got SIGQUIT, fast exit");
                crate::process::remove_pidfile(&shared.settings());
                std::process::exit(0);
            }
            _ = terminate.recv() => {
                tracing::info!("got SIGTERM, shutting down");
                return Ok(());
            }
            _ = interrupt.recv() => {
                tracing::info!("got SIGINT, shutting down");
                return Ok(());
            }
        }
    }
}

/// Re-reads the settings file. A bad file changes nothing and says why in one line.
pub fn reload(shared: &Shared) {
    let current = shared.settings();
    let Some(path) = current.source.clone() else {
        tracing::warn!("reload requested but the settings did not come from a file");
        return;
    };
    match config::load(&path) {
        Ok(new) => {
            // PgBouncer reopens its log file on reload, for log rotation.
            crate::logging::reopen(new.logfile.as_deref());
            for (name, changed) in [
                ("listen_addr", new.listen_addr != current.listen_addr),
                ("listen_port", new.listen_port != current.listen_port),
                (
                    "unix_socket_dir",
                    new.unix_socket_dir != current.unix_socket_dir,
                ),
                ("workers", new.workers != current.workers),
            ] {
                if changed {
                    tracing::warn!(
                        "{name} changed in {}: takes effect after a restart",
                        path.display()
                    );
                }
            }
            shared.reload(new);
            tracing::info!("reloaded {}", path.display());
        }
        Err(error) => tracing::error!("reload failed, keeping the old settings: {error}"),
    }
}

/// Lets running transactions finish (idle clients are told "pooler is shutting down"),
/// up to `shutdown_timeout`.
async fn drain(shared: &Arc<Shared>, local: SocketAddr) {
    shared.start_drain();
    let timeout = shared.settings().shutdown_timeout;
    let started = tokio::time::Instant::now();
    while shared.client_count() > 0 {
        if !timeout.is_zero() && started.elapsed() >= timeout {
            tracing::warn!(
                clients = shared.client_count(),
                "shutdown_timeout reached, closing remaining clients"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pool in shared.pools() {
        pool.close();
    }
    // Give the Terminate messages of closing servers a moment to leave.
    tokio::time::sleep(Duration::from_millis(50)).await;
    tracing::info!("pgmux on {local} stopped");
}
