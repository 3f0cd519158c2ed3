//! pgmux started on PgBouncer-style files: a temp directory holding `pgbouncer.ini`,
//! `userlist.txt` and any other file a test writes, with `{DIR}` (the directory) and
//! `{PGPORT}` (the harness PostgreSQL) substituted in every file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::postgres::postgres;
use super::process::{run_tool, spawn_captured, SharedLog, ToolOutput};
use super::text::{after, first_token, parse_socket_addr, percent_encode};

pub const PGMUX_BIN: &str = env!("CARGO_BIN_EXE_pgmux");
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[pgbouncer]` lines every test needs: loopback, a kernel-chosen port, the unix
/// socket in the test's directory.
pub const LISTEN: &str = "listen_addr = 127.0.0.1\nlisten_port = 0\nunix_socket_dir = {DIR}\n";

/// A directory of config files for one test.
pub struct IniFiles {
    pub dir: TempDir,
}

impl IniFiles {
    pub fn new() -> IniFiles {
        let dir = tempfile::Builder::new()
            .prefix("pgmux-it-ini-")
            .tempdir()
            .expect("create ini dir");
        IniFiles { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `name` with `{DIR}` and `{PGPORT}` substituted; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, self.substitute(text)).expect("write config file");
        path
    }

    pub fn substitute(&self, text: &str) -> String {
        text.replace("{DIR}", &self.dir.path().display().to_string())
            .replace("{PGPORT}", &postgres().port().to_string())
    }

    /// Runs pgmux to completion (`--check`, `convert`, `--version`, `-d`).
    pub fn run(&self, args: &[&str]) -> ToolOutput {
        let mut cmd = pgmux_command();
        cmd.args(args).current_dir(self.dir.path());
        run_tool(&mut cmd, Duration::from_secs(30))
    }

    /// Starts `pgmux ARGS…` in the foreground and waits until it listens.
    pub async fn start(self, args: &[&str]) -> IniPgmux {
        let mut cmd = pgmux_command();
        cmd.args(args).current_dir(self.dir.path());
        let (child, logs, readers) =
            spawn_captured(&mut cmd).unwrap_or_else(|e| panic!("spawn {PGMUX_BIN}: {e}"));
        let mut pgmux = IniPgmux {
            child,
            logs,
            readers,
            exit_status: None,
            addr: None,
            files: self,
        };
        pgmux.wait_until_listening().await;
        pgmux
    }
}

/// A pgmux command with the test environment's noise removed.
pub fn pgmux_command() -> Command {
    let mut cmd = Command::new(PGMUX_BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PGMUX_") {
            cmd.env_remove(key);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

pub struct IniPgmux {
    child: Child,
    logs: SharedLog,
    readers: Vec<JoinHandle<()>>,
    exit_status: Option<ExitStatus>,
    /// None when pgmux listens on the unix socket only.
    addr: Option<SocketAddr>,
    pub files: IniFiles,
}

impl IniPgmux {
    pub fn port(&self) -> u16 {
        self.addr.expect("pgmux listens on TCP").port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            percent_encode(user),
            percent_encode(password),
            self.port(),
            percent_encode(db)
        )
    }

    pub async fn try_connect(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        connect_url(&self.url(user, password, db)).await
    }

    pub async fn connect(&self, user: &str, password: &str, db: &str) -> tokio_postgres::Client {
        match self.try_connect(user, password, db).await {
            Ok(client) => client,
            Err(e) => panic!(
                "connecting as {user}@{db} failed: {e:?}\n--- pgmux logs ---\n{}",
                self.logs()
            ),
        }
    }

    /// psql/pgbench environment pointing at this pgmux.
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

    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// How many log lines contain `needle`.
    pub fn count_log_lines(&self, needle: &str) -> usize {
        let lines = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().filter(|line| line.contains(needle)).count()
    }

    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count_log_lines(needle) > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit_status.is_none() {
                self.exit_status = self.child.try_wait().expect("poll pgmux");
            }
            if self.exit_status.is_some() || Instant::now() >= deadline {
                return self.exit_status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let lines = self.logs().lines().map(str::to_owned).collect::<Vec<_>>();
            if let Some(addr) = listening_addr(&lines) {
                self.addr = Some(addr);
                return;
            }
            if lines.iter().any(|l| l.contains("listening on unix socket")) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll pgmux") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                panic!("pgmux exited during startup ({status})\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "pgmux did not start listening\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for IniPgmux {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if std::thread::panicking() {
            eprintln!("--- pgmux logs ---\n{}\n--- end ---", self.logs());
        }
    }
}

/// The TCP address in a `listening on ADDR` line, if any.
pub fn listening_addr(lines: &[String]) -> Option<SocketAddr> {
    lines
        .iter()
        .filter(|line| !line.contains("listening on unix socket"))
        .find_map(|line| after(line, "listening on ").and_then(first_token))
        .and_then(parse_socket_addr)
}

pub async fn connect_url(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let attempt = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .expect("connecting to pgmux hung")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {sig} {pid} failed");
}

/// Whether a process exists (`kill -0`).
pub fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// A secret as PostgreSQL stores it for `role` (md5… or SCRAM-SHA-256$…).
pub async fn stored_secret(role: &str) -> String {
    postgres()
        .superuser()
        .await
        .query_one(
            "select rolpassword from pg_authid where rolname = $1",
            &[&role],
        )
        .await
        .expect("read pg_authid")
        .get(0)
}
