//! Listeners, the accept loops, and the process lifecycle: SIGHUP reloads the settings
//! file, SIGTERM/SIGINT drain (stop accepting, let transactions finish, then exit).

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Settings, SigtermShutdown};
use crate::context::Shared;
use crate::control::ShutdownMode;
use crate::net::Stream;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("could not listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("could not install signal handler: {0}")]
    Signal(std::io::Error),
}

/// The kernel's queue of connections not yet accepted; as tokio's default.
const LISTEN_BACKLOG: i32 = 1024;

/// Runs pgmux until a drain completes.
pub async fn run(settings: Settings) -> Result<(), AppError> {
    // An empty listen_addr means no TCP listener (unix socket only), as in PgBouncer.
    let (tcp, local) = if settings.listen_addr.is_empty() {
        (
            None,
            SocketAddr::from(([127, 0, 0, 1], settings.listen_port)),
        )
    } else {
        let tcp = bind_tcp(
            tcp_host(&settings.listen_addr),
            settings.listen_port,
            settings.so_reuseport,
        )?;
        let local = tcp
            .local_addr()
            .map_err(|e| AppError::Listen(settings.listen_addr.clone(), e))?;
        tracing::info!("listening on {local}");
        if settings.so_reuseport {
            hint_about_migration();
        }
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
    let tcp_loop = tcp.map(|tcp| AcceptLoop::start(Arc::clone(&shared), tcp));
    let unix_loop =
        unix.map(|(listener, file)| (AcceptLoop::start(Arc::clone(&shared), listener), file));

    let mode = wait_for_shutdown(&shared).await?;

    // Not ready from now on. Waiting for servers (and an immediate exit) closes idle
    // clients at their next transaction boundary; waiting for clients leaves them be.
    shared.stop_accepting();
    if mode != ShutdownMode::WaitForClients {
        shared.start_drain();
    }
    // Stop listening. Connections the kernel already queued for us were accepted by the
    // client before we closed: serve them rather than let the close reset them (with
    // SO_REUSEPORT another instance takes every connection from here on).
    if let Some(tcp_loop) = tcp_loop {
        tcp_loop.stop_and_sweep(&shared).await;
    }
    if let Some((unix_loop, file)) = unix_loop {
        unix_loop.stop_and_sweep(&shared).await;
        file.remove_if_ours();
    }
    drain(&shared, local, mode).await;
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

/// Binds the first address `host` resolves to that accepts the bind. With `reuse_port`,
/// other processes (of the same user) setting it too may bind the same address: the
/// kernel spreads new connections across them.
fn bind_tcp(host: &str, port: u16, reuse_port: bool) -> Result<TcpListener, AppError> {
    let name = format!("{host}:{port}");
    let failed = |error| AppError::Listen(name.clone(), error);
    let mut last_error = None;
    for address in (host, port).to_socket_addrs().map_err(failed)? {
        match bind_tcp_address(address, reuse_port) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(failed(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
    })))
}

fn bind_tcp_address(address: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // As tokio's bind does: a restart need not wait for TIME_WAIT sockets to expire.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// When a listener in a SO_REUSEPORT group closes, Linux resets the connections still
/// in its accept queue unless `net.ipv4.tcp_migrate_req` hands them to a sibling.
/// pgmux accepts everything queued before closing, which leaves a window of
/// microseconds; the setting closes it.
fn hint_about_migration() {
    const SYSCTL: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
    if let Ok(value) = std::fs::read_to_string(SYSCTL) {
        if value.trim() == "0" {
            tracing::info!(
                "so_reuseport: net.ipv4.tcp_migrate_req is 0; set it to 1 so that a \
                 connection arriving in the instant an instance stops listening moves \
                 to another instance instead of being reset"
            );
        }
    }
}

/// The unix socket file this process created, removed at exit only if it is still
/// ours: during an online restart the new process replaces it with its own.
struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    fn identity(path: &Path) -> Option<(u64, u64)> {
        std::fs::metadata(path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()))
    }

    fn remove_if_ours(&self) {
        if self.identity.is_some() && Self::identity(&self.path) == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn bind_unix(dir: &Path, port: u16) -> Result<(UnixListener, SocketFile), AppError> {
    let path = dir.join(format!(".s.PGSQL.{port}"));
    // A socket file left by a previous run (or still used by the instance this one
    // replaces) would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|e| AppError::Listen(path.display().to_string(), e))?;
    tracing::info!("listening on unix socket {}", path.display());
    let identity = SocketFile::identity(&path);
    Ok((listener, SocketFile { path, identity }))
}

/// A TCP or unix listener that can hand its accepted sockets to `client::serve`.
trait Listener: Send + 'static {
    type Socket;
    fn poll_accept_socket(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Socket>> + Send;
    /// Accepts what the kernel has queued, without waiting, then closes the listener.
    fn sweep(self) -> Vec<Self::Socket>;
    fn stream(socket: Self::Socket) -> Option<Stream>;
}

impl Listener for TcpListener {
    type Socket = TcpStream;

    async fn poll_accept_socket(&self) -> std::io::Result<TcpStream> {
        self.accept().await.map(|(socket, _)| socket)
    }

    fn sweep(self) -> Vec<TcpStream> {
        let Ok(listener) = self.into_std() else {
            return Vec::new();
        };
        std::iter::from_fn(|| listener.accept().ok())
            .filter_map(|(socket, _)| {
                socket.set_nonblocking(true).ok()?;
                TcpStream::from_std(socket).ok()
            })
            .collect()
    }

    fn stream(socket: TcpStream) -> Option<Stream> {
        let _ = socket.set_nodelay(true);
        Some(Stream::Tcp(socket))
    }
}

impl Listener for UnixListener {
    type Socket = UnixStream;

    async fn poll_accept_socket(&self) -> std::io::Result<UnixStream> {
        self.accept().await.map(|(socket, _)| socket)
    }

    fn sweep(self) -> Vec<UnixStream> {
        let Ok(listener) = self.into_std() else {
            return Vec::new();
        };
        std::iter::from_fn(|| listener.accept().ok())
            .filter_map(|(socket, _)| {
                socket.set_nonblocking(true).ok()?;
                UnixStream::from_std(socket).ok()
            })
            .collect()
    }

    fn stream(socket: UnixStream) -> Option<Stream> {
        Some(Stream::Unix(socket))
    }
}

/// An accept loop that gives its listener back when told to stop.
struct AcceptLoop<L> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<L>>,
}

impl<L: Listener> AcceptLoop<L>
where
    L::Socket: Send,
{
    fn start(shared: Arc<Shared>, listener: L) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => return Some(listener),
                    accepted = listener.poll_accept_socket() => match accepted {
                        Ok(socket) => spawn_client(&shared, L::stream(socket)),
                        Err(error) => back_off(error).await,
                    },
                }
            }
        });
        AcceptLoop { stop, task }
    }

    async fn stop_and_sweep(self, shared: &Arc<Shared>) {
        let _ = self.stop.send(());
        if let Ok(Some(listener)) = self.task.await {
            let queued = listener.sweep();
            if !queued.is_empty() {
                tracing::info!("serving {} connection(s) queued at shutdown", queued.len());
            }
            for socket in queued {
                spawn_client(shared, L::stream(socket));
            }
        }
    }
}

fn spawn_client(shared: &Arc<Shared>, stream: Option<Stream>) {
    if let Some(stream) = stream {
        tokio::spawn(crate::connection::serve(Arc::clone(shared), stream));
    }
}

/// Out of file descriptors (or a similar transient failure): pause instead of spinning
/// on an accept that fails again at once.
async fn back_off(error: std::io::Error) {
    tracing::warn!("accept failed: {error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves SIGHUP reloads (and SIGUSR1 pause / SIGUSR2 resume) until SIGTERM, SIGINT,
/// SIGQUIT or the admin console's SHUTDOWN, and says how to end: SIGQUIT and a plain
/// SHUTDOWN at once, SIGINT waiting for servers, SIGTERM as `sigterm_shutdown` says.
async fn wait_for_shutdown(shared: &Arc<Shared>) -> Result<ShutdownMode, AppError> {
    use crate::control::PauseMode;
    let mut quit = signal(SignalKind::quit()).map_err(AppError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(AppError::Signal)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(AppError::Signal)?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(AppError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("got SIGHUP, re-reading config");
                reload(shared);
            }
            // PgBouncer's immediate shutdown: no drain, as the console's SHUTDOWN.
            _ = quit.recv() => {
                tracing::info!("got SIGQUIT, fast exit");
                return Ok(ShutdownMode::Immediate);
            }
            _ = usr1.recv() => {
                tracing::info!("got SIGUSR1, pausing");
                shared.control.set_mode(PauseMode::Pause);
            }
            _ = usr2.recv() => {
                tracing::info!("got SIGUSR2, resuming");
                shared.control.set_mode(PauseMode::None);
            }
            mode = shared.control.shutdown() => return Ok(mode),
            _ = terminate.recv() => {
                return Ok(match shared.settings().sigterm_shutdown {
                    SigtermShutdown::WaitForServers => {
                        tracing::info!("got SIGTERM, shutting down, waiting for all servers connections to be released");
                        ShutdownMode::WaitForServers
                    }
                    SigtermShutdown::WaitForClients => {
                        tracing::info!("got SIGTERM, shutting down, waiting for all clients disconnect");
                        ShutdownMode::WaitForClients
                    }
                });
            }
            _ = interrupt.recv() => {
                tracing::info!("got SIGINT, shutting down, waiting for all servers connections to be released");
                return Ok(ShutdownMode::WaitForServers);
            }
        }
    }
}

/// Re-reads the settings file (and reopens `logfile`). A bad file changes nothing and
/// says why in one line.
pub fn reload(shared: &Shared) {
    let _ = crate::admin::reload(shared);
}

/// Waits, up to `shutdown_timeout`, for the clients to be gone: closed at their next
/// transaction boundary ("pooler is shutting down") when waiting for servers, or leaving
/// on their own when waiting for clients.
async fn drain(shared: &Arc<Shared>, local: SocketAddr, mode: ShutdownMode) {
    let timeout = shared.settings().shutdown_timeout;
    let started = tokio::time::Instant::now();
    while mode != ShutdownMode::Immediate && shared.client_count() > 0 {
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
        pool.close(crate::logfmt::reason::SHUTTING_DOWN);
    }
    // Give the Terminate messages of closing servers a moment to leave.
    tokio::time::sleep(Duration::from_millis(50)).await;
    tracing::info!("pgmux on {local} stopped");
}
