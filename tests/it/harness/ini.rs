//! pgmux started on PgBouncer-style files: a temp directory holding `pgbouncer.ini`,
//! `userlist.txt` and any other file a test writes, with `{DIR}` (the directory) and
//! `{PGPORT}` (the harness PostgreSQL) substituted in every file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use super::pgmux::pgmux_command;
use super::pgmux::{Listening, Pgmux};
use super::postgres::postgres;
use super::process::{run_tool, ToolOutput};
use super::text::{after, first_token, parse_socket_addr, percent_encode};

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

    /// Starts `pgmux ARGS…` in the foreground and waits until it listens (on TCP, or on
    /// its unix socket alone when the ini has no `listen_addr`).
    pub async fn start(self, args: &[&str]) -> IniPgmux {
        let mut cmd = pgmux_command();
        cmd.args(args).current_dir(self.dir.path());
        let config_path = self.path("pgbouncer.ini");
        let socket_dir = self.dir.path().to_path_buf();
        let pgmux = Pgmux::spawn(
            &mut cmd,
            config_path,
            socket_dir,
            Vec::new(),
            Listening::TcpOrUnix,
        )
        .await;
        IniPgmux { pgmux, files: self }
    }
}

/// A pgmux process started on ini files: the usual [`Pgmux`] handle, plus the files.
pub struct IniPgmux {
    pgmux: Pgmux,
    pub files: IniFiles,
}

impl std::ops::Deref for IniPgmux {
    type Target = Pgmux;
    fn deref(&self) -> &Pgmux {
        &self.pgmux
    }
}

impl std::ops::DerefMut for IniPgmux {
    fn deref_mut(&mut self) -> &mut Pgmux {
        &mut self.pgmux
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
