//! pgmux and PgBouncer started with the same settings: transaction pooling, 25 servers per
//! pool, md5 client authentication, TCP on 127.0.0.1 only, logging at warning level.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cluster::{hand_over, DATABASE, PASSWORD, USER};
use crate::process::{free_port, wait_for_port, Guarded};

pub const POOL_SIZE: u32 = 25;
/// Above the largest idle cell, so the file limit (not the setting) is what binds.
pub const MAX_CLIENT_CONN: u32 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pgmux,
    PgBouncer,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pgmux => "pgmux",
            Kind::PgBouncer => "pgbouncer",
        }
    }
}

/// What is needed to start either pooler.
pub struct Launcher {
    pub pgmux: PathBuf,
    pub pgbouncer: Option<PathBuf>,
    /// uid/gid to run PgBouncer as (it refuses root); None when not root.
    pub service_ids: Option<(u32, u32)>,
    pub pg_port: u16,
    pub root: PathBuf,
    pub pids_file: PathBuf,
}

pub struct Pooler {
    pub kind: Kind,
    pub port: u16,
    pub process: Guarded,
}

impl Pooler {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl Launcher {
    pub fn start(&self, kind: Kind, tag: &str) -> Result<Pooler, String> {
        let dir = self.root.join(format!("{}-{tag}", kind.name()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {dir:?}: {e}"))?;
        let port = free_port();
        let cmd = match kind {
            Kind::Pgmux => self.pgmux_command(&dir, port)?,
            Kind::PgBouncer => self.pgbouncer_command(&dir, port)?,
        };
        let mut process =
            Guarded::spawn(cmd, kind.name(), &dir.join("stderr.log"), &self.pids_file)?;
        if !wait_for_port(port, Duration::from_secs(20)) || !process.alive() {
            let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            let extra = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            return Err(format!(
                "{} did not start listening:\n{log}{extra}",
                kind.name()
            ));
        }
        Ok(Pooler {
            kind,
            port,
            process,
        })
    }

    fn pgmux_command(&self, dir: &Path, port: u16) -> Result<Command, String> {
        let config = format!(
            "listen_addr = \"127.0.0.1\"\n\
             listen_port = {port}\n\
             unix_socket_dir = \"\"\n\
             pool_mode = \"transaction\"\n\
             max_client_conn = {MAX_CLIENT_CONN}\n\
             default_pool_size = {POOL_SIZE}\n\
             auth_type = \"md5\"\n\
             \n[databases.{DATABASE}]\n\
             host = \"127.0.0.1\"\n\
             port = {pg_port}\n\
             dbname = \"{DATABASE}\"\n\
             \n[users.{USER}]\n\
             password = \"{PASSWORD}\"\n",
            pg_port = self.pg_port,
        );
        let path = dir.join("pooler.toml");
        std::fs::write(&path, config).map_err(|e| format!("write {path:?}: {e}"))?;
        let mut cmd = Command::new(&self.pgmux);
        cmd.arg(&path).env("RUST_LOG", "warn").current_dir(dir);
        Ok(cmd)
    }

    fn pgbouncer_command(&self, dir: &Path, port: u16) -> Result<Command, String> {
        let Some(program) = &self.pgbouncer else {
            return Err("PgBouncer not installed".to_owned());
        };
        let auth_file = dir.join("userlist.txt");
        std::fs::write(&auth_file, format!("\"{USER}\" \"{PASSWORD}\"\n"))
            .map_err(|e| format!("write {auth_file:?}: {e}"))?;
        let config = format!(
            "[databases]\n\
             {DATABASE} = host=127.0.0.1 port={pg_port} dbname={DATABASE}\n\
             \n[pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             pool_mode = transaction\n\
             max_client_conn = {MAX_CLIENT_CONN}\n\
             default_pool_size = {POOL_SIZE}\n\
             auth_type = md5\n\
             auth_file = {auth_file}\n\
             logfile = {log}\n\
             log_connections = 0\n\
             log_disconnections = 0\n\
             log_stats = 0\n",
            pg_port = self.pg_port,
            auth_file = auth_file.display(),
            log = dir.join("pgbouncer.log").display(),
        );
        let path = dir.join("pgbouncer.ini");
        std::fs::write(&path, config).map_err(|e| format!("write {path:?}: {e}"))?;
        hand_over(dir, self.service_ids.is_some())?;
        let mut cmd = Command::new(program);
        cmd.arg(&path).current_dir(dir);
        if let Some((uid, gid)) = self.service_ids {
            cmd.uid(uid).gid(gid);
        }
        Ok(cmd)
    }
}
