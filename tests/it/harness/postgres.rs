//! One throwaway PostgreSQL cluster per test-binary run, shared by every test.
//!
//! Started lazily by the first [`postgres()`] call and stopped by a watchdog process
//! once the test binary exits (Rust's test runner ends with `process::exit`, so no
//! destructor of a static would ever run).

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::process::{ensure_os_user_exists, run_checked, running_as_root, shell_quote};

/// OS user that owns the cluster when the tests run as root (initdb and postgres
/// refuse to run as root).
const CLUSTER_OS_USER: &str = "postgres";

/// Roles every test can rely on. Each one logs in to PostgreSQL with a different
/// server-side method (see `PG_HBA`), because pgmux must speak all of them.
const SETUP_SQL: &str = r#"
\set ON_ERROR_STOP 1
CREATE ROLE app LOGIN PASSWORD 'secret';
-- md5 pg_hba entries fall back to SCRAM when the stored secret is SCRAM, so the
-- md5 user's secret must really be stored as md5 for the md5 login path to run.
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5secret';
RESET password_encryption;
CREATE ROLE clearuser LOGIN PASSWORD 'clearsecret';
-- Members log in with md5 over TCP (pg_hba `+md5_roles`): roles a test creates with
-- an md5-stored password join it, since a `scram-sha-256` line refuses them.
CREATE ROLE md5_roles NOLOGIN;
CREATE ROLE other LOGIN PASSWORD 'othersecret';
-- Logs in only with a client certificate over TLS (pg_hba `cert`).
CREATE ROLE certuser LOGIN;
CREATE DATABASE app OWNER app;
GRANT ALL ON DATABASE app TO md5user, clearuser, other;
\connect app
-- PostgreSQL 15 no longer lets every role create objects in `public`.
GRANT ALL ON SCHEMA public TO md5user, clearuser, other;
"#;

const PG_HBA: &str = "\
local all all trust
host all postgres 127.0.0.1/32 trust
host all md5user 127.0.0.1/32 md5
host all +md5_roles 127.0.0.1/32 md5
host all clearuser 127.0.0.1/32 password
hostssl all certuser 127.0.0.1/32 cert
host all all 127.0.0.1/32 scram-sha-256
";

pub struct Postgres {
    bin_dir: Option<PathBuf>,
    /// Temp root holding `data/`, `socket/` and `server.log`; removed by the watchdog.
    root: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    /// CA of the cluster's TLS certificate (for `localhost` only, so verify-full
    /// towards 127.0.0.1 fails): the cluster runs with `ssl = on`, and plain connections
    /// still work (`host` lines). The same CA signs client certificates it accepts.
    server_ca_file: PathBuf,
    port: u16,
    run_as_cluster_user: bool,
}

static CLUSTER: OnceLock<Result<Postgres, String>> = OnceLock::new();

/// The shared cluster, started on first use. A failed start is remembered so every
/// test reports the same error instead of each one trying to start its own cluster.
pub fn postgres() -> &'static Postgres {
    match CLUSTER.get_or_init(Postgres::start) {
        Ok(pg) => pg,
        Err(message) => panic!("harness PostgreSQL is unavailable:\n{message}"),
    }
}

static DISRUPTION_LOCK: RwLock<()> = RwLock::new(());

/// Held by ordinary tests for their whole duration; many at once.
pub struct SharedGuard(#[allow(dead_code)] RwLockReadGuard<'static, ()>);
/// Held by tests that disrupt PostgreSQL (restart); waits for all shared holders.
pub struct ExclusiveGuard(#[allow(dead_code)] RwLockWriteGuard<'static, ()>);

/// Take first thing in every test that does not disrupt the cluster. Never take it
/// twice in one test: with a writer queued the second read would deadlock.
pub fn shared() -> SharedGuard {
    // A panicking test poisons the lock; the cluster is still fine for the others.
    SharedGuard(DISRUPTION_LOCK.read().unwrap_or_else(|e| e.into_inner()))
}

/// Take first thing in tests that restart PostgreSQL. Linux's std RwLock prefers
/// writers, so a queued exclusive test is not starved by a stream of shared ones.
pub fn exclusive() -> ExclusiveGuard {
    ExclusiveGuard(DISRUPTION_LOCK.write().unwrap_or_else(|e| e.into_inner()))
}

impl Postgres {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The CA file that verifies the cluster's TLS certificate.
    pub fn server_ca_file(&self) -> &Path {
        &self.server_ca_file
    }

    /// Certificate and key (PEM files) of role `certuser`, which PostgreSQL lets in only
    /// with this client certificate.
    pub fn certuser_files(&self) -> (PathBuf, PathBuf) {
        (
            self.root.join("certuser.crt"),
            self.root.join("certuser.key"),
        )
    }

    /// A PostgreSQL client or server binary of the version the cluster runs.
    pub fn bin(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    pub fn superuser_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A direct (not through pgmux) connection as `postgres` to database `postgres`.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        match tokio_postgres::connect(&self.superuser_url(), tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            Err(e) => panic!(
                "superuser connection to PostgreSQL failed: {e:?}\n{}",
                self.log_tail()
            ),
        }
    }

    /// Fast restart on the same port; returns once it accepts connections again.
    /// Callers must hold [`exclusive()`].
    pub fn restart(&self) {
        let output = self
            .cluster_command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t", "60", "-m", "fast", "restart"])
            .output()
            .expect("run pg_ctl restart");
        if !output.status.success() {
            panic!(
                "pg_ctl restart failed: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.log_tail()
            );
        }
        if let Err(e) = self.wait_until_accepting(Duration::from_secs(30)) {
            panic!("{e}");
        }
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_file)
    }

    fn start() -> Result<Postgres, String> {
        let started = Instant::now();
        let run_as_cluster_user = running_as_root();
        if run_as_cluster_user {
            ensure_os_user_exists(CLUSTER_OS_USER)?;
        }
        let root = tempfile::Builder::new()
            .prefix("pgmux-it-pg-")
            .tempdir()
            .map_err(|e| format!("create cluster temp dir: {e}"))?
            .keep();
        let pg = Postgres {
            bin_dir: newest_postgres_bin_dir(),
            data_dir: root.join("data"),
            socket_dir: root.join("socket"),
            log_file: root.join("server.log"),
            server_ca_file: root.join("server-ca.crt"),
            port: free_tcp_port(),
            run_as_cluster_user,
            root,
        };
        // Registered before anything can fail so even a half-started cluster is cleaned.
        pg.spawn_cleanup_watchdog()?;
        pg.prepare_dirs()?;
        pg.initdb()?;
        pg.write_config()?;
        pg.pg_ctl_start()?;
        pg.wait_until_accepting(Duration::from_secs(30))?;
        pg.create_roles_and_database()?;
        eprintln!(
            "harness: PostgreSQL at 127.0.0.1:{} ({}) ready in {:.2?}",
            pg.port,
            pg.root.display(),
            started.elapsed()
        );
        Ok(pg)
    }

    fn prepare_dirs(&self) -> Result<(), String> {
        std::fs::create_dir(&self.socket_dir).map_err(|e| format!("create socket dir: {e}"))?;
        // Readable root so non-owner clients can reach the socket; initdb makes data/ 0700.
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod cluster dir: {e}"))?;
        if self.run_as_cluster_user {
            run_checked(
                Command::new("chown")
                    .arg("-R")
                    .arg(CLUSTER_OS_USER)
                    .arg(&self.root),
            )?;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), String> {
        run_checked(
            self.cluster_command("initdb")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
                // Durability of a throwaway cluster is irrelevant; skipping fsync saves seconds.
                .arg("--no-sync"),
        )
    }

    fn write_config(&self) -> Result<(), String> {
        let settings = format!(
            "\n# added by the pgmux test harness\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket}'\n\
             max_connections = 300\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 128MB\n\
             log_min_messages = warning\n\
             password_encryption = 'scram-sha-256'\n\
             ssl = on\n\
             ssl_ca_file = 'root.crt'\n",
            port = self.port,
            socket = self.socket_dir.display(),
        );
        // Appending/truncating existing files keeps their owner (the cluster user).
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| format!("append postgresql.conf: {e}"))?;
        std::fs::write(self.data_dir.join("pg_hba.conf"), PG_HBA)
            .map_err(|e| format!("write pg_hba.conf: {e}"))?;
        self.write_tls_files()
    }

    /// `ssl = on` reads `server.crt`/`server.key` from the data directory; the key must
    /// belong to the cluster's user and be private.
    fn write_tls_files(&self) -> Result<(), String> {
        let pki = super::tls::TestPki::new("pgmux test cluster CA");
        let files = pki.server_cert_for("server", &["localhost"]);
        std::fs::copy(pki.ca_file(), &self.server_ca_file)
            .map_err(|e| format!("copy cluster CA: {e}"))?;
        let client = pki.client_cert("certuser", "certuser");
        let (cert, key) = self.certuser_files();
        std::fs::copy(&client.cert, cert).map_err(|e| format!("copy client cert: {e}"))?;
        std::fs::copy(&client.key, key).map_err(|e| format!("copy client key: {e}"))?;
        for (from, to) in [
            (&files.cert, "server.crt"),
            (&files.key, "server.key"),
            (&pki.ca_file().to_path_buf(), "root.crt"),
        ] {
            let to = self.data_dir.join(to);
            std::fs::copy(from, &to).map_err(|e| format!("copy {}: {e}", to.display()))?;
            super::tls::set_mode(&to, 0o600);
            if self.run_as_cluster_user {
                run_checked(Command::new("chown").arg(CLUSTER_OS_USER).arg(&to))?;
            }
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        run_checked(
            self.cluster_command("pg_ctl")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file)
                .args(["-w", "-t", "60", "start"]),
        )
        .map_err(|e| format!("{e}\n{}", self.log_tail()))
    }

    /// `pg_ctl -w` already waits, but checking TCP too proves the port we hand out works.
    fn wait_until_accepting(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = Command::new(self.bin("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("run pg_isready: {e}"))?;
            if status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "PostgreSQL did not accept connections on 127.0.0.1:{} within {timeout:?}\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn create_roles_and_database(&self) -> Result<(), String> {
        // psql rather than tokio-postgres: postgres() is sync and may be called from
        // inside a tokio runtime, where blocking on a second runtime is not allowed.
        let mut child = Command::new(self.bin("psql"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-X", "-q", "-f", "-"])
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("run psql: {e}"))?;
        child
            .stdin
            .take()
            .expect("psql stdin")
            .write_all(SETUP_SQL.as_bytes())
            .map_err(|e| format!("feed psql: {e}"))?;
        let output = child
            .wait_with_output()
            .map_err(|e| format!("wait psql: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "creating roles failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    /// A background shell that outlives the test binary: once our pid is gone it
    /// stops the cluster and deletes its files. It has its own process group (a
    /// Ctrl-C on `cargo test` must not kill it) and no inherited stdio (an open
    /// stdout/stderr pipe would keep `cargo test` or a CI pipe waiting for EOF).
    fn spawn_cleanup_watchdog(&self) -> Result<(), String> {
        let pg_ctl = shell_quote(&self.bin("pg_ctl").display().to_string());
        let stop = if self.run_as_cluster_user {
            format!("runuser -u {CLUSTER_OS_USER} -- {pg_ctl}")
        } else {
            pg_ctl
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             cd /; {stop} -D {data} stop -m immediate; rm -rf {root}",
            pid = std::process::id(),
            data = shell_quote(&self.data_dir.display().to_string()),
            root = shell_quote(&self.root.display().to_string()),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map(drop)
            .map_err(|e| format!("spawn cleanup watchdog: {e}"))
    }

    /// A server-side binary run as the cluster's owner.
    fn cluster_command(&self, name: &str) -> Command {
        let mut cmd = if self.run_as_cluster_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", CLUSTER_OS_USER, "--"]).arg(self.bin(name));
            cmd
        } else {
            Command::new(self.bin(name))
        };
        // The cluster user may not be able to enter the test's working directory.
        cmd.current_dir(&self.root).stdin(Stdio::null());
        cmd
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian layout); None = use PATH.
fn newest_postgres_bin_dir() -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// Binding port 0 lets the kernel pick a free port; it is released right away for
/// PostgreSQL. Another process could grab it in between, which is unlikely enough.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!("--- tail of {} ---\n{tail}", path.display())
}
