//! The throwaway PostgreSQL every run measures against: fsync off, trust on loopback,
//! max_connections high enough for 1,000 direct pgbench clients, a pgbench database.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{quote, run_checked, wait_for_port, SERVICE_USER};

pub const DATABASE: &str = "bench";
pub const USER: &str = "bench";
pub const PASSWORD: &str = "bench";
/// Enough for 1,000 direct clients plus both poolers' 25 servers and spare.
pub const MAX_CONNECTIONS: u32 = 1100;
pub const SCALE: u32 = 10;

pub struct Cluster {
    pub bin_dir: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub port: u16,
    as_service_user: bool,
    log_file: PathBuf,
    running: bool,
}

impl Cluster {
    pub fn new(root: &Path, bin_dir: Option<PathBuf>, port: u16, as_service_user: bool) -> Cluster {
        Cluster {
            bin_dir,
            data_dir: root.join("pgdata"),
            port,
            as_service_user,
            log_file: root.join("postgres.log"),
            running: false,
        }
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The shell command the watchdog runs to stop this cluster.
    pub fn stop_command(&self) -> String {
        let pg_ctl = quote(&self.bin("pg_ctl"));
        let data = quote(&self.data_dir);
        if self.as_service_user {
            format!("runuser -u {SERVICE_USER} -- {pg_ctl} -D {data} stop -m immediate")
        } else {
            format!("{pg_ctl} -D {data} stop -m immediate")
        }
    }

    fn server_command(&self, name: &str) -> Command {
        let mut cmd = if self.as_service_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SERVICE_USER, "--"]).arg(self.bin(name));
            cmd
        } else {
            Command::new(self.bin(name))
        };
        cmd.current_dir(self.data_dir.parent().unwrap_or(Path::new("/")));
        cmd
    }

    pub fn start(&mut self) -> Result<(), String> {
        run_checked(
            self.server_command("initdb")
                .arg("-D")
                .arg(&self.data_dir)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]),
        )?;
        let settings = format!(
            "\n# pgmux e2e benchmark: a throwaway cluster, durability off\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             max_connections = {MAX_CONNECTIONS}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 256MB\n\
             log_min_messages = warning\n",
            port = self.port,
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| format!("append postgresql.conf: {e}"))?;
        std::fs::write(
            self.data_dir.join("pg_hba.conf"),
            "host all all 127.0.0.1/32 trust\n",
        )
        .map_err(|e| format!("write pg_hba.conf: {e}"))?;
        run_checked(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file)
                .args(["-w", "-t", "120", "start"]),
        )
        .map_err(|e| format!("{e}\n{}", self.log_tail()))?;
        self.running = true;
        if !wait_for_port(self.port, Duration::from_secs(30)) {
            return Err(format!("PostgreSQL not accepting\n{}", self.log_tail()));
        }
        let role = format!("CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'");
        self.psql("postgres", "postgres", &role)?;
        let database = format!("CREATE DATABASE {DATABASE} OWNER {USER}");
        self.psql("postgres", "postgres", &database)?;
        Ok(())
    }

    /// pgbench's tables at scale [`SCALE`], owned by the bench role.
    pub fn load_pgbench(&self) -> Result<(), String> {
        run_checked(
            Command::new(self.bin("pgbench"))
                .args(["-i", "-q", "-s", &SCALE.to_string()])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", USER, DATABASE]),
        )?;
        Ok(())
    }

    pub fn psql(&self, user: &str, database: &str, sql: &str) -> Result<String, String> {
        run_checked(
            Command::new(self.bin("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", user, "-d", database, "-c", sql]),
        )
    }

    pub fn version(&self) -> String {
        self.psql("postgres", "postgres", "SHOW server_version")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = run_checked(
                self.server_command("pg_ctl")
                    .arg("-D")
                    .arg(&self.data_dir)
                    .args(["-w", "-t", "60", "-m", "fast", "stop"]),
            );
        }
    }
}

/// Makes `dir` usable by the service user (PostgreSQL and PgBouncer run as it under root).
pub fn hand_over(dir: &Path, as_service_user: bool) -> Result<(), String> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {dir:?}: {e}"))?;
    if as_service_user {
        run_checked(Command::new("chown").arg("-R").arg(SERVICE_USER).arg(dir))?;
    }
    Ok(())
}
