//! One fresh pgmux process per test, listening on a kernel-chosen port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::postgres::postgres;
use super::process::{spawn_captured, SharedLog};
use super::text::{after, first_token, parse_socket_addr, percent_encode, toml_key, toml_string};

const PGMUX_BIN: &str = env!("CARGO_BIN_EXE_pgmux");
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection attempt that has not finished by then means pgmux hangs; fail loudly
/// instead of letting the test hang until CI's overall limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const TCP_LISTENING: &str = "listening on ";
const UNIX_LISTENING: &str = "listening on unix socket ";

pub struct PgmuxBuilder {
    /// Ordered so the written file reads like the calls that built it.
    settings: Vec<(String, String)>,
    databases: Vec<(String, String)>,
    users: Vec<(String, String)>,
    env: Vec<(String, String)>,
    unix_socket_tmp: TempDir,
}

/// The defaults every test starts from: transaction pooling, SCRAM for clients, and
/// database `app` on the harness PostgreSQL with its four login roles.
pub fn pgmux() -> PgmuxBuilder {
    let unix_socket_tmp = tempfile::Builder::new()
        .prefix("pgmux-it-sock-")
        .tempdir()
        .expect("create pgmux socket dir");
    let socket_dir = toml_string(&unix_socket_tmp.path().display().to_string());
    PgmuxBuilder {
        settings: Vec::new(),
        databases: Vec::new(),
        users: Vec::new(),
        env: Vec::new(),
        unix_socket_tmp,
    }
    .setting("listen_addr", "\"127.0.0.1\"")
    .setting("listen_port", "0")
    .setting("unix_socket_dir", &socket_dir)
    .setting("pool_mode", "\"transaction\"")
    .setting("auth_type", "\"scram-sha-256\"")
    .setting("default_pool_size", "5")
    .database(
        "app",
        "host = \"127.0.0.1\"\nport = {PGPORT}\ndbname = \"app\"",
    )
    .user("app", "password = \"secret\"")
    .user("md5user", "password = \"md5secret\"")
    .user("clearuser", "password = \"clearsecret\"")
    .user("other", "password = \"othersecret\"")
}

fn upsert(entries: &mut Vec<(String, String)>, key: &str, value: &str) {
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_string(),
        None => entries.push((key.to_string(), value.to_string())),
    }
}

impl PgmuxBuilder {
    /// A top-level key with a raw TOML value: `.setting("pool_mode", "\"session\"")`.
    pub fn setting(mut self, key: &str, toml_value: &str) -> Self {
        upsert(&mut self.settings, key, toml_value);
        self
    }

    /// Drops a top-level key, e.g. `unix_socket_dir` to run without a unix socket.
    pub fn without_setting(mut self, key: &str) -> Self {
        self.settings.retain(|(k, _)| k != key);
        self
    }

    /// Adds or replaces `[databases.NAME]`; `{PGPORT}` becomes the harness port.
    pub fn database(mut self, name: &str, toml_body: &str) -> Self {
        upsert(&mut self.databases, name, toml_body);
        self
    }

    /// Adds or replaces `[users.NAME]`.
    pub fn user(mut self, name: &str, toml_body: &str) -> Self {
        upsert(&mut self.users, name, toml_body);
        self
    }

    /// Extra environment for the pgmux process (e.g. `PGMUX_*` overrides, `RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        upsert(&mut self.env, key, value);
        self
    }

    /// The config file `start()` will write.
    pub fn toml(&self) -> String {
        let pg_port = postgres().port().to_string();
        let mut out = String::new();
        // Top-level keys must precede the first table in TOML.
        for (key, value) in &self.settings {
            out.push_str(&format!("{key} = {value}\n"));
        }
        let tables = [("databases", &self.databases), ("users", &self.users)];
        for (kind, entries) in tables {
            for (name, body) in entries {
                out.push_str(&format!("\n[{kind}.{}]\n", toml_key(name)));
                out.push_str(&body.replace("{PGPORT}", &pg_port));
                out.push('\n');
            }
        }
        out
    }

    pub async fn start(self) -> Pgmux {
        let config_dir = tempfile::Builder::new()
            .prefix("pgmux-it-conf-")
            .tempdir()
            .expect("create pgmux config dir");
        let config_path = config_dir.path().join("pgmux.toml");
        std::fs::write(&config_path, self.toml()).expect("write pgmux config");

        let mut cmd = pgmux_command();
        cmd.arg("--config").arg(&config_path);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let listening = if self.settings.iter().any(|(k, _)| k == "unix_socket_dir") {
            Listening::TcpAndUnix
        } else {
            Listening::Tcp
        };
        let socket_dir = self.unix_socket_tmp.path().to_path_buf();
        let keep = vec![config_dir, self.unix_socket_tmp];
        Pgmux::spawn(&mut cmd, config_path, socket_dir, keep, listening).await
    }
}

/// A pgmux command with the test environment's noise removed.
pub fn pgmux_command() -> Command {
    let mut cmd = Command::new(PGMUX_BIN);
    // A developer's shell must not change what a test configured.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PGMUX_") {
            cmd.env_remove(key);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    // tracing-subscriber colours output even into a pipe; escapes break matching.
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Which listening lines a start waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    Tcp,
    TcpAndUnix,
    /// TCP, or the unix socket alone (a PgBouncer config without `listen_addr`).
    TcpOrUnix,
}

pub struct Pgmux {
    child: Child,
    logs: SharedLog,
    readers: Vec<JoinHandle<()>>,
    exit_status: Option<ExitStatus>,
    /// Set when a panic message already carried the logs, so Drop doesn't repeat them.
    logs_reported: AtomicBool,
    /// None when pgmux listens on its unix socket only.
    addr: Option<SocketAddr>,
    socket_dir: PathBuf,
    config_path: PathBuf,
    /// Directories that must live as long as the process (config, socket).
    _keep: Vec<TempDir>,
}

impl Pgmux {
    /// Spawns `cmd` and waits (≤ 10 s) until it logs the listeners `listening` asks for.
    pub async fn spawn(
        cmd: &mut Command,
        config_path: PathBuf,
        socket_dir: PathBuf,
        keep: Vec<TempDir>,
        listening: Listening,
    ) -> Pgmux {
        let (child, logs, readers) =
            spawn_captured(cmd).unwrap_or_else(|e| panic!("spawn {PGMUX_BIN}: {e}"));
        let mut pgmux = Pgmux {
            child,
            logs,
            readers,
            exit_status: None,
            logs_reported: AtomicBool::new(false),
            addr: None,
            socket_dir,
            config_path,
            _keep: keep,
        };
        pgmux.wait_until_listening(listening).await;
        pgmux
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("pgmux listens on TCP")
    }

    /// The pgmux process id (e.g. to read its memory use from `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Directory of pgmux's `.s.PGSQL.PORT` socket (as announced in its log).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@{}/{}",
            percent_encode(user),
            percent_encode(password),
            self.addr(),
            percent_encode(db)
        )
    }

    /// Connects through pgmux; panics (with pgmux's logs) if login fails.
    pub async fn connect(&self, user: &str, password: &str, db: &str) -> tokio_postgres::Client {
        match self.try_connect(user, password, db).await {
            Ok(client) => client,
            Err(e) => {
                self.mark_logs_reported();
                panic!(
                    "connecting to pgmux as {user}@{db} failed: {e:?}\n--- pgmux logs ---\n{}",
                    self.logs()
                )
            }
        }
    }

    /// Connects through pgmux, returning login errors for tests that expect them.
    /// Panics if the handshake hangs for [`CONNECT_TIMEOUT`].
    pub async fn try_connect(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let url = self.url(user, password, db);
        let attempt = tokio_postgres::connect(&url, tokio_postgres::NoTls);
        let Ok(result) = tokio::time::timeout(CONNECT_TIMEOUT, attempt).await else {
            self.mark_logs_reported();
            panic!(
                "connecting to pgmux as {user}@{db} hung for {CONNECT_TIMEOUT:?}\n--- pgmux logs ---\n{}",
                self.logs()
            );
        };
        let (client, connection) = result?;
        // Connection errors surface through the client's calls; closing is often the point.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    pub async fn app(&self) -> tokio_postgres::Client {
        self.connect("app", "secret", "app").await
    }

    /// Environment for psql/pgbench pointing at this pgmux as `user`.
    pub fn tool_command(&self, tool: &Path, user: &str, password: &str, db: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port().to_string())
            .env("PGUSER", user)
            .env("PGPASSWORD", password)
            .env("PGDATABASE", db)
            .env("PGSSLMODE", "disable");
        cmd
    }

    /// Everything pgmux printed so far, one line per log line.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_line(&[needle], timeout).await.is_some()
    }

    /// The first log line containing every one of `parts`, waiting up to `timeout` for
    /// it: the output is read asynchronously, so a line may arrive after the reply to the
    /// action that logged it.
    pub async fn wait_for_line(&self, parts: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.line_with(parts) {
                return Some(line);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The first log line so far containing every one of `parts`.
    pub fn line_with(&self, parts: &[&str]) -> Option<String> {
        let lines = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .find(|line| parts.iter().all(|part| line.contains(part)))
            .cloned()
    }

    /// Sends a signal by name ("HUP", "TERM", "INT", ...).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {sig} {} failed", self.child.id());
    }

    /// Replaces the config file atomically, so a reload never reads a half-written file.
    pub fn rewrite_config(&self, toml: &str) {
        let staging = self.config_path.with_extension("toml.new");
        std::fs::write(&staging, toml).expect("write new pgmux config");
        std::fs::rename(&staging, &self.config_path).expect("replace pgmux config");
    }

    /// Waits for pgmux to exit on its own; None if it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = self.child.try_wait().expect("poll pgmux process");
        }
        self.exit_status
    }

    fn mark_logs_reported(&self) {
        self.logs_reported.store(true, Ordering::Relaxed);
    }

    /// How many log lines contain `needle`.
    pub fn count_log_lines(&self, needle: &str) -> usize {
        let lines = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().filter(|line| line.contains(needle)).count()
    }

    async fn wait_until_listening(&mut self, listening: Listening) {
        let expects_unix_socket = listening == Listening::TcpAndUnix;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let (tcp, unix) = self.announced_listeners();
            self.addr = tcp;
            if let Some(dir) = unix.as_ref().and_then(|path| path.parent()) {
                self.socket_dir = dir.to_path_buf();
            }
            let ready = match listening {
                Listening::Tcp => tcp.is_some(),
                Listening::TcpAndUnix => tcp.is_some() && unix.is_some(),
                Listening::TcpOrUnix => tcp.is_some() || unix.is_some(),
            };
            if ready {
                return;
            }
            if let Some(status) = self.poll_exit() {
                self.join_readers();
                self.mark_logs_reported();
                panic!(
                    "pgmux exited during startup ({status})\n--- pgmux logs ---\n{}",
                    self.logs()
                );
            }
            if Instant::now() >= deadline {
                self.mark_logs_reported();
                panic!(
                    "pgmux did not log `{TCP_LISTENING}<addr>`{} within {STARTUP_TIMEOUT:?}\n--- pgmux logs ---\n{}",
                    if expects_unix_socket { " and `listening on unix socket <path>`" } else { "" },
                    self.logs()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The TCP address and unix socket path pgmux has announced so far.
    fn announced_listeners(&self) -> (Option<SocketAddr>, Option<PathBuf>) {
        let lines = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let mut tcp = None;
        let mut unix = None;
        for line in lines.iter() {
            if let Some(rest) = after(line, UNIX_LISTENING) {
                unix = first_token(rest).map(PathBuf::from);
            } else if let Some(rest) = after(line, TCP_LISTENING) {
                tcp = tcp.or_else(|| first_token(rest).and_then(parse_socket_addr));
            }
        }
        (tcp, unix)
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Pgmux {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The pipes are closed now, so the readers finish and the log is complete.
        self.join_readers();
        if std::thread::panicking() && !self.logs_reported.load(Ordering::Relaxed) {
            eprintln!(
                "--- pgmux logs (port {}) ---\n{}\n--- end of pgmux logs ---",
                self.addr.map_or(0, |addr| addr.port()),
                self.logs()
            );
        }
    }
}
