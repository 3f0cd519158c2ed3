//! Listeners, the accept loops, and the process lifecycle: SIGHUP reloads the settings
//! file, SIGTERM/SIGINT drain (stop accepting, let transactions finish, then exit).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Settings;
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

    // Issue 3: the Prometheus endpoint binds before pgmux reports itself ready.
    let metrics = match &settings.metrics_listen {
        Some(addr) => Some(
            crate::metrics::bind(addr)
                .await
                .map_err(|e| AppError::Listen(addr.clone(), e))?,
        ),
        None => None,
    };
    let shared = Shared::new(settings);
    let stats_ticker = tokio::spawn(crate::admin::periodic::run(Arc::clone(&shared)));
    let metrics_task =
        metrics.map(|listener| tokio::spawn(crate::metrics::serve(Arc::clone(&shared), listener)));
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

    let immediate = wait_for_shutdown(&shared).await?;

    if let Some(accepting) = accepting {
        accepting.abort();
    }
    if let Some((task, path)) = unix_task {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    drain(&shared, local, immediate).await;
    stats_ticker.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
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

/// Serves SIGHUP reloads (and SIGUSR1 pause / SIGUSR2 resume) until SIGTERM, SIGINT or
/// the admin console's SHUTDOWN (SIGQUIT exits at once); true when that was a plain SHUTDOWN (no drain).
async fn wait_for_shutdown(shared: &Arc<Shared>) -> Result<bool, AppError> {
    use crate::control::{PauseMode, ShutdownMode};
    let mut quit = signal(SignalKind::quit()).map_err(AppError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(AppError::Signal)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(AppError::Signal)?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(AppError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(shared),
            // PgBouncer's immediate shutdown: no drain, as the console's SHUTDOWN.
            _ = quit.recv() => {
                tracing::info!("got SIGQUIT, fast exit");
                return Ok(true);
            }
            _ = usr1.recv() => {
                tracing::info!("got SIGUSR1, pausing");
                shared.control.set_mode(PauseMode::Pause);
            }
            _ = usr2.recv() => {
                tracing::info!("got SIGUSR2, resuming");
                shared.control.set_mode(PauseMode::None);
            }
            mode = shared.control.shutdown() => {
                return Ok(mode == ShutdownMode::Immediate);
            }
            _ = terminate.recv() => {
                tracing::info!("got SIGTERM, shutting down");
                return Ok(false);
            }
            _ = interrupt.recv() => {
                tracing::info!("got SIGINT, shutting down");
                return Ok(false);
            }
        }
    }
}

/// Re-reads the settings file. A bad file changes nothing and says why in one line.
pub fn reload(shared: &Shared) {
    let _ = crate::admin::reload(shared);
    // PgBouncer reopens its log file on reload, for log rotation.
    crate::logging::reopen(shared.settings().logfile.as_deref());
}

/// Lets running transactions finish (idle clients are told "pooler is shutting down"),
/// up to `shutdown_timeout`.
async fn drain(shared: &Arc<Shared>, local: SocketAddr, immediate: bool) {
    shared.start_drain();
    let timeout = shared.settings().shutdown_timeout;
    let started = tokio::time::Instant::now();
    while !immediate && shared.client_count() > 0 {
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
